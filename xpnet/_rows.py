"""Sources of rows: where the data of a fit or a prediction is, and what that asks of it.

Every entry point asks the source of its data (picked in one place,
:func:`xpnet._sources.source_of`) rather than the kind of array: to check and
place the rows of a fit (:meth:`InMemory.prepare`), to build the article's
full-batch problem over them, to predict lazily, to compute what is lazy, and
to refuse what it cannot do.  Rows held in one array (NumPy, CuPy, torch, JAX,
array_api_strict) are :data:`IN_MEMORY`; rows in chunks elsewhere are another
source with the same methods (:mod:`xpnet._dask`), whose parameters stay on a
NumPy target on the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _steps, _target, _train, _validation
from ._optim import Optimizer


class Prepared(NamedTuple):
    """Validated training data, on the device where training runs, and its source."""

    target: _target.Target
    dtype: Any
    X: Any  # the caller's X, validated
    Xt: Any  # X on the target, in dtype (or as the source holds it)
    Y: Any  # one-hot labels on the target, in dtype (or the source's class index)
    classes: np.ndarray
    source: Any


def one_hot(target: _target.Target, index: np.ndarray, n_classes: int, dtype: Any) -> Any:
    """One-hot rows on the target's device, built by comparison, not assignment."""
    xp = target.xp
    idx = target.asarray(index.astype(np.int32))
    classes = xp.arange(n_classes, dtype=idx.dtype, device=target.device)
    return xp.astype(idx[:, None] == classes[None, :], dtype)


class InMemory:
    """Rows held in one array of any backend: checked, moved to the training device, and
    trained on in batches of :class:`xpnet._train.Data`."""

    #: Whether the rows come in chunks that are computed when asked (lazily).
    chunked = False

    def refuse(self, **options: Any) -> None:
        """Raise ValueError for an option this source cannot train with (none here)."""

    def prepare(
        self, X: Any, y: Any, backend: Any, device: Any, dtype: Any, fallback: bool,
        hidden: tuple[int, ...] | None = None,
    ) -> Prepared:  # fmt: skip
        """Check ``(X, y)`` as :func:`xpnet.fit` takes them, choose where to train (for
        ``backend="auto"``, weighing a pass through ``hidden``), and put the data there."""
        X = _validation.check_X(X)
        labels = _validation.check_labels(y, X.shape[0])
        classes, index = _validation.encode_labels(labels)
        work = None
        if hidden is not None:
            work = _target.Work(X.shape[0], (X.shape[1], *hidden, len(classes)))
        target = _target.resolve(backend, device, X, fallback, work)
        dtype = _target.resolve_dtype(target, X, dtype)
        with target.activate():  # out of device memory here is a DeviceMemoryError too
            Xt = target.asarray(X, dtype)
            Y = one_hot(target, index, len(classes), dtype)
        return Prepared(target, dtype, X, Xt, Y, classes, self)

    def full_batch_problem(
        self, data: Prepared, optimizer: Optimizer, activation: str, l2: float
    ) -> _train.Problem:
        """The article's training over all of ``data``'s rows at each pass."""
        target = data.target
        loss = _steps.loss_for(target, activation, "softmax", l2)
        return _train.Problem(
            data=_train.Data(target, data.Xt, data.Y, None, data.Xt.shape[0]),
            optimizer=optimizer,
            step=_steps.step_for(target, optimizer, activation, "softmax", l2, False),
            evaluate=lambda params: float(_target.to_host(loss(params, data.Xt, data.Y))),
        )

    def lazily(self, predict: Callable, X: Any, **how: Any) -> None:
        """``predict`` over lazy rows as a lazy result; None here, where rows are at hand."""
        return None

    def computed(self, *arrays: Any) -> tuple:
        """The lazy arrays among ``arrays`` computed (none here)."""
        return arrays


IN_MEMORY = InMemory()
