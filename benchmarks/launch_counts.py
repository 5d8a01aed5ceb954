"""What the GPU paths would launch on a device, counted on the CPU.

On a GPU a small network's step is bound by the host: each kernel launch costs
10-20 us of Python and driver time, so the number of launches (and of waits for
the device, "host syncs") per step is a property of the code, like its
complexity.  This module counts them without a device: torch's step runs on CPU
tensors under a ``TorchDispatchMode`` that records every aten operation, the
same operations the step dispatches on CUDA.  Views and allocations launch no
kernel; reading a value on the host (``.item()``, ``bool()``, boolean-mask
indexing) waits for the device.

CuPy's paths run on NumPy arrays of a subclass that counts what CuPy would launch
(:class:`_Counted`): every elementwise operation, reduction, matrix product, array function
and cast is a kernel; a value read on the host is a sync.  The fused step takes its ``cupy``
module as an argument and gets a stand-in (:class:`StandInCupy`) whose ``RawKernel`` runs
each kernel's NumPy twin (:mod:`xpnet._kernels`) and counts one launch.

Used by ``python -m benchmarks --only launches`` and by tests/test_launches.py,
which loads this file by its path (it imports nothing from the benchmarks).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: aten operations that launch no kernel: views, metadata, allocations.
FREE = frozenset(
    {"view", "_unsafe_view", "slice", "select", "permute", "t", "transpose", "expand",
     "as_strided", "alias", "detach", "unsqueeze", "squeeze", "_reshape_alias", "empty",
     "empty_strided", "lift_fresh", "unbind", "split", "resolve_conj", "resolve_neg"}
)  # fmt: skip
#: aten operations whose result the host reads: each waits for the device.
SYNCS = frozenset({"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select"})

#: The article (W1): 200 moons, hidden 3, float64; W2's batch: 1024 x 64, 256-256-10 tanh.
W1 = dict(rows=200, sizes=(2, 3, 2), dtype="float64")
W2 = dict(rows=1024, sizes=(64, 256, 256, 10), dtype="float32")


@dataclass(frozen=True)
class Count:
    """Launches and host syncs of some work, and the operations behind them."""

    launches: int
    syncs: int
    operations: Counter

    def __sub__(self, other: Count) -> Count:
        return Count(
            self.launches - other.launches,
            self.syncs - other.syncs,
            self.operations - other.operations,
        )


def count_torch(work: Callable[[], Any]) -> Count:
    """What ``work`` dispatches to torch, as a GPU would launch it."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: Counter = Counter()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with Recorder():
        work()
    launches = sum(n for name, n in seen.items() if name not in FREE)
    syncs = sum(n for name, n in seen.items() if name in SYNCS)
    return Count(launches, syncs, Counter({k: v for k, v in seen.items() if k not in FREE}))


def _problem(rows: int, sizes: tuple, dtype: str, seed: int = 0) -> tuple:
    from xpnet import _init, _target

    target = _target.target_for("torch", "cpu")
    rng = np.random.RandomState(seed)
    X = target.asarray(rng.randn(rows, sizes[0]).astype(dtype))
    Y = target.asarray(np.eye(sizes[-1], dtype=dtype)[rng.randint(0, sizes[-1], rows)])
    params = _target.moved(target, _init.init_normal(sizes, seed), getattr(target.xp, dtype))
    return target, X, Y, params


def torch_w1_pass() -> Count:
    """One full-batch pass of the article's training, as ``xpnet.fit`` runs it on torch
    (the passes between two logged losses as one call): the difference between a call
    of 3 passes and a call of 1, halved."""
    from xpnet import _optim, _steps

    target, X, Y, params = _problem(**W1)
    optimizer = _optim.SGD(0.01)
    step = _steps.step_for(target, optimizer, "tanh", "softmax", 0.01, False)
    runs = step.passes or (
        lambda p, s, X, Y, sw, lr, m: [step(p, s, X, Y, sw, lr) for _ in range(m)]
    )
    one = count_torch(lambda: runs(params, (), X, Y, None, 0.01, 1))
    three = count_torch(lambda: runs(params, (), X, Y, None, 0.01, 3))
    per_pass = three - one
    return Count(
        per_pass.launches // 2,
        per_pass.syncs // 2,
        Counter({k: v // 2 for k, v in per_pass.operations.items()}),
    )


def torch_w2_batch() -> Count:
    """One mini-batch of W2's Adam epoch, as ``MLPClassifier`` runs it on torch: inside
    the epoch's one call of the step's ``batches``, the difference between a call of 3
    batches and a call of 1, halved (the call's copies in and out cancel).

    ``launches`` counts the step itself; the batch's gather (its rows of X and of the
    one-hot labels, kept as booleans, into fixed buffers, their cast, and its step sizes
    into fixed 0-d tensors) is in ``operations`` under the key ``"gather"``, apart.
    """
    import torch

    from xpnet import _optim, _steps

    target, X, _, params = _problem(**W2)
    rows = X.shape[0]
    Y = torch.eye(W2["sizes"][-1], dtype=torch.bool)[torch.arange(rows) % W2["sizes"][-1]]
    optimizer = _optim.Adam(0.001)
    step = _steps.step_for(target, optimizer, "tanh", "softmax", 1e-4, True)
    slots = optimizer.init(target.xp, params).slots

    def call(batches: int) -> Count:
        index = torch.arange(rows).repeat(batches).reshape(batches, rows)
        lrs = torch.full((batches,), 0.001, dtype=X.dtype)
        return count_torch(lambda: step.batches(params, slots, X, Y, None, index, lrs))

    call(1)  # buffers made
    per_batch = call(3) - call(1)
    operations = Counter({k: v // 2 for k, v in per_batch.operations.items()})
    # the gather: two index_select, the labels' cast and the step sizes' copy_; any other
    # copy stays in the step's count
    gather = Counter(index_select=2, copy_=2) & operations
    operations -= gather
    launches = per_batch.launches // 2 - gather.total()
    return Count(launches, per_batch.syncs // 2, operations + Counter(gather=gather.total()))


# -- CuPy's portable path, on NumPy arrays that count what CuPy would launch --------------------
#: NumPy functions that only reshape or view: CuPy launches no kernel for them.
_VIEWS = frozenset(
    {"reshape", "transpose", "matrix_transpose", "permute_dims", "expand_dims", "squeeze",
     "ravel", "swapaxes", "moveaxis", "broadcast_to", "result_type", "shape", "ndim", "size",
     "may_share_memory", "shares_memory", "iscomplexobj", "isrealobj", "empty_like"}
)  # fmt: skip


class _Counted(np.ndarray):
    """A NumPy array standing in for a CuPy one: every ufunc call (elementwise, reduction,
    matrix product), array function and dtype cast is one kernel launch, as CuPy issues it;
    reading a value on the host (``bool``, ``float``, ``.item()``, a boolean mask) is a
    sync.  Basic indexing and reshapes are views and launch nothing."""

    seen: Counter | None = None  # the operations of the counting under way

    def _note(self, name: str) -> None:
        if _Counted.seen is not None:
            _Counted.seen[name] += 1

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        self._note(ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}")
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        return _counted(getattr(ufunc, method)(*map(_plain, inputs), **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ not in _VIEWS:
            self._note(func.__name__)
        plain = [
            _plain(a) if not isinstance(a, (list, tuple)) else type(a)(map(_plain, a)) for a in args
        ]
        return _counted(func(*plain, **{k: _plain(v) for k, v in kwargs.items()}))

    def astype(self, dtype, *args, **kwargs):
        self._note("astype")
        return _counted(_plain(self).astype(dtype, *args, **kwargs))

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        arrays = [k for k in keys if isinstance(k, np.ndarray)]
        if any(k.dtype == bool for k in arrays):
            self._note("sync: boolean mask")
        if arrays:
            self._note("gather")
        return _counted(
            _plain(self)[tuple(map(_plain, keys)) if isinstance(key, tuple) else _plain(key)]
        )

    def __bool__(self):
        self._note("sync: bool")
        return bool(_plain(self))

    def __float__(self):
        self._note("sync: float")
        return float(_plain(self))

    def item(self, *args):
        self._note("sync: item")
        return _plain(self).item(*args)


def _plain(a: Any) -> Any:
    return a.view(np.ndarray) if isinstance(a, _Counted) else a


def _counted(a: Any) -> Any:
    if isinstance(a, np.generic):  # NumPy's reductions give scalars, CuPy's 0-d arrays
        a = np.asarray(a)
    if isinstance(a, np.ndarray) and not isinstance(a, _Counted):
        return a.view(_Counted)
    if isinstance(a, tuple):
        return tuple(_counted(x) for x in a)
    return a


def count_cupy_stand_in(work: Callable[[], Any]) -> Count:
    """What ``work`` (on :class:`_Counted` arrays) would launch on CuPy."""
    _Counted.seen = Counter()
    try:
        work()
    finally:
        seen, _Counted.seen = _Counted.seen, None
    syncs = sum(n for name, n in seen.items() if name.startswith("sync"))
    launches = sum(n for name, n in seen.items() if not name.startswith("sync"))
    return Count(launches, syncs, seen)


def _stand_in(rows: int, sizes: tuple, dtype: str, seed: int = 0) -> tuple:
    """A step's arguments on stand-in arrays (as CuPy's would be)."""
    import array_api_compat.numpy as xp

    from xpnet import _init

    rng = np.random.RandomState(seed)
    X = rng.randn(rows, sizes[0]).astype(dtype).view(_Counted)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.randint(0, sizes[-1], rows)].view(_Counted)
    params = [
        (W.astype(dtype).view(_Counted), b.astype(dtype).view(_Counted))
        for W, b in _init.init_normal(sizes, seed)
    ]
    return xp, X, Y, params


def cupy_step(
    optimizer: Any, activation: str, output: str, l2: float, mean_gradients: bool, tiny=True
):
    """CuPy's fused step on the stand-in module (:class:`StandInCupy`): its kernels run
    their NumPy twins; ``tiny=False`` runs small networks' passes a step at a time."""
    import array_api_compat.numpy as xp

    from xpnet import _fused, _steps

    portable = _steps.portable_step(xp, optimizer, activation, output, l2, mean_gradients)
    return _fused.step(STAND_IN, optimizer, activation, output, l2, mean_gradients,
                       portable=portable, tiny=tiny)  # fmt: skip


def cupy_w1_pass() -> Count:
    """One pass of the article's training on CuPy's fused step a step at a time (as for a
    network too large for one kernel a run): a call of 3 passes less a call of 1, halved."""
    from xpnet import _optim

    _, X, Y, params = _stand_in(**W1)
    step = cupy_step(_optim.SGD(0.01), "tanh", "softmax", 0.01, False, tiny=False)
    one = count_cupy_stand_in(lambda: step.passes(params, (), X, Y, None, 0.01, 1))
    three = count_cupy_stand_in(lambda: step.passes(params, (), X, Y, None, 0.01, 3))
    return _halved(three - one)


def cupy_w2_batch() -> Count:
    """One mini-batch of W2's Adam epoch on CuPy's fused step, as ``MLPClassifier`` runs an
    epoch's batches in one call (gathered on the device): a call of 3 batches less a call
    of 1, halved.  The gather is one of the launches."""
    from xpnet import _optim

    xp, X, Y, params = _stand_in(**dict(W2, rows=3 * W2["rows"]))
    optimizer = _optim.Adam(0.001)
    slots = optimizer.init(xp, params).slots
    step = cupy_step(optimizer, "tanh", "softmax", 1e-4, True)
    index = np.arange(X.shape[0]).reshape(3, -1)
    lrs = np.full(3, 0.001, X.dtype)

    def batches(k):
        return lambda: step.batches(params, slots, X, Y, None, index[:k], lrs[:k])

    return _halved(count_cupy_stand_in(batches(3)) - count_cupy_stand_in(batches(1)))


def cupy_portable_w2_batch() -> Count:
    """One mini-batch of W2 through the portable step on CuPy (where the fused step does
    not serve, and for comparison), its gather apart."""
    from xpnet import _optim, _steps

    xp, X, Y, params = _stand_in(**W2)
    optimizer = _optim.Adam(0.001)
    slots = optimizer.init(xp, params).slots
    step = _steps.portable_step(xp, optimizer, "tanh", "softmax", 1e-4, True)
    return count_cupy_stand_in(lambda: step(params, slots, X, Y, None, 0.001))


def _halved(count: Count) -> Count:
    return Count(
        count.launches // 2,
        count.syncs // 2,
        Counter({k: v // 2 for k, v in count.operations.items()}),
    )


# -- a stand-in for the cupy module: its arrays count, its compiled kernels run their twins ----
class _RawKernel:
    """``cupy.RawKernel`` on the CPU: a launch runs the kernel's NumPy twin (found by its
    name in :data:`xpnet._kernels.KERNELS`) and counts one launch."""

    def __init__(self, code: str, name: str, options: tuple = ()) -> None:
        from xpnet import _kernels

        self.name, self.twin = name, _kernels.twin_of(name)

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
        if _Counted.seen is not None:
            _Counted.seen[f"kernel {self.name}"] += 1
        self.twin(*(_plain(a) for a in args))


class StandInCupy:
    """What xpnet's fused CuPy step uses of the ``cupy`` module, on :class:`_Counted` NumPy
    arrays: every library call is counted as CuPy launches it, and ``RawKernel`` runs twins."""

    ndarray = _Counted
    RawKernel = _RawKernel

    @staticmethod
    def empty(shape: Any, dtype: Any) -> _Counted:
        return np.empty(shape, dtype).view(_Counted)  # an allocation launches nothing

    @staticmethod
    def zeros(shape: Any, dtype: Any) -> _Counted:
        if _Counted.seen is not None:
            _Counted.seen["fill"] += 1
        return np.zeros(shape, dtype).view(_Counted)

    @staticmethod
    def full(shape: Any, value: Any, dtype: Any) -> _Counted:
        if _Counted.seen is not None:
            _Counted.seen["fill"] += 1
        return np.full(shape, value, dtype).view(_Counted)

    matmul = staticmethod(np.matmul)  # a ufunc: _Counted counts it and honours out=
    sum = staticmethod(np.sum)
    concatenate = staticmethod(np.concatenate)

    @staticmethod
    def asarray(a: Any, dtype: Any = None) -> _Counted:
        return np.asarray(a, dtype).view(_Counted)


STAND_IN = StandInCupy()


def cupy_w1_run() -> Count:
    """The 1000 passes between two of the article's logged losses on CuPy's fused step,
    which runs them in the one-block kernel of :mod:`xpnet._tiny` (its twin runs on the
    stand-in): one launch for the whole run, where a step at a time launches 11 a pass."""
    from xpnet import _optim

    _, X, Y, params = _stand_in(**W1)
    step = cupy_step(_optim.SGD(0.01), "tanh", "softmax", 0.01, False)
    return count_cupy_stand_in(lambda: step.passes(params, (), X, Y, None, 0.01, 1000))
