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

import inspect
import os
import warnings
from abc import ABC, abstractmethod
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier as _SkClassifier
from sklearn.neural_network import MLPRegressor as _SkRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from . import _backends, _estimator_training, _sources, _target, _validation
from ._estimator_training import STOCHASTIC
from ._exceptions import BackendFallbackWarning
from ._model import Model, like_input
from ._optim import OptState

#: The parameters xpnet adds to scikit-learn's, with their constraints.
_OWN_CONSTRAINTS: dict = {
    "backend": [StrOptions({"auto", *_backends.BACKENDS}), None],
    "device": "no_validation",
    "checkpoint": [str, os.PathLike, None],
    "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
}


class _BaseMLP(BaseEstimator, ABC):
    """The shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _parameter_constraints: dict = {**_SkClassifier._parameter_constraints, **_OWN_CONSTRAINTS}

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

    # -- subclasses -------------------------------------------------------------
    @abstractmethod
    def _output_name(self) -> str:
        """The output layer's function: softmax, logistic, identity or exp."""

    @abstractmethod
    def _encode_y(self, y: np.ndarray, incremental: bool, first_pass: bool) -> np.ndarray:
        """y as the network's target matrix (labels binarised for a classifier)."""

    @abstractmethod
    def _chunked_targets(self, source, X, y, sw, incremental, first_pass, batches) -> Any:
        """Check (X, y, sw) held in chunks by ``source`` in one compute, set the label
        encoding and ``n_outputs_``; the function from a chunk's y to its target matrix.
        ``batches``: the batch size whose unshuffled batches' weights to check, or None."""

    @abstractmethod
    def _validation_score(self, y_val: Any, out: np.ndarray, sw: Any) -> float:
        """The early-stopping score of the outputs ``out`` against ``y_val``."""

    def _validate_params(self) -> None:
        """scikit-learn's parameter validation; an unknown ``backend`` keeps its
        InvalidParameterError, with the closest name (or, for "cuda" and "gpu", the
        backends with GPUs) after its message."""
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            hint = _target.backend_hint(self.backend)
            if not hint or "'backend' parameter" not in str(exc):
                raise
            raise InvalidParameterError(f"{exc} {hint[0].upper()}{hint[1:]}") from exc

    # -- input ------------------------------------------------------------------

    def _predict_input(self, X: Any) -> Any:
        check_is_fitted(self)
        if _target.is_host_input(X):
            return validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return _validation.check_X(X, n_features=self.n_features_in_, when="predict")

    def _check_namespace(self, X: Any, method: str) -> None:
        """Under scikit-learn's ``array_api_dispatch``, its rule: X of another namespace or
        device than the fit's raises ValueError (outside it, results follow X instead).

        Estimators from files older than this rule carry no fit namespace and are not checked.
        """
        fitted = getattr(self, "_fit_namespace", None)
        if fitted is None or not get_config()["array_api_dispatch"]:
            return
        fitted_device = self._fit_device
        name, device = _target.namespace_and_device(X)
        if (name, device) == (fitted, fitted_device):
            return
        if _target.adapter_of(X) is None:  # a list, DataFrame or sparse matrix: NumPy's
            kind = "sparse array" if _validation.is_sparse(X) else "array-like"
            detail = (
                f"Array namespace used during fit ({fitted}) is not compatible with the "
                f"{kind} input passed to {method}. Only the NumPy namespace is compatible "
                f"with {kind} inputs."
            )
        elif name != fitted:
            detail = f"Array namespaces used during fit ({fitted}) and {method} ({name}) differ."
        else:
            detail = f"Devices used during fit ({fitted_device}) and {method} ({device}) differ."
        raise ValueError(
            f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace "
            f"and the same device as those passed to fit(). {detail} Pass X as a {fitted} "
            f"array on {fitted_device}, or call {method} outside "
            "sklearn.config_context(array_api_dispatch=True), where xpnet moves X and "
            "returns results in its namespace and on its device."
        )

    def _lazily(self, predict: Any, X: Any, width: int | None, dtype: Any) -> Any:
        """``predict`` of each row chunk of X held in chunks, lazily (float: X's float dtype,
        else the fitted weights'); None for X in memory.  The estimator is fitted."""
        source = _sources.source_of(X)
        how = dict(n_features=self.n_features_in_, width=width, dtype=dtype)
        return source.lazily(predict, X, **how, like=self.coefs_[0].dtype)

    def _scored(self, X: Any, y: Any, sample_weight: Any) -> tuple:
        """The predictions of X, y and the weights, on the host for scikit-learn's metrics;
        lazy ones computed together."""
        source = _sources.source_of(X, y, sample_weight)
        if source.chunked:  # before the predictions are computed
            check_consistent_length(X, y, sample_weight)
        pred, y, sample_weight = source.computed(self.predict(X), y, sample_weight)
        return _target.to_host(pred), _target.for_host(y), _target.for_host(sample_weight)

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
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : array or sparse matrix of shape (n_samples, n_features)
            NumPy, SciPy sparse (csr/csc), or an array of any supported backend.
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (a label indicator matrix for multi-label), or the
            regressor's target values.
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
            (X a non-empty 2-D array of real numbers, all finite; y one label,
            target or row of targets per sample, none missing, labels never a
            mix of strings and numbers).  A malformed ``device`` (``"banana"``)
            for any input.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False):
        # A fit that raises leaves the estimator as it was: a refused refit or warm start
        # keeps the model it had, rather than one half reset to fresh random weights.
        before = dict(self.__dict__)
        try:
            _estimator_training.fit(self, X, y, sample_weight, incremental)
            # where X came from, for predictions under array_api_dispatch (_check_namespace)
            self._fit_namespace, self._fit_device = _target.namespace_and_device(X)
            return self
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

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
        if self.solver not in STOCHASTIC:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                "stochastic."
            )
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags


def _as_column(y: np.ndarray) -> np.ndarray:
    """Regression targets as the network's target matrix: one column per output."""
    return y.reshape(-1, 1) if y.ndim == 1 else y


def _signature_with_loss() -> inspect.Signature:
    """The regressor's ``__init__`` signature: ``loss``, then the base's parameters."""
    base = inspect.signature(_BaseMLP.__init__)
    self, *rest = base.parameters.values()
    loss = inspect.Parameter(
        "loss", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="squared_error"
    )
    return base.replace(parameters=[self, loss, *rest])


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
        bit on NumPy).  A larger ``max_iter`` continues the run, finished or
        not, to the fit of that many epochs (nothing in scikit-learn's epochs
        depends on ``max_iter``; a fit that stopped early has ended for any
        larger one).  The same ``fit`` after a finished run returns its model
        without training: that is how to get it, as :func:`xpnet.load` does
        not read checkpoints.  A checkpoint of other data or parameters
        (``max_iter`` aside), or of more epochs than ``max_iter``, raises
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

    Notes
    -----
    The estimators declare scikit-learn's ``array_api_support`` tag.  Under
    ``sklearn.config_context(array_api_dispatch=True)``, ``predict``, ``predict_proba``,
    ``predict_log_proba`` and ``score`` raise scikit-learn's ValueError for X of another
    namespace or device than the one ``fit`` saw; outside it, xpnet moves X and the results
    follow it.
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

    def _chunked_targets(self, source, X, y, sw, incremental, first_pass, batches):
        if y.ndim != 1:
            raise ValueError(
                f"y must be 1-D in chunks (one label per sample), got shape {tuple(y.shape)}; "
                "multi-label targets train on in-memory arrays only"
            )
        found, _ = source.check_targets(X, y, sw, classes=True, batches=batches)
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

    @available_if(lambda est: est._solver_is_stochastic())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        """One epoch of the stochastic solver over (X, y).

        ``classes`` (all the labels) is required on the first call.
        """
        chunked = _sources.source_of(y).chunked
        if not chunked:
            y = _target.for_host(y)  # labels live on the host, as classes_ does
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if not chunked and type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X: Any) -> Any:
        """Probability estimates, one column per class (two for a binary problem).

        Returns an array in X's namespace, on X's device, in X's float dtype.
        """
        check_is_fitted(self)
        self._check_namespace(X, "predict_proba")
        lazy = self._lazily(self.predict_proba, X, max(len(self.classes_), 2), float)
        if lazy is not None:
            return lazy
        X = self._predict_input(X)
        model = self._model_for(X)
        return like_input(model.probabilities(model.outputs(X)), X, keep_float=True)

    def predict_log_proba(self, X: Any) -> Any:
        """The logarithm of :meth:`predict_proba`."""
        check_is_fitted(self)
        self._check_namespace(X, "predict_log_proba")
        proba = self.predict_proba(X)
        return _target.target_of(proba).xp.log(proba)  # lazily too, for rows in chunks

    def predict(self, X: Any) -> Any:
        """Predicted labels (or a label indicator matrix for multi-label).

        Numeric labels come back in X's namespace and on its device; others as
        a NumPy array.
        """
        check_is_fitted(self)
        self._check_namespace(X, "predict")
        multilabel = self._label_binarizer.y_type_ not in ("binary", "multiclass")
        width = len(self.classes_) if multilabel else None
        lazy = self._lazily(self.predict, X, width, self.classes_.dtype)
        if lazy is not None:
            return lazy
        X = self._predict_input(X)
        model = self._model_for(X)
        out = model.outputs(X)
        if self._label_binarizer.y_type_ in ("binary", "multiclass"):
            labels = model.labels_of(model.class_index(out), X)
            return _target.to_host(labels) if _target.is_host_input(X) else labels
        indicator = self._label_binarizer.inverse_transform(_target.to_host(out))
        return indicator if _target.is_host_input(X) else like_input(indicator, X, keep_float=False)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (subset accuracy for multi-label), as scikit-learn's."""
        check_is_fitted(self)
        self._check_namespace(X, "score")
        pred, y, sample_weight = self._scored(X, y, sample_weight)
        return float(accuracy_score(y, pred, sample_weight=sample_weight))

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

    _parameter_constraints: dict = {**_SkRegressor._parameter_constraints, **_OWN_CONSTRAINTS}

    def __init__(
        self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", **params
    ):
        super().__init__(hidden_layer_sizes, activation, **params)
        self.loss = loss

    # scikit-learn reads the parameters from the signature: scikit-learn's own, ``loss`` first
    __init__.__signature__ = _signature_with_loss()

    def _output_name(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _encode_y(self, y: np.ndarray, incremental: bool, first_pass: bool) -> np.ndarray:
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs non-negative targets y; found negative values")
        return y

    def _chunked_targets(self, source, X, y, sw, incremental, first_pass, batches):
        _, negatives = source.check_targets(X, y, sw, classes=False, batches=batches)
        if self.loss == "poisson" and negatives:
            raise ValueError("loss='poisson' needs non-negative targets y; found negative values")
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return _as_column

    def _validation_score(self, y_val: Any, out: np.ndarray, sw: Any) -> float:
        if not np.isfinite(out).all():
            return np.nan
        return r2_score(y_val, out.ravel() if out.shape[1] == 1 else out, sample_weight=sw)

    @available_if(lambda est: est._solver_is_stochastic())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch of the stochastic solver over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predicted values, in X's namespace, on X's device, in X's float dtype."""
        check_is_fitted(self)
        self._check_namespace(X, "predict")
        width = None if self.n_outputs_ == 1 else self.n_outputs_
        lazy = self._lazily(self.predict, X, width, float)
        if lazy is not None:
            return lazy
        X = self._predict_input(X)
        model = self._model_for(X)
        out = model.outputs(X)
        if self.n_outputs_ == 1:
            with model.target.activate():
                out = model.target.xp.reshape(out, (-1,))
        return like_input(out, X, keep_float=True)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The coefficient of determination R^2, as scikit-learn's."""
        check_is_fitted(self)
        self._check_namespace(X, "score")
        pred, y, sample_weight = self._scored(X, y, sample_weight)
        return float(r2_score(y, pred, sample_weight=sample_weight))
