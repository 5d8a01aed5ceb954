"""The estimators' training, apart from their scikit-learn surface (:mod:`xpnet._estimators`).

``fit(est, X, y, ...)`` validates the input as scikit-learn does, picks the
backend, starts a :class:`~xpnet._train.TrainState` from the fitted attributes
(or fresh Glorot weights) and trains: the stochastic solvers (sgd, adam)
through xpnet's one loop, with early stopping and checkpoints; L-BFGS through
:func:`xpnet._lbfgs.minimize_lbfgs` on one flat vector of the parameters; row
chunks through their own epoch (:mod:`xpnet._dask`).  Then it keeps the result
in the fitted attributes, and warns and raises as scikit-learn does.

What differs between the classifier and the regressor comes from their
methods ``_output_name``, ``_encode_y``, ``_dask_targets`` and
``_validation_score``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, column_or_1d, validate_data

from . import _init, _sources, _steps, _target, _train, _tree, _validation
from ._exceptions import TrainingInterruptedWarning, warn
from ._model import as_input
from ._network import forward, loss_and_gradients, out_activation
from ._optim import SGD, Adam
from ._validation import is_sparse

#: The solvers that train on mini-batches, through the training loop.
STOCHASTIC = ("sgd", "adam")


def _all_finite(params: list) -> bool:
    """Whether every weight and bias (on any device) is finite."""
    return all(np.isfinite(_target.to_host(a)).all() for pair in params for a in pair)


def _rows(target: _target.Target, a: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of ``a`` (a device array, or host sparse), read with ``take``."""
    if is_sparse(a):
        return a[idx]
    return target.xp.take(a, target.asarray(idx), axis=0)


@contextlib.contextmanager
def advised(est, X: Any, y: Any) -> Iterator[None]:
    """scikit-learn's ValueError or TypeError about ``(X, y)``, raised again as the same type
    with its message followed by xpnet's advice, when xpnet's checks find what to say: text
    in X (where, and how to encode it), missing labels in y (how many, and the first).
    ``X=None``: X is checked already."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        if type(exc) not in (ValueError, TypeError):  # scikit-learn's own subclasses stay
            raise
        classifier = isinstance(est, ClassifierMixin)
        advice = None if X is None else _validation.not_numbers(X)
        advice = advice or _validation.missing_targets(y, classifier=classifier)
        if advice is None:
            raise
        raise type(exc)(f"{str(exc).rstrip('.')}. {advice}") from exc


def validate_fit_input(est, X: Any, y: Any, reset: bool) -> tuple[Any, np.ndarray]:
    """``(X, y)``: X stays where it is, y comes to the host."""
    if _target.is_host_input(X):
        with advised(est, X, y):
            X, y = validate_data(
                est,
                X,
                _target.for_host(y),
                accept_sparse=["csr", "csc"],
                multi_output=True,
                y_numeric=not isinstance(est, ClassifierMixin),
                dtype=(np.float64, np.float32),
                reset=reset,
            )
    else:
        X = _validation.check_X(X, n_features=None if reset else est.n_features_in_)
        classifier = isinstance(est, ClassifierMixin)
        y = _validation.check_targets(y, X.shape[0], classifier=classifier)
        if reset:
            est.n_features_in_ = X.shape[1]
            if hasattr(est, "feature_names_in_"):
                del est.feature_names_in_
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return X, y


def fit(est, X: Any, y: Any, sample_weight: Any, incremental: bool):
    hidden = est.hidden_layer_sizes
    if not hasattr(hidden, "__iter__"):
        hidden = [hidden]
    hidden = list(hidden)
    if hidden:  # no hidden layer at all is a linear model, as in scikit-learn
        hidden = list(_validation.check_hidden(hidden, name="hidden_layer_sizes"))
    if est.checkpoint is not None and est.solver not in STOCHASTIC and not incremental:
        raise ValueError(
            f"checkpoint is written by the sgd and adam solvers, not {est.solver!r}; "
            "use solver='sgd' or 'adam', or leave checkpoint=None"
        )
    first_pass = not hasattr(est, "coefs_") or (not est.warm_start and not incremental)
    source = _sources.source_of(X, backend=est.backend)
    if source.chunked:
        return _fit_chunks(est, source, X, y, sample_weight, incremental, hidden, first_pass)
    X, y = validate_fit_input(est, X, y, reset=first_pass)
    n_samples, n_features = X.shape
    with advised(est, None, y):  # labels that cannot be sorted: None among them
        Y = est._encode_y(y, incremental, first_pass)
    if Y.ndim == 1:
        Y = Y.reshape((-1, 1))
    if sample_weight is not None:
        holder = np.empty((n_samples, 0), dtype=X.dtype if _target.is_host_input(X) else np.float64)
        sample_weight = _check_sample_weight(_target.for_host(sample_weight), holder)

    rows = n_samples if est.solver == "lbfgs" else _batch_size(est, n_samples, quiet=True)
    work = _target.Work(rows, (n_features, *hidden, Y.shape[1]))  # weighs backend="auto"
    here = None if _target.is_host_input(X) else X
    target = _target.resolve(est.backend, est.device, here, True, work)
    if is_sparse(X) and (est.solver == "lbfgs" or not target.takes_host_sparse()):
        X = X.toarray()  # full-batch math, or a device without SciPy sparse
    dtype = _target.resolve_dtype(target, np.zeros(0, X.dtype) if is_sparse(X) else X, None)
    np_dtype = np.dtype(_target.dtype_name(dtype))

    est.n_outputs_ = Y.shape[1]
    layer_units = [n_features, *hidden, est.n_outputs_]
    est._random_state = check_random_state(est.random_state)
    if first_pass:
        _initialize(est, layer_units, np_dtype)

    Xt = as_input(target, X, dtype)
    if est.solver in STOCHASTIC and isinstance(est, ClassifierMixin):
        # A byte a label, cast a batch at a time; Y is already this fit's own copy.
        Yt = target.asarray(Y if Y.dtype == bool else Y.astype(bool))
    else:
        Yt = target.asarray(Y.astype(np_dtype), dtype)
    swt = None if sample_weight is None else target.asarray(sample_weight, dtype)
    params = _target.moved(target, list(zip(est.coefs_, est.intercepts_)), dtype)

    with target.activate():  # CuPy allocates on the current device
        if est.solver in STOCHASTIC:
            params = _fit_stochastic(est, target, params, Xt, Yt, Y, swt, incremental, dtype)
        else:
            params = _fit_lbfgs(est, target, params, Xt, Yt, swt)

    return _set_weights(est, _target.host_tree(params), np_dtype)


def _fit_chunks(est, source, X, y, sample_weight, incremental, hidden, first_pass):
    """Mini-batch training on rows held in chunks by ``source``: each epoch one graph, the
    chunks in a shuffled order, batches drawn within each chunk."""
    source.refuse(
        solver=est.solver, early_stopping=est.early_stopping, device=est.device,
        checkpoint=est.checkpoint is not None and not incremental,
    )  # fmt: skip
    given_in_chunks = source.owns(X)
    if not given_in_chunks:  # in-memory data: cut it into row chunks
        X, y = validate_fit_input(est, X, y, reset=first_pass)  # keeps column names
        X = source.from_memory(X)
    X = source.check_X(X, n_features=None if first_pass else est.n_features_in_)
    if first_pass:
        est.n_features_in_ = X.shape[1]
        if given_in_chunks and hasattr(est, "feature_names_in_"):  # chunks have no names
            del est.feature_names_in_
    sw = source.weights(sample_weight, X)
    y = source.align(y, X, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    n = X.shape[0]
    batch_size = _batch_size(est, n)
    batches = None if est.shuffle else batch_size
    encode = est._chunked_targets(source, X, y, sw, incremental, first_pass, batches)
    target = source.target()
    dtype = _target.resolve_dtype(target, np.zeros(0, X.dtype), None)
    np_dtype = np.dtype(_target.dtype_name(dtype))
    layer_units = [X.shape[1], *hidden, est.n_outputs_]
    est._random_state = check_random_state(est.random_state)
    if first_pass:
        _initialize(est, layer_units, np_dtype)
    # in this fit's dtype, as on NumPy (a warm start may follow a float64 fit)
    pairs = zip(est.coefs_, est.intercepts_, strict=True)
    params = [(W.astype(np_dtype), b.astype(np_dtype)) for W, b in pairs]
    optimizer = _optimizer_of(est)
    state = _resume_state(est, target, params, optimizer, incremental, np_dtype, n)
    first = state.epoch
    X = X.astype(np_dtype)
    sw = None if sw is None else sw.astype(np_dtype)
    problem = source.minibatch_problem(
        target, X, y, sw, optimizer, est.activation, est.out_activation_, est.alpha,
        batch_size, encode,
    )  # fmt: skip
    rules = _train.Rules(
        epochs=est.max_iter, tol=est.tol, n_iter_no_change=est.n_iter_no_change,
        one_epoch=incremental, divergence="stop", interruptible=True,
    )  # fmt: skip
    state = _train.run(state, problem, rules, _verbose_observer(est, first))
    return _set_weights(
        est, _target.host_tree(_keep_result(est, state, first, incremental)), np_dtype
    )


def _set_weights(est, host: list, np_dtype: np.dtype):
    """Keep trained (W, b) pairs (host arrays) as coefs_ and intercepts_; est."""
    if not _all_finite(host):
        raise ValueError(
            "Solver produced non-finite parameter weights. The input data may contain large "
            "values and need to be preprocessed."
        )
    est.coefs_ = [W.astype(np_dtype, copy=False) for W, _ in host]
    est.intercepts_ = [b.astype(np_dtype, copy=False) for _, b in host]
    return est


def _initialize(est, layer_units: list[int], dtype: np.dtype) -> None:
    est.n_iter_ = 0
    est.t_ = 0
    est.n_layers_ = len(layer_units)
    est.out_activation_ = est._output_name()
    init = _init.init_glorot(layer_units, est._random_state, est.activation, dtype)
    est.coefs_ = [W for W, _ in init]
    est.intercepts_ = [b for _, b in init]
    if hasattr(est, "_opt_state"):
        del est._opt_state
    if est.solver in STOCHASTIC:
        est.loss_curve_ = []
        est._no_improvement_count = 0
        if est.early_stopping:
            est.validation_scores_ = []
            est.best_validation_score_ = -np.inf
            est.best_loss_ = None
        else:
            est.best_loss_ = np.inf
            est.validation_scores_ = None
            est.best_validation_score_ = None


def _optimizer_of(est) -> SGD | Adam:
    if est.solver == "sgd":
        return SGD(
            est.learning_rate_init,
            momentum=est.momentum,
            nesterov=est.nesterovs_momentum,
            schedule=est.learning_rate,
            power_t=est.power_t,
        )
    return Adam(est.learning_rate_init, beta_1=est.beta_1, beta_2=est.beta_2, epsilon=est.epsilon)


def _fit_stochastic(est, target, params, Xt, Yt, Y_host, swt, incremental, dtype):
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    optimizer = _optimizer_of(est)
    n = Y_host.shape[0]
    validation_score = None
    if est.early_stopping:
        stratify = Y_host if isinstance(est, ClassifierMixin) and est.n_outputs_ == 1 else None
        train_idx, val_idx = train_test_split(
            np.arange(n),
            random_state=est._random_state,
            test_size=est.validation_fraction,
            stratify=stratify,
        )
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size "
                "of your dataset."
            )
        X_val, y_val = _rows(target, Xt, val_idx), Y_host[val_idx]
        sw_val = None if swt is None else _target.to_host(_rows(target, swt, val_idx))
        Xt, Yt = _rows(target, Xt, train_idx), _rows(target, Yt, train_idx)
        swt = None if swt is None else _rows(target, swt, train_idx)
        n = train_idx.shape[0]

        def validation_score(params: list) -> float:
            _, z = forward(target.xp, params, X_val, est.activation)
            out = _target.to_host(out_activation(target.xp, est.out_activation_, z))
            return est._validation_score(y_val, out, sw_val)

    batch_size = _batch_size(est, n)
    risky = (
        None if swt is None else _validation.batch_weight_risk(_target.for_host(swt), batch_size)
    )
    if risky is not None and not est.shuffle:  # the batches are known: check before training
        _validation.check_batch_weights(risky, None, batch_size, split=est.early_stopping)
        risky = None  # and no epoch needs to check them again
    state = _resume_state(est, target, params, optimizer, incremental, dtype, n)
    first, save = state.epoch, None
    if est.checkpoint is not None and not incremental:
        state, save = _checkpointed(est, state, target, dtype, (Xt, Yt, swt))
        _checkpoint_length(est, state.epoch - first)
    problem = _train.Problem(
        data=_train.Data(target, Xt, Yt, swt, batch_size, dtype, risky),
        optimizer=optimizer,
        step=_steps.step_for(
            target, optimizer, est.activation, est.out_activation_, est.alpha, True
        ),
        validation_score=validation_score,
    )
    # A non-finite loss: scikit-learn trains on, and with early stopping returns the best
    # parameters; without, its weights end non-finite and fit raises, so stop at once.
    divergence = "ignore" if est.early_stopping else "stop"
    rules = _train.Rules(
        epochs=est.max_iter - (state.epoch - first), tol=est.tol,
        n_iter_no_change=est.n_iter_no_change, one_epoch=incremental,
        divergence=divergence, interruptible=True,
        checkpoint_every=est.checkpoint_every if save is not None else None,
    )  # fmt: skip
    if state.stopped != "plateau":  # a checkpoint of a run that stopped early has ended
        state = _train.run(state, problem, rules, _verbose_observer(est, first), save)
    return _keep_result(est, state, first, incremental)


def _checkpoint_length(est, done: int) -> None:
    """Refuse a checkpoint ``done`` epochs in for a fit of fewer ``max_iter``.

    A larger ``max_iter`` continues the run: nothing in scikit-learn's epochs depends on
    ``max_iter`` (the schedules, the shuffle, early stopping's split and counters are in
    the state), so the fit ends as one of that many epochs would.  A run that stopped
    early (no improvement for ``n_iter_no_change`` epochs) has ended for any ``max_iter``.
    """
    from . import _checkpoint

    _checkpoint.check_length(est.checkpoint, done, est.max_iter, "max_iter", "epochs")


def _batch_size(est, n: int, quiet: bool = False) -> int:
    """The mini-batch size for ``n`` training rows, as scikit-learn picks it (and warns,
    unless ``quiet``)."""
    if est.batch_size == "auto":
        return min(200, n)
    if est.batch_size > n and not quiet:
        warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
            UserWarning,
        )
    return int(np.clip(est.batch_size, 1, n))


def _keep_result(est, state: _train.TrainState, first: int, incremental: bool) -> list:
    """Keep a stochastic run's state in the fitted attributes, warn and raise as
    scikit-learn does; the parameters to keep (the best ones with early stopping)."""
    if state.stopped == "interrupted":
        warn(
            f"Training interrupted by user after {state.epoch - first} epochs; the "
            "estimator keeps the parameters of the last finished epoch.",
            TrainingInterruptedWarning,
        )
    if state.shuffle is not None:  # the caller's generator moves on, as scikit-learn's does
        est._random_state.set_state(state.shuffle.generator)

    est.n_iter_ = state.epoch - first  # this call's epochs, as scikit-learn counts them
    est.t_ = state.samples
    est.loss_curve_ = state.losses
    if state.epoch > first:
        est.loss_ = est.loss_curve_[-1]
    est._no_improvement_count = state.no_improvement
    if est.early_stopping:
        est.validation_scores_ = list(state.scores)
        est.best_validation_score_ = state.best_score
    else:
        est.best_loss_ = state.best_loss
    # The rest of the state is in the fitted attributes; partial_fit carries the optimizer on.
    est._opt_state = state.opt._replace(slots=_target.host_tree(state.opt.slots))
    if not incremental and state.stopped is None and est.n_iter_ == est.max_iter:
        warn(
            f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
            "optimization hasn't converged yet.",
            ConvergenceWarning,
        )
    if state.stopped == "diverged" and _all_finite(state.params):  # loss only
        raise ValueError(
            f"The training loss became non-finite in epoch {est.n_iter_}. The input data "
            "may contain large values and need to be preprocessed, or learning_rate_init "
            "may be too large."
        )
    if est.early_stopping and state.best_params is not None:
        return state.best_params
    return state.params


def _checkpointed(est, state, target, dtype, arrays) -> tuple[_train.TrainState, Any]:
    """The state saved in ``est.checkpoint`` for this fit (else ``state``), and a
    function that saves a state there.

    The run is identified by its data, its parameters and, when they are
    not drawn afresh (an int random_state, or a warm start), its starting
    weights.
    """
    from . import _checkpoint

    if isinstance(est.random_state, np.random.RandomState):
        raise ValueError(
            "checkpoint needs random_state to be an int (or None): a RandomState instance "
            "cannot be checked against the checkpoint's run"
        )
    if est.early_stopping and est.random_state is None:
        raise ValueError(
            "checkpoint with early_stopping=True needs an int random_state, so that the "
            "validation split of a resumed fit is the one the checkpoint was trained on"
        )
    ignored = ("verbose", "checkpoint", "checkpoint_every", "backend", "device")
    settings = {k: v for k, v in est.get_params().items() if k not in ignored}
    settings.update(estimator=type(est).__name__, dtype=_target.dtype_name(dtype))
    start = state.params if est.random_state is not None or est.warm_start else []
    digest = _checkpoint.data_hash(*arrays, *[a for pair in start for a in pair])
    run = _checkpoint.identity(digest, settings)
    saved = _checkpoint.load(est.checkpoint, run, target, dtype)
    path = est.checkpoint
    return (state if saved is None else saved), lambda s: _checkpoint.save(path, s, run)


def _resume_state(est, target, params, optimizer, incremental, dtype, n) -> _train.TrainState:
    """The training state from the fitted attributes: where the last fit left off.

    partial_fit carries the optimizer's state on; fit starts a fresh optimizer,
    as scikit-learn does, and warm starts keep the history and counters.  The
    best parameters start as the current ones: after an early-stopping fit,
    coefs_ are the best so far.
    """
    previous = getattr(est, "_opt_state", None)
    if incremental and previous is not None:
        opt = previous._replace(slots=_target.moved(target, previous.slots, dtype))
    else:
        opt = optimizer.init(target.xp, params)
    shuffle = None
    if est.shuffle:
        shuffle = _train.Shuffle(est._random_state.get_state(), np.arange(n))
    state = _train.TrainState(
        params=params,
        opt=opt,
        epoch=len(est.loss_curve_),
        samples=est.t_,
        shuffle=shuffle,
        history=tuple(enumerate(est.loss_curve_)),
        no_improvement=est._no_improvement_count,
    )
    if est.early_stopping:
        scores = tuple(est.validation_scores_)
        return state._replace(
            scores=scores, best_score=est.best_validation_score_, best_params=params
        )
    return state._replace(best_loss=est.best_loss_)


def _verbose_observer(est, first: int) -> _train.Observer | None:
    """scikit-learn's progress lines, printed when ``verbose``."""
    if not est.verbose:
        return None

    def observe(event: str, state: _train.TrainState, detail: Any) -> None:
        if event == "epoch":
            print(f"Iteration {state.epoch - first}, loss = {detail:.8f}")
        elif event == "validation":
            print(f"Validation score: {detail:f}")
        else:
            print(detail)

    return observe


def _fit_lbfgs(est, target, params, Xt, Yt, swt):
    from ._lbfgs import minimize_lbfgs

    xp = target.xp
    flat = _tree.Flat([(tuple(W.shape), tuple(b.shape)) for W, b in params])
    total = xp.sum(swt) if swt is not None else Xt.shape[0]
    math_ = dict(activation=est.activation, output=est.out_activation_, l2=est.alpha)

    def unpack(theta):
        return flat.unpack(theta, xp.reshape)

    def pack(pairs):
        return flat.pack(xp, pairs)

    def fun(theta):
        loss, grads = loss_and_gradients(xp, unpack(theta), Xt, Yt, sample_weight=swt, **math_)
        return loss / total, pack([(dW / total, db / total) for dW, db in grads])

    last, done = [pack(params)], [0]

    def remember(x):
        last[0] = x
        done[0] += 1

    with target.activate():
        try:
            result = minimize_lbfgs(
                target.jit(fun), last[0], maxiter=est.max_iter, maxfun=est.max_fun,
                gtol=est.tol, callback=remember,
            )  # fmt: skip
        except KeyboardInterrupt:
            warn(
                f"Training interrupted by user after {done[0]} L-BFGS iterations; the "
                "estimator keeps the last iterate.",
                TrainingInterruptedWarning,
            )
            est.n_iter_ = done[0]
            est.loss_ = float(_target.to_host(fun(last[0])[0]))
            return unpack(last[0])
    est.n_iter_ = _check_optimize_result("lbfgs", result, est.max_iter)
    est.loss_ = float(_target.to_host(result.fun))
    return unpack(result.x)
