"""The array libraries: one adapter class each, and the probe of what is installed.

This and :mod:`xpnet._target` are the only modules that know the libraries by
name, and every fact about a library (its devices and their names, transfers,
DLPack, free memory, compilation) is a method of its adapter here.  Everything
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

__all__ = ["BACKENDS", "BackendInfo", "available_backends"]

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


class NoDevice(Exception):
    """A backend is installed but the requested device cannot be used."""


class Adapter:
    """How xpnet talks to one array library.  Subclasses fill in the details."""

    name: str = ""
    module: str = ""
    #: Whether the library's arrays mix with SciPy sparse matrices on the host.
    host_sparse: bool = False
    #: Whether the library can compute on a GPU (given one, and its build for it).
    gpus: bool = False

    def parameters_on(self) -> str:
        """The backend whose arrays hold the parameters this one trains: itself, but for a
        library that holds only the data's rows."""
        return self.name

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
        raise NoDevice(f"{self.name} has only the 'cpu' device, not {requested!r}")

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        raise NotImplementedError

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    # -- DLPack: between libraries on one device, without the host in between --------------
    def exports(self, x: Any) -> bool:
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
                found = dlpack_device_of(self.from_host(np.zeros(1, np.float32), device))
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

    def loop(self, body: Callable) -> Callable:
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
        """Whether :meth:`loop` compiles the loop (then it wants the uncompiled body)."""
        return False

    def scan(self, body: Callable) -> Callable | None:
        """``run(carry, xs, *consts)``: ``carry = body(carry, x, *consts)`` for each ``x`` of
        ``xs`` (arrays stacked on their leading axis), as one compiled call; None where the
        library does not compile loops."""
        return None

    def threads_for(self, device: Any, elements: int) -> contextlib.AbstractContextManager:
        """A context for work of about ``elements`` per operation (threads, for one)."""
        return contextlib.nullcontext()

    def free_memory(self, device: Any) -> int | None:
        """Free bytes on ``device`` when it is an accelerator and says so; else None."""
        return None

    def on_host(self, device: Any) -> bool:
        """Whether ``device`` computes in host memory, on the CPU."""
        return True

    def quiet(self) -> contextlib.AbstractContextManager:
        """A context without the library's floating-point warnings (overflow, invalid)."""
        return contextlib.nullcontext()

    # -- devices as text, for files and for device= ---------------------------------------
    #: Top-level modules whose ``device``/``...Device`` classes are this library's devices.
    device_modules: tuple[str, ...] = ()

    def owns_device(self, value: Any) -> bool:
        """Whether ``value`` is a device object of this library."""
        module = type(value).__module__.partition(".")[0]
        name = type(value).__name__
        return module in self.device_modules and (name == "device" or name.endswith("Device"))

    def device_text(self, device: Any) -> str:
        """``device`` as text that ``device=`` takes back ("cuda:0", "cpu:0", ...)."""
        return str(device)

    def device_object(self, text: str) -> Any:
        """The device object for ``text``, or the text itself where it cannot be built here
        (the library is missing, or has no such device): ``device=`` takes text too."""
        return text

    def names_device(self, text: str) -> bool:
        """Whether ``text`` is a device name of this library's own (beyond "cuda:N" and
        the other kinds every library shares)."""
        return False


class _NumPy(Adapter):
    name = module = "numpy"
    host_sparse = True

    def quiet(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_numpy_array(x)

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        return np.asarray(a)

    def exports(self, x: Any) -> bool:
        return bool(x.flags.writeable) and _no_negative_strides(x)

    def from_dlpack(self, x: Any, device: Any) -> Any:
        return np.from_dlpack(x)


class _CuPy(Adapter):
    name = module = "cupy"
    gpus = True

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        try:
            count = mod.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, or a driver too old for this CuPy
            raise NoDevice(f"CuPy is installed but CUDA is not usable: {exc}") from None
        if count == 0:
            raise NoDevice("CuPy is installed but no CUDA device was found")
        try:  # a device can be listed yet unusable (wrong CUDA build, no kernels)
            with mod.cuda.Device(0):
                float((mod.arange(3.0) * 2.0).sum())
        except Exception as exc:
            raise NoDevice(f"CuPy found a CUDA device but cannot run on it: {exc}") from None
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
            raise NoDevice(f"{requested!r} is not a CUDA device; use an int or 'cuda:N'")
        if int(index) >= cupy.cuda.runtime.getDeviceCount():
            raise NoDevice(f"there is no CUDA device {requested!r}")
        return cupy.cuda.Device(int(index))

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        cupy = self.load()
        with self.activate(device):
            return cupy.asarray(a)

    def exports(self, x: Any) -> bool:
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

    device_modules = ("cupy", "cupy_backends")

    def device_text(self, device: Any) -> str:
        return f"cuda:{int(device.id)}"

    def device_object(self, text: str) -> Any:
        try:
            return self.load().cuda.Device(int(text.removeprefix("cuda:")))
        except Exception:  # ImportError, a malformed text: keep the text
            return text


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


class _Torch(Adapter):
    name = module = "torch"
    gpus = True

    def device_names(self, mod: ModuleType) -> tuple[str, ...]:
        names = ["cpu"]
        if mod.cuda.is_available():
            names += [f"cuda:{i}" for i in range(mod.cuda.device_count())]
        if mod.backends.mps.is_available():
            names.append("mps")
        return tuple(names)

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def threads_for(self, device: Any, elements: int) -> contextlib.AbstractContextManager:
        # On the CPU, torch spreads even a 200 x 3 product over its threads, and waking
        # them costs several times the product itself.
        if not self.on_host(device) or elements >= _SMALL:
            return contextlib.nullcontext()
        return _torch_threads(self.load(), 1)

    def device(self, requested: Any) -> Any:
        torch = self.load()
        if requested is None:  # the GPU when there is one: that is why people ask for torch
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(requested)
        except (RuntimeError, TypeError):
            kind = str(requested).partition(":")[0]
            if kind in ("gpu", "rocm"):  # torch's CUDA devices are AMD's too, on ROCm builds
                raise NoDevice(
                    f"torch names the GPU 'cuda', not {kind!r}: use device='cuda' (or 'cuda:N')"
                ) from None
            raise NoDevice(
                f"torch has no device {requested!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'"
            ) from None
        if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
            # name the index, so that it compares equal to the device of the arrays made there
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise NoDevice("torch is installed but CUDA is not available")
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise NoDevice(f"there is no CUDA device {requested!r}")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise NoDevice("torch is installed but MPS is not available")
        return dev

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        torch = self.load()
        if not _no_negative_strides(a):
            a = np.ascontiguousarray(a)  # torch refuses negative strides
        elif not a.flags.writeable:
            # torch would share the buffer as a writable tensor (and warn): copy it
            return torch.asarray(a, device=device, copy=True)
        return torch.asarray(a, device=device)

    def exports(self, x: Any) -> bool:
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

    device_modules = ("torch",)

    def device_object(self, text: str) -> Any:
        try:
            return self.load().device(text)
        except Exception:
            return text

    def names_device(self, text: str) -> bool:
        try:  # what torch itself parses ("cuda:0", "mps", "privateuseone", ...)
            self.load().device(text)
        except (ImportError, RuntimeError, TypeError, ValueError):
            return False
        return True


class _Jax(Adapter):
    name = module = "jax"
    gpus = True

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
            raise NoDevice(f"jax has no {platform!r} device: {exc}") from None
        i = int(index) if index.isdigit() else 0
        if i >= len(devices):
            raise NoDevice(f"jax has no device {requested!r}")
        return devices[i]

    def from_host(self, a: np.ndarray, device: Any) -> Any:
        jax = self.load()
        return jax.device_put(a, device)

    def exports(self, x: Any) -> bool:
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

    def loop(self, body: Callable) -> Callable:
        jax = self.load()

        def run(carry, m, *args):
            return jax.lax.fori_loop(0, m, lambda _, c: body(c, *args), carry)

        return jax.jit(run)  # m is traced: one compilation serves every run length

    def compiles_loops(self) -> bool:
        return True

    def scan(self, body: Callable) -> Callable | None:
        jax = self.load()

        def run(carry, xs, *consts):
            return jax.lax.scan(lambda c, x: (body(c, x, *consts), None), carry, xs)[0]

        return jax.jit(run)

    def on_host(self, device: Any) -> bool:
        return getattr(device, "platform", "cpu") == "cpu"

    def free_memory(self, device: Any) -> int | None:
        if self.on_host(device):
            return None
        stats = device.memory_stats() or {}
        if "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))

    device_modules = ("jax", "jaxlib")

    def device_text(self, device: Any) -> str:
        platform = device.platform
        try:
            index = self.load().devices(platform).index(device)
        except (RuntimeError, ValueError):
            index = int(getattr(device, "id", 0))
        return f"{platform}:{index}"

    def device_object(self, text: str) -> Any:
        platform, _, index = text.partition(":")
        try:
            return self.load().devices(platform)[int(index or 0)]
        except Exception:
            return text


class _ArrayApiStrict(Adapter):
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
            raise NoDevice(str(exc)) from None

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

    device_modules = ("array_api_strict",)

    def device_text(self, device: Any) -> str:
        return str(getattr(device, "_device", device))

    def device_object(self, text: str) -> Any:
        try:
            return self.load().Device(text)
        except Exception:
            return text

    def names_device(self, text: str) -> bool:
        return text == "CPU_DEVICE" or re.fullmatch(r"device[0-9]+", text) is not None


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

    def parameters_on(self) -> str:
        return "numpy"

    def load(self) -> ModuleType:
        importlib.import_module("dask.array")
        return importlib.import_module("dask")  # its version is the one to report


#: ``(backend name, str(device))`` to that device's DLPack ``(type, index)``, or None.
_DLPACK_DEVICES: dict[tuple[str, str], tuple[int, int] | None] = {}


def dlpack_device_of(x: Any) -> tuple[int, int]:
    kind, index = x.__dlpack_device__()
    return int(kind), int(index)


def _no_negative_strides(x: Any) -> bool:
    return all(s >= 0 for s in x.strides)


ADAPTERS: dict[str, Adapter] = {
    a.name: a for a in (_NumPy(), _CuPy(), _Torch(), _Jax(), _ArrayApiStrict(), _Dask())
}


@functools.cache
def probe(name: str) -> BackendInfo:
    """Import a backend and list its usable devices; cached for the process."""
    adapter = ADAPTERS[name]
    try:
        mod = adapter.load()
    except Exception as exc:  # ImportError, or a broken install failing on import
        return BackendInfo(name, False, None, (), f"{name} is not installed ({exc})")
    version = getattr(mod, "__version__", None)
    try:
        devices = adapter.device_names(mod)
    except NoDevice as exc:
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
    return {name: probe(name) for name in BACKENDS}
