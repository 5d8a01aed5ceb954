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


def run(w1_epochs: int, w2_rows: int, rounds: int) -> list[Table]:
    found, why = devices()
    if not found:
        return [skipped(why)]
    tables = [run_w1(found, w1_epochs, rounds)]
    if {"cupy", "torch"} & set(found):
        tables.append(run_w2(found, w2_rows, rounds))
    if why:
        tables[-1].note("not usable: " + "; ".join(why))
    return tables
