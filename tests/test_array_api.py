"""scikit-learn's array API: the estimators declare ``array_api_support``, pass its array-API
checks, work in its meta-estimators under ``array_api_dispatch`` and follow its rule that
predictions there take X of the fit's namespace and device only.

scikit-learn's dispatch needs SCIPY_ARRAY_API=1 (each nox session sets it); without it these
tests skip.  Each of scikit-learn's checks runs in the session of the backend its X comes
from (numpy, torch, array_api_strict, cupy), so the GPU's (CuPy, torch on CUDA) run where
the suite runs on a GPU (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import os
import warnings
from functools import partial

import numpy as np
import pytest
import sklearn
from array_api_compat import array_namespace
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    _yield_array_api_checks,
    check_array_api_input_and_values,
)

import xpnet
from xpnet import _target

BACKEND = os.environ.get("XPNET_TEST_BACKEND", "numpy")
DISPATCH = os.environ.get("SCIPY_ARRAY_API") == "1"
needs_dispatch = pytest.mark.skipif(
    not DISPATCH, reason="scikit-learn's array_api_dispatch needs SCIPY_ARRAY_API=1 (nox sets it)"
)
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # StandardScaler's first pass divides 0 by 0 on array_api_strict (scikit-learn's own)
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
]

ESTIMATORS = [
    xpnet.MLPClassifier(max_iter=50, random_state=0),
    xpnet.MLPRegressor(max_iter=50, random_state=0),
]


def dispatch():
    return sklearn.config_context(array_api_dispatch=True)


def _x_namespace(check: partial) -> str:
    """The namespace of the X a scikit-learn array-API check fits on."""
    kw = check.keywords
    return kw["X_ns_and_device"].xp if "X_ns_and_device" in kw else kw["array_namespace"]


def _label(check: partial) -> str:
    kw = check.keywords
    if "X_ns_and_device" in kw:
        x, other = kw["X_ns_and_device"], kw["other_ns_and_device"]
        return f"{check.func.__name__}(X={x.xp}:{x.device},y={other.xp}:{other.device})"
    where = [kw["array_namespace"], kw.get("device_name"), kw.get("dtype_name")]
    return f"{check.func.__name__}({','.join(str(w) for w in where if w is not None)})"


def _checks_of_this_backend() -> list:
    """(estimator, check) for every array-API check scikit-learn yields for the estimators
    (their tag declared), whose X is of the backend under test."""
    cases = []
    for est in ESTIMATORS:
        for check in _yield_array_api_checks(est, only_numpy=not get_tags(est).array_api_support):
            if _x_namespace(check) == BACKEND:
                label = f"{type(est).__name__}-{_label(check)}"
                cases.append(pytest.param(est, check, id=label))
    return cases


def test_the_estimators_declare_array_api_support():
    for est in ESTIMATORS:
        assert get_tags(est).array_api_support is True


@needs_dispatch
@pytest.mark.parametrize("estimator, check", _checks_of_this_backend())
def test_sklearn_array_api_checks(estimator, check):
    # Skipped by scikit-learn itself (unittest.SkipTest) where the library or device is
    # missing: CuPy, torch on CUDA, XPU or MPS.
    check(type(estimator).__name__, estimator)


@needs_dispatch
@pytest.mark.parametrize("sample_weight", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda est: type(est).__name__)
def test_array_api_fits_give_numpys_numbers(estimator, sample_weight, xb):
    """Beyond the yielded checks: float64 X of the backend under test trains the weights
    NumPy trains, and predicts and scores as NumPy does."""
    if xb.name not in ("torch", "array_api_strict", "cupy"):
        pytest.skip(f"scikit-learn's array-API checks take no {xb.name} arrays")
    # scikit-learn skips a device without float64 itself
    device = {"torch": str(xb.device), "array_api_strict": "device1"}.get(xb.name)
    check_array_api_input_and_values(
        type(estimator).__name__, estimator, xb.name, device, check_sample_weight=sample_weight
    )


# -- in scikit-learn's meta-estimators, under dispatch ------------------------------------


def _on(namespace: str, a: np.ndarray):
    """``a`` as an array of ``namespace``: torch on the CPU, array_api_strict on device1."""
    if namespace == "torch":
        torch = pytest.importorskip("torch")
        return torch.asarray(a)
    strict = pytest.importorskip("array_api_strict")
    return strict.asarray(a, device=strict.Device("device1"))


def _assert_like(result, X) -> None:
    """``result`` is an array of X's namespace on X's device."""
    assert array_namespace(result) is array_namespace(X)
    assert _target.same_device(_target.device_of(result), _target.device_of(X))


@needs_dispatch
@pytest.mark.parametrize("namespace", ["torch", "array_api_strict"])
def test_a_pipeline_and_grid_search_keep_the_input_namespace(namespace):
    X, y = make_classification(90, 5, n_informative=3, random_state=0)
    Xa, ya = _on(namespace, X), _on(namespace, y)

    def pipeline():
        mlp = xpnet.MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
        return make_pipeline(StandardScaler(), mlp)

    reference = pipeline().fit(X, y)  # NumPy, no dispatch
    with dispatch():
        fitted = pipeline().fit(Xa, ya)
        labels, proba = fitted.predict(Xa), fitted.predict_proba(Xa)
        score = fitted.score(Xa, ya)
        search = GridSearchCV(pipeline(), {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3)
        search.fit(Xa, ya)
        search_labels = search.predict(Xa)
        search_score = search.score(Xa, ya)
    for result in (labels, proba, search_labels):
        _assert_like(result, Xa)
    # the same numbers as the pipeline on NumPy, scaler and network alike
    np.testing.assert_allclose(_target.to_host(proba), reference.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(_target.to_host(labels), reference.predict(X))
    assert isinstance(score, float) and score == pytest.approx(reference.score(X, y))
    assert score > 0.8
    assert search.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-1)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert isinstance(search_score, float) and search_score > 0.8


@needs_dispatch
@pytest.mark.parametrize("namespace", ["torch", "array_api_strict"])
def test_a_regressor_grid_search_keeps_the_input_namespace(namespace):
    X, y = make_regression(90, 4, noise=1.0, random_state=0)
    Xa, ya = _on(namespace, X), _on(namespace, y / 100)
    mlp = xpnet.MLPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0)
    with dispatch():
        search = GridSearchCV(mlp, {"learning_rate_init": [1e-3, 1e-2]}, cv=3).fit(Xa, ya)
        pred = search.predict(Xa)
        score = search.score(Xa, ya)
    _assert_like(pred, Xa)
    assert tuple(pred.shape) == (90,)
    assert isinstance(score, float) and score > 0.5


# -- the same-namespace rule ----------------------------------------------------------------

METHODS = {
    "MLPClassifier": ["predict", "predict_proba", "predict_log_proba", "score"],
    "MLPRegressor": ["predict", "score"],
}


def _call(est, method: str, X, y):
    return getattr(est, method)(X, y) if method == "score" else getattr(est, method)(X)


def _fitted(Estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Estimator(hidden_layer_sizes=(5,), max_iter=20, random_state=0).fit(X, y)


def _other_than(xb):
    """An array of another namespace than the backend under test's, and its name."""
    if xb.name == "numpy":
        strict = pytest.importorskip("array_api_strict")
        return lambda a: strict.asarray(a), "array_api_strict"
    return np.asarray, "numpy"


@needs_dispatch
@pytest.mark.parametrize("Estimator", [xpnet.MLPClassifier, xpnet.MLPRegressor])
def test_under_dispatch_another_namespace_than_the_fits_raises(xb, moons, Estimator):
    X, y = moons
    other, other_name = _other_than(xb)
    name = Estimator.__name__
    with dispatch():
        est = _fitted(Estimator, xb.asarray(X), xb.asarray(y))
        for method in METHODS[name]:
            match = (
                rf"Inputs passed to {name}\.{method}\(\) must use the same namespace and the "
                rf"same device as those passed to fit\(\)\. Array namespaces used during fit "
                rf"\({xb.name}\) and {method} \({other_name}\) differ"
            )
            with pytest.raises(ValueError, match=match):
                _call(est, method, other(X), y)
            same = _call(est, method, xb.asarray(X), xb.asarray(y))  # the fit's: fine
            if method != "score":
                _assert_like(same, xb.asarray(X))


@needs_dispatch
@pytest.mark.parametrize("Estimator", [xpnet.MLPClassifier, xpnet.MLPRegressor])
def test_outside_dispatch_another_namespace_is_converted(xb, moons, Estimator):
    X, y = moons
    other, _ = _other_than(xb)
    est = _fitted(Estimator, xb.asarray(X), xb.asarray(y))
    expected = _target.to_host(est.predict(xb.asarray(X)))
    for method in METHODS[Estimator.__name__]:
        result = _call(est, method, other(X), y)
        if method != "score":
            _assert_like(result, other(X))
    np.testing.assert_allclose(_target.to_host(est.predict(other(X))), expected, atol=1e-6)


@needs_dispatch
def test_under_dispatch_a_list_after_a_fit_on_arrays_of_another_namespace_raises(xb, moons):
    if xb.name == "numpy":
        pytest.skip("a list is NumPy's input: a NumPy fit takes it")
    X, y = moons
    with dispatch():
        est = _fitted(xpnet.MLPClassifier, xb.asarray(X), xb.asarray(y))
        with pytest.raises(ValueError, match="not compatible with the array-like input"):
            est.predict(X.tolist())


@needs_dispatch
def test_under_dispatch_numpy_fits_take_lists_and_dataframes(moons):
    pd = pytest.importorskip("pandas")
    X, y = moons
    with dispatch():
        est = _fitted(xpnet.MLPClassifier, X, y)
        expected = est.predict(X)
        np.testing.assert_array_equal(est.predict(X.tolist()), expected)
        np.testing.assert_array_equal(est.predict(pd.DataFrame(X)), expected)


@needs_dispatch
def test_under_dispatch_another_device_than_the_fits_raises(moons):
    strict = pytest.importorskip("array_api_strict")
    X, y = moons
    here, there = strict.Device("device1"), strict.Device("CPU_DEVICE")
    with dispatch():
        est = _fitted(xpnet.MLPClassifier, strict.asarray(X, device=here), y)
        with pytest.raises(ValueError, match=r"Devices used during fit \(device1\) and predict"):
            est.predict(strict.asarray(X, device=there))
    _assert_like(est.predict(strict.asarray(X, device=there)), strict.asarray(X, device=there))


@needs_dispatch
def test_a_saved_estimator_keeps_its_fits_namespace(xb, moons, tmp_path):
    X, y = moons
    other, _ = _other_than(xb)
    est = _fitted(xpnet.MLPClassifier, xb.asarray(X), xb.asarray(y))
    loaded = xpnet.load(est.save(tmp_path / "clf.npz"))
    with dispatch():
        _assert_like(loaded.predict(xb.asarray(X)), xb.asarray(X))
        with pytest.raises(ValueError, match="must use the same namespace"):
            loaded.predict(other(X))


def test_a_file_with_a_malformed_fit_namespace_is_refused(moons, tmp_path):
    X, y = moons
    est = _fitted(xpnet.MLPClassifier, X, y)
    est._fit_device = 3
    path = est.save(tmp_path / "clf.npz")
    with pytest.raises(xpnet.ModelFileError, match="_fit_device are"):
        xpnet.load(path)
