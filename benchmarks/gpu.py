"""GPU rows, when a CUDA device is usable (else one line saying they were skipped).

* W1 (the article, float64) on CuPy, torch's CUDA device and JAX's GPU, against
  xpnet on NumPy and the tutorial's plain-NumPy loop, timed in turn.
* W2 with 2,000,000 rows, float32, the data already on the device (a CuPy array,
  a CUDA torch tensor): ``xpnet.MLPClassifier`` on CuPy and on torch-CUDA, the
  epoch's matrix products alone in CuPy, and a cuBLAS peak measured in the same
  run (a CuPy float32 8192^3 product, timed with CUDA events: CuPy's default,
  no TF32).  GFLOP/s counts the epoch's matrix-product flops, as on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnet

from . import w1, w2
from ._report import Table, best, fmt_s, fmt_x, interleaved, median, progress, target


def devices() -> tuple[dict[str, Any], list[str]]:
    """The usable GPU devices by backend ({"cupy": None, "torch": "cuda", ...}), and why not."""
    found: dict[str, Any] = {}
    why: list[str] = []
    report = xpnet.available_backends()
    if report["cupy"].usable:
        found["cupy"] = None
    else:
        why.append(f"cupy: {report['cupy'].reason}")
    if report["torch"].installed:
        if any(d.startswith("cuda") for d in report["torch"].devices):
            found["torch"] = "cuda"
        else:
            why.append("torch: no CUDA device")
    if report["jax"].installed:
        try:
            import jax

            jax.devices("gpu")
            found["jax"] = "gpu"
        except RuntimeError:
            why.append("jax: no GPU device")
    return found, why


def skipped(why: list[str]) -> Table:
    table = Table("gpu", "GPU rows", [])
    table.note("GPU rows skipped: no usable CUDA device (" + "; ".join(why) + ")")
    return table


def run_w1(found: dict[str, Any], epochs: int, rounds: int) -> Table:
    X, y = w1.moons()
    table = Table(
        "gpu_w1",
        f"GPU W1, the article: {epochs} passes, float64 (best of {rounds}, interleaved)",
        ["row", "best", "median", "us/pass", "x tutorial", "x xpnet numpy", "target", "loss"],
    )
    fns: dict[str, Callable[[], Any]] = {
        "tutorial loop (plain NumPy)": lambda: w1.plain_numpy(X, y, w1.HIDDEN, epochs),
        "xpnet numpy": w1.xpnet_fit(X, y, epochs, "numpy", None),
    }
    for backend, device in found.items():
        fns[f"xpnet {backend} ({device or 'cuda'})"] = w1.xpnet_fit(X, y, epochs, backend, device)
    results: dict[str, Any] = {}

    def keep(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def call() -> None:
            results[name] = fn()  # a Model: its losses came back to the host, so work is done

        return call

    progress(f"GPU W1: {', '.join(fns)}; {epochs} passes, {rounds} rounds")
    for name, fn in fns.items():  # warm-up: the GPU rows in full (compilation, graphs)
        if name.startswith("xpnet") and name != "xpnet numpy":
            fn()
    w1.plain_numpy(X, y, w1.HIDDEN, min(epochs, 500))
    w1.xpnet_fit(X, y, min(epochs, 500), "numpy", None)()
    times = interleaved({k: keep(k, f) for k, f in fns.items()}, rounds, warmup=False)
    tutorial, numpy_ = best(times["tutorial loop (plain NumPy)"]), best(times["xpnet numpy"])
    for name, ts in times.items():
        t = best(ts)
        goal = target(t / numpy_, 1.0) if name.startswith("xpnet cupy") else ""
        loss = w1.final_loss(X, y, results[name])
        table.add(
            [name, fmt_s(t), fmt_s(median(ts)), f"{t / epochs * 1e6:.1f}", fmt_x(t / tutorial),
             fmt_x(t / numpy_), goal, loss],
            seconds=ts, x_tutorial=t / tutorial, x_numpy=t / numpy_,
        )  # fmt: skip
    table.note("target from the issue: W1 on CuPy no slower than on NumPy")
    table.note("loss: after the last pass (libraries differ by up to ~1e-3 here; see W1)")
    return table


def cublas_peak(n: int = 8192, repeats: int = 10) -> float:
    """GFLOP/s of a CuPy float32 n^3 matrix product, mean of ``repeats`` after 3 warm-ups."""
    import cupy

    a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
    c = cupy.empty_like(a)
    for _ in range(3):
        cupy.matmul(a, b, out=c)
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeats):
        cupy.matmul(a, b, out=c)
    end.record()
    end.synchronize()
    seconds = cupy.cuda.get_elapsed_time(start, end) / 1e3 / repeats
    del a, b, c
    return 2 * n**3 / seconds / 1e9


def run_w2(found: dict[str, Any], rows: int, rounds: int) -> Table:
    progress(f"GPU W2: making {rows:,} rows")
    X64, y = w2.make_data(rows)
    X32 = np.ascontiguousarray(X64, dtype=np.float32)
    del X64
    total = w2.flops(rows)
    table = Table(
        "gpu_w2",
        f"GPU W2, float32: {rows:,} x {w2.FEATURES}, 64-256-256-10 tanh, Adam, batch {w2.BATCH}, "
        f"one epoch, data on the device (best of {rounds}, interleaved)",
        ["row", "best", "median", "GFLOP/s", "x cuBLAS peak", "target", "loss"],
    )
    fns: dict[str, Callable[[], None]] = {}
    fitted: dict[str, Any] = {}
    peak = None
    inputs: dict[str, Any] = {}
    if "cupy" in found:
        import cupy

        peak = cublas_peak()
        inputs["xpnet MLPClassifier cupy"] = cupy.asarray(X32)
        sync = cupy.cuda.Device().synchronize
        fns["matmul only (CuPy)"] = w2.matmul_epoch(cupy, inputs["xpnet MLPClassifier cupy"], sync)
    if "torch" in found:
        import torch

        inputs["xpnet MLPClassifier torch (cuda)"] = torch.as_tensor(X32, device="cuda")

    def fitter(name: str, X: Any) -> Callable[[], None]:
        def call() -> None:
            fitted[name] = w2.fit(xpnet.MLPClassifier(**w2.SETTINGS), X, y)  # trains where X is

        return call

    for name, X in inputs.items():
        fns[name] = fitter(name, X)
        w2.fit(xpnet.MLPClassifier(**w2.SETTINGS), X[:20000], y[:20000])  # warm-up
    if "matmul only (CuPy)" in fns:
        fns["matmul only (CuPy)"]()
    progress(f"GPU W2: {', '.join(fns)}; {rounds} rounds")
    times = interleaved(fns, rounds, warmup=False)
    for name, ts in times.items():
        t = best(ts)
        gflops = total / t / 1e9
        frac = gflops / peak if peak else None
        goal = target(frac, 0.6, at_most=False) if name.startswith("xpnet") and frac else ""
        loss = f"{fitted[name].loss_:.6f}" if name in fitted else "-"
        table.add(
            [name, fmt_s(t), fmt_s(median(ts)), f"{gflops:.0f}", fmt_x(frac), goal, loss],
            seconds=ts, gflops=gflops, x_peak=frac,
        )  # fmt: skip
    if peak:
        table.note(f"cuBLAS peak in this run: CuPy float32 8192^3, {peak:.0f} GFLOP/s (no TF32)")
    else:
        table.note("no cuBLAS peak: CuPy is not usable, so no x-peak ratios")
    table.note(f"one epoch's matrix products: {total / 1e9:.0f} GFLOP")
    table.note("target from the issue: W2 at or above 0.6 of the cuBLAS peak")
    return table


def _graph_of(step: Callable[[], None], passes: int) -> tuple[Any, Any]:
    """``passes`` calls of ``step`` captured as one CUDA graph, and the stream to launch it on.

    The step runs once first, so that kernels are compiled and the memory it needs sits in a
    private pool, which lives as long as the graph: the graph's temporaries keep their
    addresses, and nothing outside the graph is ever given them.
    """
    import cupy

    pool = cupy.cuda.MemoryPool()
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        step()
        stream.synchronize()
        stream.begin_capture()
        for _ in range(passes):
            step()
        graph = stream.end_capture()
    graph._xpnet_pool = pool  # the pool goes when the graph does
    return graph, stream


def run_anatomy(passes: int = 2000, per_graph: int = 10) -> Table:
    """Where a CuPy W1 pass spends its time: the host launching kernels, or the GPU.

    The article's step on CuPy (the portable one xpnet runs there), timed per pass by
    ``cupyx.profiler.benchmark`` (host time of the call, and GPU time between CUDA events),
    then the same step captured ``per_graph`` passes to a CUDA graph and replayed.
    """
    import cupy
    from cupyx.profiler import benchmark

    from xpnet import _init, _optim, _steps, _target

    X, y = w1.moons()
    target = _target.target_for("cupy", None)
    optimizer = _optim.SGD(0.01)
    step = _steps.step_for(target, optimizer, "tanh", "softmax", 0.01, False)
    Xd = target.asarray(X)
    Yd = target.asarray(np.eye(2)[y])
    init = _init.init_normal((2, w1.HIDDEN, 2), 0)

    def state() -> list:
        return _target.moved(target, init, np.float64)

    def stepping(params: list) -> Callable[[], None]:
        def one() -> None:  # one pass, its result written back into the same arrays
            new, _, _ = step(params, (), Xd, Yd, None, 0.01)
            for (W, b), (W1, b1) in zip(params, new, strict=True):
                W[...], b[...] = W1, b1

        return one

    table = Table(
        "gpu_anatomy",
        f"GPU W1 pass anatomy, CuPy float64: the article's step, per pass ({passes} passes)",
        ["row", "host us/pass", "GPU us/pass", "x step from Python", "max |param diff|"],
    )
    progress("GPU anatomy: the CuPy step from Python, then as a CUDA graph")
    eager = state()
    timed = benchmark(stepping(eager), n_repeat=passes, n_warmup=10)
    host, gpu = float(np.median(timed.cpu_times)), float(np.median(timed.gpu_times))
    table.add(["step launched from Python (xpnet's CuPy path)", f"{host * 1e6:.1f}",
               f"{gpu * 1e6:.1f}", "1.00x", "-"], host=host, gpu=gpu)  # fmt: skip
    # the same number of passes both ways, from the same start, to compare the results
    reference, captured = state(), state()
    for _ in range(passes):
        stepping(reference)()
    try:
        graph, stream = _graph_of(stepping(captured), per_graph)
    except Exception as exc:  # a CuPy or driver that cannot capture: say why
        table.note(f"capture failed: {type(exc).__name__}: {exc}")
        return table
    # the capture's warm-up pass moved the arrays the graph writes: back to the start, in place
    for (W, b), (W0, b0) in zip(captured, init, strict=True):
        W[...], b[...] = cupy.asarray(W0), cupy.asarray(b0)
    cupy.cuda.Device().synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record(stream)
    for _ in range(passes // per_graph):
        graph.launch(stream=stream)
    end.record(stream)
    end.synchronize()
    g = cupy.cuda.get_elapsed_time(start, end) / 1e3 / passes
    diff = max(
        float(cupy.max(cupy.abs(a - b)))
        for pair_a, pair_b in zip(reference, captured, strict=True)
        for a, b in zip(pair_a, pair_b, strict=True)
    )
    table.add([f"captured, {per_graph} passes a graph, replayed", "-", f"{g * 1e6:.1f}",
               fmt_x(g / gpu), f"{diff:.1e}"], gpu=g, diff=diff)  # fmt: skip
    table.note("host us/pass > GPU us/pass: the GPU waits on Python's launches")
    return table


def run(w1_epochs: int, w2_rows: int, rounds: int) -> list[Table]:
    found, why = devices()
    if not found:
        return [skipped(why)]
    tables = [run_w1(found, w1_epochs, rounds)]
    if "cupy" in found:
        try:
            tables.append(run_anatomy())
        except Exception as exc:  # a probe: its failure is a finding, not the end of the run
            failed = Table("gpu_anatomy", "GPU W1 pass anatomy, CuPy", [])
            failed.note(f"the probe failed: {type(exc).__name__}: {exc}")
            tables.append(failed)
    if {"cupy", "torch"} & set(found):
        tables.append(run_w2(found, w2_rows, rounds))
    if why:
        tables[-1].note("not usable: " + "; ".join(why))
    return tables
