"""Training and predicting on Dask arrays, where the chunks live.

``X`` is a dask array chunked by rows (one chunk spans all the columns), in
memory or not, on the local threaded scheduler or on a ``dask.distributed``
cluster (whichever ``dask.compute`` uses).  The parameters are small NumPy
arrays on the client; each task moves them to its chunk's namespace and
device (NumPy, or CuPy for CuPy-backed chunks) and hands back host NumPy
results.  No graph grows with training:

* a full-batch pass (:func:`xpnet.fit`) is one graph of one task per chunk,
  each returning its chunk's gradient sums, added on the client; the loss of a
  logged pass comes with the next pass's gradients (the same parameters), so
  there is one compute per pass and one more at the end;
* a mini-batch epoch (the estimators' ``sgd`` and ``adam``) is one chain of
  tasks, one per chunk in a shuffled order, each drawing batches within its
  chunk and handing the parameters and the optimizer state on to the next.

The task functions are module-level, so that ``dask.distributed`` pickles them
by reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from . import _backends, _network, _rows, _steps, _target, _train, _tree, _validation


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask array (checked without importing dask)."""
    return array_api_compat.is_dask_array(x)


def trains_on_chunks(X: Any, backend: Any) -> bool:
    """Whether training runs on dask: X is a dask array (backend None), or backend="dask"
    with dask installed (without, the backend rules fall back to NumPy, or raise).

    Raises ValueError for a dask X with another backend, before anything is computed.
    """
    if backend == "dask":
        return _backends.probe("dask").usable
    if backend is not None and is_dask(X):
        raise ValueError(
            f"X is a dask array, but backend={backend!r} trains on arrays in memory: leave "
            "backend=None (or pass 'dask') to train on its chunks, or pass X.compute() if it "
            "fits in memory"
        )
    return is_dask(X)


def _da() -> Any:
    import dask.array as da

    return da


def _dask() -> Any:
    import dask

    return dask


# -- input --------------------------------------------------------------------------------
def chunked_rows(X: Any) -> Any:
    """A NumPy X as a dask array chunked by rows: dask's automatic row count per chunk
    (about ``dask.config.get("array.chunk-size")`` bytes, 128 MiB by default), all the
    columns in each chunk.

    Persisted: under a ``dask.distributed`` client the chunks go to the workers once,
    rather than with the graph of every pass; on the local schedulers they stay views
    of X.
    """
    if _validation.is_sparse(X):
        raise ValueError(
            "backend='dask' cuts a dense X into row chunks, and X is a SciPy sparse matrix: "
            "pass X.toarray() if it fits in memory, or train it on another backend"
        )
    X = _target.to_host(X)  # a torch or CuPy X comes to the host, as the chunks live there
    return _da().from_array(X, chunks=("auto", -1)).persist()


def check_X(X: Any, *, n_features: int | None = None, when: str = "fit", name: str = "X") -> Any:
    """Validate a dask X without computing it; returns it with one chunk across the columns.

    Shape, dtype and feature count are checked here; finiteness is checked by
    the first compute (in fit, with the labels) or by each chunk's task (in
    predict), which raises the same ValueError as for in-memory data.
    """
    _validation.check_shape(name, tuple(X.shape), "a dask array")
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has chunks of unknown size (after a filter, say); call "
            f"{name}.compute_chunk_sizes() first, so that rows can be counted and aligned"
        )
    if np.dtype(X.dtype).kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers, got dtype {X.dtype}; convert it with "
            f"{name}.astype('float64') (encode text columns as numbers first)"
        )
    _validation.check_n_features(name, X.shape[1], n_features)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def weights(sample_weight: Any, X: Any) -> Any:
    """``sample_weight`` as a 1-D dask array chunked by X's rows; a number weighs every row
    alike, as in scikit-learn."""
    if not is_dask(sample_weight):
        sample_weight = _target.to_host(sample_weight)
        if sample_weight.ndim == 0:
            sample_weight = np.full(X.shape[0], sample_weight, dtype=np.float64)
    if sample_weight.ndim != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array of "
            f"shape {tuple(sample_weight.shape)}: one weight per sample"
        )
    return align(sample_weight, X, "sample_weight")


def align(a: Any, X: Any, name: str) -> Any:
    """``a`` (labels, targets or sample weights) as a dask array chunked by X's rows.

    A NumPy (or list) ``a`` is cut at X's row chunks; a dask ``a`` must already
    be: a chunk of X and its labels are computed side by side in one task.
    """
    if not is_dask(a):
        a = np.asarray(a)
        if a.shape[:1] != (X.shape[0],):
            raise ValueError(
                f"X has {X.shape[0]} samples but {name} has "
                f"{a.shape[0] if a.ndim else 'no'} rows; pass one per sample"
            )
        return (
            _da().from_array(a, chunks=(X.chunks[0], *a.shape[1:])).persist()
        )  # as in chunked_rows()
    if a.ndim not in (1, 2) or any(math.isnan(c) for c in a.chunks[0]):
        raise ValueError(
            f"{name} must be a 1-D (or 2-D) dask array with known chunk sizes, got shape "
            f"{tuple(a.shape)}; call {name}.compute_chunk_sizes() after a filter"
        )
    if a.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but {name} has {a.shape[0]} rows")
    if a.chunks[0] != X.chunks[0]:
        raise ValueError(
            f"{name}'s row chunks {_shown(a.chunks[0])} differ from X's {_shown(X.chunks[0])}: "
            f"each task trains on a chunk of X and the {name} of the same rows, so they must "
            f"be cut alike; pass {name}.rechunk({{0: X.chunks[0]}})"
        )
    if a.ndim == 2 and len(a.chunks[1]) > 1:
        a = a.rechunk({1: -1})
    return a


def _shown(chunks: tuple) -> str:
    return (
        str(chunks) if len(chunks) <= 4 else f"({chunks[0]}, {chunks[1]}, ... {len(chunks)} chunks)"
    )


def _nonfinite(X: Any) -> Any:
    """A lazy count of X's NaN and infinite values (0 for integer X)."""
    if np.dtype(X.dtype).kind != "f":
        return 0
    return (~_da().isfinite(X)).sum()


def _refuse_nonfinite(count: int, name: str = "X", fitting: bool = True) -> None:
    if count:
        raise ValueError(
            f"{name} contains NaN or infinity ({count} value{'s' * (count != 1)}); "
            + ("" if fitting else "the model cannot evaluate them: ")
            + "remove or impute them (for example with sklearn.impute.SimpleImputer)"
            + (" before training" if fitting else "")
        )


def check_in_one_compute(
    X: Any, y: Any, sample_weight: Any, *, classes: bool, batches: int | None = None
) -> tuple[Any, int]:
    """The estimators' checks of their dask input, in one compute.

    NaN or infinity in X or the weights is refused; with ``classes``, y's
    distinct labels come back (NumPy), else y's NaN or infinity is refused and
    its count of negative values comes back.  With ``batches``, the batch size
    of unshuffled training, a batch whose weights sum to zero is refused too.
    """
    da = _da()
    if classes:
        y_part: Any = da.unique(y)
    else:
        if np.dtype(y.dtype).kind not in "biuf":
            raise ValueError(f"y must hold numbers (regression targets), got dtype {y.dtype}")
        y_part = (_nonfinite(y), (y < 0).sum())
    weights = 0 if sample_weight is None else _nonfinite(sample_weight)
    batch_checks = []  # each raises in the compute, or gives 0
    if sample_weight is not None and batches is not None:
        check = _dask().delayed(_check_chunk_weights, pure=True)
        blocks = zip(_blocks(sample_weight), _first_rows(X), strict=True)
        batch_checks = [check(block, first_row, batches) for block, first_row in blocks]
    in_X, found, in_weights, _ = _dask().compute(_nonfinite(X), y_part, weights, batch_checks)
    _refuse_nonfinite(int(in_X))
    _refuse_nonfinite(int(in_weights), "sample_weight")
    if classes:
        return found, 0
    _refuse_nonfinite(int(found[0]), "y")
    return None, int(found[1])


def _check_chunk_weights(weights: Any, first_row: int, batch_size: int) -> int:
    """Refuse an unshuffled batch of this chunk whose weights sum to zero; 0."""
    risky = _validation.batch_weight_risk(_target.to_host(weights), batch_size)
    if risky is not None:
        _validation.check_batch_weights(risky, None, batch_size, chunk=first_row)
    return 0


def column(y: np.ndarray) -> np.ndarray:
    """Regression targets as the network's target matrix: one column per output."""
    return y.reshape(-1, 1) if y.ndim == 1 else y


class Labels(NamedTuple):
    """Labels of a dask fit: the classes, and the class index of every row, lazily."""

    classes: np.ndarray
    index: Any  # int32 dask array, chunked by X's rows


def labels(X: Any, y: Any, *, fitting: bool = True) -> Labels:
    """Check X's values and y's labels in one compute; the classes and the lazy indices.

    ``fitting`` asks for what training needs (at least two classes, not a
    continuous y); otherwise ``classes`` are just the labels found in y.
    """
    if is_dask(y):
        y = align(y, X, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sample), got shape {tuple(y.shape)}")
        nonfinite, found = _dask().compute(_nonfinite(X), _da().unique(y))
        _refuse_nonfinite(int(nonfinite), fitting=fitting)
        classes = _validation.check_labels(found, found.shape[0])
        if fitting:
            classes, _ = _validation.encode_labels(classes)
        return Labels(classes, y.map_blocks(_index_of, classes, dtype=np.int32))
    y = _validation.check_labels(y, X.shape[0])
    if fitting:
        classes, index = _validation.encode_labels(y)
    else:
        classes, index = np.unique(y, return_inverse=True)
    _refuse_nonfinite(int(_dask().compute(_nonfinite(X))[0]), fitting=fitting)
    return Labels(classes, align(index.reshape(-1).astype(np.int32), X, "y"))


def _index_of(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.searchsorted(classes, np.asarray(y)).astype(np.int32)


# -- tasks on one chunk -----------------------------------------------------------------------
def _namespace(Xc: Any) -> Any:
    return array_api_compat.array_namespace(Xc)


def _aligned(a: Any) -> Any:
    """A NumPy chunk on an aligned buffer: one that dask.distributed read back from disk
    may sit at an odd address, where NumPy's and BLAS's kernels run several times slower:
    a copy costs less than one batch."""
    if isinstance(a, np.ndarray) and not a.flags.aligned:
        return a.copy()
    return a


def _moved(xp: Any, tree: Any, like: Any) -> Any:
    """Host arrays (in nested lists and tuples) as arrays of ``like``'s namespace and device."""
    device = array_api_compat.device(like)
    return _tree.map(lambda a: xp.asarray(a, device=device), tree)


def _one_hot(xp: Any, index: Any, n_classes: int, like: Any) -> Any:
    index = xp.asarray(index, device=array_api_compat.device(like))
    classes = xp.arange(n_classes, dtype=index.dtype, device=array_api_compat.device(like))
    return xp.astype(index[:, None] == classes, like.dtype)


def _chunk_sums(params: list, Xc: Any, index: Any, n_classes: int, activation: str, loss: bool):
    """One chunk's gradient sums (without the L2 term) and, with ``loss``, its summed loss."""
    Xc = _aligned(Xc)
    xp = _namespace(Xc)
    params = _moved(xp, params, Xc)
    Y = _one_hot(xp, index, n_classes, Xc)
    inputs, z = _network.forward(xp, params, Xc, activation)
    delta = _network.out_activation(xp, "softmax", z) - Y
    grads = _network.backprop(xp, params, inputs, delta, activation, 0.0)
    total = xp.sum(_network.sample_losses(xp, "softmax", z, Y)) if loss else None
    return _target.host_tree(grads), None if total is None else float(_target.to_host(total))


def _first_rows(X: Any) -> list[int]:
    """The index of each row chunk's first row in all of X."""
    return np.cumsum((0, *X.chunks[0][:-1])).tolist()


def _blocks(a: Any) -> list:
    """The row chunks of ``a`` as Delayed objects, their graphs unoptimized: optimized one
    array at a time, X's and y's would each fuse their own copy of work they share (a y
    computed from X would generate X twice)."""
    return list(a.to_delayed(optimize_graph=False).ravel())


class FullBatch:
    """The article's full-batch gradient and loss over a dask X, one compute per call.

    ``loss(params)`` computes the loss and, in the same graph, the gradient at
    ``params``, which the next ``gradients(params)`` of the same parameters
    takes without a compute: a pass after a log point costs no extra compute.
    """

    def __init__(self, X: Any, index: Any, n_classes: int, activation: str, l2: float):
        self.blocks = list(zip(_blocks(X), _blocks(index), strict=True))
        self.n, self.n_classes, self.activation, self.l2 = X.shape[0], n_classes, activation, l2
        self._kept: tuple[list, list] | None = None  # (params, their gradient)

    def _compute(self, params: list, loss: bool) -> tuple[list, float | None]:
        dask = _dask()
        shared = dask.delayed(params, traverse=False)  # one node, not one copy per task
        sums = dask.delayed(_chunk_sums, pure=True)
        parts = dask.compute(
            *(sums(shared, x, i, self.n_classes, self.activation, loss) for x, i in self.blocks)
        )
        grads, total = parts[0]
        for more, part in parts[1:]:  # in chunk order: the same sum on every scheduler
            grads = [(dW + mW, db + mb) for (dW, db), (mW, mb) in zip(grads, more, strict=True)]
            total = None if total is None else total + part
        xp = _target.target_of(np.zeros(0)).xp
        grads = [(dW + self.l2 * W, db) for (dW, db), (W, _) in zip(grads, params, strict=True)]
        if total is not None:
            total = (total + float(_network.penalty(xp, params, self.l2))) / self.n
        return grads, total

    def gradients(self, params: list) -> list:
        if self._kept is not None and self._kept[0] is params:
            return self._kept[1]
        return self._compute(params, loss=False)[0]

    def loss(self, params: list) -> float:
        grads, total = self._compute(params, loss=True)
        self._kept = (params, grads)
        return total


def full_batch_problem(
    target: _target.Target, data: Any, optimizer: Any, activation: str, l2: float
) -> _train.Problem:
    """The article's training on dask data (see :func:`xpnet._fit.prepare`) as a Problem."""
    whole = FullBatch(data.Xt, data.Y, len(data.classes), activation, l2)
    step = _steps.descent(target.xp, optimizer, lambda params, *_: (None, whole.gradients(params)))
    return _train.Problem(
        data=_train.Data(target, data.Xt, data.Y, None, data.Xt.shape[0]),
        optimizer=optimizer,
        step=_steps.Step(step),
        evaluate=whole.loss,
    )


# -- mini-batch epochs ------------------------------------------------------------------------
class Epoch(NamedTuple):
    """What every task of a mini-batch epoch needs besides its chunk (pickled once)."""

    optimizer: Any
    activation: str
    output: str
    l2: float
    batch_size: int
    encode: Callable[[np.ndarray], np.ndarray]  # y rows -> target rows (host)


def _chunk_epoch(
    carry: tuple, Xc: Any, yc: Any, swc: Any, first_row: int, seed: int | None, spec: Epoch
) -> tuple:
    """The batches of one chunk (its rows from ``first_row`` on), in a shuffled order, from
    ``carry`` on.

    ``carry`` is ``(params, opt, loss_sum)`` on the host; so is the result.
    """
    if Xc.shape[0] == 0:  # a chunk left empty by a filter
        return carry
    params, opt, loss_sum = carry
    Xc = _aligned(Xc)
    xp = _namespace(Xc)
    step = _steps.portable_step(
        xp, spec.optimizer, spec.activation, spec.output, float(spec.l2), mean_gradients=True
    )
    params = _moved(xp, params, Xc)
    opt = opt._replace(slots=_moved(xp, opt.slots, Xc))
    Y = _moved(xp, spec.encode(np.asarray(_target.to_host(yc))).astype(Xc.dtype), Xc)
    n = Xc.shape[0]
    order = np.arange(n) if seed is None else np.random.RandomState(seed).permutation(n)
    sw = None
    if swc is not None:
        sw = np.asarray(_target.to_host(swc))
        # unshuffled batches were checked before training (check_in_one_compute); shuffled ones are
        # checked here, in the task, before its chunk's first batch
        risky = None if seed is None else _validation.batch_weight_risk(sw, spec.batch_size)
        if risky is not None:
            _validation.check_batch_weights(
                risky, order, spec.batch_size, shuffled=True, chunk=first_row
            )
        sw = _moved(xp, sw, Xc)
    total = 0.0  # stays on the chunk's device until the end: no sync per batch
    for begin in range(0, n, spec.batch_size):
        idx = xp.asarray(order[begin : begin + spec.batch_size], device=array_api_compat.device(Xc))
        Xb, Yb = xp.take(Xc, idx, axis=0), xp.take(Y, idx, axis=0)
        swb = None if sw is None else xp.take(sw, idx, axis=0)
        lr = spec.optimizer.step_size(opt)
        params, slots, loss = step(params, opt.slots, Xb, Yb, swb, lr)
        opt = spec.optimizer.advance(opt, lr, slots)
        total = total + loss * Xb.shape[0]
    opt = opt._replace(slots=_target.host_tree(opt.slots))
    return _target.host_tree(params), opt, loss_sum + float(_target.to_host(total))


def _chain(carry: tuple, blocks: list, seeds: list, spec: Epoch) -> Any:
    """One epoch as one graph: a task per chunk, each taking the one before's carry."""
    dask = _dask()
    task = dask.delayed(_chunk_epoch, pure=True)
    shared = dask.delayed(spec, traverse=False)
    for (x, y, sw, first_row), seed in zip(blocks, seeds, strict=True):
        carry = task(carry, x, y, sw, first_row, seed, shared)
    return carry


def minibatch_problem(
    target: _target.Target,
    X: Any,
    y: Any,
    sample_weight: Any,
    spec: Epoch,
) -> _train.Problem:
    """The estimators' stochastic training on dask chunks as a Problem whose epoch is one
    compute: the chunks in an order drawn from the state's shuffle generator, each chunk's
    rows in an order drawn from a seed drawn there too."""
    Xb, yb = _blocks(X), _blocks(y)
    swb = [None] * len(Xb) if sample_weight is None else _blocks(sample_weight)
    blocks = list(zip(Xb, yb, swb, _first_rows(X), strict=True))
    n = X.shape[0]

    def epoch(state: _train.TrainState) -> tuple[_train.TrainState, float]:
        shuffle, order, seeds = None, np.arange(len(blocks)), [None] * len(blocks)
        if state.shuffle is not None:  # else chunks and rows in order (shuffle=False)
            rng = np.random.RandomState()
            rng.set_state(state.shuffle.generator)
            order = rng.permutation(len(blocks))
            seeds = [int(s) for s in rng.randint(0, 2**31 - 1, len(blocks))]
            shuffle = _train.Shuffle(rng.get_state(), order)
        opt = state.opt._replace(slots=_target.host_tree(state.opt.slots))
        carry = (_target.host_tree(state.params), opt, 0.0)
        params, opt, loss_sum = _dask().compute(
            _chain(carry, [blocks[i] for i in order], seeds, spec)
        )[0]
        state = state._replace(
            params=params, opt=opt, epoch=state.epoch + 1, samples=state.samples + n,
            shuffle=shuffle,
        )  # fmt: skip
        return state, loss_sum / n

    return _train.Problem(
        data=_train.Data(target, X, y, sample_weight, spec.batch_size),
        optimizer=spec.optimizer,
        step=None,
        epoch=epoch,
    )


# -- predictions ------------------------------------------------------------------------------
def map_rows(predict: Callable, X: Any, width: int | None, dtype: Any) -> Any:
    """``predict`` applied to each row chunk of X, lazily: a dask array with X's row chunks,
    1-D when ``width`` is None, else ``width`` columns wide."""
    args = (predict, width, np.dtype(dtype))
    if width is None:
        return X.map_blocks(_call, *args, dtype=dtype, drop_axis=1, chunks=(X.chunks[0],))
    return X.map_blocks(_call, *args, dtype=dtype, chunks=(X.chunks[0], (width,)))


def _call(Xc: Any, predict: Callable, width: int | None, dtype: Any, block_info=None) -> Any:
    """``predict(Xc)``, after the finite check with the rows numbered as in all of X; an empty
    chunk (left by a filter) gives an empty result."""
    shape = (0,) if width is None else (0, width)
    if Xc.shape[0] == 0:
        if array_api_compat.is_numpy_array(Xc) or dtype.kind not in "biuf":
            return np.empty(shape, dtype)
        return _namespace(Xc).empty(shape, dtype=dtype, device=array_api_compat.device(Xc))
    Xc = _aligned(Xc)
    xp = _namespace(Xc)
    if xp.isdtype(Xc.dtype, "real floating"):
        finite = xp.isfinite(Xc)
        if not bool(_target.to_host(xp.all(finite))):
            first = block_info[0]["array-location"][0][0] if block_info else 0
            finite = np.asarray(_target.to_host(finite))
            raise ValueError(_validation._non_finite("X", finite, "predict", first))
    return predict(Xc)


def float_dtype(X: Any, fallback: Any) -> np.dtype:
    """The dtype of float results for X: X's own when floating, else ``fallback``'s."""
    kind = np.dtype(X.dtype).kind
    return np.dtype(X.dtype) if kind == "f" else np.dtype(_target.dtype_name(fallback))


def computed(*arrays: Any) -> tuple:
    """Dask arrays among ``arrays`` computed in one go (the others as they are)."""
    lazy = [i for i, a in enumerate(arrays) if is_dask(a)]
    if not lazy:  # nothing to compute, and dask may not even be installed
        return arrays
    done = list(arrays)
    for i, value in zip(lazy, _dask().compute(*(arrays[i] for i in lazy)), strict=True):
        done[i] = value
    return tuple(done)


# -- the source ---------------------------------------------------------------------------------
class Chunks:
    """Rows in the chunks of a dask array: a source of rows (see :mod:`xpnet._rows`).

    The parameters live on a NumPy target on the client; a pass or an epoch is
    one graph over the chunks, and predictions are lazy, chunk by chunk.
    """

    chunked = True

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is already held in chunks (a dask array)."""
        return is_dask(x)

    def target(self) -> _target.Target:
        """Where the parameters live: NumPy, on the client."""
        return _target.resolve("numpy", None, None, False)

    def refuse(
        self,
        *,
        device: Any = None,
        solver: str | None = None,
        early_stopping: bool = False,
        checkpoint: bool = False,
        fit_many: bool = False,
    ) -> None:
        """Raise ValueError for an option training on chunks cannot take."""
        if fit_many:
            raise ValueError(
                "fit_many does not train on dask arrays: it stacks models over data held in "
                "one place; call xpnet.fit per setting on the dask array, or pass a NumPy array"
            )
        if solver is not None and solver not in ("sgd", "adam"):
            raise ValueError(
                f"solver={solver!r} does not train on dask arrays: it needs the whole "
                "data for each of its many full-batch steps; use solver='adam' or 'sgd', "
                "which train on mini-batches within each chunk"
            )
        if early_stopping:
            raise ValueError(
                "early_stopping does not work with dask input yet; hold out a dask array and "
                "call score"
            )
        if checkpoint:
            raise ValueError(
                "checkpoint= does not work with dask input yet (a checkpoint names its data by "
                "a hash of all of it); train without it, or on a NumPy array"
            )
        if device is not None and str(device) != "cpu":
            raise ValueError(
                f"backend='dask' takes no device (got {device!r}): the tasks run where the "
                "chunks are (CuPy chunks on a GPU), and the parameters stay on the client's CPU"
            )

    def prepare(
        self, X: Any, y: Any, backend: Any, device: Any, dtype: Any, fallback: bool,
        hidden: tuple[int, ...] | None = None,
    ) -> _rows.Prepared:  # fmt: skip
        """``(X, y)`` checked in one compute; ``Xt`` is X in ``dtype``, row-chunked, and
        ``Y`` the lazy class index of each row, chunked alike."""
        self.refuse(device=device)
        target = self.target()
        X = check_X(X if is_dask(X) else chunked_rows(_validation.check_X(X)))
        found = labels(X, y)
        dtype = _target.resolve_dtype(target, np.zeros(0, X.dtype), dtype)
        Xt = X.astype(_target.dtype_name(dtype))
        return _rows.Prepared(target, dtype, X, Xt, found.index, found.classes, self)

    def full_batch_problem(
        self, data: _rows.Prepared, optimizer: Any, activation: str, l2: float
    ) -> _train.Problem:
        return full_batch_problem(data.target, data, optimizer, activation, l2)

    def lazily(
        self, predict: Callable, X: Any, *, n_features: int, width: int | None, dtype: Any,
        like: Any = None,
    ) -> Any:  # fmt: skip
        """``predict`` of each row chunk of X, lazily: a dask array with X's row chunks, 1-D
        when ``width`` is None.  ``dtype=float`` is X's float dtype, or ``like``'s when X is
        not floating."""
        X = check_X(X, n_features=n_features, when="predict")
        if dtype is float:
            dtype = float_dtype(X, like)
        return map_rows(predict, X, width, dtype)

    def computed(self, *arrays: Any) -> tuple:
        return computed(*arrays)

    def predictions_and_labels(self, predict: Callable, X: Any, y: Any) -> tuple:
        """``predict(X)`` and ``y``, computed together: one compute; their lengths are
        checked before it."""
        n_rows, n_labels = np.shape(X)[0], np.shape(y)[0] if np.ndim(y) else 0
        if n_rows != n_labels and not np.isnan([n_rows, n_labels]).any():
            raise ValueError(f"X has {n_rows} samples but y has {n_labels} labels; they must match")
        return computed(predict(X), y)

    def loss(self, model: Any, X: Any, y: Any) -> float:
        """The article's mean loss of ``model`` over a dask X: one compute of the chunks'
        sums."""
        X = check_X(X, n_features=model.n_features_in_, when="predict")
        found = labels(X, y, fitting=False)
        _validation.check_known_kind(found.classes, model.classes_)
        _validation.check_known_labels(found.classes, model.classes_)
        # the indices into y's own classes, mapped to the model's
        index = found.index.map_blocks(_reindex, np.searchsorted(model.classes_, found.classes))
        Xt = X.astype(_target.dtype_name(model.dtype))
        whole = FullBatch(Xt, index, len(model.classes_), model.activation, model.l2)
        return whole.loss(_target.host_tree(model.params))

    # -- the estimators' input ----------------------------------------------------------
    def from_memory(self, X: Any) -> Any:
        return chunked_rows(X)

    def check_X(self, X: Any, **how: Any) -> Any:
        return check_X(X, **how)

    def weights(self, sample_weight: Any, X: Any) -> Any:
        return None if sample_weight is None else weights(sample_weight, X)

    def align(self, a: Any, X: Any, name: str) -> Any:
        return align(a, X, name)

    def check_targets(self, X: Any, y: Any, sw: Any, *, classes: bool, batches: Any) -> tuple:
        return check_in_one_compute(X, y, sw, classes=classes, batches=batches)

    def minibatch_problem(
        self, target: Any, X: Any, y: Any, sw: Any, optimizer: Any, activation: str,
        output: str, l2: float, batch_size: int, encode: Callable,
    ) -> _train.Problem:  # fmt: skip
        spec = Epoch(optimizer, activation, output, l2, batch_size, encode)
        return minibatch_problem(target, X, y, sw, spec)


def _reindex(index: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    return mapping[index].astype(np.int32)


#: The source of rows in dask chunks.
CHUNKS = Chunks()
