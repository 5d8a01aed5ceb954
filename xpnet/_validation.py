"""Checks of user input, run before any work; each error says what was wrong and what to do.

The rules, for :func:`xpnet.fit`, :func:`xpnet.fit_many`, :class:`xpnet.Model`'s
methods, and the estimators' input from other backends (NumPy input to the
estimators goes through scikit-learn's own checks):

* ``X`` is a non-empty 2-D array of real numbers (bool, int or float; an object
  array holding only real numbers is read as float64), every value finite, with
  the training data's number of columns at prediction.
* ``y`` has one label per sample, all strings or all real numbers (never a mix),
  none missing; a classifier needs at least two classes, and float labels must
  be whole numbers (others are a regression target).  ``score`` counts a label
  the model never saw as a wrong prediction; ``loss`` refuses it.
* Settings are Python or NumPy numbers of the right kind (an int for counts,
  never a bool or a string), in range, finite, and options are among the named
  choices.

Every failure is a ValueError.  Nothing here writes into the caller's arrays.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import array_api_compat
import numpy as np

from . import _target
from ._codec import is_int
from ._network import ACTIVATIONS

#: The largest value of the settings that have one: passes and intervals an int32 loop
#: counter holds (JAX's, without x64), layer sizes an int32 index reaches, and the seeds
#: ``numpy.random.RandomState`` takes.
_INT32 = 2**31 - 1
_MAXIMA = {"epochs": _INT32, "log_every": _INT32, "seed": 2**32 - 1}

#: What a check is for, as its messages say it.
_BEFORE = {"fit": "before fitting", "predict": "before predicting"}


def is_sparse(x: Any) -> bool:
    """True for SciPy sparse matrices and arrays (recognised without importing SciPy)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _shown(value: Any) -> str:
    """``value`` for a message, with its type where the repr hides a mistake."""
    if isinstance(value, (bool, np.bool_)):
        return f"{value!r} (a bool)"
    if isinstance(value, (str, bytes)):
        return f"{value!r} (a string: pass the number itself)"
    text = repr(value)
    text = text if len(text) <= 40 else f"{text[:37]}..."
    if isinstance(value, numbers.Number) or value is None:
        return text
    return f"{text} (of type {type(value).__name__})"


# -- data --------------------------------------------------------------------------------
def check_X(X: Any, *, n_features: int | None = None, when: str = "fit", name: str = "X") -> Any:
    """Validate a feature matrix from any backend, without copying it.

    Lists and other non-arrays become NumPy arrays, and object arrays of real
    numbers float64 ones (new arrays: the caller's is never written).

    Parameters
    ----------
    X : array-like
        The data, from any backend.
    n_features : int, optional
        The number of columns X must have (the training data's).
    when : {"fit", "predict"}
        What X is for, as the messages say.
    name : str
        X's name in the messages ("X", "X_val").

    Raises
    ------
    ValueError
        Unless ``X`` is a non-empty 2-D array of real numbers, all finite, with
        ``n_features`` columns when that is given.
    """
    if X is None:
        raise ValueError(f"{name} is None; pass a 2-D array of shape (n_samples, n_features)")
    if _target.adapter_of(X) is None:
        if is_sparse(X):
            raise ValueError(
                f"{name} is a sparse matrix, which xpnet.fit does not take; pass {name}.toarray(), "
                "or use xpnet.MLPClassifier, which accepts sparse input"
            )
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{name} could not be read as a 2-D numeric array: {exc}; pass a NumPy array "
                "(or an array of another backend) of shape (n_samples, n_features)"
            ) from None
    check_shape(name, tuple(X.shape))
    if isinstance(X, np.ndarray) and X.dtype == object:
        X = _floats_from_objects(X, name)
    xp = array_api_compat.array_namespace(X)
    if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
        shown = X.dtype if isinstance(X, np.ndarray) else _target.dtype_name(X.dtype)
        raise ValueError(f"{name} must hold real numbers, got dtype {shown}; {_convert(X)}")
    if xp.isdtype(X.dtype, "real floating"):
        finite = xp.isfinite(X)
        if not bool(_target.to_host(xp.all(finite))):
            raise ValueError(_non_finite(name, _target.to_host(finite), when))
    check_n_features(name, X.shape[1], n_features)
    return X


def check_shape(name: str, shape: tuple, what: str = "an array") -> None:
    """Raise ValueError unless ``shape`` is 2-D with at least one row and one column."""
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {what} of shape {shape}; "
            f"reshape a single feature with {name}.reshape(-1, 1) or a single sample with "
            f"{name}.reshape(1, -1)"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {shape}); it needs at least one sample and one feature"
        )


def check_n_features(name: str, n: int, n_features: int | None) -> None:
    """Raise ValueError unless ``n`` columns are the ``n_features`` a model was fitted with
    (None: any)."""
    if n_features is not None and n != n_features:
        raise ValueError(
            f"{name} has {_plural(n, 'feature')}, but the model was fitted with "
            f"{_plural(n_features, 'feature')}; pass data with the same columns as in fit"
        )


def _convert(X: Any) -> str:
    """What to do about an array of other than real numbers."""
    kind = getattr(X.dtype, "kind", None)  # NumPy's; other libraries' dtypes have none
    if kind in ("U", "S"):
        return (
            "encode text columns as numbers first (for example with "
            "sklearn.preprocessing.OneHotEncoder or OrdinalEncoder)"
        )
    if kind == "c" or "complex" in str(X.dtype):
        return "pass real features, such as X.real and X.imag side by side, or abs(X)"
    return "convert it to float first"


def _floats_from_objects(X: np.ndarray, name: str) -> np.ndarray:
    """An object array of real numbers as a new float64 array; anything else is refused."""
    for value in X.flat:
        if not isinstance(value, (numbers.Real, np.bool_)):
            raise ValueError(
                f"{name} holds {value!r} (of type {type(value).__name__}) in an object array; "
                "xpnet needs real numbers: impute missing values and encode text columns first"
            )
    try:
        return np.asarray(X, dtype=np.float64)
    except OverflowError:
        raise ValueError(f"{name} holds integers too large for float64") from None


def not_numbers(X: Any, name: str = "X") -> str | None:
    """What in host ``X`` (a DataFrame, a list, an object array) is neither a real number nor
    a missing value, where, and what to do; None when there is nothing of the kind.

    For the estimators' host input, whose checks are scikit-learn's: its message ("could not
    convert string to float: 'x'") says what, not where nor what to do.  Missing values
    (None, NaN) are left to scikit-learn's own message, which says what to do about them.
    """
    if isinstance(X, np.ndarray) and X.dtype.kind in "biufc" or is_sparse(X):
        return None  # numbers (complex ones are scikit-learn's to refuse)
    if _target.adapter_of(X) is not None and not isinstance(X, np.ndarray):
        return None  # another backend's array says what it holds by its dtype
    names = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    columns = None  # a DataFrame's columns that may hold other than numbers
    if names is not None and dtypes is not None and hasattr(X, "iloc"):
        columns = [j for j, dt in enumerate(dtypes) if getattr(dt, "kind", "O") not in "biuf"]
        X = X.iloc[:, columns]
    try:
        values = np.asarray(X, dtype=object)
    except Exception:  # ragged, or refusing: scikit-learn's message is all there is to say
        return None
    if values.ndim != 2 or values.size == 0:
        return None
    other = np.frompyfunc(lambda v: not isinstance(v, (numbers.Real, np.bool_)), 1, 1)
    found = np.argwhere(other(values).astype(bool) & ~_missing(values))
    if found.size == 0:
        return None
    row, column = (int(i) for i in found[0])
    value = values[row, column]
    where = f"row {row}, column {column}"
    if columns is not None:
        column = columns[column]
        where = f"column {names[column]!r} (row {row}, column {column})"
    return (
        f"{name} holds {value!r} (of type {type(value).__name__}) in {where}; xpnet needs "
        "real numbers: encode text columns as numbers first (for example with "
        "sklearn.preprocessing.OneHotEncoder or OrdinalEncoder, in a ColumnTransformer "
        "for a DataFrame)"
    )


def _is_missing(value: Any) -> bool:
    """None, NaN, or pandas' NA and NaT (recognised without importing pandas)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value != value


def _missing(values: np.ndarray) -> np.ndarray:
    """Where an object array holds missing values (see :func:`_is_missing`)."""
    return np.frompyfunc(_is_missing, 1, 1)(values).astype(bool)


def missing_targets(y: Any, *, classifier: bool) -> str | None:
    """How many of ``y``'s labels (a classifier's) or targets are missing (None, NaN, pandas'
    NA), the first, and what to do; None when none is (or y is not an array of them)."""
    if y is None:
        return None
    try:
        values = np.asarray(_target.for_host(y), dtype=object)
    except Exception:
        return None
    if values.ndim not in (1, 2) or values.size == 0:
        return None
    missing = _missing(values)
    if not missing.any():
        return None
    what = "label" if classifier else "target"
    first = np.argwhere(missing)[0]
    at = f"index {first[0]}" if values.ndim == 1 else f"row {first[0]}, column {first[1]}"
    return (
        f"y has {_plural(int(missing.sum()), f'missing {what}')} (None or NaN), the first at "
        f"{at}; every sample needs a {what}: drop the unlabelled samples (and their rows of X) "
        "first"
    )


def _non_finite(name: str, finite: np.ndarray, when: str, first_row: int = 0) -> str:
    """The message for non-finite values; ``finite`` covers rows from ``first_row`` on."""
    row, column = np.argwhere(~finite)[0]
    where = (
        f"{_plural(int(finite.size - np.count_nonzero(finite)), 'value')}, the first in row "
        f"{first_row + row}, column {column}"
    )
    if when == "predict":
        todo = (
            "the model cannot predict from them: impute them as the training data was "
            "imputed (for example with the SimpleImputer fitted on it), or drop those rows"
        )
    else:
        todo = (
            f"remove or impute those values {_BEFORE.get(when, 'first')} "
            "(for example with sklearn.impute.SimpleImputer)"
        )
    return f"{name} contains NaN or infinity ({where}); {todo}"


# -- labels --------------------------------------------------------------------------------
def check_labels(y: Any, n_samples: int, *, name: str = "y") -> np.ndarray:
    """Bring labels to the host as a 1-D NumPy array of length ``n_samples``.

    Labels are all strings or all real numbers; lists and object arrays of
    one kind become arrays of that kind.

    Raises
    ------
    ValueError
        For a mix of strings and numbers, missing labels (None, NaN), other
        kinds of values, a shape other than ``(n_samples,)`` (or
        ``(n_samples, 1)``), or a length other than ``n_samples``.
    """
    y = _on_host(y, name)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = f"; for one-hot rows pass {name}.argmax(axis=1)" if y.ndim == 2 else ""
        raise ValueError(
            f"{name} must be 1-D (one label per sample), got shape {tuple(y.shape)}{hint}"
        )
    _check_values(y, n_samples, name, "biufUS")
    return y


def check_targets(y: Any, n_samples: int, *, classifier: bool) -> np.ndarray:
    """The estimators' ``y`` beside X of another backend, on the host, of any 1-D or 2-D shape.

    A classifier's labels follow :func:`check_labels`'s rules (2-D: a label
    indicator matrix); a regressor's targets are numbers.  Continuous labels
    and single classes are left to scikit-learn's LabelBinarizer, as for
    NumPy X.
    """
    y = _on_host(y, "y")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D (n_samples, n_outputs), got shape {y.shape}")
    _check_values(y, n_samples, "y", "biufUS" if classifier else "biuf")
    return y


def _on_host(y: Any, name: str) -> np.ndarray:
    """``y`` from any backend, a list or an object array, as a NumPy array on the host."""
    if y is None:
        raise ValueError(f"{name} is None; pass one label per sample")
    if _target.adapter_of(y) is not None:
        y = _target.to_host(y)
        return _labels_from_objects(y, name) if y.dtype == object else y
    given = y
    try:
        y = np.asarray(given)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array of labels: {exc}") from None
    if y.dtype == object or (not isinstance(given, np.ndarray) and y.dtype.kind in "US"):
        # NumPy reads [1, "a"] as strings: look at the values themselves
        y = _labels_from_objects(np.asarray(given, dtype=object), name)
    return y


def _check_values(y: np.ndarray, n_samples: int, name: str, kinds: str) -> None:
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X has {_plural(n_samples, 'sample')} but {name} has "
            f"{_plural(y.shape[0], 'label')}; they must match"
        )
    if y.dtype.kind not in kinds:
        what = "numbers or strings" if "U" in kinds else "numbers (a regressor's targets)"
        raise ValueError(f"{name} must hold {what}, got dtype {y.dtype}; convert it first")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(
            f"{name} contains NaN or infinity; every sample needs a label: drop the unlabelled "
            "samples first"
        )


def _labels_from_objects(y: np.ndarray, name: str) -> np.ndarray:
    """Labels held as Python objects, as an array of strings or of numbers."""
    seen: dict[str, Any] = {}
    for value in y.flat:
        if isinstance(value, (str, bytes)):
            seen.setdefault("string", value)
        elif isinstance(value, (numbers.Real, np.bool_)):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(
                    f"{name} contains {value!r} (a missing label?); every sample needs a label: "
                    "drop the unlabelled samples first"
                )
            seen.setdefault("number", value)
        else:
            raise ValueError(
                f"{name} holds {value!r} (of type {type(value).__name__}); labels must be "
                "numbers or strings, and every sample needs one"
            )
    if len(seen) > 1:
        raise ValueError(
            f"{name} mixes strings and numbers (for example {seen['string']!r} and "
            f"{seen['number']!r}); labels must be all strings or all numbers: convert them "
            f"with {name}.astype(str), or map the strings to numbers"
        )
    try:
        return np.asarray(y.tolist())
    except OverflowError:
        raise ValueError(f"{name} holds integers too large for NumPy") from None


def _kind(labels: np.ndarray) -> str:
    """What a checked array of labels holds: "strings" or "numbers"."""
    if labels.dtype.kind in "US":
        return "strings"
    if labels.dtype == object and labels.size and isinstance(labels.flat[0], (str, bytes)):
        return "strings"
    return "numbers"


def check_discrete(y: np.ndarray, name: str = "y") -> None:
    """Raise ValueError for float labels that are not whole numbers: a regression target."""
    if y.dtype.kind != "f":
        return
    fractional = y != np.floor(y)
    if np.any(fractional):
        raise ValueError(
            f"Unknown label type: continuous ({name} holds values such as "
            f"{y[fractional][0].item()!r}, not whole numbers); a classifier needs discrete "
            "classes. For a regression target use xpnet.MLPRegressor; to classify, bin the "
            "values into classes first (for example with numpy.digitize)"
        )


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(classes, index)`` with ``classes[index] == y``.

    Raises
    ------
    ValueError
        For continuous labels, or fewer than two classes.
    """
    check_discrete(y)
    try:
        classes, index = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"y mixes labels that cannot be sorted together: {exc}") from None
    if classes.shape[0] < 2:
        raise ValueError(
            f"y has 1 class ({classes.tolist()}); a classifier needs at least 2: check that "
            "the labels are the right column, and that sampling kept every class"
        )
    return classes, index.reshape(-1)


def check_known_kind(y: np.ndarray, classes: np.ndarray, name: str = "y") -> None:
    """Raise ValueError unless ``y`` holds labels of the kind of ``classes``.

    Labels of the right kind that are not among ``classes`` pass: scores count
    them as wrong predictions, as scikit-learn's accuracy does.
    """
    ours, theirs = _kind(y), _kind(classes)
    if ours != theirs:
        raise ValueError(
            f"{name} holds {ours}, but the model's classes are {theirs} "
            f"({classes[:5].tolist()}{', ...' if len(classes) > 5 else ''}); pass labels of "
            "the kind the model was trained on"
        )
    check_discrete(y, name)


# -- sample weights of mini-batches ------------------------------------------------------
def check_known_labels(y: np.ndarray, classes: np.ndarray) -> None:
    """Raise ValueError for labels of ``y`` that are not among ``classes`` (a loss needs the
    model's probability of each sample's label)."""
    unknown = np.setdiff1d(y, classes)
    if unknown.size:
        raise ValueError(
            f"y has labels the model was not trained on: {unknown.tolist()}; the loss "
            "needs the model's probability of each sample's label"
        )


def batch_weight_risk(sample_weight: Any, batch_size: int) -> np.ndarray | None:
    """The weights (float64, on the host) when a mini-batch's could sum to zero: some are
    negative, or the zero ones could fill a batch (the last, shorter one included); else
    None, and no batch needs checking."""
    weights = np.asarray(sample_weight, dtype=np.float64)
    n = weights.shape[0]
    shortest = n - (n - 1) // batch_size * batch_size
    if np.any(weights < 0) or np.count_nonzero(weights == 0) >= shortest:
        return weights
    return None


def check_batch_weights(
    weights: np.ndarray,
    order: np.ndarray | None,
    batch_size: int,
    *,
    shuffled: bool = False,
    split: bool = False,
    chunk: int | None = None,
) -> None:
    """Raise ValueError if the weights of a batch, rows taken in ``order``, sum to zero.

    A batch's gradient is the mean over its rows weighted by the sample
    weights: there it is 0/0, and the parameters would become NaN.  For the
    message: ``shuffled``, the order is this epoch's shuffle; ``split``, the
    rows are early stopping's training rows; ``chunk``, the first row of the
    dask chunk that ``weights`` covers (batches are drawn within a chunk).
    """
    rows = weights if order is None else weights[order]
    begins = np.arange(0, rows.shape[0], batch_size)
    empty = np.flatnonzero(np.add.reduceat(rows, begins) == 0)
    if empty.size == 0:
        return
    i, offset = int(empty[0]), chunk or 0
    end = min(begins[i] + batch_size, rows.shape[0])
    where = f"mini-batch {i + 1} of {begins.shape[0]}"
    if chunk is not None:
        where += f" in the chunk of rows {offset} to {offset + rows.shape[0] - 1}"
    if shuffled:
        where += " (as this epoch's shuffle drew it)"
    elif split:
        where += " (of the rows early_stopping kept for training)"
    else:
        where += f" (rows {offset + begins[i]} to {offset + end - 1})"
    instead = "use a larger batch_size"
    if not shuffled:
        instead += ", or shuffle=True so that each batch mixes the rows"
    if chunk is not None:
        instead += (
            ", or rechunk so that each chunk holds enough rows of nonzero weight (batches "
            "never cross chunks)"
        )
    raise ValueError(
        f"The sample weights of {where} sum to zero: a batch's gradient is the mean over its "
        "rows weighted by sample_weight, undefined there. Leave out the rows whose weight is "
        f"zero (they add nothing to the loss), or {instead}"
    )


# -- settings ------------------------------------------------------------------------------
def check_hidden(hidden: Any, name: str = "hidden") -> tuple[int, ...]:
    """``hidden`` as a tuple of layer sizes, each an int from 1 to 2**31 - 1."""
    sizes = (hidden,) if isinstance(hidden, numbers.Integral) else hidden
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(
            f"{name} must be an int or a tuple of ints, got {_shown(hidden)}"
        ) from None
    if not sizes or not all(is_int(h) for h in sizes):
        raise ValueError(
            f"{name} must be an int or a non-empty tuple of ints, got {_shown(hidden)}"
        )
    # what was passed: 0 for 0, [3, 0] for [3, 0] (not the tuple made of it; NumPy ints as ints)
    if is_int(hidden):
        given = repr(int(hidden))
    elif isinstance(hidden, (list, tuple)):
        given = repr((list if isinstance(hidden, list) else tuple)(int(h) for h in sizes))
    else:
        given = repr(hidden)
    given = given if len(given) <= 40 else f"{given[:37]}..."
    if min(sizes) < 1:
        raise ValueError(
            f"{name} must be > 0, got {given}: every hidden layer needs at least 1 unit"
        )
    if max(sizes) > _INT32:
        raise ValueError(f"{name} must be at most {_INT32} units a layer, got {given}")
    return tuple(int(h) for h in sizes)


def check_activation(activation: Any) -> str:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return str(activation)


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int from ``minimum`` to ``maximum`` (by default the setting's own
    limit, if it has one).  Python and NumPy ints pass; bools, floats and strings do not."""
    maximum = _MAXIMA.get(name) if maximum is None else maximum
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        limits = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        shown = _shown(value)
        if isinstance(value, (float, np.floating)):
            shown += " (a float)"
        raise ValueError(f"{name} must be an int {limits}, got {shown}")
    return int(value)


def check_float(name: str, value: Any, *, positive: bool) -> float:
    """``value`` as a finite float, > 0 (``positive``) or >= 0.  Python and NumPy ints and
    floats pass; bools and strings do not."""
    try:
        number = float(value) if isinstance(value, numbers.Real) else math.nan
    except OverflowError:  # an int beyond float64
        number = math.inf
    if (
        isinstance(value, bool)
        or not math.isfinite(number)
        or number < 0
        or (positive and number == 0)
    ):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} finite number, got {_shown(value)}")
    return number
