"""The trained classifier returned by :func:`xpnet.fit`."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from . import _backends, _validation
from ._network import forward, objective, out_activation
from ._train import to_target


class Model:
    """A trained multi-layer perceptron classifier, with its parameters on a device.

    Made by :func:`xpnet.fit`; not meant to be built by hand.  Methods accept
    data from any backend and return results in the caller's namespace and on
    the caller's device.

    Attributes
    ----------
    backend : str
        The backend that holds the parameters ("numpy", "cupy", "torch", ...).
    device : object
        The device within that backend.
    dtype : dtype
        The floating dtype of the parameters, an object of the backend's namespace.
    hidden : tuple of int
        The hidden layer sizes.
    activation : str
        The hidden activation.
    l2 : float
        The L2 strength used in training and in :meth:`loss`.
    classes_ : numpy.ndarray
        The class labels, sorted; predictions are drawn from these.
    n_features_in_ : int
        The number of features seen in training.
    loss_curve : list of (int, float)
        ``(pass, loss)`` after pass 0, every ``log_every`` passes and the last pass.
    params : list of (W, b)
        The weights and biases, on the model's device.
    """

    def __init__(
        self,
        *,
        target: _backends.Target,
        params: list,
        dtype: Any,
        hidden: tuple[int, ...],
        activation: str,
        l2: float,
        classes: np.ndarray,
        n_features_in: int,
        loss_curve: list[tuple[int, float]],
    ) -> None:
        self._target = target
        self.params = params
        self.dtype = dtype
        self.hidden = hidden
        self.activation = activation
        self.l2 = l2
        self.classes_ = classes
        self.n_features_in_ = n_features_in
        self.loss_curve = loss_curve

    @property
    def backend(self) -> str:
        return self._target.name

    @property
    def device(self) -> Any:
        return self._target.device

    def __repr__(self) -> str:
        return (
            f"<xpnet.Model hidden={self.hidden} activation={self.activation!r} "
            f"classes={len(self.classes_)} backend={self.backend!r} device={self.device!s} "
            f"dtype={_validation.dtype_name(self.dtype)}>"
        )

    # -- evaluation -------------------------------------------------------------
    def _logits(self, X: Any) -> Any:
        Xt = self._target.asarray(X, self.dtype)
        with self._target.activate():
            return forward(self._target.xp, self.params, Xt, self.activation)[1]

    def _class_index(self, Xt: Any) -> Any:
        """Predicted class indices (into :attr:`classes_`) of ``Xt``, already on
        the model's device in its dtype; the result stays on the device."""
        with self._target.activate():
            z = forward(self._target.xp, self.params, Xt, self.activation)[1]
            return self._target.xp.argmax(z, axis=-1)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, one column per class in :attr:`classes_`.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            From any backend, or a list.

        Returns
        -------
        array of shape (n_samples, n_classes)
            In ``X``'s namespace and on its device; in ``X``'s float dtype
            when ``X`` is floating, else in the model's dtype.
        """
        X = _validation.check_X(X, n_features=self.n_features_in_)
        with self._target.activate():
            proba = out_activation(self._target.xp, "softmax", self._logits(X))
        return _follow(proba, X, keep_float=True)

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample.

        Returns
        -------
        array of shape (n_samples,)
            Labels from :attr:`classes_`, in ``X``'s namespace and on its device
            when the labels are numbers; a NumPy array otherwise (most
            backends cannot hold strings).
        """
        X = _validation.check_X(X, n_features=self.n_features_in_)
        with self._target.activate():
            index = self._target.xp.argmax(self._logits(X), axis=-1)
        if self.classes_.dtype.kind not in "biuf":
            return self.classes_[_backends.to_host(index)]
        here = _backends.target_of(X)
        return here.xp.take(here.asarray(self.classes_), here.asarray(index), axis=0)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of samples whose predicted label equals ``y``."""
        X = _validation.check_X(X, n_features=self.n_features_in_)
        y = _validation.check_labels(y, X.shape[0])
        return float(np.mean(_backends.to_host(self.predict(X)) == y))

    def loss(self, X: Any, y: Any) -> float:
        """The article's loss on ``(X, y)``.

        ``(1/N) * (sum_i -log p_i[y_i] + l2/2 * sum |W|^2)``, with the ``l2``
        used in training.  Every label in ``y`` must be one of :attr:`classes_`.
        """
        X = _validation.check_X(X, n_features=self.n_features_in_)
        y = _validation.check_labels(y, X.shape[0])
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y has labels the model was not trained on: {unknown.tolist()}")
        t = self._target
        Xt = t.asarray(X, self.dtype)
        Y = one_hot(t, np.searchsorted(self.classes_, y), len(self.classes_), self.dtype)
        with t.activate():
            total = objective(
                t.xp, self.params, Xt, Y, activation=self.activation, output="softmax", l2=self.l2
            )
        return float(_backends.to_host(total)) / X.shape[0]

    # -- moving -----------------------------------------------------------------
    def to(self, backend: str, device: Any = None, *, fallback: bool = True) -> Model:
        """A new Model with the same parameters, moved to ``backend`` and ``device``.

        Falls back to NumPy as :func:`xpnet.fit` does when the backend is not
        usable (``fallback=False`` raises instead).  The dtype is kept where the
        new backend has it.
        """
        target = _backends.resolve(backend, device, None, fallback)
        name = _validation.dtype_name(self.dtype)
        if name == "float64" and not target.has_float64():
            name = "float32"
        dtype = getattr(target.xp, name)
        return Model(
            target=target,
            params=to_target(target, self.params, dtype),
            dtype=dtype,
            hidden=self.hidden,
            activation=self.activation,
            l2=self.l2,
            classes=self.classes_,
            n_features_in=self.n_features_in_,
            loss_curve=list(self.loss_curve),
        )


def one_hot(target: _backends.Target, index: np.ndarray, n_classes: int, dtype: Any) -> Any:
    """One-hot rows on the target's device, built by comparison, not assignment."""
    xp = target.xp
    idx = target.asarray(index.astype(np.int32))
    classes = xp.arange(n_classes, dtype=idx.dtype, device=target.device)
    return xp.astype(idx[:, None] == classes[None, :], dtype)


def _follow(result: Any, X: Any, *, keep_float: bool) -> Any:
    """``result`` moved to X's namespace and device (and X's float dtype)."""
    here = _backends.target_of(X)
    out = here.asarray(result)
    xpX = array_api_compat.array_namespace(X)
    if keep_float and xpX.isdtype(X.dtype, "real floating") and out.dtype != X.dtype:
        out = here.xp.astype(out, X.dtype)
    return out
