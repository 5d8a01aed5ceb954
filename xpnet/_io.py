"""Model files and pickles: :func:`load` and the ``save`` methods.

A model, a grid of models or a fitted estimator is saved as one xpnet file
(see :mod:`xpnet._files`): its parameters as host NumPy arrays in their own
dtype, and a JSON description of the rest (layer sizes, activation, output,
labels, training settings and loss curve, the backend and device it was saved
from).  Reading a file executes nothing, and everything read is checked before
a model is built from it: a damaged or foreign file raises
:class:`~xpnet.ModelFileError` saying what is wrong.

A pickled :class:`~xpnet.Model` holds the same description and arrays, so a
pickle made on a GPU loads on a machine without one.

Values that JSON cannot hold are written as tagged objects ``{"$": tag, ...}``:
tuples, arrays (stored as entries of the archive, named by where they sit),
labels, and the few objects of the estimators (their optimizer state, label
binarizer, ``numpy.random.RandomState`` and device parameters).  Anything else
is refused when saving, with the name of what could not be stored.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _backends, _files, _train, _validation
from ._exceptions import BackendFallbackWarning, BackendUnavailableError, ModelFileError, warn
from ._network import ACTIVATIONS, OUTPUTS
from ._optim import OptState

if TYPE_CHECKING:
    from ._estimators import MLPClassifier, MLPRegressor, _BaseMLP
    from ._grid import ModelGrid
    from ._model import Model

__all__ = ["load"]

_FLOATS = ("float32", "float64")
_ESTIMATORS = ("MLPClassifier", "MLPRegressor")
#: A pickled Model's state says which layout it has, so that later xpnets can read it.
_STATE_VERSION = 1
#: The attributes of a Model that its description holds; any others are pickled as they are.
_MODEL_FIELDS = frozenset(
    ("_target", "params", "dtype", "hidden", "activation", "l2", "classes_", "n_features_in_",
     "loss_curve", "output", "settings", "stopped")
)  # fmt: skip
#: Fitted state an estimator rebuilds at each fit, never saved.
_REBUILT = frozenset(("_random_state",))


class _Invalid(Exception):
    """What is wrong with a description; reported as a ModelFileError naming its source."""


# -- the public entry point --------------------------------------------------------------------
def load(
    path: str | os.PathLike,
    backend: str | None = None,
    device: Any = None,
    *,
    fallback: bool = True,
) -> Model | ModelGrid | MLPClassifier | MLPRegressor:
    """Read a model, a grid or an estimator saved by its ``save`` method.

    Parameters
    ----------
    path : str or os.PathLike
        The file written by :meth:`xpnet.Model.save`,
        :meth:`xpnet.ModelGrid.save`, :meth:`xpnet.MLPClassifier.save` or
        :meth:`xpnet.MLPRegressor.save`.
    backend : {None, "auto", "numpy", "cupy", "torch", "jax", "array_api_strict", "dask"}
        Where the parameters go.  None puts a model (or grid) back on the
        backend and device it was saved from when they are usable here, and
        falls back to NumPy with a :class:`~xpnet.BackendFallbackWarning`
        otherwise, so a GPU-trained model loads on a CPU-only machine.  A
        named backend moves it there, falling back as :func:`xpnet.fit` does.
        For an estimator, whose parameters are host arrays, a backend or
        device given here replaces its ``backend`` or ``device`` parameter.
    device : object, optional
        A device of that backend ("cuda:1", "cpu", a torch.device, ...).
        With ``backend=None``, a device of the backend it was saved from.
    fallback : bool, default True
        When the backend cannot be used: True loads onto NumPy with a
        warning, False raises :class:`~xpnet.BackendUnavailableError`.

    Returns
    -------
    Model, ModelGrid, MLPClassifier or MLPRegressor
        An object of the type that was saved.  A float64 model keeps float64
        wherever the backend has it (JAX without ``jax_enable_x64``: float32,
        with a warning).

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ModelFileError
        When the file is truncated, corrupted, not written by xpnet, of a newer
        format, or inconsistent (a missing array, a wrong shape or dtype); the
        message says which.  Nothing in the file is executed to find out.
    BackendUnavailableError
        When the backend cannot be used and ``fallback=False``.

    Examples
    --------
    >>> import os, tempfile
    >>> import xpnet
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, noise=0.20, random_state=0)
    >>> model = xpnet.fit(X, y, hidden=3, epochs=2000)
    >>> path = model.save(os.path.join(tempfile.mkdtemp(), "moons.xpnet"))
    >>> again = xpnet.load(path)
    >>> again
    <xpnet.Model hidden=(3,) activation='tanh' classes=2 backend='numpy' device=cpu dtype=float64>
    >>> round(again.score(X, y), 3)
    0.975
    """
    archive = _files.read(path, ("model", "grid", "estimator"))
    if archive.kind == "model":
        return _model_from(archive, path, "model", "", backend, device, fallback)
    if archive.kind == "grid":
        return _grid_from(archive, path, backend, device, fallback)
    return _estimator_from(archive, path, backend, device, fallback)


def _target_for(
    saved_backend: str, saved_device: str, backend: Any, device: Any, fallback: bool
) -> _backends.Target:
    """Where loaded parameters go: see :func:`load`.  A fallback warning points at the
    caller's line (the ``load`` or ``pickle.loads`` call)."""
    if backend is None and saved_backend not in _backends.BACKENDS:
        reason = f"backend {saved_backend!r}, which the model was saved from, is unknown here"
        if not fallback:
            raise BackendUnavailableError(f"{reason}; pass backend= to choose one")
        warn(f"{reason}. Falling back to NumPy on the CPU.", BackendFallbackWarning)
        return _backends.resolve("numpy", None, None, False)
    if backend is None:
        backend, device = saved_backend, saved_device if device is None else device
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BackendFallbackWarning)
        target = _backends.resolve(backend, device, None, fallback)
    for w in caught:
        if issubclass(w.category, BackendFallbackWarning):
            warn(str(w.message), w.category)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return target


def _dtype_for(target: _backends.Target, name: str) -> Any:
    """``name`` on ``target``; float64 becomes float32, with a warning, where it has none."""
    dtype = _validation.dtype_on(target, name)
    if _validation.dtype_name(dtype) != name:
        warn(
            f"backend {target.name!r} on {target.device} has no float64: the float64 parameters "
            "are loaded as float32 (for JAX, jax.config.update('jax_enable_x64', True) before "
            "loading keeps float64)",
            UserWarning,
        )
    return dtype


# -- values JSON cannot hold ---------------------------------------------------------------------
def _encode_labels(labels: np.ndarray, name: str, arrays: dict) -> dict:
    """Labels (any 1-D array ``numpy.unique`` sorts) as a tagged node, their array in ``arrays``.

    Numbers, bools and unicode are stored as they are; bytes and object arrays of
    strings as unicode, with a note of their dtype; other object arrays of numbers,
    bools and strings as a JSON list, which keeps each one's Python type.
    """
    if labels.ndim != 1:
        raise TypeError(f"{name} must be 1-D to be stored, got shape {labels.shape}")
    kind = labels.dtype.kind
    if kind in "biufcU":
        arrays[name] = labels
        return {"$": "labels", "array": name}
    if kind == "S":
        arrays[name] = np.char.decode(labels, "latin-1")
        return {"$": "labels", "array": name, "as": labels.dtype.str}
    if kind == "O":
        items = labels.tolist()
        if all(isinstance(v, str) for v in items):
            arrays[name] = np.array(items, dtype=str) if items else np.zeros(0, "U1")
            return {"$": "labels", "array": name, "as": "object"}
        values = []
        for v in items:
            v = v.item() if isinstance(v, np.generic) else v
            if not isinstance(v, (bool, int, float, str)):
                raise TypeError(
                    f"{name} holds a label of type {type(v).__name__} ({v!r}), which an xpnet "
                    "file cannot hold; use ints, floats, bools or strings as labels"
                )
            values.append(v)
        return {"$": "labels", "values": values}
    raise TypeError(
        f"{name} has dtype {labels.dtype}, which an xpnet file cannot hold; use ints, floats, "
        "bools or strings as labels"
    )


def _decode_labels(node: dict, arrays: dict, path: str) -> np.ndarray:
    if "values" in node:
        values = node["values"]
        if not isinstance(values, list) or not all(
            isinstance(v, (bool, int, float, str)) for v in values
        ):
            raise _Invalid(f"{path} is not a list of numbers, bools and strings")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    name = node.get("array")
    a = arrays.get(name) if isinstance(name, str) else None
    if a is None:
        raise _Invalid(_lacks(name, path))
    if a.ndim != 1 or a.dtype.kind not in "biufcU":
        raise _Invalid(
            f"{path} ({name}) is not a 1-D array of numbers or strings: "
            f"shape {a.shape}, dtype {a.dtype}"
        )
    stored_as = node.get("as")
    if stored_as is None:
        return a
    if stored_as == "object" and a.dtype.kind == "U":
        return a.astype(object)
    if isinstance(stored_as, str) and re.fullmatch(r"\|S\d+", stored_as) and a.dtype.kind == "U":
        try:
            return np.char.encode(a, "latin-1").astype(stored_as)
        except UnicodeEncodeError:
            raise _Invalid(f"{path} ({name}) is not a list of byte strings") from None
    raise _Invalid(f"{path} is stored as {stored_as!r}, which this xpnet does not know")


class _Encoder:
    """JSON for a nesting of plain values; arrays go to :attr:`arrays`, named by their path."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return str(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biufc":
                self.arrays[path] = value
                return {"$": "array", "name": path}
            return _encode_labels(value, path, self.arrays)
        if isinstance(value, list):
            return [self(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, OptState):
            fields = {name: self(getattr(value, name), f"{path}.{name}") for name in value._fields}
            return {"$": "OptState", **fields}
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {"$": "tuple", "items": [self(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            if not all(isinstance(k, str) and k != "$" for k in value):
                raise TypeError(f"{path} is a dict whose keys are not all strings; cannot store it")
            return {k: self(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, np.random.RandomState):
            name, key, pos, has_gauss, cached = value.get_state(legacy=True)
            self.arrays[f"{path}.key"] = np.asarray(key)
            return {
                "$": "RandomState", "algorithm": name, "key": f"{path}.key", "pos": int(pos),
                "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
            }  # fmt: skip
        if type(value).__name__ == "LabelBinarizer" and type(value).__module__.startswith(
            "sklearn."
        ):
            return {
                "$": "LabelBinarizer",
                "params": self(value.get_params(), f"{path}.params"),
                "classes": _encode_labels(value.classes_, f"{path}.classes_", self.arrays),
                "y_type": str(value.y_type_),
                "sparse_input": bool(value.sparse_input_),
            }
        if isinstance(value, PurePath):
            return {"$": "path", "text": str(value)}
        library = _backends.device_library(value)
        if library is not None:
            text = _backends.device_text(library, value)
            return {"$": "device", "library": library, "text": text}
        raise TypeError(
            f"{path} = {value!r} (of type {type(value).__module__}.{type(value).__qualname__}) "
            "cannot be stored in an xpnet file, which holds only numbers, strings, arrays and "
            "lists of them; pickle the object instead, or replace that value"
        )


class _Decoder:
    """The values of :class:`_Encoder`'s JSON, checked as they are read."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def __call__(self, node: Any, path: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self(v, f"{path}.{i}") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            raise _Invalid(f"{path} is not a value an xpnet file holds")
        tag = node.get("$")
        if tag is None:
            return {k: self(v, f"{path}.{k}") for k, v in node.items()}
        if tag == "array":
            name = node.get("name")
            if not isinstance(name, str) or name not in self.arrays:
                raise _Invalid(_lacks(name, path))
            return self.arrays[name]
        if tag == "tuple":
            items = node.get("items")
            if not isinstance(items, list):
                raise _Invalid(f"{path} is a tuple without items")
            return tuple(self(v, f"{path}.{i}") for i, v in enumerate(items))
        if tag == "labels":
            return _decode_labels(node, self.arrays, path)
        if tag == "OptState":
            count = node.get("count")
            if not _is_int(count) or count < 0:
                raise _Invalid(f"{path}.count is {count!r}, not a count of updates")
            return OptState(
                count, self(node.get("learning_rate"), f"{path}.learning_rate"),
                self(node.get("slots"), f"{path}.slots"),
            )  # fmt: skip
        if tag == "RandomState":
            return self._random_state(node, path)
        if tag == "LabelBinarizer":
            return self._label_binarizer(node, path)
        if tag == "path":
            if not isinstance(node.get("text"), str):
                raise _Invalid(f"{path} is not a path")
            return Path(node["text"])
        if tag == "device":
            library, text = node.get("library"), node.get("text")
            if not isinstance(library, str) or not isinstance(text, str):
                raise _Invalid(f"{path} is not a device")
            return _backends.device_object(library, text)
        raise _Invalid(f"{path} has the tag {tag!r}, which this xpnet does not know")

    def _random_state(self, node: dict, path: str) -> np.random.RandomState:
        key = self.arrays.get(node.get("key")) if isinstance(node.get("key"), str) else None
        if key is None or key.shape != (624,) or key.dtype != np.uint32:
            raise _Invalid(f"{path} has no generator key (624 uint32)")
        rng = np.random.RandomState()
        try:
            rng.set_state(
                (node.get("algorithm"), key, node.get("pos"), node.get("has_gauss"),
                 node.get("cached_gaussian"))
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise _Invalid(f"{path} is not a generator state ({exc})") from None
        return rng

    def _label_binarizer(self, node: dict, path: str) -> Any:
        from sklearn.preprocessing import LabelBinarizer

        params = self(node.get("params"), f"{path}.params")
        allowed = {"neg_label", "pos_label", "sparse_output"}
        if not isinstance(params, dict) or set(params) - allowed:
            raise _Invalid(f"{path}.params are not a LabelBinarizer's")
        y_type = node.get("y_type")
        if y_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise _Invalid(f"{path} has the target type {y_type!r}")
        binarizer = LabelBinarizer(**params)
        binarizer.classes_ = _decode_labels(node.get("classes") or {}, self.arrays, path)
        binarizer.y_type_ = y_type
        binarizer.sparse_input_ = bool(node.get("sparse_input"))
        return binarizer


def _lacks(name: Any, path: str) -> str:
    return f"it lacks the array {name!r}" + ("" if name == path else f" (of {path})")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- models ---------------------------------------------------------------------------------------
def _model_record(model: Model, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """A model's description and its host arrays (named with ``prefix``)."""
    arrays: dict[str, np.ndarray] = {}
    layers = [int(model.n_features_in_)]
    for i, (W, b) in enumerate(model.params):
        arrays[f"{prefix}W{i}"] = _backends.to_host(W)
        arrays[f"{prefix}b{i}"] = _backends.to_host(b)
        layers.append(int(arrays[f"{prefix}W{i}"].shape[1]))
    encode = _Encoder()
    classes = None
    if model.classes_ is not None:
        classes = _encode_labels(np.asarray(model.classes_), f"{prefix}classes", arrays)
    meta = {
        "layers": layers,
        "activation": model.activation,
        "output": model.output,
        "l2": float(model.l2),
        "dtype": _validation.dtype_name(model.dtype),
        "classes": classes,
        "settings": encode(dict(model.settings), f"{prefix}settings"),
        "loss_curve": [[int(i), float(loss)] for i, loss in model.loss_curve],
        "stopped": model.stopped,
        "backend": model.backend,
        "device": _backends.device_text(model.backend, model.device),
    }
    arrays.update(encode.arrays)
    return meta, arrays


class _Stored(NamedTuple):
    """A model's description, checked, with its host parameters."""

    fields: dict
    params: list
    dtype: str
    backend: str
    device: str


def _check_model(meta: Any, arrays: dict, where: Any, prefix: str) -> _Stored:
    """The model described by ``meta`` and ``arrays``, checked; ModelFileError otherwise."""
    if not isinstance(meta, dict):
        raise _Invalid("its model description is not a JSON object")
    missing = [
        k for k in ("layers", "activation", "output", "l2", "dtype", "classes", "loss_curve")
        if k not in meta
    ]  # fmt: skip
    if missing:
        raise _Invalid(f"its description lacks {', '.join(missing)}")
    layers = meta["layers"]
    if not (
        isinstance(layers, list) and len(layers) >= 2 and all(_is_int(n) and n >= 1 for n in layers)
    ):
        raise _Invalid(f"its layer sizes {layers!r} are not a list of at least 2 positive ints")
    if meta["activation"] not in ACTIVATIONS:
        raise _Invalid(f"its activation {meta['activation']!r} is not one of {ACTIVATIONS}")
    if meta["output"] not in OUTPUTS:
        raise _Invalid(f"its output {meta['output']!r} is not one of {OUTPUTS}")
    l2 = meta["l2"]
    if not _is_real(l2) or not math.isfinite(l2) or l2 < 0:
        raise _Invalid(f"its l2 {l2!r} is not a non-negative number")
    dtype = meta["dtype"]
    if dtype not in _FLOATS:
        raise _Invalid(f"its dtype {dtype!r} is not float32 or float64")
    curve = meta["loss_curve"]
    if not isinstance(curve, list) or not all(
        isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and _is_real(p[1]) for p in curve
    ):
        raise _Invalid("its loss curve is not a list of [pass, loss] pairs")
    stopped = meta.get("stopped")
    if stopped is not None and not isinstance(stopped, str):
        raise _Invalid(f"its 'stopped' {stopped!r} is not a string")
    backend, device = meta.get("backend", "numpy"), meta.get("device")
    if not isinstance(backend, str) or not (device is None or isinstance(device, str)):
        raise _Invalid("its backend and device are not strings")
    decode = _Decoder(arrays)
    settings = decode(meta.get("settings", {}), f"{prefix}settings")
    if not isinstance(settings, dict):
        raise _Invalid("its settings are not a JSON object")
    classes = None
    if meta["classes"] is not None:
        if not isinstance(meta["classes"], dict):
            raise _Invalid("its classes are not described")
        classes = _decode_labels(meta["classes"], arrays, f"{prefix}classes")
        if meta["output"] == "softmax" and len(classes) != layers[-1]:
            raise _Invalid(
                f"it has {len(classes)} classes but {layers[-1]} outputs (layer sizes {layers})"
            )

    names = [f"{prefix}{p}{i}" for i in range(len(layers) - 1) for p in "Wb"]
    found = _files.require(_files.Archive("model", meta, arrays), where, names)
    params = []
    for i in range(len(layers) - 1):
        W, b = found[2 * i], found[2 * i + 1]
        for name, a, shape in ((names[2 * i], W, (layers[i], layers[i + 1])),
                               (names[2 * i + 1], b, (layers[i + 1],))):  # fmt: skip
            if a.shape != shape:
                raise _Invalid(
                    f"{name} has shape {a.shape}, but the layer sizes {layers} need {shape}"
                )
            if a.dtype != np.dtype(dtype):
                raise _Invalid(f"{name} has dtype {a.dtype}, but the model is {dtype}")
        params.append((W, b))
    fields = dict(
        hidden=tuple(layers[1:-1]), activation=meta["activation"], l2=float(l2), classes=classes,
        n_features_in=layers[0], loss_curve=[(i, float(loss)) for i, loss in curve],
        output=meta["output"], settings=settings, stopped=stopped,
    )  # fmt: skip
    return _Stored(fields, params, dtype, backend, device or "cpu")


def _build(stored: _Stored, target: _backends.Target) -> Model:
    from ._model import Model

    dtype = _dtype_for(target, stored.dtype)
    params = _train.to_target(target, stored.params, dtype)
    return Model(target=target, params=params, dtype=dtype, **stored.fields)


def _invalid(where: Any, what: str, exc: _Invalid) -> ModelFileError:
    return ModelFileError(f"{where} is not a valid xpnet {what}: {exc}")


def _model_from(
    archive: _files.Archive, where: Any, what: str, prefix: str, backend, device, fallback
) -> Model:
    try:
        stored = _check_model(archive.meta.get("model"), archive.arrays, where, prefix)
    except _Invalid as exc:
        raise _invalid(where, what, exc) from None
    target = _target_for(stored.backend, stored.device, backend, device, fallback)
    return _build(stored, target)


def save_model(model: Model, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` (see :meth:`xpnet.Model.save`)."""
    meta, arrays = _model_record(model)
    return _files.write(path, "model", {"model": meta}, arrays)


def model_state(model: Model) -> dict:
    """A Model's pickled state: its description and host arrays, and any other attributes."""
    meta, arrays = _model_record(model)
    others = {k: v for k, v in vars(model).items() if k not in _MODEL_FIELDS}
    return {"xpnet_model_state": _STATE_VERSION, "meta": meta, "arrays": arrays, "others": others}


def restore_model(model: Model, state: dict) -> None:
    """Fill ``model`` from :func:`model_state`'s state, on the backend it was pickled from
    (NumPy, with a :class:`~xpnet.BackendFallbackWarning`, when that is not usable here)."""
    where = "this pickled xpnet.Model"
    if not isinstance(state, dict) or not isinstance(state.get("arrays"), dict):
        raise ModelFileError(f"{where} is not a valid xpnet model: its state is not xpnet's")
    version = state.get("xpnet_model_state")
    if not _is_int(version):
        raise ModelFileError(f"{where} is not a valid xpnet model: its state has no version")
    if version > _STATE_VERSION:
        raise ModelFileError(
            f"{where} was pickled by a newer xpnet (state {version!r}); upgrade xpnet to load it"
        )
    archive = _files.Archive("model", {"model": state.get("meta")}, state["arrays"])
    built = _model_from(archive, where, "model", "", None, None, True)
    model.__dict__.update(vars(built))
    model.__dict__.update(state.get("others") or {})


# -- grids ----------------------------------------------------------------------------------------
def save_grid(grid: ModelGrid, path: str | os.PathLike) -> Path:
    """Write ``grid`` to ``path`` (see :meth:`xpnet.ModelGrid.save`)."""
    models, arrays = [], {}
    for k, model in enumerate(grid):
        meta, more = _model_record(model, prefix=f"m{k}.")
        models.append(meta)
        arrays.update(more)
    encode = _Encoder()
    meta = {
        "models": models,
        "results": encode(grid.results.to_list(), "results"),
        "groups": encode(tuple(grid.groups), "groups"),
        "layouts": encode(tuple(grid.layouts), "layouts"),
    }
    arrays.update(encode.arrays)
    return _files.write(path, "grid", {"grid": meta}, arrays)


def _grid_from(archive: _files.Archive, where: Any, backend, device, fallback) -> ModelGrid:
    from ._grid import ModelGrid, Results

    meta = archive.meta.get("grid")
    try:
        if not isinstance(meta, dict) or not isinstance(meta.get("models"), list):
            raise _Invalid("it has no list of models")
        decode = _Decoder(archive.arrays)
        rows = decode(meta.get("results"), "results")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise _Invalid("its results are not a list of rows")
        if len(rows) != len(meta["models"]):
            raise _Invalid(f"it has {len(meta['models'])} models but {len(rows)} results rows")
        groups = decode(meta.get("groups", {"$": "tuple", "items": []}), "groups")
        layouts = decode(meta.get("layouts", {"$": "tuple", "items": []}), "layouts")
        if not isinstance(groups, tuple) or not all(
            isinstance(g, tuple) and all(_is_int(i) for i in g) for g in groups
        ):
            raise _Invalid("its groups are not tuples of model indices")
        if not isinstance(layouts, tuple) or not all(isinstance(s, str) for s in layouts):
            raise _Invalid("its layouts are not strings")
        stored = []
        for k, one in enumerate(meta["models"]):
            try:
                stored.append(_check_model(one, archive.arrays, where, f"m{k}."))
            except _Invalid as exc:
                raise _Invalid(f"model {k}: {exc}") from None
    except _Invalid as exc:
        raise _invalid(where, "grid", exc) from None
    models = []
    if stored:  # every model of a grid lives on one device
        target = _target_for(stored[0].backend, stored[0].device, backend, device, fallback)
        models.append(_build(stored[0], target))
        with warnings.catch_warnings():  # a dtype the backend lacks: the first model said so
            warnings.simplefilter("ignore", UserWarning)
            models += [_build(s, target) for s in stored[1:]]
    return ModelGrid(models, Results(rows), groups, layouts)


# -- estimators -----------------------------------------------------------------------------------
def save_estimator(estimator: _BaseMLP, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to ``path`` (see :meth:`xpnet.MLPClassifier.save`)."""
    import sklearn
    from sklearn.utils.validation import check_is_fitted

    from . import _estimators

    name = type(estimator).__name__
    if type(estimator) not in (_estimators.MLPClassifier, _estimators.MLPRegressor):
        raise TypeError(
            f"only xpnet.MLPClassifier and xpnet.MLPRegressor are saved to xpnet files, not "
            f"the subclass {type(estimator).__qualname__}: pickle it (or use joblib.dump)"
        )
    check_is_fitted(estimator)
    params = estimator.get_params(deep=False)
    fitted = {k: v for k, v in vars(estimator).items() if k not in params and k not in _REBUILT}
    encode = _Encoder()
    meta = {
        "class": name,
        "params": encode(params, "params"),
        "fitted": encode(fitted, "fitted"),
        "sklearn": sklearn.__version__,
    }
    return _files.write(path, "estimator", {"estimator": meta}, encode.arrays)


def _estimator_from(
    archive: _files.Archive, where: Any, backend, device, fallback
) -> MLPClassifier | MLPRegressor:
    from . import _estimators

    meta = archive.meta.get("estimator")
    try:
        if not isinstance(meta, dict) or meta.get("class") not in _ESTIMATORS:
            raise _Invalid(f"it holds no {' or '.join(_ESTIMATORS)}")
        cls = getattr(_estimators, meta["class"])
        decode = _Decoder(archive.arrays)
        params = decode(meta.get("params"), "params")
        known = cls().get_params(deep=False)
        if not isinstance(params, dict) or set(params) - set(known):
            unknown = sorted(set(params) - set(known)) if isinstance(params, dict) else params
            raise _Invalid(f"it has parameters {meta['class']} does not take: {unknown}")
        estimator = cls(**params)  # parameters absent from an older file keep their defaults
        try:
            estimator._validate_params()
        except ValueError as exc:
            raise _Invalid(f"its parameters are not valid: {exc}") from None
        fitted = decode(meta.get("fitted"), "fitted")
        if not isinstance(fitted, dict):
            raise _Invalid("its fitted attributes are not a JSON object")
        for name, value in fitted.items():
            if (
                not name.isidentifier() or name.startswith("__") or name in known
                or not (name.endswith("_") or name.startswith("_"))
                or hasattr(cls, name)  # data must not hide a method
            ):  # fmt: skip
                raise _Invalid(f"{name!r} is not a fitted attribute")
            setattr(estimator, name, value)
        _check_estimator(estimator)
    except _Invalid as exc:
        raise _invalid(where, "estimator", exc) from None
    chosen = backend if backend is not None else estimator.backend
    if chosen is not None and (backend is not None or device is not None):
        # say now, as a model's load does, when that backend is not usable here
        _target_for(chosen, None, chosen, device, fallback)
    if backend is not None or device is not None:
        if backend is not None:
            estimator.backend = backend
        if device is not None:
            estimator.device = device
    return estimator


def _check_estimator(est: Any) -> None:
    """The fitted attributes a loaded estimator predicts and trains with, checked."""
    required = ["coefs_", "intercepts_", "n_features_in_", "n_outputs_", "n_layers_",
                "out_activation_"]  # fmt: skip
    if hasattr(est, "predict_proba"):
        required += ["classes_", "_label_binarizer"]
    missing = [name for name in required if not hasattr(est, name)]
    if missing:
        raise _Invalid(f"it lacks the fitted attributes {', '.join(missing)}")
    for name in ("n_features_in_", "n_outputs_", "n_layers_"):
        if not _is_int(getattr(est, name)) or getattr(est, name) < 1:
            raise _Invalid(f"{name} is {getattr(est, name)!r}, not a positive int")
    if est.out_activation_ not in OUTPUTS:
        raise _Invalid(f"out_activation_ {est.out_activation_!r} is not one of {OUTPUTS}")
    coefs, intercepts = est.coefs_, est.intercepts_
    if not (isinstance(coefs, list) and isinstance(intercepts, list) and coefs):
        raise _Invalid("coefs_ and intercepts_ are not lists of arrays")
    if len(coefs) != len(intercepts) or est.n_layers_ != len(coefs) + 1:
        raise _Invalid(
            f"it has {len(coefs)} coefs_, {len(intercepts)} intercepts_ and n_layers_ "
            f"{est.n_layers_}; they must be n, n and n + 1"
        )
    dtype = coefs[0].dtype if isinstance(coefs[0], np.ndarray) else None
    if dtype is None or dtype.name not in _FLOATS:
        raise _Invalid(f"coefs_.0 has dtype {dtype}, not float32 or float64")
    shapes, fan_in = [], est.n_features_in_
    for i, W in enumerate(coefs):
        if not isinstance(W, np.ndarray) or W.ndim != 2 or W.shape[0] != fan_in:
            got = W.shape if isinstance(W, np.ndarray) else type(W).__name__
            source = "n_features_in_" if i == 0 else f"coefs_.{i - 1}"
            raise _Invalid(f"coefs_.{i} is {got}; it must be 2-D with {fan_in} rows, from {source}")
        shapes.append(((fan_in, W.shape[1]), (W.shape[1],)))
        fan_in = W.shape[1]
    if fan_in != est.n_outputs_:
        raise _Invalid(f"coefs_ end with {fan_in} outputs, but n_outputs_ is {est.n_outputs_}")
    _check_pairs(list(zip(coefs, intercepts)), shapes, dtype, "coefs_/intercepts_")
    if hasattr(est, "_label_binarizer"):
        classes = np.asarray(est.classes_)
        y_type = est._label_binarizer.y_type_
        outputs = 1 if y_type == "binary" else len(classes)
        if outputs != est.n_outputs_ or (y_type == "binary" and len(classes) != 2):
            raise _Invalid(f"it has {len(classes)} classes ({y_type}) but {est.n_outputs_} outputs")
    opt = getattr(est, "_opt_state", None)
    if opt is not None:
        if not isinstance(opt, OptState):
            raise _Invalid("_opt_state is not an optimizer state")
        slots = opt.slots
        groups = [] if slots is None else [slots] if isinstance(slots, list) else list(slots)
        for k, group in enumerate(groups):
            _check_pairs(group, shapes, dtype, f"_opt_state.slots.{k}")


def _check_pairs(pairs: Any, shapes: list, dtype: np.dtype, what: str) -> None:
    if not isinstance(pairs, list) or len(pairs) != len(shapes):
        raise _Invalid(f"{what} is not a list of {len(shapes)} (weights, biases) pairs")
    for i, (pair, expected) in enumerate(zip(pairs, shapes, strict=True)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise _Invalid(f"{what}.{i} is not a (weights, biases) pair")
        for a, shape in zip(pair, expected, strict=True):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
                got = (a.shape, a.dtype) if isinstance(a, np.ndarray) else type(a).__name__
                raise _Invalid(f"{what}.{i} has an array of {got}; it must be {shape}, {dtype}")
