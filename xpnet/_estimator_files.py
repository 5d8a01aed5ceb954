"""The estimators' files: the parameters of ``get_params()`` and every fitted attribute, the
optimizer state included, through the file codec; checked as they are read back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _files, _target
from ._codec import FLOATS, Invalid, is_int
from ._exceptions import ModelFileError
from ._network import OUTPUTS
from ._optim import OptState, opt_state_from

#: Fitted state an estimator rebuilds at each fit, never saved.
_REBUILT = frozenset(("_random_state",))


def save(estimator: Any, path: str | os.PathLike, classes: tuple[type, ...]) -> Path:
    """Write a fitted estimator, of one of ``classes``, to ``path`` (see
    :meth:`xpnet.MLPClassifier.save`)."""
    import sklearn
    from sklearn.utils.validation import check_is_fitted

    name = type(estimator).__name__
    if type(estimator) not in classes:
        raise TypeError(
            f"only xpnet.MLPClassifier and xpnet.MLPRegressor are saved to xpnet files, not "
            f"the subclass {type(estimator).__qualname__}: pickle it (or use joblib.dump)"
        )
    check_is_fitted(estimator)
    params = estimator.get_params(deep=False)
    fitted = {k: v for k, v in vars(estimator).items() if k not in params and k not in _REBUILT}
    encode = _target.encoder(OptState)
    meta = {
        "class": name,
        "params": encode(params, "params"),
        "fitted": encode(fitted, "fitted"),
        "sklearn": sklearn.__version__,
    }
    return _files.write(path, "estimator", {"estimator": meta}, encode.arrays)


def from_archive(
    archive: _files.Archive, where: Any, backend, device, fallback, classes: tuple[type, ...]
) -> Any:
    """The estimator of ``archive``, one of ``classes``; ``backend`` and ``device`` replace
    its own when given (see :func:`xpnet.load`)."""
    by_name = {cls.__name__: cls for cls in classes}
    meta = archive.meta.get("estimator")
    try:
        if not isinstance(meta, dict) or meta.get("class") not in by_name:
            raise Invalid(f"it holds no {' or '.join(by_name)}")
        cls = by_name[meta["class"]]
        decode = _target.decoder(archive.arrays, OptState=opt_state_from)
        params = decode(meta.get("params"), "params")
        known = cls().get_params(deep=False)
        if not isinstance(params, dict) or set(params) - set(known):
            unknown = sorted(set(params) - set(known)) if isinstance(params, dict) else params
            raise Invalid(f"it has parameters {meta['class']} does not take: {unknown}")
        estimator = cls(**params)  # parameters absent from an older file keep their defaults
        try:
            estimator._validate_params()
        except ValueError as exc:
            raise Invalid(f"its parameters are not valid: {exc}") from None
        fitted = decode(meta.get("fitted"), "fitted")
        if not isinstance(fitted, dict):
            raise Invalid("its fitted attributes are not a JSON object")
        for name, value in fitted.items():
            if (
                not name.isidentifier() or name.startswith("__") or name in known
                or not (name.endswith("_") or name.startswith("_"))
                or hasattr(cls, name)  # data must not hide a method
            ):  # fmt: skip
                raise Invalid(f"{name!r} is not a fitted attribute")
            setattr(estimator, name, value)
        _check_estimator(estimator)
    except Invalid as exc:
        raise ModelFileError(f"{where} is not a valid xpnet estimator: {exc}") from None
    chosen = backend if backend is not None else estimator.backend
    if chosen is not None and (backend is not None or device is not None):
        # say now, as a model's load does, when that backend is not usable here
        _target.placed(chosen, None, chosen, device, fallback)
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
        raise Invalid(f"it lacks the fitted attributes {', '.join(missing)}")
    for name in ("n_features_in_", "n_outputs_", "n_layers_"):
        if not is_int(getattr(est, name)) or getattr(est, name) < 1:
            raise Invalid(f"{name} is {getattr(est, name)!r}, not a positive int")
    if est.out_activation_ not in OUTPUTS:
        raise Invalid(f"out_activation_ {est.out_activation_!r} is not one of {OUTPUTS}")
    coefs, intercepts = est.coefs_, est.intercepts_
    if not (isinstance(coefs, list) and isinstance(intercepts, list) and coefs):
        raise Invalid("coefs_ and intercepts_ are not lists of arrays")
    if len(coefs) != len(intercepts) or est.n_layers_ != len(coefs) + 1:
        raise Invalid(
            f"it has {len(coefs)} coefs_, {len(intercepts)} intercepts_ and n_layers_ "
            f"{est.n_layers_}; they must be n, n and n + 1"
        )
    dtype = coefs[0].dtype if isinstance(coefs[0], np.ndarray) else None
    if dtype is None or dtype.name not in FLOATS:
        raise Invalid(f"coefs_.0 has dtype {dtype}, not float32 or float64")
    shapes, fan_in = [], est.n_features_in_
    for i, W in enumerate(coefs):
        if not isinstance(W, np.ndarray) or W.ndim != 2 or W.shape[0] != fan_in:
            got = W.shape if isinstance(W, np.ndarray) else type(W).__name__
            source = "n_features_in_" if i == 0 else f"coefs_.{i - 1}"
            raise Invalid(f"coefs_.{i} is {got}; it must be 2-D with {fan_in} rows, from {source}")
        shapes.append(((fan_in, W.shape[1]), (W.shape[1],)))
        fan_in = W.shape[1]
    if fan_in != est.n_outputs_:
        raise Invalid(f"coefs_ end with {fan_in} outputs, but n_outputs_ is {est.n_outputs_}")
    _check_pairs(list(zip(coefs, intercepts)), shapes, dtype, "coefs_/intercepts_")
    if hasattr(est, "_label_binarizer"):
        classes = np.asarray(est.classes_)
        y_type = est._label_binarizer.y_type_
        outputs = 1 if y_type == "binary" else len(classes)
        if outputs != est.n_outputs_ or (y_type == "binary" and len(classes) != 2):
            raise Invalid(f"it has {len(classes)} classes ({y_type}) but {est.n_outputs_} outputs")
    where = [getattr(est, name, None) for name in ("_fit_namespace", "_fit_device")]
    if where != [None, None] and not all(isinstance(w, str) for w in where):
        # absent from files older than the array-API rule, which then goes unchecked
        raise Invalid(f"_fit_namespace and _fit_device are {where}, not two strings")
    opt = getattr(est, "_opt_state", None)
    if opt is not None:
        if not isinstance(opt, OptState):
            raise Invalid("_opt_state is not an optimizer state")
        for k, group in enumerate(opt.slots):
            _check_pairs(group, shapes, dtype, f"_opt_state.slots.{k}")


def _check_pairs(pairs: Any, shapes: list, dtype: np.dtype, what: str) -> None:
    if not isinstance(pairs, list) or len(pairs) != len(shapes):
        raise Invalid(f"{what} is not a list of {len(shapes)} (weights, biases) pairs")
    for i, (pair, expected) in enumerate(zip(pairs, shapes, strict=True)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise Invalid(f"{what}.{i} is not a (weights, biases) pair")
        for a, shape in zip(pair, expected, strict=True):
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
                got = (a.shape, a.dtype) if isinstance(a, np.ndarray) else type(a).__name__
                raise Invalid(f"{what}.{i} has an array of {got}; it must be {shape}, {dtype}")
