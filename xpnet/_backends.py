"""Backend selection, device probing and transfers.

This is the only module that knows the array libraries by name.  Everything
else receives an Array API namespace ``xp`` and a device, and stays portable.

Each library has one small adapter class, imported lazily: a missing or broken
library is a normal situation that :func:`available_backends` reports, never a
crash at ``import xpnet``.  Probing a library (importing it and finding a usable
device, which can take seconds for CUDA) happens once per process and is cached.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._exceptions import BackendFallbackWarning, BackendUnavailableError, DeviceMemoryError, warn

__all__ = ["BACKENDS", "BackendInfo", "Target", "available_backends"]

#: Names accepted by ``backend=``, besides ``None`` and ``"auto"``.
BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict", "dask")


@dataclass(frozen=True)
class BackendInfo:
    """What :func:`available_backends` knows about one backend.

    Attributes
    ----------
    name : str
        The backend's name, as accepted by ``backend=``.
    installed : bool
        Whether its package imports.
    version : str or None
        The package version, when installed.
    devices : tuple of str
        Its usable devices; empty when there is none.
    reason : str or None
        Why the backend cannot be used, or None when it can.
    """

    name: str
    installed: bool
    version: str | None
    devices: tuple[str, ...]
    reason: str | None

    @property
    def usable(self) -> bool:
        """True when the package imports and has at least one usable device."""
        return self.installed and bool(self.devices)


class _NoDevice(Exception):
    """A backend is installed but the requested device cannot be used."""


class _Adapter:
    """How xpnet talks to one array library.  Subclasses fill in the details."""

    name: str = ""
    module: str = ""
    #: Whether the library's arrays mix with SciPy sparse matrices on the host.
    host_sparse: bool = False

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        return ("cpu",)

    def owns(self, x: Any) -> bool:
        raise NotImplementedError

    def namespace(self) -> ModuleType:
        """The library's Array API namespace (array-api-compat's wrapper)."""
        return importlib.import_module(f"array_api_compat.{self.module}")

    def device(self, requested: Any) -> Any:
        """Return the device object for ``requested`` (None: the default)."""
        if requested is None or str(requested) == "cpu":
            return "cpu"
        raise _NoDevice(f"{self.name} has only the 'cpu' device, not {requested!r}")

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        raise NotImplementedError

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    # -- DLPack: between libraries on one device, without the host in between --------------
    def lends(self, x: Any) -> bool:
        """Whether array ``x`` of this library may be handed to another through DLPack.

        Only arrays that every importer takes safely: read-only ones stay home (DLPack
        before 1.0 cannot say "read-only", and torch has no read-only tensors), and so
        do negative strides (torch aborts the process on them).
        """
        return False

    def dlpack_device(self, device: Any) -> tuple[int, int] | None:
        """DLPack's ``(device type, index)`` of ``device``; None where no import is done."""
        key = (self.name, str(device))
        if key not in _DLPACK_DEVICES:
            try:  # ask an array made there: the library's own answer, ROCm and MPS included
                found = _dlpack_device_of(self.from_host(np.zeros(1, np.float32), device))
            except Exception:
                found = None
            _DLPACK_DEVICES[key] = found
        return _DLPACK_DEVICES[key]

    def from_dlpack(self, x: Any, device: Any) -> Any:
        """``x`` (another library's array, on ``device``) as this library's, sharing memory
        where the library can; raises when it cannot (the caller then goes by the host)."""
        raise BufferError(f"{self.name} takes no arrays through DLPack here")

    def has_float64(self, device: Any) -> bool:
        return True

    def activate(self, device: Any) -> contextlib.AbstractContextManager:
        """A context in which work runs on ``device`` (needed by CuPy only)."""
        return contextlib.nullcontext()

    def jit(self, fn: Callable) -> Callable:
        """Compile a pure function of arrays, where the library can."""
        return fn

    def repeat(self, body: Callable) -> Callable:
        """``run(carry, m, *args)``: ``carry = body(carry, *args)`` done ``m`` times, as one call.

        Libraries that compile a loop (JAX) run it without returning to Python
        between iterations; elsewhere it is a plain loop, which still spares the
        caller's bookkeeping per iteration.
        """

        def run(carry: Any, m: int, *args: Any) -> Any:
            for _ in range(m):
                carry = body(carry, *args)
            return carry

        return run

    def compiles_loops(self) -> bool:
        """Whether :meth:`repeat` compiles the loop (then it wants the uncompiled body)."""
        return False

    def sized(self, device: Any, elements: int) -> contextlib.AbstractContextManager:
        """A context for work of about ``elements`` per operation (threads, for one)."""
        return contextlib.nullcontext()

    def native_step(self, portable: Callable, *config: Any) -> Callable | None:
        """A library-specific training step equal to ``portable``, or None.

        ``config`` is ``(optimizer, activation, output, l2, mean_gradients)``
        as for :func:`xpnet._train.step_for`.
        """
        return None

    def free_memory(self, device: Any) -> int | None:
        """Free bytes on ``device`` when it is an accelerator and says so; else None."""
        return None

    def on_host(self, device: Any) -> bool:
        """Whether ``device`` computes in host memory, on the CPU."""
        return True

    def quiet(self) -> contextlib.AbstractContextManager:
        """A context without the library's floating-point warnings (overflow, invalid)."""
        return contextlib.nullcontext()


class _NumPy(_Adapter):
    name = module = "numpy"
    host_sparse = True

    def quiet(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_numpy_array(x)

    def native_step(self, portable: Callable, *config: Any) -> Callable | None:
        from . import _native

        return _native.step("numpy", self.namespace(), *config, portable=portable)

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        return np.asarray(a)

    def lends(self, x: Any) -> bool:
        return bool(x.flags.writeable) and _no_negative_strides(x)

    def from_dlpack(self, x: Any, device: Any) -> Any:
        return np.from_dlpack(x)


class _CuPy(_Adapter):
    name = module = "cupy"

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        try:
            count = mod.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, or a driver too old for this CuPy
            raise _NoDevice(f"CuPy is installed but CUDA is not usable: {exc}") from None
        if count == 0:
            raise _NoDevice("CuPy is installed but no CUDA device was found")
        try:  # a device can be listed yet unusable (wrong CUDA build, no kernels)
            with mod.cuda.Device(0):
                float((mod.arange(3.0) * 2.0).sum())
        except Exception as exc:
            raise _NoDevice(f"CuPy found a CUDA device but cannot run on it: {exc}") from None
        return tuple(f"cuda:{i}" for i in range(count))

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_cupy_array(x)

    def device(self, requested: Any) -> Any:
        cupy = self.load()
        if requested is None:
            return cupy.cuda.Device(0)
        if isinstance(requested, cupy.cuda.Device):
            return requested
        text = str(requested)
        index = text.removeprefix("cuda").lstrip(":") or "0"
        if not index.isdigit():
            raise _NoDevice(f"{requested!r} is not a CUDA device; use an int or 'cuda:N'")
        if int(index) >= cupy.cuda.runtime.getDeviceCount():
            raise _NoDevice(f"there is no CUDA device {requested!r}")
        return cupy.cuda.Device(int(index))

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        cupy = self.load()
        with self.activate(device):
            return cupy.asarray(a)

    def lends(self, x: Any) -> bool:
        return _no_negative_strides(x)

    def from_dlpack(self, x: Any, device: Any) -> Any:
        cupy = self.load()
        with self.activate(device):  # the importer's current stream waits for the producer's
            return cupy.from_dlpack(x)

    def to_host(self, x: Any) -> np.ndarray:
        return x.get()

    def activate(self, device: Any) -> contextlib.AbstractContextManager:
        return device if device is not None else contextlib.nullcontext()

    def free_memory(self, device: Any) -> int | None:
        with self.activate(device):
            return int(self.load().cuda.runtime.memGetInfo()[0])

    def on_host(self, device: Any) -> bool:
        return False


#: Work per operation (elements) below which a CPU library is better off on one thread.
_SMALL = 32768


@contextlib.contextmanager
def _torch_threads(torch: ModuleType, n: int) -> Any:
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Torch(_Adapter):
    name = module = "torch"

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        names = ["cpu"]
        if mod.cuda.is_available():
            names += [f"cuda:{i}" for i in range(mod.cuda.device_count())]
        if mod.backends.mps.is_available():
            names.append("mps")
        return tuple(names)

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def native_step(self, portable: Callable, *config: Any) -> Callable | None:
        from . import _native

        return _native.step("torch", self.namespace(), *config, portable=portable)

    def sized(self, device: Any, elements: int) -> contextlib.AbstractContextManager:
        # On the CPU, torch spreads even a 200 x 3 product over its threads, and waking
        # them costs several times the product (27 us against 6 us for one thread).
        if not self.on_host(device) or elements >= _SMALL:
            return contextlib.nullcontext()
        return _torch_threads(self.load(), 1)

    def device(self, requested: Any) -> Any:
        torch = self.load()
        if requested is None:  # the GPU when there is one: that is why people ask for torch
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(requested)
        except (RuntimeError, TypeError) as exc:
            raise _NoDevice(f"{requested!r} is not a torch device: {exc}") from None
        if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
            # name the index, so that it compares equal to the device of the arrays made there
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise _NoDevice("torch is installed but CUDA is not available")
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise _NoDevice(f"there is no CUDA device {requested!r}")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise _NoDevice("torch is installed but MPS is not available")
        return dev

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        torch = self.load()
        if not _no_negative_strides(a):
            a = np.ascontiguousarray(a)  # torch refuses negative strides
        elif not a.flags.writeable:
            # torch would share the buffer as a writable tensor (and warn): copy it
            return torch.asarray(a, device=device, copy=True)
        return torch.asarray(a, device=device)

    def lends(self, x: Any) -> bool:
        return True  # tensors have no negative strides; one that requires grad refuses itself

    def from_dlpack(self, x: Any, device: Any) -> Any:
        arr = self.load().from_dlpack(x)
        if arr.device != device:
            raise BufferError(f"DLPack put the tensor on {arr.device}, not {device}")
        return arr

    def to_host(self, x: Any) -> np.ndarray:
        return x.detach().cpu().resolve_conj().numpy()

    def has_float64(self, device: Any) -> bool:
        return getattr(device, "type", str(device)) != "mps"

    def free_memory(self, device: Any) -> int | None:
        if getattr(device, "type", None) != "cuda":
            return None
        return int(self.load().cuda.mem_get_info(device)[0])

    def on_host(self, device: Any) -> bool:
        return getattr(device, "type", str(device)) == "cpu"


class _Jax(_Adapter):
    name = module = "jax"

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        return tuple(str(d) for d in mod.devices())

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_jax_array(x)

    def device(self, requested: Any) -> Any:
        jax = self.load()
        if requested is None:
            return jax.devices()[0]
        if isinstance(requested, numbers.Integral):
            requested = f"gpu:{requested}"  # an int is a GPU index, as for CuPy and torch
        if not isinstance(requested, str):
            return requested  # already a jax Device
        platform, _, index = requested.partition(":")
        try:
            devices = jax.devices(platform)
        except RuntimeError as exc:
            raise _NoDevice(f"jax has no {platform!r} device: {exc}") from None
        i = int(index) if index.isdigit() else 0
        if i >= len(devices):
            raise _NoDevice(f"jax has no device {requested!r}")
        return devices[i]

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        jax = self.load()
        return jax.device_put(a, device)

    def lends(self, x: Any) -> bool:
        return True  # immutable, compact

    def from_dlpack(self, x: Any, device: Any) -> Any:
        # Shares the buffer when it is aligned as XLA wants (64 bytes on the CPU), else copies;
        # refuses strides that are not a permutation of a compact layout.  64-bit types
        # become 32-bit ones without jax_enable_x64, as with device_put.
        return importlib.import_module("jax.dlpack").from_dlpack(x, device=device)

    def namespace(self) -> ModuleType:
        return importlib.import_module("jax.numpy")  # compliant as it stands

    def has_float64(self, device: Any) -> bool:
        return bool(self.load().config.read("jax_enable_x64"))

    def jit(self, fn: Callable) -> Callable:
        return self.load().jit(fn)

    def repeat(self, body: Callable) -> Callable:
        jax = self.load()

        def run(carry, m, *args):
            return jax.lax.fori_loop(0, m, lambda _, c: body(c, *args), carry)

        return jax.jit(run)  # m is traced: one compilation serves every run length

    def compiles_loops(self) -> bool:
        return True

    def on_host(self, device: Any) -> bool:
        return getattr(device, "platform", "cpu") == "cpu"

    def free_memory(self, device: Any) -> int | None:
        if self.on_host(device):
            return None
        stats = device.memory_stats() or {}
        if "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))


class _ArrayApiStrict(_Adapter):
    name = module = "array_api_strict"

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        return tuple(d._device for d in mod.__array_namespace_info__().devices())

    def owns(self, x: Any) -> bool:
        return type(x).__module__.startswith("array_api_strict")

    def device(self, requested: Any) -> Any:
        xps = self.load()
        if requested is None:
            return xps.__array_namespace_info__().default_device()
        if isinstance(requested, xps.Device):
            return requested
        try:
            return xps.Device(str(requested))
        except ValueError as exc:
            raise _NoDevice(str(exc)) from None

    def namespace(self) -> ModuleType:
        return self.load()

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        return self.load().asarray(a, device=device)

    def to_host(self, x: Any) -> np.ndarray:
        xps = self.load()
        return np.asarray(x.to_device(xps.__array_namespace_info__().default_device()))

    def dlpack_device(self, device: Any) -> tuple[int, int] | None:
        return None  # it checks the standard, not speed: its arrays come and go by the host

    def has_float64(self, device: Any) -> bool:
        return "float64" in self.load().__array_namespace_info__().dtypes(device=device)

    def quiet(self) -> contextlib.AbstractContextManager:
        return _NumPy().quiet()  # its arrays compute with NumPy


class _Dask(_NumPy):
    """Dask arrays: the data stays in its chunks, where the tasks run (see xpnet._dask);
    the parameters are NumPy arrays on the client, so the target's namespace is NumPy's."""

    name = "dask"
    module = "dask.array"
    host_sparse = False

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_dask_array(x)

    def namespace(self) -> ModuleType:
        return importlib.import_module("array_api_compat.numpy")

    def load(self) -> ModuleType:
        importlib.import_module("dask.array")
        return importlib.import_module("dask")  # its version is the one to report

    def native_step(self, portable: Callable, *config: Any) -> Callable | None:
        return None  # steps run in the chunks' tasks


#: ``(backend name, str(device))`` to that device's DLPack ``(type, index)``, or None.
_DLPACK_DEVICES: dict[tuple[str, str], tuple[int, int] | None] = {}


def _dlpack_device_of(x: Any) -> tuple[int, int]:
    kind, index = x.__dlpack_device__()
    return int(kind), int(index)


def _no_negative_strides(x: Any) -> bool:
    return all(s >= 0 for s in x.strides)


_ADAPTERS: dict[str, _Adapter] = {
    a.name: a for a in (_NumPy(), _CuPy(), _Torch(), _Jax(), _ArrayApiStrict(), _Dask())
}


@functools.cache
def _probe(name: str) -> BackendInfo:
    """Import a backend and list its usable devices; cached for the process."""
    adapter = _ADAPTERS[name]
    try:
        mod = adapter.load()
    except Exception as exc:  # ImportError, or a broken install failing on import
        return BackendInfo(name, False, None, (), f"{name} is not installed ({exc})")
    version = getattr(mod, "__version__", None)
    try:
        devices = adapter.device_names(mod)
    except _NoDevice as exc:
        return BackendInfo(name, True, version, (), str(exc))
    return BackendInfo(name, True, version, devices, None)


def available_backends() -> dict[str, BackendInfo]:
    """Report every backend xpnet knows: installed or not, its devices, why not.

    Returns
    -------
    dict of str to BackendInfo
        Keyed by backend name, in the order of :data:`BACKENDS`.

    Examples
    --------
    >>> import xpnet
    >>> xpnet.available_backends()["numpy"].usable
    True
    """
    return {name: _probe(name) for name in BACKENDS}


@dataclass(frozen=True)
class Target:
    """Where arrays live and math runs: a backend, its namespace and a device."""

    name: str
    xp: ModuleType
    device: Any

    @property
    def adapter(self) -> _Adapter:
        return _ADAPTERS[self.name]

    def activate(self) -> contextlib.AbstractContextManager:
        """A context for work on the device: CuPy's current device is set, and the
        libraries' out-of-memory errors leave it as :class:`~xpnet.DeviceMemoryError`."""
        return _memory_errors(self, self.adapter.activate(self.device))

    def has_float64(self) -> bool:
        return self.adapter.has_float64(self.device)

    def free_memory(self) -> int | None:
        """Free bytes on the device when it is a GPU that says; None otherwise."""
        return self.adapter.free_memory(self.device)

    def on_host(self) -> bool:
        """Whether the device computes in host memory, on the CPU."""
        return self.adapter.on_host(self.device)

    def quiet(self) -> contextlib.AbstractContextManager:
        """No floating-point warnings inside: where divergence is reported otherwise."""
        return self.adapter.quiet()

    def takes_host_sparse(self) -> bool:
        """Whether SciPy sparse X can be used here as it is (NumPy) or must be densified."""
        return self.adapter.host_sparse

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """``x`` (from any backend, or a list) as an array here, cast to ``dtype``.

        An array already here is used as it is.  Another library's array on this
        device comes through DLPack, sharing its memory where the two libraries can
        (NumPy, torch and JAX on the CPU; CuPy and torch on one GPU); the rest goes by
        host NumPy: other devices, lists, arrays DLPack refuses.  The result may thus
        share memory with ``x``: xpnet never writes into it.
        """
        source = adapter_of(x)
        if source is self.adapter and same_device(device_of(x), self.device):
            arr = x
        else:
            arr = self._through_dlpack(x, source)
            if arr is None:
                arr = self.adapter.from_host(to_host(x), self.device)
        if dtype is not None and arr.dtype != dtype:
            arr = self.xp.astype(arr, dtype)
        return arr

    def _through_dlpack(self, x: Any, source: _Adapter | None) -> Any:
        """``x`` imported through DLPack when it sits on this device; None otherwise."""
        if source is None or source is self.adapter or not source.lends(x):
            return None
        here = self.adapter.dlpack_device(self.device)
        if here is None:
            return None
        try:
            if _dlpack_device_of(x) != here:
                return None  # another device: the host path moves it
            return self.adapter.from_dlpack(x, self.device)
        except Exception:  # BufferError, TypeError, RuntimeError, JAX's errors: refused
            return None

    def jit(self, fn: Callable) -> Callable:
        return self.adapter.jit(fn)

    def repeat(self, body: Callable) -> Callable:
        """``run(carry, m, *args)``: ``body`` applied ``m`` times, as one loop where possible."""
        return self.adapter.repeat(body)

    def compiles_loops(self) -> bool:
        return self.adapter.compiles_loops()

    def sized(self, elements: int) -> contextlib.AbstractContextManager:
        """A context for training whose operations each touch about ``elements`` values."""
        return self.adapter.sized(self.device, elements)

    def native_step(self, portable: Callable, *config: Any) -> Callable | None:
        """A step specific to this library, equal to ``portable``; None if there is none."""
        return self.adapter.native_step(portable, *config)


#: The libraries' out-of-memory errors: (module, class name, text the message must hold).
#: Matched by name along the error's class hierarchy, so nothing is imported to check.
_OUT_OF_MEMORY = (
    ("cupy", "OutOfMemoryError", ""),  # cupy.cuda.memory.OutOfMemoryError
    ("cupy_backends", "CUDARuntimeError", "cudaErrorMemoryAllocation"),
    ("cupy_backends", "CUBLASError", "CUBLAS_STATUS_ALLOC_FAILED"),
    ("torch", "OutOfMemoryError", ""),  # torch.OutOfMemoryError, torch.cuda.OutOfMemoryError
    ("jax", "JaxRuntimeError", "RESOURCE_EXHAUSTED"),  # jax.errors.JaxRuntimeError
    ("jaxlib", "XlaRuntimeError", "RESOURCE_EXHAUSTED"),  # its earlier name
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an array library's report that a device ran out of memory."""
    for cls in type(exc).__mro__:
        root = (cls.__module__ or "").partition(".")[0]
        for library, name, text in _OUT_OF_MEMORY:
            if root == library and cls.__name__ == name and text in str(exc):
                return True
    return False


@contextlib.contextmanager
def _memory_errors(target: Target, inner: contextlib.AbstractContextManager) -> Any:
    """``inner``, with an out-of-memory error inside raised again as DeviceMemoryError."""
    with inner:
        try:
            yield
        except DeviceMemoryError:
            raise  # translated by an inner context already
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            detail = " ".join(str(exc).split())
            detail = detail if len(detail) <= 200 else detail[:197] + "..."
            raise DeviceMemoryError(
                f"{target.name} device {target.device} ran out of memory ({detail}). Use less "
                "memory at a time: a smaller batch_size (MLPClassifier, MLPRegressor), a smaller "
                "memory_budget (xpnet.fit_many), or fewer rows per predict call; xpnet.fit "
                "trains on all rows at once, so the data and its layer values must fit."
            ) from exc


def _target(name: str, requested_device: Any) -> Target:
    """Build a Target, raising _NoDevice when the device is not usable."""
    adapter = _ADAPTERS[name]
    info = _probe(name)
    if not info.installed or not info.devices:
        raise _NoDevice(info.reason)
    dev = adapter.device(requested_device)
    return Target(name, adapter.namespace(), dev)


def adapter_of(x: Any) -> _Adapter | None:
    """The adapter of the library that owns array ``x``; None for non-arrays."""
    for adapter in _ADAPTERS.values():
        if adapter.owns(x):
            return adapter
    return None


def is_host_input(x: Any) -> bool:
    """True for NumPy arrays and anything not an array of another backend (lists, SciPy
    sparse matrices, DataFrames): the input scikit-learn takes as it is."""
    adapter = adapter_of(x)
    return adapter is None or adapter.name == "numpy"


def device_of(x: Any) -> Any:
    return array_api_compat.device(x)


def same_device(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy (or view) of ``x``, from whatever backend holds it."""
    adapter = adapter_of(x)
    if adapter is None:
        return np.asarray(x)
    return adapter.to_host(x)


def target_of(x: Any) -> Target:
    """The Target where ``x`` already lives (NumPy for lists and other non-arrays)."""
    adapter = adapter_of(x)
    if adapter is None:
        return Target("numpy", array_api_compat.array_namespace(np.zeros(0)), "cpu")
    if adapter.name == "dask":
        return Target("dask", adapter.namespace(), "cpu")
    return Target(adapter.name, array_api_compat.array_namespace(x), device_of(x))


def resolve(backend: str | None, device: Any, X: Any, fallback: bool) -> Target:
    """Decide where training runs.

    ``backend=None`` follows ``X``; ``"auto"`` takes CuPy when a CUDA device is
    usable, else NumPy, silently; a named backend that is missing or has no
    usable device falls back to NumPy with a :class:`BackendFallbackWarning`
    (``fallback=True``) or raises :class:`BackendUnavailableError`.  An unknown
    backend or a malformed device (see :func:`check_device`) raises ValueError.
    """
    if backend is not None and (not isinstance(backend, str) or backend not in _CHOICES):
        raise ValueError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}, "
            "'auto', or None to follow the data"
        )
    if backend is None:
        here = target_of(X)
        if device is None or same_device(device, here.device):
            return here
        backend = here.name  # same library, another device: resolved below
    elif backend == "auto":
        if device is not None:
            raise ValueError(
                "device= cannot be combined with backend='auto'; name the backend "
                "(for example backend='cupy', device='cuda:1')"
            )
        return _target("cupy", None) if _probe("cupy").usable else _target("numpy", None)
    check_device(backend, device)
    try:
        return _target(backend, device)
    except _NoDevice as exc:
        reason = str(exc)
    message = f"backend {backend!r}" + (f" with device {device!r}" if device is not None else "")
    if not fallback:
        raise BackendUnavailableError(
            f"{message} is not available: {reason}. Install it, choose another "
            "backend (see xpnet.available_backends()), or pass fallback=True to use NumPy."
        )
    warn(
        f"{message} is not available: {reason}. Falling back to NumPy on the CPU; "
        "pass fallback=False to raise instead.",
        BackendFallbackWarning,
    )
    return _target("numpy", None)


_CHOICES = (*BACKENDS, "auto")

#: The kinds of device a device string may name ("cuda", "cuda:1", "gpu:0", "mps", ...).
#: One this machine lacks falls back to NumPy, as a missing library does; a string of
#: another form names no device at all, and is refused.
DEVICE_KINDS = ("cpu", "cuda", "gpu", "rocm", "mps", "tpu", "xpu", "metal")
#: Libraries whose device objects ``device=`` takes as they are (the backend decides).
_DEVICE_LIBRARIES = ("cupy", "cupy_backends", "torch", "jax", "jaxlib", "array_api_strict")


def check_device(backend: str, device: Any) -> None:
    """Raise ValueError for a ``device`` that names no device of ``backend``.

    Well formed: None, a GPU index (an int >= 0), a device object of an array
    library, ``"kind"`` or ``"kind:N"`` with a kind of :data:`DEVICE_KINDS`,
    what torch itself parses (for torch) and array_api_strict's device names
    (for it).  Whether that device exists here is another matter, left to the
    fallback rule: ``"cuda:0"`` on a machine without CUDA falls back to NumPy
    with a warning, ``"banana"`` is a mistake.
    """
    if device is None or type(device).__module__.partition(".")[0] in _DEVICE_LIBRARIES:
        return
    if isinstance(device, numbers.Integral) and not isinstance(device, bool) and device >= 0:
        return
    if isinstance(device, str):
        kind, colon, index = device.partition(":")
        if kind in DEVICE_KINDS and (not colon or (index.isascii() and index.isdigit())):
            return
        if backend == "array_api_strict" and (
            device == "CPU_DEVICE" or re.fullmatch(r"device[0-9]+", device)
        ):
            return
        if backend == "torch" and _probe("torch").installed:
            try:
                _ADAPTERS["torch"].load().device(device)
                return
            except (RuntimeError, TypeError, ValueError):
                pass
    strict = ", or 'CPU_DEVICE', 'device1'" if backend == "array_api_strict" else ""
    raise ValueError(
        f"device={device!r} is not a device name: use 'cpu', 'cuda', 'cuda:N', 'gpu:N' or "
        f"'mps'{strict}, a GPU index (an int), or a device object of the backend "
        "(a device this machine lacks falls back to NumPy with a warning)"
    )


# -- devices as text, for files (xpnet._io) -------------------------------------------------
def device_text(library: str, device: Any) -> str:
    """A device as text that its backend's ``device=`` takes back ("cuda:0", "cpu:0", ...)."""
    if library == "cupy":
        return f"cuda:{int(device.id)}"
    if library == "jax":
        import jax

        platform = device.platform
        try:
            index = jax.devices(platform).index(device)
        except (RuntimeError, ValueError):
            index = int(getattr(device, "id", 0))
        return f"{platform}:{index}"
    if library == "array_api_strict":
        return str(getattr(device, "_device", device))
    return str(device)


def device_library(value: Any) -> str | None:
    """The backend whose device object ``value`` is; None for anything else."""
    module = type(value).__module__.partition(".")[0]
    library = {"jaxlib": "jax", "cupy_backends": "cupy"}.get(module, module)
    if library not in ("torch", "jax", "cupy", "array_api_strict"):
        return None
    name = type(value).__name__
    return library if name == "device" or name.endswith("Device") else None


def device_object(library: str, text: str) -> Any:
    """The device object of ``library`` for ``text``; the text itself when it cannot be built
    here (the library is missing, or has no such device): ``device=`` takes text too."""
    try:
        if library == "torch":
            import torch

            return torch.device(text)
        if library == "cupy":
            import cupy

            return cupy.cuda.Device(int(text.removeprefix("cuda:")))
        if library == "jax":
            import jax

            platform, _, index = text.partition(":")
            return jax.devices(platform)[int(index or 0)]
        if library == "array_api_strict":
            import array_api_strict

            return array_api_strict.Device(text)
    except Exception:  # ImportError, no such device, a malformed text: keep the text
        return text
    return text
