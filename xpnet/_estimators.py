"""scikit-learn's MLPClassifier and MLPRegressor, on any backend.

The estimators keep scikit-learn's parameters, defaults, fitted attributes,
random streams and update rules.  They train with xpnet's one training loop
(:func:`xpnet._train.run`) from a :class:`~xpnet._train.TrainState` made of
their fitted attributes, and predict with an :class:`xpnet.Model` of their
``coefs_`` and ``intercepts_``.  NumPy and SciPy sparse input go through
scikit-learn's own validation, so messages and warnings are scikit-learn's;
arrays of other backends (CuPy, torch, JAX, array_api_strict) are checked by
xpnet and stay on their device.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SkClassifier
from sklearn.neural_network import MLPRegressor as _SkRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _backends, _dask, _init, _steps, _target, _train, _validation
from ._exceptions import BackendFallbackWarning, TrainingInterruptedWarning, warn
from ._model import Model, follow, put
from ._network import forward, loss_and_gradients, out_activation
from ._optim import SGD, Adam, OptState
from ._validation import is_sparse

_STOCHASTIC = ("sgd", "adam")
_BACKEND_NAMES = {"auto", *_backends.BACKENDS}


def _host(x: Any) -> Any:
    """``x`` as scikit-learn takes it: arrays of other backends come to the host."""
    return x if x is None or _target.is_host_input(x) else _target.to_host(x)


class _BaseMLP(BaseEstimator, ABC):
    """The shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _parameter_constraints: dict = {
        **_SkRegressor._parameter_constraints,
        "backend": [StrOptions(_BACKEND_NAMES), None],
        "device": "no_validation",
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
    }

    # -- subclasses -------------------------------------------------------------
    @abstractmethod
    def _output_name(self) -> str:
        """The output layer's function: softmax, logistic, identity or exp."""

    @abstractmethod
    def _encode_y(self, y: np.ndarray, incremental: bool, first_pass: bool) -> np.ndarray:
        """y as the network's target matrix (labels binarised for a classifier)."""

    @abstractmethod
    def _dask_targets(self, X, y, sw, incremental: bool, first_pass: bool, batches) -> Any:
        """Check dask (X, y, sw) in one compute, set the label encoding and ``n_outputs_``;
        the function from a chunk's y to its target matrix.  ``batches``: the batch size
        whose unshuffled batches' weights to check (see :func:`_dask.first_look`), or None."""

    @abstractmethod
    def _validation_score(self, y_val: Any, out: np.ndarray, sw: Any) -> float:
        """The early-stopping score of the outputs ``out`` against ``y_val``."""

    # -- input ------------------------------------------------------------------
    def _validate_fit_input(self, X: Any, y: Any, reset: bool) -> tuple[Any, np.ndarray]:
        """``(X, y)``: X stays where it is, y comes to the host."""
        if _target.is_host_input(X):
            X, y = validate_data(
                self,
                X,
                _host(y),
                accept_sparse=["csr", "csc"],
                multi_output=True,
                y_numeric=not isinstance(self, ClassifierMixin),
                dtype=(np.float64, np.float32),
                reset=reset,
            )
        else:
            X = _validation.check_X(X, n_features=None if reset else self.n_features_in_)
            classifier = isinstance(self, ClassifierMixin)
            y = _validation.check_targets(y, X.shape[0], classifier=classifier)
            if reset:
                self.n_features_in_ = X.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _predict_input(self, X: Any) -> Any:
        check_is_fitted(self)
        if _target.is_host_input(X):
            return validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return _validation.check_X(X, n_features=self.n_features_in_, when="predict")

    def _dask_rows(self, predict: Any, X: Any, width: int | None, dtype: Any) -> Any:
        """``predict`` of each row chunk of a dask X, lazily (float: X's float dtype, else
        the fitted weights')."""
        check_is_fitted(self)
        X = _dask.check_X(X, n_features=self.n_features_in_, when="predict")
        if dtype is float:
            dtype = _dask.float_dtype(X, self.coefs_[0].dtype)
        return _dask.map_rows(predict, X, width, dtype)

    def _compute_target(self, X: Any) -> _target.Target:
        """Where predictions run: X's device, or the backend asked for (no second warning)."""
        if self.backend is None:
            return _target.target_of(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BackendFallbackWarning)
            return _target.resolve(self.backend, self.device, X, True)

    def _model_for(self, X: Any) -> Model:
        """The fitted network as a :class:`Model` on the device where ``X`` is predicted.

        Built from ``coefs_`` and ``intercepts_`` on each call, so that it always
        predicts with the parameters the estimator shows.
        """
        target = self._compute_target(X)
        dtype = _target.dtype_on(target, self.coefs_[0].dtype)
        return Model(
            target=target,
            params=_target.moved(target, list(zip(self.coefs_, self.intercepts_)), dtype),
            dtype=dtype,
            hidden=tuple(W.shape[1] for W in self.coefs_[:-1]),
            activation=self.activation,
            l2=self.alpha,
            classes=getattr(self, "classes_", None),
            n_features_in=self.n_features_in_,
            loss_curve=[],
            output=self.out_activation_,
        )

    @property
    def _optimizer(self) -> OptState:
        """The optimizer state of the last fit (scikit-learn reads its learning_rate)."""
        try:
            return self._opt_state
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no stochastic solver state") from None

    # -- training ---------------------------------------------------------------
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False):
        # A fit that raises leaves the estimator as it was: a refused refit or warm start
        # keeps the model it had, rather than one half reset to fresh random weights.
        before = dict(self.__dict__)
        try:
            return self._fit_or_raise(X, y, sample_weight, incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_or_raise(self, X: Any, y: Any, sample_weight: Any, incremental: bool):
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if hidden:  # no hidden layer at all is a linear model, as in scikit-learn
            hidden = list(_validation.check_hidden(hidden, name="hidden_layer_sizes"))
        if self.checkpoint is not None and self.solver not in _STOCHASTIC and not incremental:
            raise ValueError(
                f"checkpoint is written by the sgd and adam solvers, not {self.solver!r}; "
                "use solver='sgd' or 'adam', or leave checkpoint=None"
            )
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if _dask.wanted(X, self.backend):
            return self._fit_dask(X, y, sample_weight, incremental, hidden, first_pass)
        X, y = self._validate_fit_input(X, y, reset=first_pass)
        n_samples, n_features = X.shape
        Y = self._encode_y(y, incremental, first_pass)
        if Y.ndim == 1:
            Y = Y.reshape((-1, 1))
        if sample_weight is not None:
            holder = np.empty(
                (n_samples, 0), dtype=X.dtype if _target.is_host_input(X) else np.float64
            )
            sample_weight = _check_sample_weight(_host(sample_weight), holder)

        target = _target.resolve(
            self.backend, self.device, None if _target.is_host_input(X) else X, True
        )
        if is_sparse(X) and (self.solver == "lbfgs" or not target.takes_host_sparse()):
            X = X.toarray()  # full-batch math, or a device without SciPy sparse
        dtype = _target.resolve_dtype(target, np.zeros(0, X.dtype) if is_sparse(X) else X, None)
        np_dtype = np.dtype(_target.dtype_name(dtype))

        self.n_outputs_ = Y.shape[1]
        layer_units = [n_features, *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, np_dtype)

        Xt = put(target, X, dtype)
        if self.solver in _STOCHASTIC and isinstance(self, ClassifierMixin):
            # A byte a label, cast a batch at a time; Y is already this fit's own copy.
            Yt = target.asarray(Y if Y.dtype == bool else Y.astype(bool))
        else:
            Yt = target.asarray(Y.astype(np_dtype), dtype)
        swt = None if sample_weight is None else target.asarray(sample_weight, dtype)
        params = _target.moved(target, list(zip(self.coefs_, self.intercepts_)), dtype)

        with target.activate():  # CuPy allocates on the current device
            if self.solver in _STOCHASTIC:
                params = self._fit_stochastic(target, params, Xt, Yt, Y, swt, incremental, dtype)
            else:
                params = self._fit_lbfgs(target, params, Xt, Yt, swt)

        return self._set_weights(_target.host_tree(params), np_dtype)

    def _fit_dask(self, X, y, sample_weight, incremental, hidden, first_pass):
        """Mini-batch training on dask chunks (see :mod:`xpnet._dask`): each epoch one
        graph, the chunks in a shuffled order, batches drawn within each chunk."""
        if self.solver not in _STOCHASTIC:
            raise ValueError(
                f"solver={self.solver!r} does not train on dask arrays: it needs the whole "
                "data for each of its many full-batch steps; use solver='adam' or 'sgd', "
                "which train on mini-batches within each chunk"
            )
        for name, value, why in (
            ("early_stopping", self.early_stopping, "hold out a dask array and call score"),
            ("checkpoint", self.checkpoint is not None and not incremental, "train without it"),
        ):
            if value:
                raise ValueError(f"{name} does not work with dask input yet; {why}")
        if self.device is not None and str(self.device) != "cpu":
            raise ValueError(
                f"backend='dask' takes no device (got {self.device!r}): the tasks run where "
                "the chunks are, and the parameters stay on the client's CPU"
            )
        given_dask = _dask.is_dask(X)
        if not given_dask:  # backend="dask" with in-memory data: cut it into row chunks
            X, y = self._validate_fit_input(X, y, reset=first_pass)  # keeps column names
            X = _dask.rows(X)
        X = _dask.check_X(X, n_features=None if first_pass else self.n_features_in_)
        if first_pass:
            self.n_features_in_ = X.shape[1]
            if given_dask and hasattr(self, "feature_names_in_"):  # a dask array has none
                del self.feature_names_in_
        sw = None if sample_weight is None else _dask.weights(sample_weight, X)
        y = _dask.align(y, X, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        n = X.shape[0]
        batch_size = self._batch_size(n)
        batches = None if self.shuffle else batch_size
        encode = self._dask_targets(X, y, sw, incremental, first_pass, batches)
        target = _target.resolve("dask", None, None, False)
        dtype = _target.resolve_dtype(target, np.zeros(0, X.dtype), None)
        np_dtype = np.dtype(_target.dtype_name(dtype))
        layer_units = [X.shape[1], *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, np_dtype)
        # in this fit's dtype, as on NumPy (a warm start may follow a float64 fit)
        pairs = zip(self.coefs_, self.intercepts_, strict=True)
        params = [(W.astype(np_dtype), b.astype(np_dtype)) for W, b in pairs]
        optimizer = self._make_optimizer()
        state = self._resume_state(target, params, optimizer, incremental, np_dtype, n)
        first = state.epoch
        spec = _dask.Epoch(
            optimizer, self.activation, self.out_activation_, self.alpha, batch_size, encode
        )
        X = X.astype(np_dtype)
        sw = None if sw is None else sw.astype(np_dtype)
        problem = _dask.minibatch_problem(target, X, y, sw, spec)
        rules = _train.Rules(
            epochs=self.max_iter, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
            one_epoch=incremental, divergence="stop", interruptible=True,
        )  # fmt: skip
        state = _train.run(state, problem, rules, self._verbose_observer(first))
        return self._set_weights(_target.host_tree(self._keep(state, first, incremental)), np_dtype)

    def _set_weights(self, host: list, np_dtype: np.dtype):
        """Keep trained (W, b) pairs (host arrays) as coefs_ and intercepts_; self."""
        if not _all_finite(host):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large "
                "values and need to be preprocessed."
            )
        self.coefs_ = [W.astype(np_dtype, copy=False) for W, _ in host]
        self.intercepts_ = [b.astype(np_dtype, copy=False) for _, b in host]
        return self

    def _initialize(self, layer_units: list[int], dtype: np.dtype) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_name()
        init = _init.init_glorot(layer_units, self._random_state, self.activation, dtype)
        self.coefs_ = [W for W, _ in init]
        self.intercepts_ = [b for _, b in init]
        if hasattr(self, "_opt_state"):
            del self._opt_state
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _make_optimizer(self) -> SGD | Adam:
        if self.solver == "sgd":
            return SGD(
                self.learning_rate_init,
                momentum=self.momentum,
                nesterov=self.nesterovs_momentum,
                schedule=self.learning_rate,
                power_t=self.power_t,
            )
        return Adam(
            self.learning_rate_init, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon
        )

    def _fit_stochastic(self, target, params, Xt, Yt, Y_host, swt, incremental, dtype):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        optimizer = self._make_optimizer()
        n = Y_host.shape[0]
        validation_score = None
        if self.early_stopping:
            stratify = (
                Y_host if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
            )
            train_idx, val_idx = train_test_split(
                np.arange(n),
                random_state=self._random_state,
                test_size=self.validation_fraction,
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
                _, z = forward(target.xp, params, X_val, self.activation)
                out = _target.to_host(out_activation(target.xp, self.out_activation_, z))
                return self._validation_score(y_val, out, sw_val)

        batch_size = self._batch_size(n)
        risky = None if swt is None else _validation.batch_weight_risk(_host(swt), batch_size)
        if risky is not None and not self.shuffle:  # the batches are known: check before training
            _validation.check_batch_weights(risky, None, batch_size, split=self.early_stopping)
            risky = None  # and no epoch needs to check them again
        state = self._resume_state(target, params, optimizer, incremental, dtype, n)
        first, save = state.epoch, None
        if self.checkpoint is not None and not incremental:
            state, save = self._checkpointed(state, target, dtype, (Xt, Yt, swt))
        problem = _train.Problem(
            data=_train.Data(target, Xt, Yt, swt, batch_size, dtype, risky),
            optimizer=optimizer,
            step=_steps.step_for(
                target, optimizer, self.activation, self.out_activation_, self.alpha, True
            ),
            validation_score=validation_score,
        )
        # A non-finite loss: scikit-learn trains on, and with early stopping returns the best
        # parameters; without, its weights end non-finite and fit raises, so stop at once.
        divergence = "ignore" if self.early_stopping else "stop"
        rules = _train.Rules(
            epochs=self.max_iter - (state.epoch - first), tol=self.tol,
            n_iter_no_change=self.n_iter_no_change, one_epoch=incremental,
            divergence=divergence, interruptible=True,
            checkpoint_every=self.checkpoint_every if save is not None else None,
        )  # fmt: skip
        state = _train.run(state, problem, rules, self._verbose_observer(first), save)
        return self._keep(state, first, incremental)

    def _batch_size(self, n: int) -> int:
        """The mini-batch size for ``n`` training rows, as scikit-learn picks it."""
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                "clipped",
                UserWarning,
            )
        return int(np.clip(self.batch_size, 1, n))

    def _keep(self, state: _train.TrainState, first: int, incremental: bool) -> list:
        """Keep a stochastic run's state in the fitted attributes, warn and raise as
        scikit-learn does; the parameters to keep (the best ones with early stopping)."""
        if state.stopped == "interrupted":
            warn(
                f"Training interrupted by user after {state.epoch - first} epochs; the "
                "estimator keeps the parameters of the last finished epoch.",
                TrainingInterruptedWarning,
            )
        if state.shuffle is not None:  # the caller's generator moves on, as scikit-learn's does
            self._random_state.set_state(state.shuffle.generator)

        self.n_iter_ = state.epoch - first  # this call's epochs, as scikit-learn counts them
        self.t_ = state.samples
        self.loss_curve_ = state.losses
        if state.epoch > first:
            self.loss_ = self.loss_curve_[-1]
        self._no_improvement_count = state.no_improvement
        if self.early_stopping:
            self.validation_scores_ = list(state.scores)
            self.best_validation_score_ = state.best_score
        else:
            self.best_loss_ = state.best_loss
        # The rest of the state is in the fitted attributes; partial_fit carries the optimizer on.
        self._opt_state = state.opt._replace(slots=_target.host_tree(state.opt.slots))
        if not incremental and state.stopped is None and self.n_iter_ == self.max_iter:
            warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
            )
        if state.stopped == "diverged" and _all_finite(state.params):  # loss only
            raise ValueError(
                f"The training loss became non-finite in epoch {self.n_iter_}. The input data "
                "may contain large values and need to be preprocessed, or learning_rate_init "
                "may be too large."
            )
        if self.early_stopping and state.best_params is not None:
            return state.best_params
        return state.params

    def _checkpointed(self, state, target, dtype, arrays) -> tuple[_train.TrainState, Any]:
        """The state saved in ``self.checkpoint`` for this fit (else ``state``), and a
        function that saves a state there.

        The run is identified by its data, its parameters and, when they are
        not drawn afresh (an int random_state, or a warm start), its starting
        weights.
        """
        from . import _checkpoint

        if isinstance(self.random_state, np.random.RandomState):
            raise ValueError(
                "checkpoint needs random_state to be an int (or None): a RandomState instance "
                "cannot be checked against the checkpoint's run"
            )
        if self.early_stopping and self.random_state is None:
            raise ValueError(
                "checkpoint with early_stopping=True needs an int random_state, so that the "
                "validation split of a resumed fit is the one the checkpoint was trained on"
            )
        ignored = ("verbose", "checkpoint", "checkpoint_every", "backend", "device")
        settings = {k: v for k, v in self.get_params().items() if k not in ignored}
        settings.update(estimator=type(self).__name__, dtype=_target.dtype_name(dtype))
        start = state.params if self.random_state is not None or self.warm_start else []
        digest = _checkpoint.data_hash(*arrays, *[a for pair in start for a in pair])
        run = _checkpoint.identity(digest, settings)
        saved = _checkpoint.load(self.checkpoint, run, target, dtype)
        path = self.checkpoint
        return (state if saved is None else saved), lambda s: _checkpoint.save(path, s, run)

    def _resume_state(self, target, params, optimizer, incremental, dtype, n) -> _train.TrainState:
        """The training state from the fitted attributes: where the last fit left off.

        partial_fit carries the optimizer's state on; fit starts a fresh optimizer,
        as scikit-learn does, and warm starts keep the history and counters.  The
        best parameters start as the current ones: after an early-stopping fit,
        coefs_ are the best so far.
        """
        previous = getattr(self, "_opt_state", None)
        if incremental and previous is not None:
            opt = previous._replace(slots=_target.moved(target, previous.slots, dtype))
        else:
            opt = optimizer.init(target.xp, params)
        shuffle = None
        if self.shuffle:
            shuffle = _train.Shuffle(self._random_state.get_state(), np.arange(n))
        state = _train.TrainState(
            params=params,
            opt=opt,
            epoch=len(self.loss_curve_),
            samples=self.t_,
            shuffle=shuffle,
            history=tuple(enumerate(self.loss_curve_)),
            no_improvement=self._no_improvement_count,
        )
        if self.early_stopping:
            scores = tuple(self.validation_scores_)
            return state._replace(
                scores=scores, best_score=self.best_validation_score_, best_params=params
            )
        return state._replace(best_loss=self.best_loss_)

    def _verbose_observer(self, first: int) -> _train.Observer | None:
        """scikit-learn's progress lines, printed when ``verbose``."""
        if not self.verbose:
            return None

        def observe(event: str, state: _train.TrainState, detail: Any) -> None:
            if event == "epoch":
                print(f"Iteration {state.epoch - first}, loss = {detail:.8f}")
            elif event == "validation":
                print(f"Validation score: {detail:f}")
            else:
                print(detail)

        return observe

    def _fit_lbfgs(self, target, params, Xt, Yt, swt):
        from ._lbfgs import minimize_lbfgs

        xp = target.xp
        shapes = [(W.shape, b.shape) for W, b in params]
        sizes = [int(np.prod(s)) for pair in shapes for s in pair]
        total = xp.sum(swt) if swt is not None else Xt.shape[0]
        math_ = dict(activation=self.activation, output=self.out_activation_, l2=self.alpha)

        def unpack(theta):
            arrays, start = [], 0
            for shape, size in zip([s for pair in shapes for s in pair], sizes, strict=True):
                arrays.append(xp.reshape(theta[start : start + size], shape))
                start += size
            return list(zip(arrays[0::2], arrays[1::2], strict=True))

        def pack(pairs):
            return xp.concat([xp.reshape(a, (-1,)) for pair in pairs for a in pair])

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
                    target.jit(fun), last[0], maxiter=self.max_iter, maxfun=self.max_fun,
                    gtol=self.tol, callback=remember,
                )  # fmt: skip
            except KeyboardInterrupt:
                warn(
                    f"Training interrupted by user after {done[0]} L-BFGS iterations; the "
                    "estimator keeps the last iterate.",
                    TrainingInterruptedWarning,
                )
                self.n_iter_ = done[0]
                self.loss_ = float(_target.to_host(fun(last[0])[0]))
                return unpack(last[0])
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(_target.to_host(result.fun))
        return unpack(result.x)

    # -- public -----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to ``path``, to be read back by :func:`xpnet.load`.

        The file (an ``.npz`` archive of arrays and a JSON description; nothing
        in it is executed when read) holds the parameters (``get_params()``)
        and every fitted attribute, the optimizer state included: the loaded
        estimator predicts and scores as this one does and goes on with
        ``partial_fit`` or a ``warm_start`` fit from where this one stopped.
        A ``numpy.random.RandomState`` random_state is saved as its generator
        state; a device object as its backend's device text.  Pickling (or
        ``joblib.dump``) works too, but reading a pickle runs code from it.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write, atomically; its directory must exist.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            When the estimator is not fitted.
        TypeError
            When a parameter or attribute holds an object a file cannot hold;
            the message names it.
        """
        from . import _estimator_files

        return _estimator_files.save(self, path, (MLPClassifier, MLPRegressor))

    def _solver_is_stochastic(self) -> bool:
        if self.solver not in _STOCHASTIC:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                "stochastic."
            )
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _all_finite(params: list) -> bool:
    """Whether every weight and bias (on any device) is finite."""
    return all(np.isfinite(_target.to_host(a)).all() for pair in params for a in pair)


def _rows(target: _target.Target, a: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of ``a`` (a device array, or host sparse), read with ``take``."""
    if is_sparse(a):
        return a[idx]
    return target.xp.take(a, target.asarray(idx), axis=0)


_SHARED_DOC = """
    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun
        As in scikit-learn 1.9, with the same defaults and meanings.
    backend : {None, "auto", "numpy", "cupy", "torch", "jax", "array_api_strict", "dask"}, \
default None
        Where to train, as in :func:`xpnet.fit`: None trains where X lives; a
        named backend moves the data there (NumPy results come back as NumPy);
        an unusable one falls back to NumPy with a
        :class:`~xpnet.BackendFallbackWarning` on every fit.  On dask (a dask
        X, or "dask" with in-memory X cut into row chunks) sgd and adam train
        each epoch as one graph: the chunks in a shuffled order, mini-batches
        drawn within each chunk, the optimizer state carried from chunk to
        chunk; lbfgs, early_stopping and checkpoint are refused there, and
        predictions on a dask X are lazy dask arrays with X's row chunks.
    device : object, optional
        A device of that backend ("cuda:1", "cpu", a torch.device, ...).
    checkpoint : str or path-like, optional
        sgd and adam: a file that holds the whole training state (parameters,
        optimizer moments, shuffle generator, counters, loss curve), written
        atomically every ``checkpoint_every`` epochs, on Ctrl-C and at the end
        of ``fit``.  When the file exists, ``fit`` resumes from it and ends as
        a fit that never stopped would (with an int ``random_state``; bit for
        bit on NumPy).  A checkpoint of other data or parameters raises
        :class:`~xpnet.CheckpointMismatchError`.  ``partial_fit`` neither
        reads nor writes it (the estimator itself carries the state between
        calls).
    checkpoint_every : int, default 1
        Epochs between checkpoints.

    Attributes
    ----------
    coefs_, intercepts_ : list of numpy.ndarray
        The weights and biases of each layer, always NumPy, set at the end of fit.
    loss_ : float
        The loss at the end of training (scikit-learn's: mean loss plus the
        L2 penalty over the total sample weight).
    loss_curve_ : list of float
        The loss after each epoch (sgd and adam only).
    best_loss_, validation_scores_, best_validation_score_ : float, list, float or None
        As in scikit-learn, depending on ``early_stopping``.
    t_, n_iter_, n_layers_, n_outputs_, out_activation_ : int, int, int, int, str
        Samples seen, epochs (or L-BFGS iterations) of the last fit, layers
        counting input and output, outputs, and the output function.
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray
        Only when X had string column names.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's, on any array backend.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` with the same
    parameters, defaults, fitted attributes and numbers (the same initial
    weights, shuffling, batches, early-stopping split and updates for a given
    ``random_state``), trained by xpnet on NumPy, CuPy, PyTorch, JAX or
    array_api_strict.

    Attributes beyond those listed below: ``classes_`` (the labels).
    """

    __doc__ += _SHARED_DOC

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backend=None,
        device=None,
        checkpoint=None,
        checkpoint_every=1,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    _parameter_constraints: dict = {
        **_SkClassifier._parameter_constraints,
        "backend": [StrOptions(_BACKEND_NAMES), None],
        "device": "no_validation",
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
    }

    def _output_name(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _encode_y(self, y: np.ndarray, incremental: bool, first_pass: bool) -> np.ndarray:
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return self._indicators(y)

    def _indicators(self, y: np.ndarray) -> np.ndarray:
        """The label binarizer's indicator matrix of ``y``, as booleans.

        Its own result is int64, 8 bytes a label, which on many rows would be the
        fit's largest array: it is made a block of rows at a time instead.
        """
        binarize = self._label_binarizer.transform
        width = binarize(y[:1]).shape[1]
        Y = np.empty((y.shape[0], width), dtype=bool)
        rows = max(1, (1 << 18) // width)  # a 2 MiB int64 block
        for start in range(0, y.shape[0], rows):
            Y[start : start + rows] = binarize(y[start : start + rows])
        return Y

    def _dask_targets(self, X, y, sw, incremental, first_pass, batches):
        if y.ndim != 1:
            raise ValueError(
                f"y must be 1-D on dask (one label per sample), got shape {tuple(y.shape)}; "
                "multi-label targets train on in-memory arrays only"
            )
        found, _ = _dask.first_look(X, y, sw, classes=True, batches=batches)
        found = _validation.check_labels(found, found.shape[0])
        check_classification_targets(found)
        self._encode_y(found, incremental, first_pass)
        self.n_outputs_ = self._label_binarizer.transform(self.classes_[:1]).shape[1]
        return self._label_binarizer.transform

    def _validation_score(self, y_val: Any, out: np.ndarray, sw: Any) -> float:
        if not np.isfinite(out).all():
            return np.nan
        pred = self._label_binarizer.inverse_transform(out.ravel() if out.shape[1] == 1 else out)
        return accuracy_score(
            self._label_binarizer.inverse_transform(y_val), pred, sample_weight=sw
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : array or sparse matrix of shape (n_samples, n_features)
            NumPy, SciPy sparse (csr/csc), or an array of any supported backend.
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            Class labels, or a label indicator matrix for multi-label.
        sample_weight : array of shape (n_samples,), optional
            Weights of the samples, in the loss and the penalty's scaling.  A
            mini-batch whose weights sum to zero raises ValueError (its mean
            gradient is undefined): before training when the batches are not
            shuffled, else at the epoch that draws it.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Before training: for NumPy, SciPy sparse and other host input,
            scikit-learn's own errors; for arrays of other backends, xpnet's
            (X a non-empty 2-D array of real numbers, all finite; y one label
            per sample, never a mix of strings and numbers, none missing).  A
            malformed ``device`` (``"banana"``) for any input.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._solver_is_stochastic())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch of the stochastic solver over (X, y).

        ``classes`` (all the labels) is required on the first call.
        """
        if not _dask.is_dask(y):
            y = _host(y)  # labels live on the host, as classes_ does
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if not _dask.is_dask(y) and type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X: Any) -> Any:
        """Probability estimates, one column per class (two for a binary problem).

        Returns an array in X's namespace, on X's device, in X's float dtype.
        """
        if _dask.is_dask(X):
            return self._dask_rows(self.predict_proba, X, max(len(self.classes_), 2), float)
        X = self._predict_input(X)
        model = self._model_for(X)
        return follow(model._proba(model._outputs(X)), X, keep_float=True)

    def predict_log_proba(self, X: Any) -> Any:
        """The logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        if _dask.is_dask(proba):
            return _dask.log(proba)
        return _target.target_of(proba).xp.log(proba)

    def predict(self, X: Any) -> Any:
        """Predicted labels (or a label indicator matrix for multi-label).

        Numeric labels come back in X's namespace and on its device; others as
        a NumPy array.
        """
        if _dask.is_dask(X):
            multilabel = self._label_binarizer.y_type_ not in ("binary", "multiclass")
            width = len(self.classes_) if multilabel else None
            return self._dask_rows(self.predict, X, width, self.classes_.dtype)
        X = self._predict_input(X)
        model = self._model_for(X)
        out = model._outputs(X)
        if self._label_binarizer.y_type_ in ("binary", "multiclass"):
            labels = model._labels(model._class_index(out), X)
            return _target.to_host(labels) if _target.is_host_input(X) else labels
        indicator = self._label_binarizer.inverse_transform(_target.to_host(out))
        return indicator if _target.is_host_input(X) else follow(indicator, X, keep_float=False)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (subset accuracy for multi-label), as scikit-learn's."""
        if _dask.is_dask(X):  # before the predictions are computed
            check_consistent_length(X, y, sample_weight)
        pred, y, sample_weight = _dask.computed(self.predict(X), y, sample_weight)
        pred = _target.to_host(pred)
        return float(accuracy_score(_host(y), pred, sample_weight=_host(sample_weight)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's, on any array backend.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor` with the same
    parameters, defaults, fitted attributes and numbers, trained by xpnet on
    NumPy, CuPy, PyTorch, JAX or array_api_strict.  ``loss`` is
    "squared_error" (identity output) or "poisson" (exponential output,
    non-negative targets).
    """

    __doc__ += _SHARED_DOC

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backend=None,
        device=None,
        checkpoint=None,
        checkpoint_every=1,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def _output_name(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _encode_y(self, y: np.ndarray, incremental: bool, first_pass: bool) -> np.ndarray:
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs non-negative targets y; found negative values")
        return y

    def _dask_targets(self, X, y, sw, incremental, first_pass, batches):
        _, negatives = _dask.first_look(X, y, sw, classes=False, batches=batches)
        if self.loss == "poisson" and negatives:
            raise ValueError("loss='poisson' needs non-negative targets y; found negative values")
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return _dask.column

    def _validation_score(self, y_val: Any, out: np.ndarray, sw: Any) -> float:
        if not np.isfinite(out).all():
            return np.nan
        return r2_score(y_val, out.ravel() if out.shape[1] == 1 else out, sample_weight=sw)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : array or sparse matrix of shape (n_samples, n_features)
            NumPy, SciPy sparse (csr/csc), or an array of any supported backend.
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array of shape (n_samples,), optional
            Weights of the samples.  A mini-batch whose weights sum to zero
            raises ValueError, as in :meth:`MLPClassifier.fit`.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Before training: for NumPy, SciPy sparse and other host input,
            scikit-learn's own errors; for arrays of other backends, xpnet's
            (X a non-empty 2-D array of real numbers, all finite; y one target,
            or row of targets, per sample: finite numbers).  A malformed
            ``device`` (``"banana"``) for any input.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._solver_is_stochastic())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch of the stochastic solver over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predicted values, in X's namespace, on X's device, in X's float dtype."""
        if _dask.is_dask(X):
            width = None if self.n_outputs_ == 1 else self.n_outputs_
            return self._dask_rows(self.predict, X, width, float)
        X = self._predict_input(X)
        model = self._model_for(X)
        out = model._outputs(X)
        if self.n_outputs_ == 1:
            with model._target.activate():
                out = model._target.xp.reshape(out, (-1,))
        return follow(out, X, keep_float=True)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The coefficient of determination R^2, as scikit-learn's."""
        if _dask.is_dask(X):  # before the predictions are computed
            check_consistent_length(X, y, sample_weight)
        pred, y, sample_weight = _dask.computed(self.predict(X), y, sample_weight)
        pred = _target.to_host(pred)
        return float(r2_score(_host(y), pred, sample_weight=_host(sample_weight)))
