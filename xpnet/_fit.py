"""``xpnet.fit``: the article's workflow on any backend."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _backends, _train, _validation
from ._model import Model, one_hot
from ._network import objective
from ._optim import SGD
from ._train import Callback


class Prepared(NamedTuple):
    """Validated training data, on the device where training runs."""

    target: _backends.Target
    dtype: Any
    X: Any  # the caller's X, validated
    Xt: Any  # X on the target, in dtype
    Y: Any  # one-hot labels on the target, in dtype
    classes: np.ndarray


def check_settings(
    *,
    hidden: Any,
    activation: Any,
    epochs: Any,
    lr: Any,
    l2: Any,
    seed: Any,
    log_every: Any,
) -> dict:
    """The training settings of one model, validated: a dict of :func:`fit` arguments."""
    return dict(
        hidden=_validation.check_hidden(hidden),
        activation=_validation.check_activation(activation),
        epochs=_validation.check_int("epochs", epochs, 1),
        lr=_validation.check_float("lr", lr, positive=True),
        l2=_validation.check_float("l2", l2, positive=False),
        seed=None if seed is None else _validation.check_int("seed", seed, 0),
        log_every=_validation.check_int("log_every", log_every, 1),
    )


def prepare(X: Any, y: Any, backend: Any, device: Any, dtype: Any, fallback: bool) -> Prepared:
    """Check ``(X, y)``, choose where to train, and put the data there."""
    X = _validation.check_X(X)
    labels = _validation.check_labels(y, X.shape[0])
    classes, index = _validation.encode_labels(labels)
    target = _backends.resolve(backend, device, X, fallback)
    dtype = _validation.resolve_dtype(target, X, dtype)
    Xt = target.asarray(X, dtype)
    return Prepared(target, dtype, X, Xt, one_hot(target, index, len(classes), dtype), classes)


def mean_loss(target: _backends.Target, activation: str, l2: float) -> Any:
    """``loss(params, X, Y)``: the article's mean loss, compiled where the backend can.

    Compiled functions are kept per backend, device and network, as the steps
    are (:func:`xpnet._train.step_for`).
    """
    key = ("mean loss", target.name, str(target.device), activation, float(l2))
    if key not in _train.COMPILED:
        xp = target.xp

        def loss(params, X, Y):
            terms = dict(activation=activation, output="softmax", l2=l2)
            return objective(xp, params, X, Y, **terms) / X.shape[0]

        _train.remember(key, target.jit(loss))
    return _train.COMPILED[key]


def fit(
    X: Any,
    y: Any,
    *,
    hidden: int | tuple[int, ...] = 3,
    activation: str = "tanh",
    epochs: int = 20000,
    lr: float = 0.01,
    l2: float = 0.01,
    seed: int | None = 0,
    backend: str | None = None,
    device: Any = None,
    dtype: Any = None,
    fallback: bool = True,
    log_every: int = 1000,
    verbose: bool = False,
    callback: Callback | None = None,
) -> Model:
    """Train a multi-layer perceptron classifier by full-batch gradient descent.

    The article's model and training: hidden layers with ``activation``, a
    softmax output with cross-entropy, and ``epochs`` passes of
    ``W <- W - lr * (sum_i dloss_i/dW + l2 * W)`` over all samples.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Training data, from any supported backend, or a list.  Not modified.
    y : array of shape (n_samples,)
        Class labels: ints, strings, anything NumPy can sort.  At least two classes.
    hidden : int or tuple of int, default 3
        The size of each hidden layer.
    activation : {"tanh", "logistic", "relu", "identity"}, default "tanh"
        The hidden layers' activation ("logistic" is the article's sigmoid).
    epochs : int, default 20000
        Number of full-batch passes.
    lr : float, default 0.01
        The step size (the article's epsilon).
    l2 : float, default 0.01
        L2 strength on the weights, not the biases (the article's reg_lambda).
    seed : int or None, default 0
        Seed of ``numpy.random.RandomState`` for the initial weights, drawn on
        the host so that every backend starts from the same weights.
    backend : {None, "auto", "numpy", "cupy", "torch", "jax", "array_api_strict"}
        None trains where ``X`` lives; "auto" picks CuPy when a CUDA device is
        usable and NumPy otherwise.
    device : object, optional
        A device of the backend ("cuda:1", "cpu", a torch.device, ...).
    dtype : {None, "float32", "float64"}
        None keeps X's floating dtype; integer X becomes float64 where the
        backend has it.
    fallback : bool, default True
        When the backend is missing or has no usable device: True trains on
        NumPy with a :class:`~xpnet.BackendFallbackWarning`, False raises
        :class:`~xpnet.BackendUnavailableError`.
    log_every : int, default 1000
        Record the loss after pass 0, every ``log_every`` passes and the last.
    verbose : bool, default False
        Show a progress bar (tqdm, on stderr) with the loss of the last
        recorded pass.  False writes nothing to stdout or stderr; warnings
        still go through :mod:`warnings`.
    callback : callable, optional
        Called as ``callback(pass, loss)`` with an int and a float at exactly
        the passes recorded in ``model.loss_curve``, the last one included.

    Returns
    -------
    Model
        The trained model, its parameters on the training device.

    Raises
    ------
    ValueError
        For bad data or settings, before any training.
    BackendUnavailableError
        When the backend cannot be used and ``fallback=False``.
    FloatingPointError
        When the loss stops being finite (the step is too large).

    See Also
    --------
    fit_many : many such models, trained together.

    Examples
    --------
    >>> import xpnet
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, noise=0.20, random_state=0)
    >>> model = xpnet.fit(X, y, hidden=3, epochs=2000)
    >>> round(model.score(X, y), 3)
    0.975
    """
    settings = check_settings(
        hidden=hidden, activation=activation, epochs=epochs, lr=lr, l2=l2, seed=seed,
        log_every=log_every,
    )  # fmt: skip
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(pass, loss), got {callback!r}")
    data = prepare(X, y, backend, device, dtype, fallback)
    bar = _train.progress_bar(settings["epochs"]) if verbose else None
    try:
        observe = None  # nothing to tell: no per-pass calls
        if callback is not None or bar is not None:
            observe = _train.progress_observer(settings["epochs"], callback, bar)
        state = train(data, settings, observe, divergence="raise")
    finally:
        if bar is not None:
            bar.close()
    return trained_model(data, settings, state)


def train(
    data: Prepared, settings: dict, observe: _train.Observer | None, divergence: str
) -> _train.TrainState:
    """The article's training of one model on prepared data, from its seed's weights.

    ``divergence`` is the rule for a non-finite loss (see :class:`xpnet._train.Rules`).
    """
    target = data.target
    sizes = (data.X.shape[1], *settings["hidden"], len(data.classes))
    params = _train.to_target(target, _train.init_article(sizes, settings["seed"]), data.dtype)
    optimizer = SGD(settings["lr"])
    loss = mean_loss(target, settings["activation"], settings["l2"])
    network = (target, optimizer, settings["activation"], "softmax", settings["l2"])
    problem = _train.Problem(
        data=_train.Data(target, data.Xt, data.Y, None, data.Xt.shape[0]),
        optimizer=optimizer,
        step=_train.step_for(*network, False),
        evaluate=lambda params: float(_backends.to_host(loss(params, data.Xt, data.Y))),
        repeat=_train.repeat_for(*network),
    )
    rules = _train.Rules(
        epochs=settings["epochs"], log_every=settings["log_every"], divergence=divergence
    )
    return _train.run(_train.start(params, optimizer, target.xp), problem, rules, observe)


def trained_model(data: Prepared, settings: dict, state: _train.TrainState) -> Model:
    """The :class:`Model` of :func:`train`'s final state."""
    return Model(
        target=data.target,
        params=state.params,
        dtype=data.dtype,
        hidden=settings["hidden"],
        activation=settings["activation"],
        l2=settings["l2"],
        classes=data.classes,
        n_features_in=data.X.shape[1],
        loss_curve=list(state.history),
        settings=settings,
    )
