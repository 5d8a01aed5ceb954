"""``python -m benchmarks --only paths``: the GPU paths checked and set side by side.

Three parts, each measured on a CUDA device when one is usable, else run as far as the
CPU allows and marked so:

* **Kernels against their twins.**  Real work runs through CuPy's fused step
  (:class:`xpnet._fused.Step`) with its launcher replaced by :class:`CheckingLauncher`:
  every launch copies its array arguments to the host, launches the compiled kernel, runs
  the kernel's NumPy twin on the host copies, and compares each array afterwards (entries
  that differ, the largest difference in ulps).  Without a device the same code runs on the
  stand-in ``cupy`` of ``launch_counts.py``, whose kernels *are* the twins: zero
  differences there prove the plumbing, not the CUDA.
* **Launches on the device.**  ``torch.profiler`` (CUPTI, which records the kernels of
  every library in the process, CuPy's too) counts kernels, copies and sync calls per W2
  batch and W1 pass of each GPU path, beside the counts ``launch_counts.py`` makes on the
  CPU; ``cupyx.profiler.benchmark`` gives the host and device time of a W2 batch on CuPy's
  fused and portable steps.
* **Paths side by side.**  W1 (``xpnet.fit``, the article) and W2 (one
  ``MLPClassifier`` epoch) on CuPy's fused step against its portable step, and on
  torch-CUDA's fast step against its portable step (the fast path taken away by removing
  it from :data:`xpnet._steps.FAST_PATHS`), with NumPy (W1) and the epoch's matrix
  products in cuBLAS (W2) as references.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import xpnet
from xpnet import _fused, _init, _kernels, _optim, _steps, _target

from . import launch_counts, w1, w2
from ._report import Table, best, fmt_s, fmt_x, interleaved, median, progress

#: A kernel whose CUDA calls none of these rounds as its twin does, to the bit: with fused
#: multiply-adds off, nvrtc's ``+ - * /`` and ``sqrt`` are IEEE's, as NumPy's are.
_TRANSCENDENTAL = re.compile(r"\b(exp|log|tanh|pow)f?\s*\(")

#: W2's network and batch; the article's (W1) network.
W2_SIZES, W2_BATCH = (64, 256, 256, 10), 1024
W1_SIZES = (2, 3, 2)


# -- 1. kernels against their twins ---------------------------------------------------------
@dataclass
class KernelCheck:
    """What the launches of one compiled kernel showed against its twin."""

    kernel: _kernels.Kernel
    dtype: str
    launches: int = 0
    entries: int = 0
    differ: int = 0
    max_ulps: float = 0.0

    @property
    def exact(self) -> bool:
        """Whether the kernel is expected to equal its twin to the bit."""
        return _TRANSCENDENTAL.search(self.kernel.source) is None


def to_host(cp: Any, a: Any) -> np.ndarray:
    """A host copy of a device array (``cupy.asnumpy``), or of a stand-in's NumPy array."""
    asnumpy = getattr(cp, "asnumpy", None)
    return asnumpy(a) if asnumpy is not None else np.array(a)  # np.array: a plain ndarray


def _address(a: Any) -> tuple:
    """What makes two arguments the same array: pointer, shape, strides and dtype."""
    data = getattr(a, "data", None)
    pointer = data.ptr if hasattr(data, "ptr") else a.ctypes.data
    return pointer, a.shape, a.strides, a.dtype.str


def compare(got: np.ndarray, want: np.ndarray) -> tuple[int, float]:
    """Entries of ``got`` that differ from ``want`` (NaN equals NaN), and the largest
    difference in ulps of ``want`` (``np.spacing``); inf where one side is not finite or
    the arrays are not floats."""
    if got.dtype.kind != "f":
        differ = int(np.count_nonzero(got != want))
        return differ, float("inf") if differ else 0.0
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    differ = int(np.count_nonzero(~same))
    if not differ:
        return 0, 0.0
    g, w = got[~same], want[~same]
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(w))):
        return differ, float("inf")
    gap = np.abs(g.astype(np.float64) - w.astype(np.float64))
    return differ, float(np.max(gap / np.spacing(np.abs(w)).astype(np.float64)))


class CheckingLauncher(_kernels.Launcher):
    """A :class:`xpnet._kernels.Launcher` that checks every launch against the kernel's twin.

    Before the launch each array argument is copied to the host (one copy per distinct
    array, so that arguments passed twice stay one array, as on the device); after it, the
    twin runs on the host copies with the same, already cast, scalars, and each array the
    kernel saw is compared with the twin's.  Results gather in ``checks``, by compiled
    function name.

    Parameters
    ----------
    cp : module
        ``cupy``, or the stand-in ``launch_counts.STAND_IN``.
    checks : dict
        ``{function name: KernelCheck}``, filled in place.
    """

    def __init__(self, cp: Any, checks: dict[str, KernelCheck]) -> None:
        super().__init__(cp)
        self.checks = checks

    def __call__(
        self, kernel: _kernels.Kernel, threads: int, args: tuple, dtype: str, *,
        labels: str | None = None, block: int = 256, shared_mem: int = 0,
    ) -> None:  # fmt: skip
        cast = self.arguments(kernel, args, dtype)
        arrays: dict[tuple, tuple[Any, np.ndarray]] = {}
        host_args = []
        for a in cast:
            if isinstance(a, (self.cp.ndarray, np.ndarray)):
                key = _address(a)
                if key not in arrays:
                    arrays[key] = (a, to_host(self.cp, a))
                host_args.append(arrays[key][1])
            else:
                host_args.append(a)
        super().__call__(
            kernel, threads, args, dtype, labels=labels, block=block, shared_mem=shared_mem
        )
        function = kernel.function(dtype, labels)
        _kernels.twin_of(function)(*host_args)
        check = self.checks.setdefault(function, KernelCheck(kernel, dtype))
        check.launches += 1
        for device, twin in arrays.values():
            differ, ulps = compare(to_host(self.cp, device), twin)
            check.entries += twin.size
            check.differ += differ
            check.max_ulps = max(check.max_ulps, ulps)


def _no_fallback(*args: Any) -> None:
    raise RuntimeError("the fused step handed a call to the portable step: nothing to check")


def check_kernels(cp: Any, xp: Any) -> dict[str, KernelCheck]:
    """Every fused kernel, launched through real work and checked against its twin.

    The work: a W2-shaped epoch of two batches (64-256-256-10 float32, Adam, tanh and
    softmax) with float32 labels, boolean labels, and sample weights; the article's passes
    (200 x 2, 2-3-2 float64, SGD), in one kernel (:mod:`xpnet._tiny`) and a step at a
    time; and one step of each other activation and output, with SGD's momentum and
    Nesterov's.

    Parameters
    ----------
    cp : module
        ``cupy``, or the stand-in ``launch_counts.STAND_IN``.
    xp : module
        The array namespace of ``cp``'s arrays (for the optimizer's moments).

    Returns
    -------
    dict
        ``{compiled function name: KernelCheck}``.
    """
    checks: dict[str, KernelCheck] = {}
    rng = np.random.RandomState(0)

    def put(a: np.ndarray) -> Any:
        return cp.asarray(np.array(a))  # a fresh copy: the stand-in's asarray shares memory

    def fused(optimizer, activation, output, l2, mean, tiny=True) -> _fused.Step:
        step = _fused.step(cp, optimizer, activation, output, l2, mean, portable=_no_fallback,
                           tiny=tiny)  # fmt: skip
        step.launch = CheckingLauncher(cp, checks)
        return step

    def problem(rows, sizes, dtype, output="softmax"):
        X = rng.randn(rows, sizes[0]).astype(dtype)
        classes = rng.randint(0, sizes[-1], rows)
        if output == "identity":
            Y = rng.randn(rows, sizes[-1]).astype(dtype)
        elif output == "logistic":
            Y = (rng.uniform(size=(rows, sizes[-1])) < 0.3).astype(dtype)
        else:
            Y = np.eye(sizes[-1], dtype=dtype)[classes]
        params = [(put(W.astype(dtype)), put(b.astype(dtype)))
                  for W, b in _init.init_normal(sizes, 0)]  # fmt: skip
        return put(X), Y, params

    # W2: an epoch of two batches, with float32 labels, boolean labels, then sample weights
    X, Y, params = problem(2 * W2_BATCH, W2_SIZES, "float32")
    adam = _optim.Adam(0.001)
    slots = adam.init(xp, params).slots
    step = fused(adam, "tanh", "softmax", 1e-4, True)
    index = put(rng.permutation(2 * W2_BATCH).astype(np.int64).reshape(2, W2_BATCH))
    lrs = put(np.full(2, 0.001, np.float32))
    sw = put(rng.uniform(0.5, 2.0, 2 * W2_BATCH).astype(np.float32))
    for labels, weights in ((put(Y), None), (put(Y.astype(bool)), None),
                            (put(Y.astype(bool)), sw)):  # fmt: skip
        params, slots, _ = step.batches(params, slots, X, labels, weights, index, lrs)

    # W1: the article's passes, as one kernel a run (xpnet/_tiny.py) and a step at a time
    Xm, ym = w1.moons()
    params = [(put(W), put(b)) for W, b in _init.init_normal(W1_SIZES, 0)]
    for tiny in (True, False):
        step = fused(_optim.SGD(0.01), "tanh", "softmax", 0.01, False, tiny)
        step.passes(params, (), put(Xm), put(np.eye(2)[ym]), None, 0.01, 3)

    # every other activation and output, one step each, float32 and float64
    for activation, output, dtype, optimizer, weighted in (
        ("logistic", "logistic", "float64", _optim.SGD(0.05, momentum=0.9, nesterov=True), True),
        ("relu", "identity", "float32", _optim.SGD(0.05, momentum=0.9), False),
        ("identity", "softmax", "float64", _optim.Adam(0.01), True),
        ("tanh", "logistic", "float32", _optim.SGD(0.05), False),
        ("relu", "softmax", "float64", _optim.SGD(0.05), False),
    ):
        X, Y, params = problem(64, (5, 7, 6, 3), dtype, output)
        slots = optimizer.init(xp, params).slots
        weights = put(rng.uniform(0.5, 2.0, 64).astype(dtype)) if weighted else None
        fused(optimizer, activation, output, 1e-3, True)(params, slots, X, put(Y), weights, 0.05)
    return checks


def kernel_table(checks: dict[str, KernelCheck], mode: str) -> Table:
    """The table of :func:`check_kernels`' results; ``mode`` says what ran the kernels."""
    table = Table(
        "paths_kernels",
        f"Fused CuPy kernels against their NumPy twins, every launch ({mode})",
        ["kernel", "dtype", "launches", "entries compared", "differ", "max ulps", "expected"],
    )
    wrong = []
    for name in sorted(checks):
        c = checks[name]
        expected = "exact" if c.exact else "to rounding (exp/log/tanh)"
        if c.exact and c.differ:
            wrong.append(name)
        table.add([name, c.dtype, c.launches, c.entries, c.differ, f"{c.max_ulps:.3g}",
                   expected], launches=c.launches, entries=c.entries, differ=c.differ,
                  max_ulps=c.max_ulps, exact=c.exact)  # fmt: skip
    missing = sorted(set(_kernels.KERNELS) - {c.kernel.name for c in checks.values()})
    if missing:
        table.note(f"declared kernels never launched here: {', '.join(missing)}")
    if wrong:
        table.note(f"**kernels expected exact that differ from their twins**: {', '.join(wrong)}")
    else:
        table.note("every kernel expected exact equals its twin")
    table.note(
        "each launch compares every array argument after the launch (inputs too: a kernel "
        "writing out of bounds shows) with the twin's, run on host copies of the same inputs; "
        "ulps are of the twin's value (np.spacing), so a result near zero after cancellation "
        "reads large"
    )
    table.note(
        "expected exact: no exp, log or tanh in the CUDA (nvrtc's + - * / and sqrt are IEEE's "
        "with --fmad=false); the others may differ where CUDA's math library rounds its last "
        "bit another way"
    )
    if mode.startswith("stand-in"):
        table.note(
            "stand-in (no device): launch_counts.STAND_IN runs each kernel's twin in its place, "
            "so kernel and twin are one function and 0 differences prove the plumbing only"
        )
    return table


# -- 2. launches on the device ----------------------------------------------------------------
def _profiled(work: Callable[[], Any], sync: Callable[[], None], cuda: bool = True) -> Counter:
    """Device kernels, copies and fills, and the host's launch and sync calls, that
    ``work`` (then ``sync``) shows to ``torch.profiler``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        work()
        sync()
    seen: Counter = Counter()
    for evt in prof.events():
        name = evt.name
        if evt.device_type == DeviceType.CUDA:
            kind = "memcpy" if name.startswith("Memcpy") else "memset" if name.startswith(
                "Memset") else "kernel"  # fmt: skip
        elif "LaunchKernel" in name:  # cudaLaunchKernel (torch), cuLaunchKernel (CuPy)
            kind = "launch call"
        elif "Synchronize" in name:
            kind = "sync call"
        else:
            kind = "cpu event"
        seen[kind] += 1
    return seen


def _measured(work_of: Callable[[int], Callable[[], Any]], sync: Callable[[], None]) -> Counter:
    """Per unit of work: ``work_of(3)`` less ``work_of(1)``, halved (what a call costs once
    drops out, as launch_counts does)."""
    work_of(3)()  # warm: compilation, the memory pool, a step's buffers
    sync()
    three, one = _profiled(work_of(3), sync), _profiled(work_of(1), sync)
    return Counter({k: v // 2 for k, v in (three - one).items()})


def _single(work: Callable[[], Any], sync: Callable[[], None]) -> Counter:
    """One call of ``work``, less what profiling ``sync`` alone shows."""
    work()
    sync()
    return _profiled(work, sync) - _profiled(lambda: None, sync)


def _problem(target: Any, rows: int, sizes: tuple, dtype: str, labels: str = "float") -> tuple:
    """X, one-hot Y (float or bool) and initial parameters on ``target``."""
    rng = np.random.RandomState(0)
    X = target.asarray(rng.randn(rows, sizes[0]).astype(dtype))
    onehot = np.eye(sizes[-1], dtype=dtype)[rng.randint(0, sizes[-1], rows)]
    Y = target.asarray(onehot.astype(bool) if labels == "bool" else onehot)
    params = _target.moved(target, _init.init_normal(sizes, 0), getattr(target.xp, dtype))
    return X, Y, params


def _cupy_paths(cupy: Any) -> dict[str, Callable[[int], Callable[[], Any]]]:
    """CuPy's work by path: ``k`` W2 batches (fused, in one ``batches`` call; portable, its
    gather apart), the article's 1000 passes (fused: one kernel) or ``k`` of its passes
    (fused, a step at a time)."""
    target = _target.target_for("cupy", None)
    xp = target.xp
    adam = _optim.Adam(0.001)
    fused = _steps.step_for(target, adam, "tanh", "softmax", 1e-4, True)
    X, Y, params = _problem(target, 3 * W2_BATCH, W2_SIZES, "float32", "bool")
    slots = adam.init(xp, params).slots
    index = cupy.arange(3 * W2_BATCH, dtype=cupy.int64).reshape(3, W2_BATCH)
    lrs = cupy.full(3, 0.001, cupy.float32)
    portable = _steps.portable_step(xp, adam, "tanh", "softmax", 1e-4, True)
    Xb, Yb, _ = _problem(target, W2_BATCH, W2_SIZES, "float32")
    sgd = _optim.SGD(0.01)
    article = _steps.step_for(target, sgd, "tanh", "softmax", 0.01, False)
    stepwise = _fused.step(cupy, sgd, "tanh", "softmax", 0.01, False, tiny=False,
                           portable=_no_fallback)  # fmt: skip
    Xm, ym = w1.moons()
    Xm, Ym = target.asarray(Xm), target.asarray(np.eye(2)[ym])
    moons_params = _target.moved(target, _init.init_normal(W1_SIZES, 0), xp.float64)
    return {
        "fused batch": lambda k: (
            lambda: fused.batches(params, slots, X, Y, None, index[:k], lrs[:k])
        ),
        "fused run": lambda k: lambda: article.passes(moons_params, (), Xm, Ym, None, 0.01, 1000),
        "fused pass": lambda k: lambda: stepwise.passes(moons_params, (), Xm, Ym, None, 0.01, k),
        "portable batch": lambda k: (
            lambda: [portable(params, slots, Xb, Yb, None, 0.001) for _ in range(k)]
        ),
    }


def _torch_paths() -> dict[str, Callable[[int], Callable[[], Any]]]:
    """torch-CUDA's work by path, as launch_counts.torch_w2_batch and torch_w1_pass run it
    on the CPU: ``k`` W2 batches, or ``k`` article passes as one call."""
    target = _target.target_for("torch", "cuda")
    adam = _optim.Adam(0.001)
    batch = _steps.step_for(target, adam, "tanh", "softmax", 1e-4, True)
    X, Y, params = _problem(target, W2_BATCH, W2_SIZES, "float32")
    slots = adam.init(target.xp, params).slots
    params, slots, _ = batch(params, slots, X, Y, None, 0.001)  # buffers made, layouts kept
    article = _steps.step_for(target, _optim.SGD(0.01), "tanh", "softmax", 0.01, False)
    runs = article.passes or (
        lambda p, s, X, Y, sw, lr, m: [article(p, s, X, Y, sw, lr) for _ in range(m)]
    )
    Xm, ym = w1.moons()
    Xm, Ym = target.asarray(Xm), target.asarray(np.eye(2)[ym])
    moons_params = _target.moved(target, _init.init_normal(W1_SIZES, 0), target.xp.float64)
    return {
        "batch": lambda k: lambda: [batch(params, slots, X, Y, None, 0.001) for _ in range(k)],
        "pass": lambda k: lambda: runs(moons_params, (), Xm, Ym, None, 0.01, k),
    }


#: The launch table's rows: label, the CPU count of launch_counts, backend, path, per unit.
_LAUNCH_ROWS = [
    ("CuPy W2, a batch (fused, in batches; gather included)", "cupy_w2_batch", "cupy",
     "fused batch"),
    ("CuPy W1, a run of 1000 passes (fused: one kernel, xpnet/_tiny.py)", "cupy_w1_run", "cupy",
     "fused run"),
    ("CuPy W1, a pass (fused, a step at a time)", "cupy_w1_pass", "cupy", "fused pass"),
    ("CuPy W2, a batch (portable; gather apart)", "cupy_portable_w2_batch", "cupy",
     "portable batch"),
    ("torch-CUDA W2, a batch (fast step)", "torch_w2_batch", "torch", "batch"),
    ("torch-CUDA W1, a pass (fast step, passes as one call)", "torch_w1_pass", "torch", "pass"),
]  # fmt: skip


def _cpu_count(name: str) -> str:
    try:
        return str(getattr(launch_counts, name)().launches)
    except ImportError as exc:  # torch's counts need torch
        return f"- ({exc.name} missing)"


def launch_table(found: dict[str, Any], why: list[str]) -> Table:
    """Kernels, copies and syncs per W2 batch and W1 pass as the device's profiler sees
    them, beside the CPU counts; device cells empty (and a note why) without a device."""
    table = Table(
        "paths_launches",
        "Launches measured on the device (torch.profiler, CUPTI) beside the CPU counts",
        ["path", "CPU count", "kernels", "memcpy", "memset", "launch calls", "sync calls"],
    )
    profiler = _profiler_usable(found)
    if profiler is not None:
        why = [*why, profiler]
    paths: dict[str, dict] = {}
    syncs: list[Callable[[], None]] = []
    if profiler is None and "cupy" in found:
        import cupy

        syncs.append(cupy.cuda.Device().synchronize)
        paths["cupy"] = _cupy_paths(cupy)
    if profiler is None and "torch" in found:
        import torch

        syncs.append(torch.cuda.synchronize)
        paths["torch"] = _torch_paths()

    def sync() -> None:
        for s in syncs:
            s()

    for label, counted, backend, path in _LAUNCH_ROWS:
        cpu = _cpu_count(counted)
        if backend not in paths:
            table.add([label, cpu, "-", "-", "-", "-", "-"], cpu=cpu)
            continue
        work_of = paths[backend][path]
        if path in ("portable batch", "batch", "fused run"):
            seen = _single(work_of(1), sync)
        else:
            seen = _measured(work_of, sync)
        table.add([label, cpu, seen["kernel"], seen["memcpy"], seen["memset"],
                   seen["launch call"], seen["sync call"]], cpu=cpu, device=dict(seen))  # fmt: skip
    if "cupy" in paths:  # CUPTI sees CuPy's kernels: ten elementwise launches should read 10
        import cupy

        x = cupy.ones(1024, cupy.float32)
        seen = _single(lambda: [cupy.multiply(x, 2, out=x) for _ in range(10)], sync)
        table.note(f"calibration: 10 CuPy elementwise launches read {seen['kernel']} kernels")
    if not paths:
        table.note("device columns skipped: " + "; ".join(why or ["no usable CUDA device"]))
        table.note(_profiler_plumbing())
    table.note(
        "CPU count: launch_counts.py on the CPU (the counts tests/test_launches.py pins); "
        "kernels, memcpy, memset: device activity CUPTI recorded; launch and sync calls: the "
        "host's *LaunchKernel and *Synchronize API calls; per unit: 3 units less 1, halved, "
        "or one call less an empty one"
    )
    return table


def _profiler_usable(found: dict[str, Any]) -> str | None:
    """None where torch.profiler can record CUDA activity here, else why not."""
    if not found:
        return None  # the caller says why: no device
    try:
        import torch
    except ImportError:
        return "torch is not installed: no torch.profiler to count device launches"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device: torch.profiler would record no device activity"
    return None


def _profiler_plumbing() -> str:
    """Without a device: torch.profiler around torch's CPU W2 batch, to show the counting
    code runs (it finds no CUDA activity, as it should)."""
    try:
        from xpnet import _target as t

        target = t.target_for("torch", "cpu")
        adam = _optim.Adam(0.001)
        step = _steps.step_for(target, adam, "tanh", "softmax", 1e-4, True)
        X, Y, params = _problem(target, W2_BATCH, W2_SIZES, "float32")
        slots = adam.init(target.xp, params).slots
        seen = _single(lambda: step(params, slots, X, Y, None, 0.001), lambda: None)
    except ImportError:
        return "torch is not installed: the profiler's counting was not exercised"
    return (
        f"stand-in (no device): torch.profiler around torch's CPU W2 batch saw "
        f"{seen['kernel']} CUDA kernels and {seen['cpu event']} CPU events (the counting runs)"
    )


def host_device_table(found: dict[str, Any], why: list[str], batches: int = 20) -> Table:
    """Host and device time of a W2 batch on CuPy's fused and portable steps
    (``cupyx.profiler.benchmark``): a host time above the device's is a host-bound step."""
    table = Table(
        "paths_host",
        f"CuPy W2 batch, host time against device time (cupyx.profiler.benchmark, "
        f"{batches} batches a call)",
        ["path", "host us/batch", "GPU us/batch", "host / GPU"],
    )
    if "cupy" not in found:
        table.note("skipped: " + "; ".join(why or ["CuPy is not usable"]))
        return table
    import cupy
    from cupyx.profiler import benchmark

    target = _target.target_for("cupy", None)
    adam = _optim.Adam(0.001)
    X, Y, params = _problem(target, batches * W2_BATCH, W2_SIZES, "float32", "bool")
    slots = adam.init(target.xp, params).slots
    index = cupy.arange(batches * W2_BATCH, dtype=cupy.int64).reshape(batches, W2_BATCH)
    lrs = cupy.full(batches, 0.001, cupy.float32)
    fused = _steps.step_for(target, adam, "tanh", "softmax", 1e-4, True)
    portable = _steps.portable_step(target.xp, adam, "tanh", "softmax", 1e-4, True)

    def portable_epoch() -> None:  # as the training loop steps batch by batch: gather, cast
        for k in range(batches):
            rows = index[k]
            portable(params, slots, X[rows], Y[rows].astype(cupy.float32), None, 0.001)

    for name, fn in (
        ("fused (batches as one call)", lambda: fused.batches(params, slots, X, Y, None, index,
                                                              lrs)),
        ("portable (batch by batch, gather included)", portable_epoch),
    ):  # fmt: skip
        timed = benchmark(fn, n_repeat=10, n_warmup=2)
        host = float(np.median(timed.cpu_times)) / batches
        gpu = float(np.median(timed.gpu_times)) / batches
        table.add([name, f"{host * 1e6:.1f}", f"{gpu * 1e6:.1f}", fmt_x(host / gpu)],
                  host=host, gpu=gpu)  # fmt: skip
    table.note("host / GPU above 1: the device waits on Python's launches (host-bound)")
    return table


# -- 3. paths side by side ---------------------------------------------------------------------
@contextlib.contextmanager
def portable_only(backend: str) -> Iterator[None]:
    """``backend`` without its fast step: its entry leaves FAST_PATHS and the step cache is
    emptied, so steps made inside are portable ones; both are put back afterwards (the
    steps made inside dropped, those made before kept, compiled kernels and all)."""
    fast = _steps.FAST_PATHS.pop(backend, None)
    kept = dict(_steps._CACHE)
    _steps._CACHE.clear()
    try:
        yield
    finally:
        _steps._CACHE.clear()
        _steps._CACHE.update(kept)
        if fast is not None:
            _steps.FAST_PATHS[backend] = fast


def _path_used(backend: str) -> str:
    """Whether the step cache holds a fast step of ``backend`` (after a fit): what ran."""
    steps = [v for k, v in _steps._CACHE.items() if k[0] == "step" and k[1] == backend]
    return "fast" if any(getattr(s, "fast", False) for s in steps) else "portable"


@dataclass(frozen=True)
class Side:
    """One row's backend and path: label, backend, device, and whether it is the fast one."""

    label: str
    backend: str
    device: Any
    fast: bool


def _sides(found: dict[str, Any]) -> tuple[list[Side], str]:
    """The rows to set side by side, and the mode: the GPU paths where a device is usable;
    else a stand-in on the CPU (NumPy's and torch-CPU's fast and portable steps), which runs
    the same code so that it is known to work."""
    sides = []
    if "cupy" in found:
        sides += [Side("CuPy fused", "cupy", None, True),
                  Side("CuPy portable", "cupy", None, False)]  # fmt: skip
    if "torch" in found:
        sides += [Side("torch-CUDA fast (graphs where captured)", "torch", "cuda", True),
                  Side("torch-CUDA portable", "torch", "cuda", False)]  # fmt: skip
    if sides:
        return sides, "device"
    sides = [Side("NumPy fast", "numpy", None, True), Side("NumPy portable", "numpy", None, False)]
    if xpnet.available_backends()["torch"].usable:
        sides += [Side("torch-CPU fast", "torch", "cpu", True),
                  Side("torch-CPU portable", "torch", "cpu", False)]  # fmt: skip
    return sides, "stand-in (no device): the CPU's paths, to run the code"


def _on_path(side: Side, fn: Callable[[], Any], used: dict[str, str]) -> Callable[[], Any]:
    """``fn`` on ``side``'s path, noting the path the step cache shows it took."""

    def call() -> Any:
        with contextlib.nullcontext() if side.fast else portable_only(side.backend):
            out = fn()
            used[side.label] = _path_used(side.backend)
        return out

    return call


def w1_table(found: dict[str, Any], epochs: int, rounds: int) -> Table:
    """W1 (the article, ``xpnet.fit``) on each path, against xpnet on NumPy."""
    sides, mode = _sides(found)
    sides = [side for side in sides if side.label != "NumPy fast"]  # that is the reference
    X, y = w1.moons()
    table = Table(
        "paths_w1",
        f"W1 by path: the article, {epochs} passes, float64, best of {rounds} ({mode})",
        ["row", "path run", "best", "median", "us/pass", "x xpnet numpy", "loss"],
    )
    used: dict[str, str] = {}
    fns: dict[str, Callable[[], Any]] = {}
    for side in [Side("xpnet numpy (reference)", "numpy", None, True), *sides]:
        fit = w1.xpnet_fit(X, y, epochs, side.backend, side.device)
        fns[side.label] = _on_path(side, fit, used)
    results: dict[str, Any] = {}

    def keep(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def call() -> None:
            results[name] = fn()

        return call

    progress(f"paths W1: {', '.join(fns)}; {epochs} passes, {rounds} rounds")
    for fn in fns.values():  # warm-up in full: compilation, kernels, captured graphs
        fn()
    times = interleaved({k: keep(k, f) for k, f in fns.items()}, rounds, warmup=False)
    reference = best(times["xpnet numpy (reference)"])
    for name, ts in times.items():
        t = best(ts)
        table.add([name, used[name], fmt_s(t), fmt_s(median(ts)),
                   f"{t / epochs * 1e6:.1f}", fmt_x(t / reference),
                   w1.final_loss(X, y, results[name])],
                  seconds=ts, x_numpy=t / reference, path=used.get(name))  # fmt: skip
    table.note("path run: fast or portable, as the step cache shows after the fit")
    table.note("CuPy fused runs the article's passes as one kernel a run (xpnet/_tiny.py)")
    table.note("targets for a device: CuPy at most 0.2x xpnet's NumPy, torch-CUDA at most 1.0x")
    return table


def w2_table(found: dict[str, Any], rows: int, rounds: int) -> Table:
    """One W2 epoch (``MLPClassifier``, Adam, batch 1024) on each path, against the
    epoch's matrix products alone (cuBLAS through CuPy on a device; NumPy's BLAS else)."""
    sides, mode = _sides(found)
    if mode != "device":
        rows = min(rows, 20_000)
    total = w2.flops(rows)
    table = Table(
        "paths_w2",
        f"W2 by path: one epoch over {rows:,} x {w2.FEATURES} float32, 64-256-256-10 tanh, Adam, "
        f"batch {w2.BATCH}, best of {rounds} ({mode})",
        ["row", "path run", "best", "median", "GFLOP/s", "x matmul only", "loss"],
    )
    progress(f"paths W2: {rows:,} random rows")
    rng = np.random.default_rng(0)
    X32 = rng.standard_normal((rows, w2.FEATURES), dtype=np.float32)
    y = rng.integers(0, w2.CLASSES, rows)
    fns: dict[str, Callable[[], Any]] = {}
    fitted: dict[str, Any] = {}
    used: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    for backend in {s.backend for s in sides}:
        if backend == "cupy":
            import cupy

            inputs["cupy"] = cupy.asarray(X32)
        elif backend == "torch":
            import torch

            inputs["torch"] = torch.as_tensor(X32, device=found.get("torch", "cpu"))
        else:
            inputs[backend] = X32
    if "cupy" in inputs:
        import cupy

        matmul = "matmul only (cuBLAS, CuPy)"
        fns[matmul] = w2.matmul_epoch(cupy, inputs["cupy"], cupy.cuda.Device().synchronize)
    else:
        matmul = "matmul only (NumPy)"
        fns[matmul] = w2.matmul_epoch(np, X32)

    def fitter(side: Side) -> Callable[[], None]:
        def fit() -> None:
            settings = dict(w2.SETTINGS, backend=side.backend)
            if side.device is not None:
                settings["device"] = side.device
            fitted[side.label] = w2.fit(xpnet.MLPClassifier(**settings), inputs[side.backend], y)

        return fit

    for side in sides:
        fit = fitter(side)
        fns[side.label] = _on_path(side, fit, used)
    progress(f"paths W2: {', '.join(fns)}; {rounds} rounds")
    for side in sides:  # warm-up on a slice: compilation, kernels, the step cache
        warm = dict(w2.SETTINGS, backend=side.backend)
        if side.device is not None:
            warm["device"] = side.device
        head = inputs[side.backend][: min(rows, 20_000)]
        _on_path(side, lambda w=warm, h=head: w2.fit(xpnet.MLPClassifier(**w), h,
                                                     y[: h.shape[0]]), {})()  # fmt: skip
    fns[matmul]()
    times = interleaved(fns, rounds, warmup=False)
    floor = best(times[matmul])
    for name, ts in times.items():
        t = best(ts)
        loss = f"{fitted[name].loss_:.6f}" if name in fitted else "-"
        table.add([name, used.get(name, "-"), fmt_s(t), fmt_s(median(ts)),
                   f"{total / t / 1e9:.0f}", fmt_x(t / floor), loss],
                  seconds=ts, x_matmul=t / floor, path=used.get(name))  # fmt: skip
    table.note(
        "random rows and labels (an epoch's time does not depend on the values); the "
        "estimator's own settings otherwise, each fit where its data is"
    )
    table.note(
        "x matmul only: the epoch over its own matrix products alone (w2.matmul_epoch), "
        "timed in the same run; the target on a device is at most 1.5x, on CuPy and on torch-CUDA"
    )
    table.note(
        "torch-CUDA fast: whatever torch's fast step does in this checkout (a CUDA-graph path "
        "for its batches is being added); this table does not say whether it captured one"
    )
    return table


# -- the section ---------------------------------------------------------------------------------
def _guarded(key: str, title: str, make: Callable[[], Table]) -> Table:
    """``make()``, or a table saying how it failed: one part's failure is a finding, and the
    other parts still run."""
    started = time.perf_counter()
    try:
        table = make()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        table = Table(key, title, [])
        table.note(f"**failed**: {type(exc).__name__}: {exc}")
    table.note(f"this part took {time.perf_counter() - started:.1f} s")
    return table


def run(w1_epochs: int, w2_rows: int, rounds: int) -> list[Table]:
    """The section's tables: kernels against twins, launches, host and device time, W1 and
    W2 by path (see the module's docstring)."""
    from .gpu import devices

    found, why = devices()
    found.pop("jax", None)  # xpnet's JAX path has no fast step to set against its portable one
    if "cupy" in found:
        import array_api_compat.cupy as xp
        import cupy

        cp, mode = cupy, "on the device"
    else:
        import array_api_compat.numpy as xp

        cp, mode = launch_counts.STAND_IN, "stand-in (no device)"
    progress(f"paths: kernels against their twins, {mode}")
    tables = [
        _guarded("paths_kernels", "Fused CuPy kernels against their NumPy twins",
                 lambda: kernel_table(check_kernels(cp, xp), mode)),
        _guarded("paths_launches", "Launches measured on the device",
                 lambda: launch_table(found, why)),
        _guarded("paths_host", "CuPy W2 batch, host time against device time",
                 lambda: host_device_table(found, why)),
        _guarded("paths_w1", "W1 by path", lambda: w1_table(found, w1_epochs, rounds)),
        _guarded("paths_w2", "W2 by path", lambda: w2_table(found, w2_rows, rounds)),
    ]  # fmt: skip
    if why:
        tables[-1].note("not usable: " + "; ".join(why))
    return tables
