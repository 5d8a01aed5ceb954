"""``xpnet.fit``: the article's workflow on any backend."""

from __future__ import annotations

from typing import Any

from . import _backends, _validation
from ._model import Model, one_hot
from ._train import Callback, gradient_descent, init_article, to_target


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

    Examples
    --------
    >>> import xpnet
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, noise=0.20, random_state=0)
    >>> model = xpnet.fit(X, y, hidden=3, epochs=2000)
    >>> round(model.score(X, y), 3)
    0.97
    """
    hidden = _validation.check_hidden(hidden)
    activation = _validation.check_activation(activation)
    epochs = _validation.check_int("epochs", epochs, 1)
    log_every = _validation.check_int("log_every", log_every, 1)
    lr = _validation.check_float("lr", lr, positive=True)
    l2 = _validation.check_float("l2", l2, positive=False)
    if seed is not None:
        seed = _validation.check_int("seed", seed, 0)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(pass, loss), got {callback!r}")
    X = _validation.check_X(X)
    labels = _validation.check_labels(y, X.shape[0])
    classes, index = _validation.encode_labels(labels)

    target = _backends.resolve(backend, device, X, fallback)
    dtype = _validation.resolve_dtype(target, X, dtype)
    Xt = target.asarray(X, dtype)
    Y = one_hot(target, index, len(classes), dtype)
    sizes = (X.shape[1], *hidden, len(classes))
    params = to_target(target, init_article(sizes, seed), dtype)

    params, curve = gradient_descent(
        target, params, Xt, Y,
        activation=activation, output="softmax", lr=lr, l2=l2,
        epochs=epochs, log_every=log_every, callback=callback, progress=verbose,
    )  # fmt: skip
    return Model(
        target=target,
        params=params,
        dtype=dtype,
        hidden=hidden,
        activation=activation,
        l2=l2,
        classes=classes,
        n_features_in=X.shape[1],
        loss_curve=curve,
    )
