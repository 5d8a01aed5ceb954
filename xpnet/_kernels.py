"""CUDA kernels beside their NumPy twins.

A GPU step of a small network is bound by its launches (see the performance
guide), so the GPU paths fuse the elementwise work of a step into a few
kernels of their own.  Each is a :class:`Kernel`: CUDA C++ source for
``cupy.RawKernel``, written once with ``T`` for the float type, and a NumPy
*twin* that takes the kernel's own arguments and writes the same outputs with
the same arithmetic, operation for operation.  On a CPU the twins run in the
kernels' place (a stand-in for the ``cupy`` module hands them out; see
benchmarks/launch_counts.py), so a fused step's numbers and launch counts are
tested without a device, and on a device the GPU script checks each kernel
against its twin.

Kernels are compiled without fused multiply-adds (``--fmad=false``): with
them, ``a * b + c`` rounds once where the twin rounds twice.  The CUDA math
library's ``tanh``, ``exp`` and ``log`` may still differ from NumPy's in the
last bit, so a device agrees with its twins to rounding.

Arguments follow one convention: arrays are passed as they are (CuPy passes a
view's own pointer), floats as ``T`` and integers as ``long long``.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

#: nvrtc's options for every kernel: no fused multiply-add, so that each product and sum
#: rounds as the twin's does.
OPTIONS = ("--fmad=false", "-std=c++14")

#: The C types of the float dtypes, and of the label dtypes a gather reads.
C_TYPES = {"float32": "float", "float64": "double", "bool": "bool"}


class Kernel(NamedTuple):
    """One CUDA kernel and its NumPy twin.

    Attributes
    ----------
    name : str
        The ``__global__`` function's name; the compiled name adds the dtypes.
    source : str
        CUDA C++ defining ``extern "C" __global__ void NAME(...)``, in terms of the
        float type ``T`` and, for kernels that read labels, their type ``L``.
    twin : callable
        ``twin(*args)``: the kernel's arithmetic on NumPy arrays, given the same
        arguments as the launch (arrays, then ``T`` and ``long long`` scalars), writing
        the same outputs in place.
    """

    name: str
    source: str
    twin: Callable[..., None]

    def function(self, dtype: str, labels: str | None = None) -> str:
        """The compiled function's name for float type ``dtype`` (and label type)."""
        return f"{self.name}_{dtype}" + ("" if labels is None else f"_{labels}")

    @functools.cache  # noqa: B019 - kernels are declared once and live for the process
    def parameters(self) -> tuple[str, ...]:
        """Each parameter's kind, from the kernel's signature: ``"array"`` for a pointer,
        ``"T"`` for a float, ``"long long"`` for an integer."""
        match = re.search(rf"__global__ void {self.name}\((.*?)\)\s*{{", self.source, re.S)
        if match is None:
            raise ValueError(f"no signature for {self.name!r} in its source")
        kinds = []
        for parameter in match.group(1).split(","):
            words = parameter.replace("*", " * ").split()[:-1]  # the name goes
            if "*" in words:
                kinds.append("array")
            elif words in (["T"], ["const", "T"]):
                kinds.append("T")
            elif words in (["long", "long"], ["const", "long", "long"]):
                kinds.append("long long")
            else:
                raise ValueError(f"{self.name}: a parameter of an unknown type: {parameter!r}")
        return tuple(kinds)

    def code(self, dtype: str, labels: str | None = None) -> str:
        """The full CUDA source for ``dtype`` (and ``labels``), its function renamed."""
        head = f"typedef {C_TYPES[dtype]} T;\n"
        if labels is not None:
            head += f"typedef {C_TYPES[labels]} L;\n"
        body = self.source.replace(f" {self.name}(", f" {self.function(dtype, labels)}(", 1)
        return head + body


#: Every kernel declared, by name: a stand-in module finds a twin by its kernel's name.
KERNELS: dict[str, Kernel] = {}


def declare(name: str, source: str, twin: Callable[..., None]) -> Kernel:
    """Declare a kernel and its twin (see :class:`Kernel`)."""
    if name in KERNELS:
        raise ValueError(f"a kernel named {name!r} is declared already")
    KERNELS[name] = kernel = Kernel(name, source, twin)
    return kernel


def twin_of(function: str) -> Callable[..., None]:
    """The twin of a compiled function name (``NAME_float32``, ``NAME_float64_bool``)."""
    name = function
    while name not in KERNELS and "_" in name:
        name = name.rsplit("_", 1)[0]
    return KERNELS[name].twin


class Launcher:
    """Kernels compiled for one ``cupy`` module (or a stand-in of it) and launched.

    ``cp`` needs ``RawKernel(code, name, options=...)`` whose result is called as
    ``kernel(grid, block, args)``, as CuPy's is.
    """

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self._compiled: dict[tuple, Any] = {}

    def __call__(
        self, kernel: Kernel, threads: int, args: tuple, dtype: str, *,
        labels: str | None = None, block: int = 256, shared_mem: int = 0,
    ) -> None:  # fmt: skip
        """Launch ``kernel`` over ``threads`` threads (one-dimensional blocks of ``block``),
        its floats cast to ``dtype`` and its integers to ``long long``; ``shared_mem`` bytes
        of dynamic shared memory a block."""
        key = (kernel.name, dtype, labels)
        found = self._compiled.get(key)
        if found is None:
            code = kernel.code(dtype, labels)
            function = kernel.function(dtype, labels)
            found = self._compiled[key] = (self.cp.RawKernel(code, function, options=OPTIONS),)
        grid = (max(1, -(-threads // block)),)
        found[0](grid, (block,), self.arguments(kernel, args, dtype), shared_mem=shared_mem)

    def arguments(self, kernel: Kernel, args: tuple, dtype: str) -> tuple:
        """``args`` as ``kernel`` reads them: CuPy passes a scalar as its own bytes, so each
        gets the width and kind of its parameter (an int64 read as a float is a denormal,
        not the number); an argument that does not fit raises TypeError."""
        kinds = kernel.parameters()
        if len(args) != len(kinds):
            raise TypeError(f"{kernel.name} takes {len(kinds)} arguments, not {len(args)}")
        return tuple(_argument(a, kind, dtype, kernel.name) for a, kind in zip(args, kinds))


def on_device_of(X: Any) -> Any:
    """The device of ``X`` as the current one (CuPy launches on the current device); a
    stand-in's arrays have none."""
    device = getattr(X, "device", None)
    return device if hasattr(device, "__enter__") else contextlib.nullcontext()


def _argument(a: Any, kind: str, dtype: str, name: str) -> Any:
    """``a`` as the kernel's parameter of ``kind`` reads it."""
    if kind == "array":
        if not hasattr(a, "shape"):
            raise TypeError(f"{name} takes an array where it was given {a!r}")
        return a
    if not isinstance(a, (bool, int, float, np.bool_, np.integer, np.floating)):
        raise TypeError(f"{name} takes a number where it was given {type(a).__name__}")
    if kind == "T":
        return np.dtype(dtype).type(a)
    if isinstance(a, (float, np.floating)):
        raise TypeError(f"{name} takes an integer where it was given {a!r}")
    return np.int64(a)


def block_sum(values: np.ndarray, block: int) -> np.ndarray:
    """Sums over the first axis of ``values`` as one block of ``block`` threads (a power of
    two) takes them: thread ``t`` adds rows ``t``, ``t + block``, ... in turn to a zero,
    then the block halves its partial sums until one is left (``BLOCK_SUM`` in CUDA)."""
    n = values.shape[0]
    rows = -(-n // block)
    padded = np.zeros((rows * block, *values.shape[1:]), values.dtype)
    padded[:n] = values  # adding a zero changes no partial sum
    partial = np.zeros((block, *values.shape[1:]), values.dtype)
    for row in padded.reshape(rows, block, *values.shape[1:]):
        partial += row
    half = block // 2
    while half:
        partial[:half] += partial[half : 2 * half]
        half //= 2
    return partial[0]


#: The CUDA side of :func:`block_sum`: ``shared`` holds each thread's partial sum; after
#: it, ``shared[0]`` holds the block's.
BLOCK_SUM = """
__device__ void block_sum(T* shared) {
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half >>= 1) {
        const unsigned t = threadIdx.x;
        if (t < half) shared[t] = shared[t] + shared[t + half];
        __syncthreads();
    }
}
"""


#: NumPy's summation of a row (``np.sum(v, axis=-1)``): below 8 terms one after the
#: other, up to 128 in eight interleaved partial sums, beyond that halved (at a multiple of
#: 8) and each half summed so.  Its twin is :func:`row_sum`.
ROW_SUM = """
template <class F> __device__ T row_sum(const F& f, long long begin, long long n) {
    if (n < 8) {
        T res = 0;
        for (long long i = 0; i < n; i++) res = res + f(begin + i);
        return res;
    }
    if (n <= 128) {
        T r[8];
        for (int j = 0; j < 8; j++) r[j] = f(begin + j);
        long long i = 8;
        for (; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] = r[j] + f(begin + i + j);
        T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res = res + f(begin + i);
        return res;
    }
    long long half = n / 2;
    half -= half % 8;
    return row_sum(f, begin, half) + row_sum(f, begin + half, n - half);
}
"""


def row_sum(v: np.ndarray, begin: int = 0, n: int | None = None) -> np.ndarray:
    """The sums over the last axis of ``v`` (columns ``begin`` to ``begin + n``) in the
    order of ``ROW_SUM``: NumPy's own (tests hold the two equal, bit for bit)."""
    n = v.shape[-1] if n is None else n
    if n < 8:
        res = np.zeros(v.shape[:-1], v.dtype)
        for i in range(n):
            res = res + v[..., begin + i]
        return res
    if n <= 128:
        r = [v[..., begin + j].copy() for j in range(8)]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] = r[j] + v[..., begin + i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for rest in range(i, n):
            res = res + v[..., begin + rest]
        return res
    half = n // 2
    half -= half % 8
    return row_sum(v, begin, half) + row_sum(v, begin + half, n - half)


def softmax_rows(z: np.ndarray) -> np.ndarray:
    """The softmax of each row as the CUDA kernels take it (the twin of their softmax):
    ``exp(z - max)``, divided by its :func:`row_sum`."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / row_sum(e)[:, None]
