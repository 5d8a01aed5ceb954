"""
Out-of-core training on a dask cluster
======================================

20,000,000 x 64 float64 rows (about 10 GiB) on two workers of 1.5 GiB.  The documentation's
gallery runs it with ``--rows 400000 --holdout 100000``: the figures and numbers below are
that small run's.

Run:  python examples/out_of_core.py OUTPUT_DIR [--rows N] [--holdout N] [--epochs E]

The rows never exist all at once: dask generates each chunk of 250,000 rows
(122 MiB) when a task needs it, from seeds of its own (``numpy.random.
default_rng([seed, chunk index, stream])``), so the data is the same on every
run and every scheduler (for a given chunk size).  The label of a row is

    y = 1 if x0 * x1 + x2 > 0 else 0, then 5% of the labels flipped at random

(a nonlinear rule of 3 of the 64 columns, the other 61 are noise; the flips
make 0.95 the best accuracy any model can reach on new rows).

A ``dask.distributed.LocalCluster`` of two worker processes, one thread and
1.5 GiB each, trains ``xpnet.MLPClassifier(solver="adam")`` with ``fit``: first
one pass over the chunks checks X and y, then each epoch is one graph, a chain
of one task per chunk in a shuffled order, each drawing mini-batches within its
chunk and handing the parameters and Adam's state on to the next, while the
other worker generates chunks to come.  Training stops at ``max_iter`` epochs,
as planned (scikit-learn's ConvergenceWarning for that is silenced).  A
held-out set of 1,000,000 rows, generated the same way from another seed, is
scored at the end: ``score`` computes the predictions and the labels together,
chunk by chunk, and returns a float.

The training is sequential (one chunk at a time) while the generation is not,
so chunks made ahead wait in the workers' memory, and past 60-70% of the limit
dask spills them to local disk (the figure printed as "spilled"), reading each
back when its turn comes.

Prints the rows, chunks, workers, the time and loss of each epoch, the
held-out accuracy, each worker's peak memory (its process's maximum resident
set) and what it spilled, and the total time; writes out_of_core.png (the loss
and the seconds of each epoch) into OUTPUT_DIR.  Measured on a 2-core VM: 237 s
in all, epochs of 125 s (with the input check) and 104 s, held-out accuracy
0.930, workers peaking at 1.22 and 1.16 GiB after spilling 7.5 and 7.9 GiB;
``--rows 400000 --holdout 100000`` (what ``nox -s examples`` runs) about 15 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

import xpnet

FEATURES = 64
INFORMATIVE = 3  # the columns the rule reads: x0, x1, x2
NOISE = 0.05  # the share of labels flipped
TRAIN_SEED, HOLDOUT_SEED = 1, 2
WORKERS, MEMORY_LIMIT = 2, "1.5GiB"
EPOCHS = 2


# -- the data, generated chunk by chunk -----------------------------------------------------
# Chunk i of X is drawn from two streams of its own: the INFORMATIVE columns the rule reads
# from default_rng([seed, i, 0]), the other columns from default_rng([seed, i, 1]).  The
# labels' task draws the informative columns again (3 of 64: cheap) instead of reading X's
# chunk, so X and y are independent tasks and X is drawn once per pass: xpnet hands dask
# X's and y's chunks as separate graphs, and a y computed from X would draw X again.
def _informative(seed: int, index: int, rows: int) -> np.ndarray:
    return np.random.default_rng([seed, index, 0]).standard_normal((rows, INFORMATIVE))


def _rows(block_info: dict, seed: int) -> np.ndarray:
    """One chunk of X: standard normal rows, float64."""
    (start, stop), _ = block_info[None]["array-location"]
    index, rows = block_info[None]["chunk-location"][0], stop - start
    noise = np.random.default_rng([seed, index, 1]).standard_normal((rows, FEATURES - INFORMATIVE))
    return np.concatenate([_informative(seed, index, rows), noise], axis=1)


def _labels(block_info: dict, seed: int) -> np.ndarray:
    """The labels of one chunk: the rule, then NOISE of them flipped."""
    ((start, stop),) = block_info[None]["array-location"]
    index, rows = block_info[None]["chunk-location"][0], stop - start
    x = _informative(seed, index, rows)
    rule = x[:, 0] * x[:, 1] + x[:, 2] > 0
    flipped = np.random.default_rng([seed, index, 2]).random(rows) < NOISE
    return (rule ^ flipped).astype(np.int8)


def make_data(rows: int, chunk_rows: int, seed: int) -> tuple[da.Array, da.Array]:
    """X (rows x FEATURES, float64) and y (int8), lazily, in chunks of chunk_rows rows."""
    full, rest = divmod(rows, chunk_rows)
    row_chunks = (chunk_rows,) * full + ((rest,) if rest else ())
    X = da.map_blocks(_rows, chunks=(row_chunks, (FEATURES,)), dtype=np.float64, seed=seed)
    y = da.map_blocks(_labels, chunks=(row_chunks,), dtype=np.int8, seed=seed)
    return X, y


def check_rule(X: da.Array, y: da.Array) -> float:
    """The share of chunk 0's labels that differ from the rule applied to X's columns."""
    x, labels = dask.compute(X.blocks[0], y.blocks[0])
    return float(np.mean((x[:, 0] * x[:, 1] + x[:, 2] > 0) != labels))


# -- measuring --------------------------------------------------------------------------------
def _worker_memory(dask_worker) -> tuple[int, int]:
    """A worker's peak resident memory so far (its process's ru_maxrss, KiB on Linux) and the
    bytes it has spilled to disk, both in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    metrics = getattr(dask_worker.data, "cumulative_metrics", {})
    return peak, int(metrics.get(("disk-write", "bytes"), 0))


def chunks(a: da.Array) -> str:
    n = a.numblocks[0]
    return f"{n} chunk{'s' * (n != 1)}"


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


class EpochClock(io.TextIOBase):
    """stdout during the fit: scikit-learn's verbose line at the end of each epoch
    ("Iteration 2, loss = 0.31"), with the seconds the epoch took."""

    def __init__(self, out: Any) -> None:
        self.out, self.seconds, self.last, self.pending = out, [], time.perf_counter(), ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.startswith("Iteration"):
                now = time.perf_counter()
                self.seconds.append(now - self.last)
                self.last = now
                line = f"  {line}  ({self.seconds[-1]:.1f} s)"
            print(line, file=self.out, flush=True)
        return len(text)


def plot(out: Path, losses: list[float], seconds: list[float], title: str) -> Path:
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(losses) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    left.plot(epochs, losses, "o-")
    left.set(xlabel="epoch", ylabel="mean training loss", title="training loss")
    right.bar(epochs, seconds, color="C1")
    right.set(xlabel="epoch", ylabel="seconds", title="time per epoch (epoch 1: + input check)")
    for ax in (left, right):
        ax.set_xticks(epochs)
    fig.suptitle(title)
    path = out / "out_of_core.png"
    fig.savefig(path, dpi=100)  # left open: the docs' gallery shows the figures still open
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Out-of-core training on a dask cluster.")
    parser.add_argument("out", nargs="?", default=".", type=Path, help="folder for the figure")
    parser.add_argument("--rows", type=int, default=20_000_000, help="training rows")
    parser.add_argument("--holdout", type=int, default=1_000_000, help="held-out rows")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of Adam (max_iter)")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=250_000,
        help="rows per chunk (at most rows/8, so that a small run has chunks to shuffle)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    chunk_rows = max(1, min(args.chunk_rows, -(-args.rows // 8)))
    X, y = make_data(args.rows, chunk_rows, TRAIN_SEED)
    X_test, y_test = make_data(args.holdout, chunk_rows, HOLDOUT_SEED)
    chunk_mib = chunk_rows * FEATURES * 8 / 2**20
    print(
        f"training rows: {args.rows:,} x {FEATURES} float64 ({gib(X.nbytes)}), generated lazily "
        f"in {chunks(X)} of {chunk_rows:,} rows ({chunk_mib:.0f} MiB each)"
    )
    print(f"held-out rows: {args.holdout:,} in {chunks(X_test)}, from another seed")
    print(
        f"labels: y = 1 if x0 * x1 + x2 > 0 else 0, then {NOISE:.0%} flipped at random "
        f"(best possible accuracy {1 - NOISE:.2f})"
    )

    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            memory_limit=MEMORY_LIMIT,
            dashboard_address=None,  # the dashboard needs bokeh; pass ":8787" to watch
        ) as cluster,
        Client(cluster) as client,  # from here on, dask.compute runs on the cluster
    ):
        print(f"cluster: {WORKERS} worker processes, 1 thread and {MEMORY_LIMIT} of memory each")
        print(f"labels differing from the rule in chunk 0: {check_rule(X, y):.2%}")
        clf = xpnet.MLPClassifier(
            hidden_layer_sizes=(16,),
            solver="adam",
            batch_size=2000,
            learning_rate_init=0.003,
            max_iter=args.epochs,
            random_state=0,
            verbose=True,  # a line per epoch, timed by EpochClock
        )
        print(f"training {clf!r}, {args.epochs} epochs: one graph each, the chunks in turn")
        clock = EpochClock(sys.stdout)
        fit_started = time.perf_counter()
        with contextlib.redirect_stdout(clock), warnings.catch_warnings():
            # scikit-learn warns that training stopped at max_iter before converging: the plan
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        fit_seconds = time.perf_counter() - fit_started
        proba = clf.predict_proba(X_test)  # lazy: a dask array with X_test's row chunks
        print(
            f"predict_proba(X_test) is lazy: a dask array {proba.shape}, {proba.dtype}, "
            f"in {chunks(proba)}"
        )
        score_started = time.perf_counter()
        accuracy = clf.score(X_test, y_test)  # a float: predictions and labels in one compute
        score_seconds = time.perf_counter() - score_started
        memory = client.run(_worker_memory)  # {worker address: (peak, spilled)}

    elapsed = time.perf_counter() - started
    print(f"fit: {fit_seconds:.0f} s, {fit_seconds / args.epochs:.0f} s an epoch on average")
    print(f"loss per epoch: {', '.join(f'{v:.4f}' for v in clf.loss_curve_)}")
    verdict = "at least" if accuracy >= 0.9 else "BELOW"
    print(
        f"held-out accuracy: {accuracy:.4f} ({verdict} 0.9; best possible {1 - NOISE:.2f}), "
        f"scored in {score_seconds:.1f} s"
    )
    for i, (_, (peak, spilled)) in enumerate(sorted(memory.items()), 1):
        print(f"worker {i}: peak memory {gib(peak)} (limit {MEMORY_LIMIT}), spilled {gib(spilled)}")
    path = plot(
        args.out,
        clf.loss_curve_,
        clock.seconds,
        f"{args.rows:,} rows x {FEATURES}: held-out accuracy {accuracy:.3f}",
    )
    print(f"figure written to {path.resolve()}")
    print(f"total time: {elapsed:.0f} s")


if __name__ == "__main__":  # the worker processes import this file: start nothing there
    main()
