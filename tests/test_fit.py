"""xpnet.fit and Model on the backend under test."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

import xpnet
from xpnet._target import dtype_name


def _curve(model):
    return np.array([loss for _, loss in model.loss_curve])


def _is_on(xb, arr) -> bool:
    """``arr`` belongs to the backend under test and sits on its device."""
    from xpnet import _target

    return _target.adapter_of(arr).name == xb.name and str(array_api_compat.device(arr)) == str(
        xb.device
    )


# -- the article's numbers ------------------------------------------------------
def test_reproduces_the_article(xb, moons):
    X, y = moons
    model = xpnet.fit(xb.asarray(X), xb.asarray(y))
    passes = [i for i, _ in model.loss_curve]
    assert passes == [*range(0, 20000, 1000), 19999]
    assert model.loss_curve[0][1] == pytest.approx(0.432387, abs=1e-6)
    assert model.loss_curve[1][1] == pytest.approx(0.068947, abs=1e-6)
    assert 0.0707 <= model.loss_curve[-1][1] <= 0.0714
    assert model.score(X, y) == 0.975
    assert model.backend == xb.name
    assert model.loss(X, y) == pytest.approx(model.loss_curve[-1][1], rel=1e-12)


def test_float64_loss_curve_matches_numpy(xb, moons):
    X, y = moons
    ref = xpnet.fit(X, y, epochs=1000, log_every=50)
    model = xpnet.fit(xb.asarray(X), y, epochs=1000, log_every=50)
    assert model.loss_curve[-1][0] == ref.loss_curve[-1][0] == 999
    np.testing.assert_allclose(_curve(model), _curve(ref), rtol=1e-9)


def test_float32_loss_curve_matches_numpy(xb, moons):
    X, y = moons
    ref = xpnet.fit(X.astype(np.float32), y, epochs=500, log_every=25)
    model = xpnet.fit(xb.asarray(X, "float32"), y, epochs=500, log_every=25)
    assert dtype_name(model.dtype) == "float32"
    np.testing.assert_allclose(_curve(model), _curve(ref), rtol=1e-4)


@pytest.mark.parametrize("hidden", [(5,), (4, 3)])
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_every_activation_and_depth_trains_like_numpy(xb, moons, activation, hidden):
    X, y = moons
    # A smaller step than the article's: at lr=0.01 on 200 points a linear network diverges
    # and deeper ones become chaotic, so that rounding decides the trajectory.
    kw = dict(hidden=hidden, activation=activation, epochs=200, log_every=50, lr=0.001)
    ref = xpnet.fit(X, y, **kw)
    model = xpnet.fit(xb.asarray(X), y, **kw)
    np.testing.assert_allclose(_curve(model), _curve(ref), rtol=1e-9)
    assert _curve(model)[-1] < _curve(model)[0]


# -- results follow the caller ------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_follow_the_input(xb, moons, dtype):
    X, y = moons
    Xb = xb.asarray(X, dtype)
    model = xpnet.fit(Xb, xb.asarray(y), epochs=50)
    assert model.backend == xb.name and dtype_name(model.dtype) == dtype
    proba, labels = model.predict_proba(Xb), model.predict(Xb)
    assert _is_on(xb, proba) and _is_on(xb, labels)
    assert proba.dtype == Xb.dtype and tuple(proba.shape) == (200, 2)
    np.testing.assert_allclose(xb.to_numpy(xb.xp.sum(proba, axis=1)), 1.0, rtol=1e-5)
    # NumPy in, NumPy out, from the same model
    assert isinstance(model.predict(X), np.ndarray)
    np.testing.assert_array_equal(model.predict(X), xb.to_numpy(labels))


def test_numpy_model_predicts_into_the_callers_backend(xb, moons):
    X, y = moons
    model = xpnet.fit(X, y, epochs=50, backend="numpy")
    Xb = xb.asarray(X, "float32")
    proba = model.predict_proba(Xb)
    assert _is_on(xb, proba) and proba.dtype == Xb.dtype
    np.testing.assert_allclose(xb.to_numpy(proba), model.predict_proba(X), rtol=1e-5)


def test_integer_X_trains_in_float64(xb):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 5)
    y = np.array([0, 1, 1, 0] * 5)
    model = xpnet.fit(xb.asarray(X), y, hidden=4, epochs=20)
    assert dtype_name(model.dtype) == "float64"


def test_move_between_backends(xb, moons):
    X, y = moons
    model = xpnet.fit(X, y, epochs=100, backend="numpy")
    moved = model.to(xb.name, "device1" if xb.name == "array_api_strict" else None)
    assert moved.backend == xb.name and moved is not model
    np.testing.assert_allclose(
        xb.to_numpy(moved.predict_proba(xb.asarray(X))), model.predict_proba(X)
    )
    back = moved.to("numpy")
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.loss_curve == model.loss_curve


# -- labels ------------------------------------------------------------------------
def test_string_labels_come_back_as_numpy(xb, moons):
    X, y = moons
    names = np.array(["left moon", "right moon"])[y]
    model = xpnet.fit(xb.asarray(X), names, epochs=300)
    pred = model.predict(xb.asarray(X))
    assert isinstance(pred, np.ndarray) and set(pred) <= set(names)
    assert model.score(X, names) > 0.8
    np.testing.assert_array_equal(model.classes_, ["left moon", "right moon"])


def test_integer_labels_keep_their_values(xb):
    rs = np.random.RandomState(1)
    X = rs.randn(90, 2)
    y = np.array([7, -3, 12])[np.argmax(X @ rs.randn(2, 3), axis=1)]
    model = xpnet.fit(xb.asarray(X), xb.asarray(y), hidden=(6, 4), epochs=500)
    pred = xb.to_numpy(model.predict(xb.asarray(X)))
    assert set(np.unique(pred)) <= {7, -3, 12}
    assert model.score(X, y) > 0.8


# -- inputs are never modified ---------------------------------------------------------
def test_inputs_are_not_modified(xb, moons):
    X, y = moons
    Xb, yb = xb.asarray(X), xb.asarray(y)
    model = xpnet.fit(Xb, yb, epochs=30)
    model.predict_proba(Xb), model.loss(Xb, yb), model.score(Xb, yb)
    np.testing.assert_array_equal(xb.to_numpy(Xb), X)
    np.testing.assert_array_equal(xb.to_numpy(yb), y)


# -- bad input -------------------------------------------------------------------------
def _bad(X, y, **kw):
    with pytest.raises(ValueError) as info:
        xpnet.fit(X, y, **{"epochs": 5, **kw})
    return str(info.value)


def test_bad_data_is_refused_before_training(xb, moons):
    X, y = moons
    with_nan, with_inf = X.copy(), X.copy()
    with_nan[3, 1], with_inf[7, 0] = np.nan, np.inf
    assert "NaN or infinity" in _bad(xb.asarray(with_nan), y)
    assert "NaN or infinity" in _bad(xb.asarray(with_inf), y)
    assert "2-D" in _bad(xb.asarray(X[:, 0]), y)
    assert "2-D" in _bad(xb.asarray(X.reshape(200, 2, 1)), y)
    assert "200 samples but y has 199" in _bad(xb.asarray(X), y[:-1])
    assert "at least 2" in _bad(xb.asarray(X), np.zeros(200, dtype=int))
    assert "empty" in _bad(xb.asarray(X[:0]), y[:0])
    assert "real numbers" in _bad(np.array([["a", "b"]] * 200), y)


def test_sparse_X_gets_a_pointer_to_toarray(moons):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y = moons
    assert "X.toarray()" in _bad(scipy_sparse.csr_matrix(X), y)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(hidden=0), "at least 1 unit"),
        (dict(hidden=(3, 0)), "at least 1 unit"),
        (dict(hidden=()), "non-empty"),
        (dict(hidden=2.5), "int or"),
        (dict(activation="softsign"), "unknown activation"),
        (dict(backend="tensorflow"), "unknown backend"),
        (dict(epochs=0), "epochs"),
        (dict(lr=-0.1), "lr"),
        (dict(l2=float("nan")), "l2"),
        (dict(dtype="int32"), "float32 or float64"),
    ],
)
def test_bad_settings_are_refused(moons, kw, message):
    X, y = moons
    assert message in _bad(X, y, **kw)


def test_predict_checks_the_number_of_features(xb, moons):
    X, y = moons
    model = xpnet.fit(xb.asarray(X), y, epochs=5)
    wide = xb.asarray(np.hstack([X, X]))
    for method in (model.predict, model.predict_proba):
        with pytest.raises(ValueError, match="4 features, but the model was fitted with 2"):
            method(wide)


def test_loss_refuses_unknown_labels(moons):
    X, y = moons
    model = xpnet.fit(X, y, epochs=5)
    with pytest.raises(ValueError, match=r"not trained on: \[2\]"):
        model.loss(X, np.where(y == 1, 2, 0))


# -- logging -----------------------------------------------------------------------------
def test_loss_curve_records_first_every_and_last_pass(moons):
    X, y = moons
    seen = []
    model = xpnet.fit(
        X, y, epochs=25, log_every=10, callback=lambda i, loss: seen.append((i, loss))
    )
    assert [i for i, _ in model.loss_curve] == [0, 10, 20, 24]
    assert seen == model.loss_curve
    assert all(type(i) is int and type(loss) is float for i, loss in seen)


def test_divergence_is_reported_not_returned(moons):
    X, y = moons
    with pytest.raises(xpnet.DivergenceError, match="diverged.*Lower the learning rate") as e:
        with np.errstate(all="ignore"):
            xpnet.fit(X * 1e3, y, activation="identity", lr=1.0, epochs=50, log_every=10)
    # The error names the first non-finite pass, between two recorded ones, and holds the
    # parameters after the pass before it, which a fit of exactly that many passes retraces.
    assert 20 < e.value.epoch <= 30 and f"after pass {e.value.epoch};" in str(e.value)
    assert [i for i, _ in e.value.history] == [0, 10, 20]
    assert isinstance(e.value, ValueError) and not np.isfinite(e.value.loss)
    with np.errstate(all="ignore"), pytest.warns(xpnet.DivergenceWarning):
        before = xpnet.fit(
            X * 1e3, y, activation="identity", lr=1.0, epochs=e.value.epoch, log_every=10
        )
    for (W, b), (W0, b0) in zip(before.params, e.value.params, strict=True):
        assert np.all(np.isfinite(W0)) and np.all(np.isfinite(b0))
        np.testing.assert_array_equal(np.asarray(W), W0)
        np.testing.assert_array_equal(np.asarray(b), b0)
