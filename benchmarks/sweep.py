"""fit_many's sweep: the article's hidden sizes 1, 2, 3, 4, 5, 20, 50 against sequential fits.

``bench_grid.py``'s "sweep" workload: each side is one fresh interpreter that
times only its training (``bench_grid.child``); the sides take turns,
``rounds`` times.  The ratio is fit_many's time over the sequential fits'.
"""

from __future__ import annotations

from . import bench_grid
from ._report import Table, best, fmt_s, fmt_x, median, progress

SIDES = ("sequential", "fit_many")


def run(epochs: int, rounds: int, backend: str = "numpy") -> Table:
    table = Table(
        "sweep",
        f"fit_many's sweep: hidden {', '.join(map(str, bench_grid.SWEEP))}, {epochs} passes, "
        f"{backend} (best of {rounds} fresh processes a side, in turn)",
        ["row", "best", "median", "x sequential"],
    )
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for r in range(rounds):
        progress(f"sweep: round {r + 1} of {rounds}")
        for side in SIDES if r % 2 == 0 else SIDES[::-1]:
            times[side].append(bench_grid._run_child("sweep", side, epochs, backend))
    base = best(times["sequential"])
    for side in SIDES:
        t = best(times[side])
        label = "sequential xpnet.fit" if side == "sequential" else "xpnet.fit_many"
        table.add(
            [label, fmt_s(t), fmt_s(median(times[side])), fmt_x(t / base)],
            seconds=times[side], ratio=t / base, epochs=epochs, backend=backend,
        )  # fmt: skip
    table.note("each figure times training only (not the interpreter's start or imports)")
    return table
