"""Dask: what a full-batch pass over row chunks costs next to the same pass on NumPy.

The data: 2,000,000 x 64 float64 rows (``--dask-rows``), standard normal, drawn
chunk by chunk (250,000 rows a chunk, 8 chunks at least) from per-chunk seeds,
labelled ``x0 * x1 + x2 > 0`` (2 classes); the same numbers on every row of the
table.  The model: ``xpnet.fit(X, y, hidden=16, lr=1/rows)`` (the article's
full-batch gradient descent; ``lr`` scaled so that the step on the mean loss is
1, as the article's 0.01 is for its 200 rows), 7 passes with ``log_every=1`` and
a callback that records ``time.perf_counter()`` at every pass.  A pass's time is
the time between two calls; the first pass is a warm-up, and the table gives the
median (and the range) of the last 5.

Rows, each with its ratio to the first two:

* NumPy in memory, a loss every pass (the reference): xpnet's NumPy path, which
  computes the loss in a pass of its own at every log point;
* NumPy in memory, no loss between: ``log_every=5`` (the five passes between two
  log points run as one call, xpnet's fast path), the time of those five / 5;
* dask on the threaded scheduler: ``da.from_array`` over the NumPy array (views:
  in memory before timing), chunks of 250,000 rows;
* dask on a ``LocalCluster`` of two worker processes (one thread each): the
  chunks generated on the workers and kept there (``client.persist``) before
  timing.

A dask pass is one ``dask.compute``: the graph of one task per chunk sent to the
scheduler with the parameters, each task's gradient sums (and summed loss) back
to the client and added there in chunk order.  The data never moves.

Run it alone: ``python -m benchmarks --only dask`` (``--quick``: 200,000 rows).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._report import Table, fmt_s, fmt_x, median, progress

FEATURES, HIDDEN, SEED = 64, 16, 0
CHUNK_ROWS, MIN_CHUNKS = 250_000, 8
PASSES, TIMED = 7, 5  # passes per fit; the last TIMED of them are timed


def _chunk(block_info: dict) -> np.ndarray:
    """One chunk of X from its own seed: the same rows whatever computes it."""
    (start, stop), _ = block_info[None]["array-location"]
    index = block_info[None]["chunk-location"][0]
    return np.random.default_rng([SEED, index]).standard_normal((stop - start, FEATURES))


def _label(X: np.ndarray) -> np.ndarray:
    return (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.int8)


def lazy_data(rows: int) -> tuple[Any, Any]:
    """X and y as dask arrays, lazily: chunks of CHUNK_ROWS rows (MIN_CHUNKS at least)."""
    import dask.array as da

    size = min(CHUNK_ROWS, -(-rows // MIN_CHUNKS))
    full, rest = divmod(rows, size)
    chunks = ((size,) * full + ((rest,) if rest else ()), (FEATURES,))
    X = da.map_blocks(_chunk, chunks=chunks, dtype=np.float64)
    y = X.map_blocks(_label, drop_axis=1, dtype=np.int8)
    return X, y


def timed_fit(X: Any, y: Any, rows: int, log_every: int = 1, **kw: Any) -> tuple[list, float]:
    """Per-pass seconds of the passes after the first, and the final loss."""
    import xpnet

    stamps: list[float] = []
    model = xpnet.fit(
        X, y, hidden=HIDDEN, epochs=PASSES, lr=1.0 / rows, log_every=log_every,
        callback=lambda _pass, _loss: stamps.append(time.perf_counter()), **kw,
    )  # fmt: skip
    if log_every == 1:
        seconds = list(np.diff(stamps)[-TIMED:])
    else:  # callbacks at pass 0 and pass log_every: the passes between run as one call
        seconds = [(stamps[1] - stamps[0]) / log_every]
    return seconds, model.loss_curve[-1][1]


def missing() -> str | None:
    """Why the section cannot run, or None."""
    for name in ("dask.array", "distributed"):
        try:
            __import__(name)
        except ImportError as exc:
            return f"dask section skipped: {name} is not installed ({exc}); pip install '.[dask]'"
    return None


def run(rows: int) -> Table:
    why = missing()
    if why is not None:  # one line, as the gpu section without a GPU
        table = Table("dask", "Dask rows", [])
        table.note(why)
        return table
    table = Table(
        "dask",
        f"Dask, full batch: {rows:,} x {FEATURES} float64, hidden {HIDDEN}, 2 classes; "
        f"seconds a pass (median of {TIMED} after a warm-up)",
        ["row", "per pass", "range", "x NumPy", "x NumPy, no loss", "loss after the passes"],
    )
    import dask
    from dask.distributed import Client, LocalCluster, wait

    X_lazy, y_lazy = lazy_data(rows)
    progress(f"dask: generating {rows:,} rows in {X_lazy.numblocks[0]} chunks")
    with dask.config.set(scheduler="threads"):
        X, y = dask.compute(X_lazy, y_lazy)
    results: dict[str, tuple[list, float]] = {}

    progress(f"dask: NumPy, {PASSES} passes twice")
    results["NumPy in memory, a loss every pass (reference)"] = timed_fit(
        X, y, rows, backend="numpy"
    )
    results["NumPy in memory, no loss between (log_every=5)"] = timed_fit(
        X, y, rows, log_every=5, backend="numpy"
    )

    import dask.array as da

    progress(f"dask: threaded scheduler, {PASSES} passes")
    chunks = X_lazy.chunks
    with dask.config.set(scheduler="threads"):
        X_threads = da.from_array(X, chunks=chunks)
        y_threads = da.from_array(y, chunks=chunks[:1])
        label = f"dask, threaded scheduler ({len(chunks[0])} chunks in memory)"
        results[label] = timed_fit(X_threads, y_threads, rows)
    del X_threads, y_threads

    progress("dask: starting a LocalCluster of 2 workers, persisting the chunks there")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        X_cluster, y_cluster = client.persist([X_lazy, y_lazy])
        wait([X_cluster, y_cluster])
        progress(f"dask: LocalCluster, {PASSES} passes")
        label = f"dask, LocalCluster 2 workers x 1 thread ({len(chunks[0])} chunks persisted)"
        results[label] = timed_fit(X_cluster, y_cluster, rows)
        del X_cluster, y_cluster

    reference, fastest = (median(seconds) for seconds, _ in list(results.values())[:2])
    for name, (seconds, loss) in results.items():
        t = median(seconds)
        spread = f"{fmt_s(min(seconds))} - {fmt_s(max(seconds))}" if len(seconds) > 1 else ""
        table.add(
            [name, fmt_s(t), spread, fmt_x(t / reference), fmt_x(t / fastest), f"{loss:.6f}"],
            seconds=seconds, ratio=t / reference, ratio_no_loss=t / fastest, loss=loss,
        )  # fmt: skip
    table.note(
        "x NumPy: over the reference's median; x NumPy, no loss: over NumPy's fastest pass "
        "(xpnet's NumPy path computes the loss in a forward pass of its own, a dask pass gets "
        "it with the gradients, so this column is the one that shows dask's overhead)"
    )
    table.note(
        "a dask pass is one dask.compute of one task per chunk: the graph and the parameters "
        "sent, every chunk's gradient sums and summed loss computed where the chunk is, sent "
        "back and added on the client in chunk order, then the step on the client; the loss "
        "comes with the gradients, so log_every does not change a dask pass"
    )
    table.note(
        "the data is in place before timing: a NumPy array; views of it on the threaded "
        "scheduler; chunks generated on the workers and persisted on the cluster"
    )
    table.note(
        "threads: NumPy's BLAS uses every core; the threaded scheduler runs one task per "
        "core, each with BLAS threads of its own; the cluster's workers one thread each"
    )
    table.note(
        "loss: after the last pass, the same model on every row (to rounding: sums in chunk order)"
    )
    return table
