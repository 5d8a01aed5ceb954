"""A trained network on a device: what :func:`xpnet.fit` returns and the estimators predict with."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _sources, _target, _validation
from ._codec import FLOATS, Invalid, is_int, is_real, labels_from_node, labels_node
from ._exceptions import ModelFileError
from ._network import ACTIVATIONS, OUTPUTS, forward, mean_loss, out_activation
from ._rows import one_hot

if TYPE_CHECKING:  # the file modules (zipfile, json) load when a file is written or read
    from ._files import Archive


class _Outputs:
    """A network's outputs on validated input, on its device: what the estimators, the grid
    and the plots ask of a :class:`Model` (its parameters, activation, output function,
    dtype, classes and target come with the model)."""

    _target: _target.Target
    params: list
    activation: str
    output: str
    dtype: Any
    classes_: np.ndarray | None

    def outputs(self, X: Any) -> Any:
        """The output layer's values for validated ``X``, on the model's device.

        Large inputs go through in chunks of :func:`chunk_rows` rows, so that the
        layer values of all rows are never on the device at once; each row's
        outputs are those of an unchunked pass.
        """
        t = self._target
        rows, n = chunk_rows(self), X.shape[0]
        with t.activate():
            if n <= rows:
                return self._forward(as_input(t, X, self.dtype))
            # [start:stop, :] slices every backend's arrays and SciPy's sparse rows alike
            chunks = (X[i : min(i + rows, n), :] for i in range(0, n, rows))
            parts = [self._forward(as_input(t, chunk, self.dtype)) for chunk in chunks]
            return t.xp.concat(parts, axis=0)

    def _forward(self, Xt: Any) -> Any:
        xp = self._target.xp
        _, z = forward(xp, self.params, Xt, self.activation)
        return out_activation(xp, self.output, z)

    def class_index(self, out: Any) -> Any:
        """Predicted class indices (into :attr:`classes_`) from outputs, on the device.

        One logistic output picks the positive class above 0.5: the argmax of
        ``[1 - p, p]`` (``1 - p`` is exact for ``p >= 0.5``, ties go to class 0).
        """
        with self._target.activate():
            return self._target.xp.argmax(self.probabilities(out), axis=-1)

    def probabilities(self, out: Any) -> Any:
        """Class probabilities from outputs: two columns for one logistic output."""
        if out.shape[-1] != 1:
            return out
        with self._target.activate():
            return self._target.xp.concat([1.0 - out, out], axis=-1)

    def labels_of(self, index: Any, X: Any) -> Any:
        """``classes_[index]``, in X's namespace and on its device for numeric labels."""
        if self.classes_.dtype.kind not in "biuf":
            return self.classes_[_target.to_host(index)]
        here = _target.target_of(X)
        return here.xp.take(here.asarray(self.classes_), here.asarray(index), axis=0)


class Model(_Outputs):
    """A trained multi-layer perceptron, with its parameters on a device.

    Made by :func:`xpnet.fit` and :func:`xpnet.fit_many`.  Methods take data
    from any backend and return results in the caller's namespace, on its
    device.  On a dask X, predictions are lazy, chunk by chunk (a chunk's NaN
    raises when it is computed); ``score`` and ``loss`` return floats.

    Attributes
    ----------
    backend : str
        The backend that holds the parameters ("numpy", "cupy", "torch", ...).
    device : object
        The device within that backend.
    backend_reason : str or None
        Why ``backend="auto"`` chose them (an estimate of a pass on each); None otherwise.
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
    settings : dict
        The :func:`xpnet.fit` arguments it was trained with (``hidden``,
        ``activation``, ``epochs``, ``lr``, ``l2``, ``seed``, ``log_every``):
        ``xpnet.fit(X, y, **model.settings)`` trains it again.
    stopped : str or None
        None when training ran all its passes; "interrupted" when it was
        stopped by Ctrl-C (the parameters are those of the last finished pass).
    """

    def __init__(
        self,
        *,
        target: _target.Target,
        params: list,
        dtype: Any,
        hidden: tuple[int, ...],
        activation: str,
        l2: float,
        classes: np.ndarray | None,
        n_features_in: int,
        loss_curve: list[tuple[int, float]],
        output: str = "softmax",
        settings: dict | None = None,
        stopped: str | None = None,
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
        self.output = output
        self.settings = dict(settings or {})
        self.stopped = stopped

    @property
    def backend(self) -> str:
        return self._target.name

    @property
    def backend_reason(self) -> str | None:
        """Why ``backend="auto"`` trained here, in words; None when the backend was named
        or followed the data."""
        return self._target.reason

    @property
    def target(self) -> _target.Target:
        """Where the parameters live: the backend's namespace and the device."""
        return self._target

    @property
    def device(self) -> Any:
        return self._target.device

    def __repr__(self) -> str:
        classes = "" if self.classes_ is None else f" classes={len(self.classes_)}"
        return (
            f"<xpnet.Model hidden={self.hidden} activation={self.activation!r}{classes} "
            f"backend={self.backend!r} device={self.device!s} "
            f"dtype={_target.dtype_name(self.dtype)}>"
        )

    # -- files and pickles --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path``, to be read back by :func:`xpnet.load`.

        The file (an ``.npz`` archive, whatever its name) holds the parameters
        as NumPy arrays in their dtype and a JSON description: layer sizes,
        activation, classes, settings, loss curve, and the backend and device
        it is saved from.  It is written to a temporary file that then replaces
        ``path`` at once, so an existing file is never left half-written.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; its directory must exist.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        meta, arrays = self.record()
        from . import _files  # zipfile and json load with the first file

        return _files.write(path, "model", {"model": meta}, arrays)

    def __getstate__(self) -> dict:
        return _pickled(self)

    def __setstate__(self, state: dict) -> None:
        _unpickle(self, state)

    def record(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        """The model's description (JSON-able) and its host arrays, named with ``prefix``."""
        return _record(self, prefix)

    # -- public ---------------------------------------------------------------------------
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

        Raises
        ------
        ValueError
            Before any work, unless ``X`` is a non-empty 2-D array of real
            numbers, all finite, with :attr:`n_features_in_` columns.
        """
        width = max(len(self.classes_), 2)
        lazy = self._lazily(self.predict_proba, X, width=width, dtype=float, like=self.dtype)
        if lazy is not None:  # rows in chunks: each chunk predicted as an in-memory X
            return lazy
        X = _validation.check_X(X, n_features=self.n_features_in_, when="predict")
        return like_input(self.probabilities(self.outputs(X)), X, keep_float=True)

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample.

        Returns
        -------
        array of shape (n_samples,)
            Labels from :attr:`classes_`, in ``X``'s namespace and on its device
            when the labels are numbers; a NumPy array otherwise (most
            backends cannot hold strings).

        Raises
        ------
        ValueError
            As :meth:`predict_proba`.
        """
        lazy = self._lazily(self.predict, X, width=None, dtype=self.classes_.dtype)
        if lazy is not None:
            return lazy
        X = _validation.check_X(X, n_features=self.n_features_in_, when="predict")
        return self.labels_of(self.class_index(self.outputs(X)), X)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of samples whose predicted label equals ``y``.

        A label the model was not trained on counts as a wrong prediction, as
        in scikit-learn's ``accuracy_score``.

        Raises
        ------
        ValueError
            As :meth:`predict_proba` for ``X``; and for labels that are not one
            per sample, mix strings and numbers, are missing (NaN, None), are of
            another kind than :attr:`classes_` (strings for a model of numbers,
            or the reverse), or are continuous (floats that are not whole).
        """
        source = _sources.source_of(X, y)
        if source.chunked:  # one compute: the predictions and y
            predicted, y = source.predictions_and_labels(self.predict, X, y)
            y = _validation.check_labels(y, predicted.shape[0])
            _validation.check_known_kind(y, self.classes_)
            return float(np.mean(_target.to_host(predicted) == y))
        X = _validation.check_X(X, n_features=self.n_features_in_, when="predict")
        y = _validation.check_labels(y, X.shape[0])
        _validation.check_known_kind(y, self.classes_)
        return float(np.mean(_target.to_host(self.predict(X)) == y))

    def loss(self, X: Any, y: Any) -> float:
        """The article's loss on ``(X, y)``.

        ``(1/N) * (sum_i -log p_i[y_i] + l2/2 * sum |W|^2)``, with the ``l2``
        used in training.  Every label in ``y`` must be one of :attr:`classes_`.

        Raises
        ------
        ValueError
            As :meth:`score`, and for labels the model was not trained on.
        """
        source = _sources.source_of(X)
        if source.chunked:
            return source.loss(self, X, y)
        X = _validation.check_X(X, n_features=self.n_features_in_, when="predict")
        y = _validation.check_labels(y, X.shape[0])
        _validation.check_known_kind(y, self.classes_)
        _validation.check_known_labels(y, self.classes_)
        t = self._target
        Xt = t.asarray(X, self.dtype)
        Y = one_hot(t, np.searchsorted(self.classes_, y), len(self.classes_), self.dtype)
        terms = dict(activation=self.activation, output=self.output, l2=self.l2)
        with t.activate():
            return float(_target.to_host(mean_loss(t.xp, self.params, Xt, Y, **terms)))

    def _lazily(self, predict: Any, X: Any, **how: Any) -> Any:
        """``predict`` over rows in chunks, lazily; None for rows in memory."""
        return _sources.source_of(X).lazily(predict, X, n_features=self.n_features_in_, **how)

    # -- moving -----------------------------------------------------------------------------
    def to(self, backend: str, device: Any = None, *, fallback: bool = True) -> Model:
        """A new Model with the same parameters, moved to ``backend`` and ``device``.

        Falls back to NumPy as :func:`xpnet.fit` does when the backend is not
        usable (``fallback=False`` raises instead).  The dtype is kept where the
        new backend has it; float64 parameters become float32 where it has no
        float64 (JAX without x64, torch on MPS), with a UserWarning.

        Raises
        ------
        ValueError
            For an unknown backend or a malformed device (``"banana"``); a
            well-formed device this machine lacks falls back instead.
        BackendUnavailableError
            When the backend cannot be used and ``fallback=False``.
        """
        target = _target.resolve(backend, device, None, fallback)
        dtype = _target.dtype_on(target, self.dtype, narrowing="float64 parameters become float32")
        fields = dict(
            hidden=self.hidden, activation=self.activation, l2=self.l2, classes=self.classes_,
            n_features_in=self.n_features_in_, loss_curve=list(self.loss_curve),
            output=self.output, settings=self.settings, stopped=self.stopped,
        )  # fmt: skip
        return Model(
            target=target, params=_target.moved(target, self.params, dtype), dtype=dtype, **fields
        )


#: A pickled Model's state says which layout it has, so that later xpnets can read it.
_STATE_VERSION = 1
#: The attributes of a Model that its record holds; any others are pickled as they are.
_RECORDED = frozenset(
    ("_target", "params", "dtype", "hidden", "activation", "l2", "classes_", "n_features_in_",
     "loss_curve", "output", "settings", "stopped")
)  # fmt: skip


class Stored(NamedTuple):
    """A model's record, checked, with its host parameters."""

    fields: dict
    params: list
    dtype: str
    backend: str
    device: str

    @classmethod
    def read(cls, meta: Any, arrays: dict, where: Any, prefix: str) -> Stored:
        """The model described by ``meta`` and ``arrays``, checked; :class:`Invalid` says
        what is wrong."""
        if not isinstance(meta, dict):
            raise Invalid("its model description is not a JSON object")
        missing = [
            k for k in ("layers", "activation", "output", "l2", "dtype", "classes", "loss_curve")
            if k not in meta
        ]  # fmt: skip
        if missing:
            raise Invalid(f"its description lacks {', '.join(missing)}")
        layers = meta["layers"]
        if not (
            isinstance(layers, list) and len(layers) >= 2
            and all(is_int(n) and n >= 1 for n in layers)
        ):  # fmt: skip
            raise Invalid(f"its layer sizes {layers!r} are not a list of at least 2 positive ints")
        if meta["activation"] not in ACTIVATIONS:
            raise Invalid(f"its activation {meta['activation']!r} is not one of {ACTIVATIONS}")
        if meta["output"] not in OUTPUTS:
            raise Invalid(f"its output {meta['output']!r} is not one of {OUTPUTS}")
        l2 = meta["l2"]
        if not is_real(l2) or not math.isfinite(l2) or l2 < 0:
            raise Invalid(f"its l2 {l2!r} is not a non-negative number")
        dtype = meta["dtype"]
        if dtype not in FLOATS:
            raise Invalid(f"its dtype {dtype!r} is not float32 or float64")
        curve = meta["loss_curve"]
        if not isinstance(curve, list) or not all(
            isinstance(p, list) and len(p) == 2 and is_int(p[0]) and is_real(p[1]) for p in curve
        ):
            raise Invalid("its loss curve is not a list of [pass, loss] pairs")
        stopped = meta.get("stopped")
        if stopped is not None and not isinstance(stopped, str):
            raise Invalid(f"its 'stopped' {stopped!r} is not a string")
        backend, device = meta.get("backend", "numpy"), meta.get("device")
        if not isinstance(backend, str) or not (device is None or isinstance(device, str)):
            raise Invalid("its backend and device are not strings")
        settings = _target.decoder(arrays)(meta.get("settings", {}), f"{prefix}settings")
        if not isinstance(settings, dict):
            raise Invalid("its settings are not a JSON object")
        classes = None
        if meta["classes"] is not None:
            if not isinstance(meta["classes"], dict):
                raise Invalid("its classes are not described")
            classes = labels_from_node(meta["classes"], arrays, f"{prefix}classes")
            if meta["output"] == "softmax" and len(classes) != layers[-1]:
                raise Invalid(
                    f"it has {len(classes)} classes but {layers[-1]} outputs (layer sizes {layers})"
                )
        names = [f"{prefix}{p}{i}" for i in range(len(layers) - 1) for p in "Wb"]
        from . import _files  # zipfile and json load with the first file

        found = _files.require(_files.Archive("model", meta, arrays), where, names)
        params = []
        for i in range(len(layers) - 1):
            W, b = found[2 * i], found[2 * i + 1]
            for name, a, shape in ((names[2 * i], W, (layers[i], layers[i + 1])),
                                   (names[2 * i + 1], b, (layers[i + 1],))):  # fmt: skip
                if a.shape != shape:
                    raise Invalid(
                        f"{name} has shape {a.shape}, but the layer sizes {layers} need {shape}"
                    )
                if a.dtype != np.dtype(dtype):
                    raise Invalid(f"{name} has dtype {a.dtype}, but the model is {dtype}")
            params.append((W, b))
        fields = dict(
            hidden=tuple(layers[1:-1]), activation=meta["activation"], l2=float(l2),
            classes=classes, n_features_in=layers[0],
            loss_curve=[(i, float(loss)) for i, loss in curve], output=meta["output"],
            settings=settings, stopped=stopped,
        )  # fmt: skip
        return cls(fields, params, dtype, backend, device or "cpu")

    def build(self, target: _target.Target) -> Model:
        """The model, its parameters moved to ``target``."""
        narrowing = "the float64 parameters are loaded as float32"
        dtype = _target.dtype_on(target, self.dtype, narrowing=narrowing)
        params = _target.moved(target, self.params, dtype)
        return Model(target=target, params=params, dtype=dtype, **self.fields)


# -- the record: files and pickles -----------------------------------------------------
def _record(model: Model, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """The model's description (JSON-able) and its host arrays, named with ``prefix``."""
    arrays: dict[str, np.ndarray] = {}
    layers = [int(model.n_features_in_)]
    for i, (W, b) in enumerate(model.params):
        arrays[f"{prefix}W{i}"] = _target.to_host(W)
        arrays[f"{prefix}b{i}"] = _target.to_host(b)
        layers.append(int(arrays[f"{prefix}W{i}"].shape[1]))
    encode = _target.encoder()
    classes = None
    if model.classes_ is not None:
        classes = labels_node(np.asarray(model.classes_), f"{prefix}classes", arrays)
    meta = {
        "layers": layers,
        "activation": model.activation,
        "output": model.output,
        "l2": float(model.l2),
        "dtype": _target.dtype_name(model.dtype),
        "classes": classes,
        "settings": encode(dict(model.settings), f"{prefix}settings"),
        "loss_curve": [[int(i), float(loss)] for i, loss in model.loss_curve],
        "stopped": model.stopped,
        "backend": model.backend,
        "device": model.target.device_text(),
    }
    arrays.update(encode.arrays)
    return meta, arrays


def from_archive(
    archive: Archive, where: Any, what: str, prefix: str, backend: Any, device: Any,
    fallback: bool,
) -> Model:  # fmt: skip
    """The model of ``archive`` (its description under "model"), placed as
    :func:`xpnet.load` says; a ModelFileError names what is wrong with it."""
    try:
        stored = Stored.read(archive.meta.get("model"), archive.arrays, where, prefix)
    except Invalid as exc:
        raise ModelFileError(f"{where} is not a valid xpnet {what}: {exc}") from None
    target = _target.placed(stored.backend, stored.device, backend, device, fallback)
    return stored.build(target)


def _pickled(model: Model) -> dict:
    """A Model's pickled state: its record, and any other attributes as they are.

    The parameters travel as host arrays with the names of their backend and device, never
    the array library itself: a pickle made on a GPU loads on a CPU-only machine."""
    meta, arrays = _record(model)
    others = {k: v for k, v in vars(model).items() if k not in _RECORDED}
    return {
        "xpnet_model_state": _STATE_VERSION,
        "meta": meta,
        "arrays": arrays,
        "others": others,
    }


def _unpickle(model: Model, state: dict) -> None:
    """Fill ``model`` from :func:`_pickled`'s state, on the backend it was pickled from
    (NumPy, with a :class:`~xpnet.BackendFallbackWarning`, when that is not usable)."""
    where = "this pickled xpnet.Model"
    if not isinstance(state, dict) or not isinstance(state.get("arrays"), dict):
        raise ModelFileError(f"{where} is not a valid xpnet model: its state is not xpnet's")
    version = state.get("xpnet_model_state")
    if not is_int(version):
        raise ModelFileError(f"{where} is not a valid xpnet model: its state has no version")
    if version > _STATE_VERSION:
        raise ModelFileError(
            f"{where} was pickled by a newer xpnet (state {version!r}); upgrade xpnet to load it"
        )
    from . import _files

    archive = _files.Archive("model", {"model": state.get("meta")}, state["arrays"])
    built = from_archive(archive, where, "model", "", None, None, True)
    model.__dict__.update(vars(built))
    model.__dict__.update(state.get("others") or {})


#: Bytes of layer values one chunk of rows may hold on the device while predicting.
PREDICT_CHUNK_BYTES = 64 * 2**20


def chunk_rows(model: Model) -> int:
    """Rows per chunk when ``model`` predicts: within :data:`PREDICT_CHUNK_BYTES`.

    A forward pass keeps every layer's values (the input's included), and a
    layer's product and its sum with the bias exist before its activation, so
    a row costs the sum of the widths plus twice the widest, in the model's
    float size: 42,799 rows of a 2-64-2 network in float64.
    """
    widths = [model.n_features_in_, *(W.shape[-1] for W, _ in model.params)]
    itemsize = np.dtype(_target.dtype_name(model.dtype)).itemsize
    return max(1, PREDICT_CHUNK_BYTES // (itemsize * (sum(widths) + 2 * max(widths))))


def as_input(target: _target.Target, X: Any, dtype: Any) -> Any:
    """X on ``target`` in ``dtype``; SciPy sparse X stays sparse where the target takes it."""
    if _validation.is_sparse(X):
        if target.takes_host_sparse():
            return X.astype(np.dtype(_target.dtype_name(dtype)))
        X = X.toarray()
    return target.asarray(X, dtype)


def like_input(result: Any, X: Any, *, keep_float: bool) -> Any:
    """``result`` moved to X's namespace and device, and to X's float dtype.

    Lists, SciPy sparse matrices and NumPy arrays get NumPy results.
    """
    here = _target.target_of(X)
    out = here.asarray(result)
    dtype = getattr(X, "dtype", None)
    if keep_float and dtype is not None and here.xp.isdtype(dtype, "real floating"):
        if out.dtype != dtype:
            out = here.xp.astype(out, dtype)
    return out
