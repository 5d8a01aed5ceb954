"""``xpnet.fit_many``: many models trained in one program.

Models that share their depth, activation, epochs and log_every train
together as one stack: the article's full-batch gradient descent runs once
per pass for all of them, through the same loop and the same math as
:func:`xpnet.fit`, on a training state whose arrays carry the models, laid out
``stacked``, ``padded`` or ``side_by_side`` (:mod:`xpnet._layouts`).

Each group takes the layout with the lowest estimated cost, and trains in
chunks of models when its activations would pass the memory budget.  On the
CPU, where NumPy and torch have a fast step far cheaper per pass than the
portable stacked one (:mod:`xpnet._steps`), models train ``one_by_one``
instead, each exactly as :func:`xpnet.fit` would, unless many of equal widths
stack.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from . import _fit, _init, _layouts, _progress, _sources, _steps, _target, _train, _validation
from ._fit import Prepared, check_settings, prepare
from ._grid import ModelGrid, Results
from ._model import Model
from ._optim import SGD

LAYOUTS = ("stacked", "padded", "side_by_side", "one_by_one")

# The layout cost model: one hidden unit of one sample costs a few elementwise
# operations (the activation, its slope, the update), each far dearer than a
# multiply-add of a matrix product (benchmarks/bench_grid.py measures the choice).
_UNIT_COST = 200.0
# Arrays of the activations' size alive at once in a pass, for the memory estimate.
_LIVE = 6
# A GPU that does not say how much memory it has free.
_UNKNOWN_DEVICE_BUDGET = 2 * 1024**3
# In host memory, stacks stay about cache-sized: activations of some 32k float64
# entries (benchmarks/bench_grid.py: larger stacks of wide models lose to the cache).
_CPU_STACK_BYTES = _LIVE * 32768 * 8
# On the CPU with a fast step, models train one by one, except groups of more than this
# many of equal widths, which stack: where one by one stops paying (benchmarks/bench_grid.py
# times both).
_ONE_BY_ONE = 64


def fit_many(
    X: Any,
    y: Any,
    *,
    hidden: Any = 3,
    seed: Any = 0,
    lr: Any = 0.01,
    l2: Any = 0.01,
    activation: Any = "tanh",
    epochs: Any = 20000,
    log_every: Any = 1000,
    backend: str | None = None,
    device: Any = None,
    dtype: Any = None,
    fallback: bool = True,
    validation: tuple[Any, Any] | None = None,
    zip: bool = False,
    memory_budget: int | None = None,
    verbose: bool = False,
) -> ModelGrid:
    """Train many classifiers of :func:`xpnet.fit` together: a sweep, a grid or an ensemble.

    Each setting takes one value or a sweep axis.  A list, a range or a 1-D
    array is an axis; anything else is one value (a tuple is one value too:
    for ``hidden``, the layer sizes of one model).  The axes combine as a
    Cartesian product, the first axis varying slowest, or pair up element by
    element with ``zip=True``.  Every model equals the one :func:`xpnet.fit`
    trains alone with the same settings, to rounding: as closely as two
    backends agree (the article's sweep: float64 loss curves within 1e-9 over
    300 passes).  Where a step is too large for its loss, rounding differences
    grow with the passes, between any two correct implementations.

    Models with the same depth, activation, epochs and log_every train as one
    stack, one pass for all of them; the rest train in separate stacks.

    Parameters
    ----------
    X, y : arrays
        As in :func:`xpnet.fit`; shared by every model.  Not modified.
    hidden, seed, lr, l2, activation, epochs, log_every : value or axis
        As in :func:`xpnet.fit`.  ``seed=range(10)`` is a seed ensemble.
    backend, device, dtype, fallback
        As in :func:`xpnet.fit`; every model trains on the same device.
    validation : (X_val, y_val), optional
        Held-out data: ``grid.results`` then reports each model's accuracy on it.
    zip : bool, default False
        Pair the axes up instead of crossing them; they must have equal lengths.
    memory_budget : int, optional
        Bytes one stack of models may take while it trains (activations,
        errors, weights and their updates); a stack that needs more trains in
        chunks of models.  Default: half the free memory of a GPU (2 GiB when
        it does not say); on the CPU with NumPy or torch, each model on its
        own through their native steps (but more than 64 of equal widths, in
        stacks), else stacks small enough to stay in the cache (about
        1.5 MiB), which train fastest there.
    verbose : bool, default False
        One progress bar (tqdm, on stderr) over all passes of all models.

    Returns
    -------
    ModelGrid
        The models in the order of the settings, and ``results``.

    Raises
    ------
    ValueError
        Before any training, for bad data or settings, by the rules of
        :func:`xpnet.fit`, for each model's settings (the message names the
        model), and for ``validation`` that is not a pair of data like ``X``
        and labels of the kind of ``y`` (labels that ``y`` lacks count as
        wrong predictions).
    BackendUnavailableError
        When the backend cannot be used and ``fallback=False``.
    MemoryError
        When the models do not fit in memory (on a device:
        :class:`~xpnet.DeviceMemoryError`).

    Notes
    -----
    A model whose loss stops being finite does not stop the others: its row of
    ``grid.results`` says by which recorded pass it diverged, and ensemble
    predictions leave it out.

    Examples
    --------
    >>> import xpnet
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, noise=0.20, random_state=0)
    >>> grid = xpnet.fit_many(X, y, hidden=[1, 2, 3], epochs=2000)
    >>> [round(row["train_accuracy"], 3) for row in grid.results]
    [0.865, 0.84, 0.975]
    """
    settings = _combine(
        dict(
            hidden=hidden, seed=seed, lr=lr, l2=l2, activation=activation, epochs=epochs,
            log_every=log_every,
        ),
        zip,
    )  # fmt: skip
    if memory_budget is not None:
        memory_budget = _validation.check_int("memory_budget", memory_budget, 1)
    _sources.source_of(X, backend=backend).refuse(fit_many=True)
    # backend="auto" weighs the widest model's pass: the grid trains on one device
    widest = max((s["hidden"] for s in settings), key=sum)
    data = prepare(X, y, backend, device, dtype, fallback, widest)
    if validation is not None:
        validation = _check_validation(validation, data.X.shape[1], data.classes)
    return train_grid(data, settings, validation, memory_budget, verbose)


# -- settings ------------------------------------------------------------------------------
def _axis(name: str, value: Any) -> list | None:
    """The values of a sweep axis, or None when ``value`` is one value."""
    if isinstance(value, (list, range)):
        values = list(value)
    elif _target.adapter_of(value) is not None and getattr(value, "ndim", 0) == 1:
        values = _target.to_host(value).tolist()
    else:
        return None
    if not values:
        raise ValueError(f"{name} is an empty sweep axis; give it at least one value")
    if name == "hidden":  # tuples inside an axis are one model's layers; ints are one layer
        return [v if isinstance(v, tuple) else _as_python(v) for v in values]
    return [_as_python(v) for v in values]


def _as_python(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _combine(values: dict, pair_up: bool) -> list[dict]:
    """One validated settings dict per model, from values and axes."""
    axes = {name: _axis(name, v) for name, v in values.items()}
    swept = {name: a for name, a in axes.items() if a is not None}
    if pair_up and len({len(a) for a in swept.values()}) > 1:
        lengths = ", ".join(f"{name}: {len(a)}" for name, a in swept.items())
        raise ValueError(
            f"zip=True pairs the axes up, so they need equal lengths; got {lengths}. "
            "Make them equal, or use zip=False for every combination"
        )
    if pair_up:
        rows = list(zip(*swept.values(), strict=True)) if swept else [()]
    else:
        rows = list(itertools.product(*swept.values()))
    combos = []
    for row in rows:
        one = {name: v for name, v in values.items() if name not in swept}
        one.update(dict(zip(swept, row, strict=True)))
        try:
            combos.append(check_settings(**one))
        except ValueError as exc:
            where = ", ".join(f"{k}={one[k]!r}" for k in swept)
            raise ValueError(f"{exc} (in the model with {where})" if where else str(exc)) from None
    return combos


def _check_validation(
    validation: Any, n_features: int, classes: np.ndarray
) -> tuple[Any, np.ndarray]:
    """``(X_val, y_val)`` checked as data to score on; unseen labels count as wrong."""
    try:
        X_val, y_val = validation
    except (TypeError, ValueError):
        raise ValueError("validation must be a pair (X_val, y_val)") from None
    X_val = _validation.check_X(X_val, n_features=n_features, when="predict", name="X_val")
    y_val = _validation.check_labels(y_val, X_val.shape[0], name="y_val")
    _validation.check_known_kind(y_val, classes, name="y_val")
    return X_val, y_val


# -- planning --------------------------------------------------------------------------------
class _Plan(NamedTuple):
    """One stack of models trained together: their indices and layout."""

    members: tuple[int, ...]
    layout: str


def _sizes(data: Prepared, settings: dict) -> tuple[int, ...]:
    return (data.X.shape[1], *settings["hidden"], len(data.classes))


class _Footprint:
    """The work and memory of a stack of models of one depth, as models join it.

    ``widths``: per layer, the sum of the models' widths (side by side, one wide
    network, the output layer giving each model its own outputs) and their
    maximum (stacked or padded, K networks of the widest shapes).
    """

    def __init__(self, n: int, itemsize: int) -> None:
        self.n, self.itemsize = n, itemsize
        self.K, self.total, self.widest = 0, None, None

    def add(self, sizes: tuple[int, ...]) -> _Footprint:
        grown = _Footprint(self.n, self.itemsize)
        grown.K = self.K + 1
        grown.total = (
            list(sizes) if self.total is None else [a + b for a, b in zip(self.total, sizes)]
        )
        grown.widest = (
            list(sizes) if self.widest is None else [max(a, b) for a, b in zip(self.widest, sizes)]
        )
        grown.total[0] = grown.widest[0] = sizes[0]  # the input is shared
        return grown

    def _shape(self, layout: str) -> tuple[int, int]:
        """Hidden and output units for one sample, and the weights, of the stack."""
        if layout == "side_by_side":
            units = sum(self.total[1:])
            weights = sum(a * b for a, b in itertools.pairwise(self.total))
        else:
            units = self.K * sum(self.widest[1:])
            weights = self.K * sum(a * b for a, b in itertools.pairwise(self.widest))
        return units, weights

    def cost(self, layout: str) -> float:
        """Estimated work of one pass: units times their elementwise cost, plus the products."""
        units, weights = self._shape(layout)
        return self.n * (_UNIT_COST * units + 3 * weights)

    def bytes(self, layout: str) -> int:
        """Estimated bytes of one pass: activations and errors; weights, gradients, updates,
        and side by side the mask of the blocks."""
        units, weights = self._shape(layout)
        mask = weights if layout == "side_by_side" else 0
        return (_LIVE * self.n * units + 3 * weights) * self.itemsize + mask


def plan(
    data: Prepared, settings: list[dict], budget: int | None, layout: str | None = None
) -> list[_Plan]:
    """Group the models into stacks, chunk them, and choose each stack's layout.

    A group (same depth, activation, epochs and log_every) is sorted by width
    and cut into chunks that fit ``budget`` bytes in some layout.  Without a
    budget, a GPU gets half its free memory; the CPU gets cache-sized stacks,
    since there a stack of wide models spilling out of the cache is slower
    than the same models one by one; and where the CPU has a native step, the
    models train one by one (each its own plan) unless many of equal widths
    stack.
    """
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(settings):
        key = (len(s["hidden"]), s["activation"], s["epochs"], s["log_every"])
        groups.setdefault(key, []).append(i)
    explicit = budget is not None
    if budget is None:
        free = data.target.free_memory()
        if free is not None:
            budget = free // 2
        else:
            budget = _CPU_STACK_BYTES if data.target.on_host() else _UNKNOWN_DEVICE_BUDGET
    empty = _Footprint(data.X.shape[0], np.dtype(_target.dtype_name(data.dtype)).itemsize)
    plans = []
    for members in groups.values():
        members = sorted(members, key=lambda i: settings[i]["hidden"])
        alone = layout == "one_by_one"
        if layout is None and not explicit:  # a budget given is the size of the stacks
            alone = _natively(data, settings, members)
        if alone:
            plans.extend(_Plan((i,), "one_by_one") for i in members)
            continue
        chunks, chunk, footprint = [], [], empty
        for i in members:
            grown = footprint.add(_sizes(data, settings[i]))
            if chunk and min(grown.bytes(name) for name in _candidates(layout, grown)) > budget:
                chunks.append((chunk, footprint))
                chunk, grown = [], empty.add(_sizes(data, settings[i]))
            chunk.append(i)
            footprint = grown
        chunks.append((chunk, footprint))
        for chunk, footprint in chunks:
            fits = [
                name for name in _candidates(layout, footprint) if footprint.bytes(name) <= budget
            ]
            chosen = min(fits or _candidates(layout, footprint), key=footprint.cost)
            plans.append(_Plan(tuple(chunk), chosen))
    return plans


def _natively(data: Prepared, settings: list[dict], members: list[int]) -> bool:
    """Whether models on the CPU are better trained one by one, by a native step."""
    if not data.target.on_host():
        return False
    if len(members) > _ONE_BY_ONE and len({settings[i]["hidden"] for i in members}) == 1:
        return False
    s = settings[members[0]]
    step = _steps.step_for(data.target, SGD(s["lr"]), s["activation"], "softmax", 0.0, False)
    return step.fast


def _candidates(forced: str | None, footprint: _Footprint) -> tuple[str, ...]:
    """The layouts a stack may take: equal widths stack as they are."""
    if forced is not None:
        return (forced,)
    if footprint.total[1:-1] == [footprint.K * w for w in footprint.widest[1:-1]]:
        return ("stacked",)
    return ("padded", "side_by_side")


# -- training ----------------------------------------------------------------------------------
def train_grid(
    data: Prepared,
    settings: list[dict],
    validation: tuple[Any, np.ndarray] | None,
    budget: int | None,
    verbose: bool,
    layout: str | None = None,
) -> ModelGrid:
    """Train every model of ``settings`` on ``data``; ``layout`` forces one (benchmarks)."""
    plans = plan(data, settings, budget, layout)
    models: list[Model | None] = [None] * len(settings)
    diverged_at: list[int | None] = [None] * len(settings)
    total = sum(settings[p.members[0]]["epochs"] for p in plans)
    bar = _progress.progress_bar(total) if verbose else None
    try:
        observe = _progress.progress_observer(total, None, bar) if bar is not None else None
        for p in plans:
            group = [settings[i] for i in p.members]
            if p.layout == "one_by_one":
                trained, diverged = zip(*(_train_alone(data, one, observe) for one in group))
            else:
                trained, diverged = _train_stack(data, group, p.layout, observe)
            for i, model, at in zip(p.members, trained, diverged, strict=True):
                models[i], diverged_at[i] = model, at
    finally:
        if bar is not None:
            bar.close()
    rows = [
        _row(data, m, s, at, validation)
        for m, s, at in zip(models, settings, diverged_at, strict=True)
    ]
    return ModelGrid(
        models, Results(rows), tuple(p.members for p in plans), tuple(p.layout for p in plans)
    )


def _train_alone(data: Prepared, s: dict, observe: Any) -> tuple[Model, int | None]:
    """One model, trained as :func:`xpnet.fit` trains it; stopped where it diverges."""
    with data.target.quiet():  # a diverging model is reported in its row, not by NumPy
        state = _fit.train(data, s, observe, divergence="stop")
    diverged = state.history[-1][0] if state.stopped == "diverged" else None
    if diverged is not None and observe is not None:  # the progress bar counts its passes
        for _ in range(s["epochs"] - state.epoch):
            observe("epoch", state, None)
    return _fit.trained_model(data, s, state), diverged


def _train_stack(
    data: Prepared, settings: list[dict], layout: str, observe: Any
) -> tuple[list[Model], list[int | None]]:
    target, dtype = data.target, data.dtype
    first = settings[0]
    activation = first["activation"]
    stack = _layouts.BY_NAME[layout]([_sizes(data, s) for s in settings], target, dtype)
    params = stack.pack([_init.init_normal(_sizes(data, s), s["seed"]) for s in settings])
    l2 = stack.per_model([s["l2"] for s in settings])
    optimizer = SGD(stack.per_model([s["lr"] for s in settings]))
    xp = target.xp

    step = _steps.descent(
        xp,
        optimizer,
        lambda params, X, Y, sw: (None, stack.gradients(params, X, Y, activation, l2)),
    )
    losses = target.jit(lambda params, X, Y: stack.mean_losses(params, X, Y, activation, l2))
    problem = _train.Problem(
        data=_train.Data(target, data.Xt, data.Y, None, data.Xt.shape[0]),
        optimizer=optimizer,
        step=_steps.declare(target, step),
        evaluate=lambda params: _target.to_host(losses(params, data.Xt, data.Y)).astype(float),
    )
    rules = _train.Rules(epochs=first["epochs"], log_every=first["log_every"], divergence="mark")
    state = _train.start(params, optimizer, xp, n_models=len(settings))
    with target.quiet():  # a diverging model is reported in its row, not by NumPy
        state = _train.run(state, problem, rules, observe)

    with target.activate():
        unpacked = stack.unpack(state.params)
    models, diverged = [], []
    for k, (pairs, s) in enumerate(zip(unpacked, settings, strict=True)):
        at = int(state.diverged[k])
        curve = [(i, float(loss[k])) for i, loss in state.history if at < 0 or i <= at]
        models.append(
            Model(
                target=target, params=pairs, dtype=dtype, hidden=s["hidden"], activation=activation,
                l2=s["l2"], classes=data.classes, n_features_in=data.X.shape[1], loss_curve=curve,
                settings=s,
            )
        )  # fmt: skip
        diverged.append(None if at < 0 else at)
    return models, diverged


def _row(data: Prepared, model: Model, settings: dict, diverged_at: int | None, validation) -> dict:
    """The results row of one trained model."""
    ok = diverged_at is None
    row = dict(settings)
    row["final_loss"] = model.loss_curve[-1][1]
    row["train_accuracy"] = _accuracy(model, data.X, data.Y) if ok else math.nan
    if validation is not None:
        row["validation_accuracy"] = model.score(*validation) if ok else math.nan
    # divergence is seen where the loss is recorded: by that pass, maybe before
    row["status"] = "ok" if ok else f"diverged by pass {diverged_at}"
    return row


def _accuracy(model: Model, X: Any, Y: Any) -> float:
    """Training accuracy against the one-hot labels already on the device."""
    index = _target.to_host(model.class_index(model.outputs(X)))
    with model.target.activate():
        labels = model.target.xp.argmax(Y, axis=-1)
    return float(np.mean(index == _target.to_host(labels)))
