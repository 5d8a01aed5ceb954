"""Costs of seeing it: the progress bar's overhead on training, the boundary grid's memory.

Run:  python benchmarks/progress_and_grid.py [--backend numpy] [--epochs 5000] [--repeats 5]

1. fit(verbose=True) against fit(verbose=False), interleaved in one run, as the
   ratio of median times (1.00 means no cost), in wall time and in CPU time
   (process_time, less disturbed by other work on a shared machine).
2. The peak host memory that tracemalloc sees while xpnet.plot.decision_boundary
   evaluates a 2000 x 2000 grid, for several chunk sizes (NumPy and CuPy report
   their host buffers to tracemalloc; device memory is not seen).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
import tracemalloc

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

import xpnet  # noqa: E402


class _Terminal(io.StringIO):
    """A captured stderr that says it is a terminal: the bar draws only on one."""

    def isatty(self) -> bool:
        return True


def progress_ratio(X, y, backend: str, epochs: int, repeats: int) -> None:
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    xpnet.fit(X, y, epochs=10, backend=backend)  # warm up (imports, JIT)
    for _ in range(repeats):
        for verbose in (False, True):
            with contextlib.redirect_stderr(_Terminal()):
                start, start_cpu = time.perf_counter(), time.process_time()
                xpnet.fit(X, y, epochs=epochs, backend=backend, verbose=verbose)
                wall[verbose].append(time.perf_counter() - start)
                cpu[verbose].append(time.process_time() - start_cpu)
    for kind, times in (("wall", wall), ("cpu", cpu)):
        quiet, loud = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"progress bar, {backend}, {epochs} passes x {repeats}, {kind}: median "
            f"{quiet:.3f} s quiet, {loud:.3f} s with the bar, ratio {loud / quiet:.3f}"
        )


def grid_memory(X, y, backend: str, resolution: int) -> None:
    model = xpnet.fit(X, y, epochs=100, backend=backend)
    for chunk in (4096, 65536, 1_048_576):
        tracemalloc.start()
        start = time.perf_counter()
        ax = xpnet.plot.decision_boundary(model, X, y, resolution=resolution, chunk_size=chunk)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        plt.close(ax.figure)
        print(
            f"boundary {resolution}x{resolution}, {backend}, chunk_size {chunk:>9}: "
            f"peak traced host memory {peak / 2**20:7.1f} MiB, {seconds:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=2000)
    args = parser.parse_args()
    X, y = make_moons(200, noise=0.20, random_state=0)
    progress_ratio(X, y, args.backend, args.epochs, args.repeats)
    grid_memory(X, y, args.backend, args.resolution)


if __name__ == "__main__":
    main()
