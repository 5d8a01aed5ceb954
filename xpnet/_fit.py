"""``xpnet.fit``: the article's workflow on any backend."""

from __future__ import annotations

import os
from typing import Any

from . import _init, _progress, _sources, _target, _train, _validation
from ._exceptions import DivergenceWarning, TrainingInterruptedWarning, warn
from ._model import Model
from ._optim import SGD
from ._progress import Callback
from ._rows import Prepared


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


def prepare(
    X: Any, y: Any, backend: Any, device: Any, dtype: Any, fallback: bool,
    hidden: tuple[int, ...] | None = None,
) -> Prepared:  # fmt: skip
    """Check ``(X, y)``, choose where to train, and put the data there, as the source of
    the rows does it (see :mod:`xpnet._rows`); ``hidden`` weighs ``backend="auto"``."""
    source = _sources.source_of(X, backend=backend)
    return source.prepare(X, y, backend, device, dtype, fallback, hidden)


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
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
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
    backend : {None, "auto", "numpy", "cupy", "torch", "jax", "array_api_strict", "dask"}
        None trains where ``X`` lives; "auto" picks CuPy when a CUDA device is
        usable and a pass of this network is estimated cheaper there (a small
        network's pass is kernel launches on a GPU), else NumPy, and says why
        in ``model.backend_reason``.  "dask" (or a dask X with None) trains
        where the row chunks are: each pass is one compute of per-chunk
        gradient sums, added on the client, where the parameters stay as NumPy
        arrays; a NumPy X is cut into row chunks of dask's automatic size.
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
    checkpoint : str or path-like, optional
        A file that holds the whole training state: written (atomically) every
        ``checkpoint_every`` passes, on Ctrl-C and at the end.  When the file
        exists, training resumes from it: the same call after a crash ends with
        the same parameters as a run that never stopped (bit for bit on the
        same backend), and ``callback`` sees only the passes after the
        checkpoint.  The same call with a larger ``epochs`` continues a run,
        finished or not: it ends as one run of that many epochs would, bit for
        bit on the same backend, its loss curve included (the last pass of the
        shorter run is not kept there unless it is a log point).  The same call
        after a finished run returns its model without training: that is how
        to get the model of a checkpoint, which :func:`xpnet.load` does not
        read (it holds no classes).  A checkpoint of other data or other
        settings, or further along than ``epochs``, is refused.
    checkpoint_every : int, optional
        Passes between checkpoints; by default ``log_every``.

    Returns
    -------
    Model
        The trained model, its parameters on the training device.
        ``model.stopped`` is "interrupted" after a Ctrl-C.

    Raises
    ------
    ValueError
        Before any training, for bad data or settings:

        - ``X`` that is not a non-empty 2-D array of real numbers (bool, int,
          float; an object array of real numbers is read as float64), or that
          holds NaN or infinity;
        - ``y`` that is not one label per sample, mixes strings and numbers,
          misses labels (None, NaN), has a single class, or is continuous
          (floats that are not whole numbers: a regression target);
        - settings of the wrong type (a bool, float or string for an int),
          out of range (``hidden``, ``epochs`` and ``log_every`` at least 1,
          ``lr`` > 0, ``l2`` >= 0, both finite; ``seed`` from 0 to
          2**32 - 1), or not among the named choices (``activation``,
          ``backend``, ``dtype``);
        - a malformed ``device`` (``"banana"``, ``"cuda:x"``): a well-formed
          device this machine lacks (``"cuda:0"`` without CUDA) falls back
          instead, as a missing backend does;
        - ``dtype="float64"`` on a device without float64 (JAX without
          x64, torch on MPS).
    BackendUnavailableError
        When the backend cannot be used and ``fallback=False``.
    DivergenceError
        When the loss stops being finite (the step is too large); the error
        names the first such pass and holds the parameters of the pass before.
    CheckpointMismatchError
        When ``checkpoint`` was written by a run of other data or settings
        (``epochs`` aside), or has run more passes than ``epochs``.
    ModelFileError
        When ``checkpoint`` exists but is not a readable checkpoint.

    Warns
    -----
    TrainingInterruptedWarning
        On Ctrl-C (KeyboardInterrupt): training stops after the pass under way
        and the model of the last finished pass is returned, its loss curve
        ending at that pass.
    DivergenceWarning
        When the last recorded loss is above the first: the loss stayed finite
        but training made the model worse.
    BackendFallbackWarning
        When the backend or device is not available here and xpnet trains on
        NumPy instead.
    UserWarning
        When float64 ``X`` (with ``dtype=None``) trains in float32 on a device
        without float64.

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
    checkpointing = _checkpointing(checkpoint, checkpoint_every, settings["log_every"])
    _sources.source_of(X, backend=backend).refuse(checkpoint=checkpointing is not None)
    data = prepare(X, y, backend, device, dtype, fallback, settings["hidden"])
    state, save = None, None
    if checkpointing is not None:
        state, save = resume(data, settings, *checkpointing)
    bar = _progress.progress_bar(settings["epochs"]) if verbose else None
    try:
        observe = None  # nothing to tell: no per-pass calls
        if callback is not None or bar is not None:
            observe = _progress.progress_observer(settings["epochs"], callback, bar)
            if bar is not None and state is not None:
                bar.update(state.epoch)  # the passes done before the checkpoint
        with data.target.quiet():  # divergence is reported below, not by the library
            state = train(
                data, settings, observe, divergence="raise", state=state, save=save,
                checkpoint_every=None if checkpointing is None else checkpointing[1],
                interruptible=True,
            )  # fmt: skip
        if bar is not None and state.stopped == "interrupted" and state.history:
            # the loss of the last pass, recorded after the run, is the one the bar ends on
            bar.set_postfix(loss=f"{state.history[-1][1]:.6f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    history = state.history
    if state.stopped == "interrupted":
        warn(
            f"training interrupted after {state.epoch} of {settings['epochs']} passes; the "
            "model holds the parameters of the last finished pass"
            + (f" (loss {history[-1][1]:.6g})" if history else ""),
            TrainingInterruptedWarning,
        )
    elif len(history) > 1 and history[-1][1] > history[0][1]:
        warn(
            f"the loss rose from {history[0][1]:.6g} after pass {history[0][0]} to "
            f"{history[-1][1]:.6g} after pass {history[-1][0]}: training made the model "
            f"worse; lower the learning rate (lr={settings['lr']:g}) or scale the features",
            DivergenceWarning,
        )
    return trained_model(data, settings, state)


def _checkpointing(checkpoint: Any, every: Any, log_every: int) -> tuple[Any, int] | None:
    """``(path, every)`` for a checkpointed run, validated; None without a checkpoint."""
    if checkpoint is None:
        if every is not None:
            raise ValueError("checkpoint_every needs a checkpoint path: pass checkpoint=...")
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            f"checkpoint must be a file path (str or os.PathLike), got {type(checkpoint).__name__}"
        )
    every = log_every if every is None else _validation.check_int("checkpoint_every", every, 1)
    return checkpoint, every


def resume(
    data: Prepared, settings: dict, path: Any, every: int
) -> tuple[_train.TrainState | None, Any]:
    """The state saved at ``path`` for this run (None without one), and a function that
    saves a state there."""
    from . import _checkpoint

    digest = _checkpoint.data_hash(data.Xt, data.Y, data.classes)
    run = _checkpoint.identity(
        digest, {**settings, "dtype": _target.dtype_name(data.dtype), "kind": "fit"}
    )
    state = _checkpoint.load(path, run, data.target, data.dtype)
    if state is not None:  # a run goes on to more epochs, never back
        epochs, log_every = settings["epochs"], settings["log_every"]
        _checkpoint.check_length(path, state.epoch, epochs, "epochs", "passes")
        history = state.history
        if history and history[-1][0] % log_every and history[-1][0] != epochs - 1:
            # the last pass of a shorter run, recorded as its end: not a log point of this
            # one, whose loss curve is that of a single run of this many epochs
            state = state._replace(history=history[:-1])
    return state, lambda s: _checkpoint.save(path, s, run)


def train(
    data: Prepared,
    settings: dict,
    observe: _train.Observer | None,
    divergence: str,
    *,
    state: _train.TrainState | None = None,
    save: Any = None,
    checkpoint_every: int | None = None,
    interruptible: bool = False,
) -> _train.TrainState:
    """The article's training of one model on prepared data, from its seed's weights
    or from ``state`` (a checkpoint's).

    ``divergence`` is the rule for a non-finite loss (see :class:`xpnet._train.Rules`).
    With ``interruptible``, Ctrl-C ends the run with ``stopped="interrupted"``,
    the loss of its last pass recorded.  ``save`` and ``checkpoint_every`` go to
    :func:`xpnet._train.run`.
    """
    target = data.target
    optimizer = SGD(settings["lr"])
    if state is None:
        sizes = (data.X.shape[1], *settings["hidden"], len(data.classes))
        init = _init.init_normal(sizes, settings["seed"])
        state = _train.start(_target.moved(target, init, data.dtype), optimizer, target.xp)
    problem = data.source.full_batch_problem(
        data, optimizer, settings["activation"], settings["l2"]
    )
    rules = _train.Rules(
        epochs=settings["epochs"] - state.epoch, log_every=settings["log_every"],
        divergence=divergence, interruptible=interruptible, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    state = _train.run(state, problem, rules, observe, save)
    history = state.history
    unrecorded = state.epoch > 0 and (not history or history[-1][0] != state.epoch - 1)
    # the last pass is recorded: after Ctrl-C, and after a checkpoint that ended where
    # this run ends without recording that pass (one interrupted at its log points)
    if unrecorded and (state.stopped == "interrupted" or state.epoch == settings["epochs"]):
        last = (state.epoch - 1, problem.evaluate(state.params))
        state = state._replace(history=(*history, last))
    return state


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
        stopped=state.stopped if state.stopped == "interrupted" else None,
    )
