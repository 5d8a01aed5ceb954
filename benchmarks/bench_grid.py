"""Time xpnet.fit_many against sequential xpnet.fit calls, each side in a fresh process.

Run:  python benchmarks/bench_grid.py [--repeats 3] [--epochs 20000] [--backend numpy]
                                      [--only sweep|hundred|thousand]

Workloads (make_moons(200, noise=0.20, random_state=0), the article's lr and l2):

* sweep: the article's hidden sizes 1, 2, 3, 4, 5, 20, 50, ``--epochs`` passes;
* hundred: 100 models, hidden 1..50 x seeds 0 and 1, ``--epochs-hundred`` passes;
* thousand (``--thousand``, for a GPU): 1000 seeds of hidden 3 against one model.

Each figure is one child process (a fresh interpreter, so the allocator's
state after earlier work cannot tilt a ratio) timing only its training, the
sides run in turn, repeated ``--repeats`` times; the table shows medians and
ratios to the sequential fits (to one model for "thousand").  Besides the
layout fit_many chooses, the sweep and hundred are also timed with each
layout forced ("padded", "side_by_side"), which is how the choice was made.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

SWEEP = [1, 2, 3, 4, 5, 20, 50]
HUNDRED = dict(hidden=list(range(1, 51)), seed=[0, 1])


def _settings(workload: str) -> dict:
    if workload == "sweep":
        return dict(hidden=SWEEP)
    if workload == "hundred":
        return HUNDRED
    return dict(seed=list(range(1000)))


def child(workload: str, side: str, epochs: int, backend: str) -> float:
    """Train one side of one workload here; the seconds of its training."""
    import itertools
    import warnings

    import xpnet
    from xpnet import _fit, _fit_many

    warnings.simplefilter("ignore", xpnet.BackendFallbackWarning)
    from sklearn.datasets import make_moons

    X, y = make_moons(200, noise=0.20, random_state=0)
    settings = _settings(workload)
    kw = dict(epochs=epochs, backend=backend)
    if workload == "thousand" and side == "one":
        start = time.perf_counter()
        xpnet.fit(X, y, seed=0, **kw)
        return time.perf_counter() - start
    if side == "sequential":
        combos = itertools.product(*(settings[k] for k in settings))
        start = time.perf_counter()
        for values in combos:
            xpnet.fit(X, y, **dict(zip(settings, values, strict=True)), **kw)
        return time.perf_counter() - start
    if side == "fit_many":
        start = time.perf_counter()
        xpnet.fit_many(X, y, **settings, **kw)
        return time.perf_counter() - start
    # a forced layout, through the same path fit_many takes
    data = _fit.prepare(X, y, backend, None, None, True)
    axes = dict(hidden=3, seed=0, lr=0.01, l2=0.01, activation="tanh", epochs=epochs)
    combos = _fit_many._combine({**axes, "log_every": 1000, **settings}, False)
    start = time.perf_counter()
    _fit_many.train_grid(data, combos, None, None, False, layout=side)
    return time.perf_counter() - start


def _run_child(workload: str, side: str, epochs: int, backend: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", workload, side, str(epochs), backend],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20000, help="passes of the sweep")
    parser.add_argument("--epochs-hundred", type=int, default=2000, help="passes of the 100")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--thousand", action="store_true", help="1000 models vs one (GPU)")
    parser.add_argument(
        "--only", choices=("sweep", "hundred", "thousand"), help="time this workload alone"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workload, side, epochs, backend = args.child
        print(json.dumps({"seconds": child(workload, side, int(epochs), backend)}))
        return

    plans = [
        ("sweep", args.epochs, ["sequential", "fit_many", "padded", "side_by_side"]),
        ("hundred", args.epochs_hundred, ["sequential", "fit_many", "padded", "side_by_side"]),
    ]
    if args.thousand or args.only == "thousand":
        plans.append(("thousand", args.epochs, ["one", "fit_many"]))
    if args.only is not None:
        plans = [p for p in plans if p[0] == args.only]
    print(f"backend {args.backend}; medians of {args.repeats} fresh processes per figure")
    for workload, epochs, sides in plans:
        times: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(args.repeats):
            for side in sides:  # in turn, so that drifts in machine speed hit every side
                times[side].append(_run_child(workload, side, epochs, args.backend))
        base = statistics.median(times[sides[0]])
        print(f"\n{workload}: {epochs} passes")
        for side in sides:
            med = statistics.median(times[side])
            spread = f"{min(times[side]):.2f}-{max(times[side]):.2f}"
            print(f"  {side:14s} {med:8.2f} s  ({spread})  x{med / base:5.2f}")


if __name__ == "__main__":
    main()
