"""Random input thrown at xpnet: every call succeeds or raises a documented error.

Shapes (no rows, one row, one feature, the wrong number of dimensions),
dtypes (ints, float16/32/64, bool, object, complex, strings), NaN and infinity
anywhere, labels (ints, strings, floats, bools, mixed, missing) and settings
(mostly valid, one of them sometimes not) go to ``xpnet.fit``,
``xpnet.fit_many``, a Model's methods and ``save``/``load``.  The documented
errors are ValueError (``xpnet.DivergenceError``, ``xpnet.ModelFileError`` and
the rest of xpnet's input errors are ValueErrors) and TypeError; anything else
fails the test, as does a caller's array that changed.

Each test draws a fixed, small sample of cases (derandomized, so the suite is
reproducible); ``XPNET_FUZZ_EXAMPLES=500`` draws that many fresh ones instead.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import xpnet  # noqa: E402
from xpnet._network import ACTIVATIONS  # noqa: E402

DOCUMENTED = (ValueError, TypeError)
_EXAMPLES = int(os.environ.get("XPNET_FUZZ_EXAMPLES", "0"))
#: JAX compiles each new shape: a third of the cases keeps its run near the others'.
_SHARE = 3 if os.environ.get("XPNET_TEST_BACKEND") == "jax" else 1


def _fuzz(examples: int):
    """Hypothesis settings: ``examples`` cases, or XPNET_FUZZ_EXAMPLES random ones."""
    return settings(
        max_examples=_EXAMPLES or max(5, examples // _SHARE),
        derandomize=not _EXAMPLES,
        deadline=timedelta(seconds=30),  # a hang, not a slow first compilation
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- data ----------------------------------------------------------------------------------
DTYPES = (
    "float64", "float32", "float16", "int64", "int8", "uint8", "bool", "object", "complex128",
    "str",
)  # fmt: skip
REAL = ("float64", "float32", "float16", "int64", "int8", "uint8", "bool", "object")
FINITE = (0.0, -0.0, 1e-310, 65504.0, 1e6, -1e30)
SPECIAL = (np.nan, np.inf, -np.inf, 1e300, -1e300, *FINITE)


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN to int casts
        if dtype == "bool":
            return values != 0
        if dtype == "str":
            return values.astype(str)
        return values.astype(dtype)


@st.composite
def matrices(draw, n_features=None, clean=False):
    """An array meant as X: mostly 2-D, of any dtype, maybe with NaN or infinity.

    ``clean``: 2-D, at least two rows and one column, real numbers, all finite.
    """
    n = draw(st.sampled_from([2, 3, 5, 8] if clean else [0, 1, 1, 2, 3, 5, 8]))
    d = n_features
    if d is None:
        d = draw(st.sampled_from([1, 2, 3] if clean else [0, 1, 1, 2, 3]))
    shape = (n, d) if clean else draw(st.sampled_from([(n, d)] * 14 + [(n,), (n, d, 1)]))
    values = draw(
        hnp.arrays(np.float64, shape, elements=st.floats(-10.0, 10.0, allow_nan=False, width=32))
    )
    specials = FINITE if clean else SPECIAL
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2])) if values.size else 0):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(specials))
    return _cast(values, draw(st.sampled_from(REAL if clean else DTYPES[:1] * 6 + DTYPES)))


@st.composite
def labels(draw, n: int, clean=False):
    """Labels for n samples (sometimes one more or fewer), of every kind.

    ``clean``: one per sample, at least two classes, ints, strings, whole floats or bools.
    """
    if clean:
        k = draw(st.sampled_from([2, 3] if n > 2 else [2]))
        index = np.array(draw(st.permutations(np.arange(n) % k)), dtype=int)
        kinds = ["int", "str", "whole float"] + (["bool"] if k == 2 else [])
    else:
        m = max(0, n + draw(st.sampled_from([0] * 10 + [1, -1])))
        k = draw(st.sampled_from([1, 2, 2, 2, 3, 3]))
        index = np.array(draw(st.lists(st.integers(0, k - 1), min_size=m, max_size=m)), dtype=int)
        kinds = ["int", "str", "whole float", "bool", "float", "mixed", "object", "nan", "2-D"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return index * 3 - 2
    if kind == "str":
        return np.array(["cat", "dog", "emu"])[index]
    if kind == "whole float":
        return index.astype(np.float32)
    if kind == "float":
        return index + draw(st.floats(0.01, 0.99))
    if kind == "bool":
        return index % 2 == 0
    if kind == "mixed":
        return [int(i) if j % 2 else f"c{i}" for j, i in enumerate(index)]
    if kind == "object":
        return np.array(["x", "y", None])[index].astype(object)
    if kind == "nan":
        y = index.astype(float)
        if len(y):
            y[draw(st.integers(0, len(y) - 1))] = np.nan
        return y
    return np.eye(max(k, 2))[index]  # one-hot rows


def _placed(xb, a, where: str):
    """``a`` as the caller would pass it: a NumPy array, a list, or an array of the backend
    (where the backend holds that dtype)."""
    if where == "list" and isinstance(a, np.ndarray):
        return a.tolist()
    if where == "backend" and isinstance(a, np.ndarray) and a.dtype.kind in "biufc":
        try:
            return xb.asarray(a)
        except Exception:  # a dtype the backend lacks (float16 on array_api_strict, ...)
            return a
    return a


def _snapshot(xb, a):
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, list):
        return list(a)
    return xb.to_numpy(a).copy()


def _unchanged(xb, a, before) -> None:
    if isinstance(a, list):
        assert a == before or repr(a) == repr(before)
    else:
        now = a if isinstance(a, np.ndarray) else xb.to_numpy(a)
        if now.dtype == object:
            assert now.tolist() == before.tolist()
        else:
            np.testing.assert_array_equal(now, before)


# -- settings ----------------------------------------------------------------------------
GOOD = dict(
    hidden=st.sampled_from([1, 2, 3, (2, 2), (1, 3)]),
    epochs=st.sampled_from([1, 2, 3]),
    lr=st.sampled_from([0.01, 0.3, 3.0, 1e30]),
    l2=st.sampled_from([0.0, 0.01, 1.0]),
    activation=st.sampled_from(ACTIVATIONS),
    seed=st.sampled_from([0, 1, None, 2**32 - 1]),
    dtype=st.sampled_from([None, None, "float32", "float64"]),
    device=st.sampled_from([None, None, None, "cpu", "cuda:0"]),  # cuda:0 may fall back
)
BAD = dict(
    hidden=st.sampled_from([0, -1, True, "2", 2.0, (), (2, 0), None, 2**40]),
    epochs=st.sampled_from([0, -3, True, 2.0, "3", 2**40]),
    lr=st.sampled_from([0.0, -0.1, float("nan"), float("inf"), "0.1", 10**400]),
    l2=st.sampled_from([-1.0, float("inf"), float("nan"), "0"]),
    activation=st.sampled_from(["softsign", "", None, 3]),
    seed=st.sampled_from([-1, 2**32, 1.5, "0", True]),
    dtype=st.sampled_from(["float16", "int32", object, "banana"]),
    device=st.sampled_from(["banana", "cuda:x", 2.5, -1, ""]),
)


@st.composite
def hyperparameters(draw, clean=False):
    """Valid settings, one of which is sometimes not (never when ``clean``)."""
    bad = None if clean else draw(st.sampled_from([None, None, *BAD]))
    return {name: draw(BAD[name] if name == bad else GOOD[name]) for name in GOOD}


def _call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None when it raised a documented error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallbacks, divergence, overflow: allowed
        try:
            result = fn(*args, **kwargs)
        except DOCUMENTED as exc:
            event(f"{fn.__name__}: {type(exc).__name__}: {str(exc)[:30]}")
            return None
    event(f"{fn.__name__}: done")
    return result


def _n_rows(X) -> int:
    return len(X) if isinstance(X, list) else int(X.shape[0]) if X.ndim else 0


def _check_predictions(model, X) -> None:
    """A model that trained predicts for valid X: labels from its classes, probabilities."""
    predicted = _call(model.predict, X)
    proba = _call(model.predict_proba, X)
    if predicted is None or proba is None:
        return
    n = _n_rows(X)
    labels = np.asarray(xpnet._target.to_host(predicted))
    assert labels.shape == (n,) and set(labels.tolist()) <= set(model.classes_.tolist())
    p = xpnet._target.to_host(proba).astype(np.float64)
    assert p.shape == (n, len(model.classes_))
    assert np.all(((p >= 0) & (p <= 1)) | np.isnan(p))


# -- the tests ---------------------------------------------------------------------------------
@_fuzz(40)
@given(data=st.data())
def test_fit_succeeds_or_refuses(xb, data):
    clean = data.draw(st.booleans())  # half the cases are meant to train
    X = data.draw(matrices(clean=clean))
    X = _placed(xb, X, data.draw(st.sampled_from(["backend"] * 3 + ["list"])))
    y = data.draw(labels(_n_rows(X), clean=clean))
    y = _placed(xb, y, data.draw(st.sampled_from(["numpy", "backend"])))
    kw = data.draw(hyperparameters(clean=clean))
    before = (_snapshot(xb, X), _snapshot(xb, y))
    model = _call(xpnet.fit, X, y, log_every=1, **kw)
    _unchanged(xb, X, before[0])
    _unchanged(xb, y, before[1])
    if model is not None:
        assert len(model.loss_curve) == kw["epochs"]
        _check_predictions(model, X)


@_fuzz(25)
@given(data=st.data())
def test_fit_many_succeeds_or_refuses(xb, data):
    clean = data.draw(st.booleans())
    X = _placed(xb, data.draw(matrices(clean=clean)), "backend")
    y = data.draw(labels(_n_rows(X), clean=clean))
    kw = data.draw(hyperparameters(clean=clean))
    swept = data.draw(st.sampled_from(sorted(GOOD)))
    kw[swept] = [kw[swept], data.draw(GOOD[swept])]
    validation = data.draw(st.sampled_from([None, "same", "other"]))
    if validation == "same":
        kw["validation"] = (X, y)
    elif validation == "other":
        X_val = data.draw(matrices(n_features=data.draw(st.sampled_from([1, 2, 3])), clean=clean))
        kw["validation"] = (X_val, data.draw(labels(_n_rows(X_val), clean=clean)))
    before = _snapshot(xb, X)
    grid = _call(xpnet.fit_many, X, y, log_every=1, **kw)
    _unchanged(xb, X, before)
    if grid is not None:
        assert len(grid) == 2 == len(grid.results)
        for row in grid.results:
            assert row["status"] == "ok" or row["status"].startswith("diverged by pass")
        for model, row in zip(grid, grid.results):
            if row["status"] == "ok":
                _check_predictions(model, X)


@pytest.fixture(scope="module")
def models(xb):
    """Two small models on the backend: int classes over 3 features, string classes over 1."""
    rs = np.random.RandomState(0)
    X3, X1 = rs.randn(30, 3), rs.randn(30, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ints = xpnet.fit(xb.asarray(X3), rs.randint(0, 3, 30) * 3 - 2, epochs=5)
        strings = xpnet.fit(
            xb.asarray(X1), np.array(["cat", "dog"])[rs.randint(0, 2, 30)], epochs=5
        )
    return ints, strings


@_fuzz(60)
@given(data=st.data())
def test_model_methods_succeed_or_refuse(xb, models, data):
    model = models[data.draw(st.integers(0, 1))]
    clean = data.draw(st.booleans())
    d = model.n_features_in_ if clean else data.draw(st.sampled_from([0, 1, 2, 3, 4]))
    X = data.draw(matrices(n_features=d, clean=clean))
    X = _placed(xb, X, data.draw(st.sampled_from(["backend", "backend", "list", "numpy"])))
    y = data.draw(labels(_n_rows(X), clean=clean))
    before = _snapshot(xb, X)
    _check_predictions(model, X)
    score = _call(model.score, X, y)
    loss = _call(model.loss, X, y)
    _unchanged(xb, X, before)
    if score is not None:
        assert 0.0 <= score <= 1.0
    if loss is not None:
        assert loss >= 0.0 or np.isnan(loss)


@_fuzz(15)
@given(data=st.data())
def test_save_and_load_round_trip(xb, data):
    rs = np.random.RandomState(data.draw(st.integers(0, 2**16)))
    n, d = data.draw(st.sampled_from([(1, 1), (4, 2), (9, 3)]))
    X = xb.asarray(rs.randn(n, d).astype(data.draw(st.sampled_from(["float32", "float64"]))))
    kind = data.draw(st.sampled_from(["int", "str", "bool"]))
    index = np.arange(n) % 2  # one sample is one class: fit refuses it
    y = {"int": index * 5, "str": np.array(["a", "b"])[index], "bool": index == 1}[kind]
    kw = data.draw(hyperparameters(clean=True))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.xpnet"
        model = _call(xpnet.fit, X, y, **kw)
        if model is None:
            return
        model.save(path)
        again = xpnet.load(path)
        assert again.hidden == model.hidden and again.activation == model.activation
        np.testing.assert_array_equal(again.classes_, model.classes_)
        np.testing.assert_array_equal(
            xpnet._target.to_host(again.predict_proba(X)),
            xpnet._target.to_host(model.predict_proba(X)),
        )
        # a damaged file: cut short, or one byte changed
        raw = path.read_bytes()
        # where, as a fraction: the file's length may vary by a byte between runs
        at = int(data.draw(st.floats(0.0, 1.0, exclude_max=True)) * len(raw))
        if data.draw(st.booleans()):
            damaged = raw[:at]
        else:
            damaged = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
        path.write_bytes(damaged)
        loaded = _call(xpnet.load, path)
        if loaded is not None:  # the change hit nothing that is read (zip padding, a comment)
            assert isinstance(loaded, xpnet.Model)
