"""Checks of user input, run before any work; each error says what to do."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import array_api_compat
import numpy as np

from . import _backends
from ._network import ACTIVATIONS


def is_sparse(x: Any) -> bool:
    """True for SciPy sparse matrices and arrays (recognised without importing SciPy)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def check_X(X: Any, *, n_features: int | None = None) -> Any:
    """Validate a feature matrix from any backend, without copying it.

    Lists and other non-arrays become NumPy arrays.  Raises ValueError unless
    ``X`` is a non-empty 2-D array of real numbers, all finite, with
    ``n_features`` columns when that is given.
    """
    if _backends.adapter_of(X) is None:
        if is_sparse(X):
            raise ValueError(
                "X is a sparse matrix, which xpnet.fit does not take; pass X.toarray(), "
                "or use xpnet.MLPClassifier, which accepts sparse input"
            )
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"X could not be read as a 2-D numeric array: {exc}") from None
    xp = array_api_compat.array_namespace(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got an array of shape {tuple(X.shape)}; "
            "reshape a single feature with X.reshape(-1, 1) or a single sample with "
            "X.reshape(1, -1)"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"X is empty (shape {tuple(X.shape)}); it needs at least one sample and one feature"
        )
    if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
        raise ValueError(
            f"X must hold real numbers, got dtype {X.dtype}; convert it to float first"
        )
    if xp.isdtype(X.dtype, "real floating") and not _to_bool(xp.all(xp.isfinite(X))):
        raise ValueError("X contains NaN or infinity; remove or impute those values before fitting")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but the model was fitted with {n_features}; "
            "pass data with the same columns as in fit"
        )
    return X


def _to_bool(x: Any) -> bool:
    return bool(_backends.to_host(x))


def check_labels(y: Any, n_samples: int) -> np.ndarray:
    """Bring labels to the host as a 1-D NumPy array of length ``n_samples``."""
    y = _backends.to_host(y) if _backends.adapter_of(y) is not None else np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per sample), got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X has {n_samples} samples but y has {y.shape[0]} labels; they must match"
        )
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity; every sample needs a label")
    return y


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(classes, index)`` with ``classes[index] == y``; needs two classes."""
    try:
        classes, index = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"y mixes labels that cannot be sorted together: {exc}") from None
    if classes.shape[0] < 2:
        raise ValueError(
            f"y has {classes.shape[0]} class ({classes.tolist()}); a classifier needs at least 2"
        )
    return classes, index.reshape(-1)


def check_hidden(hidden: Any, name: str = "hidden") -> tuple[int, ...]:
    """``hidden`` as a tuple of layer sizes, each an int of at least 1."""
    sizes = (hidden,) if isinstance(hidden, numbers.Integral) else hidden
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(f"{name} must be an int or a tuple of ints, got {hidden!r}") from None
    if not sizes or not all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) for h in sizes
    ):
        raise ValueError(f"{name} must be an int or a non-empty tuple of ints, got {hidden!r}")
    if min(sizes) < 1:
        raise ValueError(
            f"{name} must be > 0, got {list(sizes)}: every hidden layer needs at least 1 unit"
        )
    return tuple(int(h) for h in sizes)


def check_activation(activation: Any) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return activation


def check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, *, positive: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} finite number, got {value!r}")
    return float(value)


_FLOATS = ("float32", "float64")


def dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]  # torch.float32 -> float32


def dtype_on(target: _backends.Target, dtype: Any) -> Any:
    """``dtype`` (of any backend) as an object of ``target.xp``: float64 becomes
    float32 where the target has no float64."""
    name = dtype_name(dtype)
    if name == "float64" and not target.has_float64():
        name = "float32"
    return getattr(target.xp, name)


def resolve_dtype(target: _backends.Target, X: Any, dtype: Any) -> Any:
    """The floating dtype to train in, as an object of ``target.xp``.

    None keeps X's float32 or float64; integers and bools become float64 where
    the backend has it (float32 otherwise); smaller floats become float32.
    """
    if dtype is None:
        xpX = array_api_compat.array_namespace(X)
        name = "float64"
        if xpX.isdtype(X.dtype, "real floating") and X.dtype != xpX.float64:
            name = "float32"
        if name == "float64" and not target.has_float64():
            if xpX.isdtype(X.dtype, "real floating"):
                warnings.warn(
                    f"backend {target.name!r} on {target.device} has no float64; training in "
                    "float32 (for JAX, jax.config.update('jax_enable_x64', True) enables float64)",
                    UserWarning,
                    stacklevel=3,
                )
            name = "float32"
    else:
        name = dtype_name(dtype)
        if name not in _FLOATS:
            raise ValueError(
                f"dtype must be float32 or float64 (or None to follow X), got {dtype!r}"
            )
        if name == "float64" and not target.has_float64():
            raise ValueError(
                f"backend {target.name!r} on {target.device} has no float64 "
                "(for JAX, enable it with jax.config.update('jax_enable_x64', True)); "
                "use dtype='float32'"
            )
    return getattr(target.xp, name)
