"""Where training runs: a Target (a backend's namespace and a device), the rule that picks
it (with its fallback), transfers between libraries, and the floating dtype rule.

Library facts come from the adapters of :mod:`xpnet._backends`; this module decides
with them, and has no ``if backend == ...`` of its own.
"""

from __future__ import annotations

import contextlib
import difflib
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from . import _backends, _tree
from ._backends import ADAPTERS, BACKENDS, Adapter, NoDevice, dlpack_device_of
from ._codec import FLOATS, Decoder, Encoder
from ._exceptions import BackendFallbackWarning, BackendUnavailableError, DeviceMemoryError, warn


@dataclass(frozen=True)
class Target:
    """Where arrays live and math runs: a backend, its namespace and a device."""

    name: str
    xp: ModuleType
    device: Any
    #: Why ``backend="auto"`` chose this target (None when it was named or followed).
    reason: str | None = field(default=None, compare=False)

    @property
    def adapter(self) -> Adapter:
        return ADAPTERS[self.name]

    def activate(self) -> contextlib.AbstractContextManager:
        """A context for work on the device: CuPy's current device is set, and the
        libraries' out-of-memory errors leave it as :class:`~xpnet.DeviceMemoryError`."""
        return _memory_errors(self, self.adapter.activate(self.device))

    def has_float64(self) -> bool:
        return self.adapter.has_float64(self.device)

    def device_text(self) -> str:
        """The device as text that ``device=`` takes back, for files."""
        return self.adapter.device_text(self.device)

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

    def _through_dlpack(self, x: Any, source: Adapter | None) -> Any:
        """``x`` imported through DLPack when it sits on this device; None otherwise."""
        if source is None or source is self.adapter or not source.exports(x):
            return None
        here = self.adapter.dlpack_device(self.device)
        if here is None:
            return None
        try:
            if dlpack_device_of(x) != here:
                return None  # another device: the host path moves it
            return self.adapter.from_dlpack(x, self.device)
        except Exception:  # BufferError, TypeError, RuntimeError, JAX's errors: refused
            return None

    def jit(self, fn: Callable) -> Callable:
        return self.adapter.jit(fn)

    def loop(self, body: Callable) -> Callable:
        """``run(carry, m, *args)``: ``body`` applied ``m`` times, as one loop where possible."""
        return self.adapter.loop(body)

    def compiles_loops(self) -> bool:
        return self.adapter.compiles_loops()

    def scan(self, body: Callable) -> Callable | None:
        """``body`` over the stacked ``xs`` as one compiled call, where the library can."""
        return self.adapter.scan(body)

    def threads_for(self, elements: int) -> contextlib.AbstractContextManager:
        """A context for training whose operations each touch about ``elements`` values."""
        return self.adapter.threads_for(self.device, elements)


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


def target_for(name: str, requested_device: Any) -> Target:
    """Build a Target, raising NoDevice when the device is not usable."""
    adapter = ADAPTERS[name]
    info = _backends.probe(name)
    if not info.installed or not info.devices:
        raise NoDevice(info.reason)
    dev = adapter.device(requested_device)
    # a library that holds only rows (dask) keeps its parameters on another one's target
    return Target(adapter.parameters_on(), adapter.namespace(), dev)


def adapter_of(x: Any) -> Adapter | None:
    """The adapter of the library that owns array ``x``; None for non-arrays."""
    for adapter in ADAPTERS.values():
        if adapter.owns(x):
            return adapter
    return None


def is_host_input(x: Any) -> bool:
    """True for NumPy arrays and anything not an array of another backend (lists, SciPy
    sparse matrices, DataFrames): the input scikit-learn takes as it is."""
    adapter = adapter_of(x)
    return adapter is None or adapter.name == "numpy"


def for_host(x: Any) -> Any:
    """``x`` as scikit-learn takes it: arrays of other backends come to the host; NumPy
    arrays, lists, sparse matrices, DataFrames and None stay as they are."""
    return x if x is None or is_host_input(x) else to_host(x)


def namespace_and_device(x: Any) -> tuple[str, str]:
    """``(library, device)`` of ``x`` as plain strings (a file can hold them): ``("numpy",
    "cpu")`` for NumPy arrays and other host input (lists, SciPy sparse, DataFrames)."""
    adapter = adapter_of(x)
    if adapter is None or adapter.name == "numpy":
        return "numpy", "cpu"
    device = device_of(x)
    text = device_text(device)
    return adapter.name, str(device) if text is None else text[1]


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
    return Target(adapter.name, array_api_compat.array_namespace(x), device_of(x))


def resolve(
    backend: str | None, device: Any, X: Any, fallback: bool, work: Work | None = None
) -> Target:
    """Decide where training runs.

    ``backend=None`` follows ``X``; ``"auto"`` takes CuPy when a CUDA device is usable
    and a pass of ``work`` is estimated cheaper there than on the CPU (see
    :func:`auto_choice`), else NumPy, silently, with the reason in ``Target.reason``;
    a named backend that is missing or has no
    usable device falls back to NumPy with a :class:`BackendFallbackWarning`
    (``fallback=True``) or raises :class:`BackendUnavailableError`.  An unknown
    backend or a malformed device (see :func:`check_device`) raises ValueError.
    """
    if backend is not None and (not isinstance(backend, str) or backend not in _CHOICES):
        hint = backend_hint(backend)
        raise ValueError(
            f"unknown backend {backend!r}{': ' + hint if hint else ''}; choose one of "
            f"{', '.join(BACKENDS)}, 'auto', or None to follow the data"
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
        name, reason = auto_choice(work, gpu=_backends.probe("cupy").usable)
        return replace(target_for(name, None), reason=reason)
    check_device(backend, device)
    try:
        return target_for(backend, device)
    except NoDevice as exc:
        reason = str(exc).rstrip(".")
    message = f"backend {backend!r}" + (f" with device {device!r}" if device is not None else "")
    no_gpu = _no_gpu_hint(backend, device)
    if not fallback:
        todo = no_gpu or "Install it, choose another backend (see xpnet.available_backends())"
        raise BackendUnavailableError(
            f"{message} is not available: {reason}. {todo}, or pass fallback=True to use NumPy."
        )
    warn(
        f"{message} is not available: {reason}. {no_gpu + '. ' if no_gpu else ''}Falling back "
        "to NumPy on the CPU; pass fallback=False to raise instead.",
        BackendFallbackWarning,
    )
    return target_for("numpy", None)


_CHOICES = (*BACKENDS, "auto")


class Work(NamedTuple):
    """The work of one training pass (or one mini-batch): its rows and its layer sizes."""

    rows: int
    sizes: tuple[int, ...]


# The estimate behind backend="auto", from the one GPU run so far (an H200, CuPy 14): a
# kernel launch cost the host about 19 us (the article's pass, 31 launches, took 581 us)
# and products ran at tens of TFLOP/s.  CuPy's fused step (xpnet/_fused.py, not yet timed
# on a GPU) launches 7 kernels a batch plus 6 per hidden layer, its gather included.  On the
# CPU, NumPy's fast step makes about 16 calls plus 15 per hidden layer, a call on small
# arrays costs about a microsecond, and products run at tens of GFLOP/s on two cores.  Each
# is an order of magnitude, not a promise: the choice only has to be right when one side is
# clearly cheaper.
_GPU_LAUNCH_SECONDS = 19e-6
_GPU_FLOPS = 20e12
_CPU_CALL_SECONDS = 1.5e-6
_CPU_FLOPS = 30e9


def auto_choice(work: Work | None, *, gpu: bool) -> tuple[str, str]:
    """The backend ``"auto"`` trains on, ``"cupy"`` or ``"numpy"``, and why, in words.

    A pass costs ``launches x per-launch host time + flops / rate`` on the GPU and
    ``calls x per-call time + flops / rate`` on the CPU; the cheaper wins.  Without a
    usable GPU, or without the work to weigh (a GPU then wins, as before), the answer
    needs no estimate.
    """
    if not gpu:
        return "numpy", "auto: no usable CUDA device, so NumPy on the CPU"
    if work is None:
        return "cupy", "auto: a usable CUDA device"
    layers = list(zip(work.sizes[:-1], work.sizes[1:]))
    flops = 6.0 * work.rows * sum(a * b for a, b in layers)  # forward 2, backward 4
    hidden = len(layers) - 1
    launches, calls = 7 + 6 * hidden, 16 + 15 * hidden
    gpu_seconds = launches * _GPU_LAUNCH_SECONDS + flops / _GPU_FLOPS
    cpu_seconds = calls * _CPU_CALL_SECONDS + flops / _CPU_FLOPS
    shape = "-".join(map(str, work.sizes))
    estimate = (
        f"a pass of {work.rows} rows through {shape} is about {cpu_seconds * 1e6:.3g} us on "
        f"the CPU and {gpu_seconds * 1e6:.3g} us on the GPU, mostly "
    )
    if cpu_seconds <= gpu_seconds:
        return "numpy", f"auto: NumPy on the CPU: {estimate}kernel launches there"
    return "cupy", f"auto: CuPy on the GPU: {estimate}arithmetic on the CPU"


#: The kinds of device string that name a GPU (or another accelerator a GPU library drives).
_GPU_KINDS = ("cuda", "gpu", "rocm", "mps", "xpu", "metal")


def _gpu_backends() -> str:
    """The backends that compute on GPUs, as a message names them: "'cupy', 'torch' or 'jax'"."""
    names = [repr(name) for name, adapter in ADAPTERS.items() if adapter.gpus]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


#: How a message shows a GPU backend and device.
_FOR_EXAMPLE = "for example backend='torch', device='cuda'"


def backend_hint(backend: Any) -> str:
    """What was probably meant by an unknown backend name: a device kind ("cuda", "gpu")
    points at the backends with GPUs, a misspelling at the closest name; "" otherwise."""
    if not isinstance(backend, str):
        return ""
    if backend.lower().partition(":")[0] in _GPU_KINDS:
        return (
            f"{backend!r} names a device, not a backend; for a GPU use backend="
            f"{_gpu_backends()} ({_FOR_EXAMPLE})"
        )
    close = difflib.get_close_matches(backend.lower(), _CHOICES, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _no_gpu_hint(backend: str, device: Any) -> str:
    """The advice for a GPU asked of a backend that computes on the CPU only; "" otherwise."""
    if ADAPTERS[backend].gpus:
        return ""
    index = isinstance(device, numbers.Integral) and not isinstance(device, bool)
    if not index and not (isinstance(device, str) and device.partition(":")[0] in _GPU_KINDS):
        return ""
    return f"For a GPU use backend={_gpu_backends()} ({_FOR_EXAMPLE})"


#: The kinds of device a device string may name ("cuda", "cuda:1", "gpu:0", "mps", ...).
#: One this machine lacks falls back to NumPy, as a missing library does; a string of
#: another form names no device at all, and is refused.
DEVICE_KINDS = ("cpu", "cuda", "gpu", "rocm", "mps", "tpu", "xpu", "metal")


def check_device(backend: str, device: Any) -> None:
    """Raise ValueError for a ``device`` that names no device of ``backend``.

    Well formed: None, a GPU index (an int >= 0), a device object of an array
    library, ``"kind"`` or ``"kind:N"`` with a kind of :data:`DEVICE_KINDS`,
    what torch itself parses (for torch) and array_api_strict's device names
    (for it).  Whether that device exists here is another matter, left to the
    fallback rule: ``"cuda:0"`` on a machine without CUDA falls back to NumPy
    with a warning, ``"banana"`` is a mistake.
    """
    if device is None or device_text(device) is not None:  # a library's device object
        return
    if isinstance(device, numbers.Integral) and not isinstance(device, bool) and device >= 0:
        return
    if isinstance(device, str):
        kind, colon, index = device.partition(":")
        if kind in DEVICE_KINDS and (not colon or (index.isascii() and index.isdigit())):
            return
        if ADAPTERS[backend].names_device(device):
            return
    strict = ", or 'CPU_DEVICE', 'device1'" if backend == "array_api_strict" else ""
    raise ValueError(
        f"device={device!r} is not a device name: use 'cpu', 'cuda', 'cuda:N', 'gpu:N' or "
        f"'mps'{strict}, a GPU index (an int), or a device object of the backend "
        "(a device this machine lacks falls back to NumPy with a warning)"
    )


# -- devices as text, for files ---------------------------------------------------------------
def device_text(device: Any) -> tuple[str, str] | None:
    """``(library, text)`` for a device object of an array library, else None: how files
    store a device (see :class:`xpnet._codec.Encoder`)."""
    for adapter in ADAPTERS.values():
        if adapter.owns_device(device):
            return adapter.name, adapter.device_text(device)
    return None


def device_object(library: str, text: str) -> Any:
    """The device object of ``library`` for ``text``; the text itself where it cannot be
    built here (see :class:`xpnet._codec.Decoder`)."""
    adapter = ADAPTERS.get(library)
    return text if adapter is None else adapter.device_object(text)


# -- dtypes ----------------------------------------------------------------------------------


def dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except (TypeError, ValueError):
        return str(dtype).rsplit(".", 1)[-1]  # torch.float32 -> float32


def dtype_on(target: Target, dtype: Any, *, narrowing: str | None = None) -> Any:
    """``dtype`` (of any backend) as an object of ``target.xp``: float64 becomes
    float32 where the target has no float64, with a UserWarning saying that ``narrowing``
    happens when it is given."""
    name = dtype_name(dtype)
    if name == "float64" and not target.has_float64():
        if narrowing is not None:
            warn(_no_float64(target, narrowing), UserWarning)
        name = "float32"
    return getattr(target.xp, name)


def _no_float64(target: Target, what: str) -> str:
    return (
        f"backend {target.name!r} on {target.device} has no float64, so {what} (for JAX, "
        "jax.config.update('jax_enable_x64', True) enables float64)"
    )


def resolve_dtype(target: Target, X: Any, dtype: Any) -> Any:
    """The floating dtype to train in, as an object of ``target.xp``.

    None keeps X's float32 or float64; integers and bools become float64 where
    the backend has it (float32 otherwise); smaller floats become float32.
    float64 X on a device without float64 trains in float32 with a UserWarning;
    ``dtype="float64"`` there raises ValueError.
    """
    if dtype is None:
        xpX = array_api_compat.array_namespace(X)
        name = "float64"
        if xpX.isdtype(X.dtype, "real floating") and X.dtype != xpX.float64:
            name = "float32"
        if name == "float64" and not target.has_float64():
            if xpX.isdtype(X.dtype, "real floating"):
                warn(_no_float64(target, "float64 X trains in float32"), UserWarning)
            name = "float32"
    else:
        name = dtype_name(dtype)
        if name not in FLOATS:
            raise ValueError(
                f"dtype must be float32 or float64 (or None to follow X), got {dtype!r}"
            )
        if name == "float64" and not target.has_float64():
            raise ValueError(
                f"backend {target.name!r} on {target.device} has no float64 "
                "(for JAX, enable it with jax.config.update('jax_enable_x64', True)); "
                "use dtype='float32', or dtype=None to train float64 X in float32 with a warning"
            )
    return getattr(target.xp, name)


# -- where loaded parameters go ---------------------------------------------------------------
def placed(
    saved_backend: str, saved_device: str, backend: Any, device: Any, fallback: bool
) -> Target:
    """Where a loaded model's parameters go: the backend and device it was saved from
    (``backend=None``), else the ones asked for; NumPy when those are not usable here, with
    a :class:`~xpnet.BackendFallbackWarning` pointing at the caller's line."""
    if backend is None and saved_backend not in BACKENDS:
        reason = f"backend {saved_backend!r}, which the model was saved from, is unknown here"
        if not fallback:
            raise BackendUnavailableError(f"{reason}; pass backend= to choose one")
        warn(f"{reason}. Falling back to NumPy on the CPU.", BackendFallbackWarning)
        return resolve("numpy", None, None, False)
    if backend is None:
        adapter = ADAPTERS.get(saved_backend)
        # parameters trained where they are not kept (rows in chunks) were NumPy's all along
        kept = adapter.parameters_on() if adapter is not None else saved_backend
        backend, device = kept, saved_device if device is None else device
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BackendFallbackWarning)
        target = resolve(backend, device, None, fallback)
    for w in caught:
        if issubclass(w.category, BackendFallbackWarning):
            warn(str(w.message), w.category)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return target


# -- the file codec, with devices written by their libraries ------------------------------------
def encoder(*records: type) -> Encoder:
    """A file encoder (see :mod:`xpnet._codec`) that stores ``records`` and device objects."""
    return Encoder(records=records, device=device_text)


def decoder(arrays: dict, **records: Callable[[dict, str], Any]) -> Decoder:
    """A file decoder that rebuilds ``records`` (tag to builder) and device objects."""
    return Decoder(arrays, records=records, device=device_object)


# -- nestings of arrays ------------------------------------------------------------------------
def moved(target: Target, tree: Any, dtype: Any = None) -> Any:
    """Every array of a nesting of lists and tuples (``(W, b)`` pairs, optimizer slots), on
    ``target`` in ``dtype``; None stays None."""
    return _tree.map(lambda a: target.asarray(a, dtype), tree)


def host_tree(tree: Any) -> Any:
    """NumPy copies of every array of a nesting of lists and tuples (None stays None)."""
    return _tree.map(lambda a: np.array(to_host(a)), tree)
