"""xpnet.MLPClassifier and xpnet.MLPRegressor against scikit-learn's, and on every backend."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as skl
from sklearn.base import clone
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import xpnet
from xpnet import _backends, _optim, _target

ON_NUMPY = os.environ.get("XPNET_TEST_BACKEND", "numpy") == "numpy"
numpy_only = pytest.mark.skipif(not ON_NUMPY, reason="scikit-learn's checks run on NumPy input")

SOLVERS = {
    "sgd-momentum": dict(solver="sgd", nesterovs_momentum=False),
    "sgd-nesterov": dict(solver="sgd"),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", momentum=0.5),
    "adam": dict(solver="adam"),
}


def _problems():
    Xm, ym = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    Xb, yb = make_classification(120, 6, random_state=1)
    Xr, yr = make_regression(120, 6, n_targets=2, noise=1.0, random_state=2)
    return {
        "multiclass": (Xm, ym, skl.MLPClassifier, xpnet.MLPClassifier),
        "binary": (Xb, yb, skl.MLPClassifier, xpnet.MLPClassifier),
        "regression": (Xr, yr / 50, skl.MLPRegressor, xpnet.MLPRegressor),
    }


PROBLEMS = _problems()


def _fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _assert_same_params(ours, theirs, rtol=1e-6):
    assert len(ours.coefs_) == len(theirs.coefs_)
    pairs = zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True)
    for a, b in pairs:
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)


# -- scikit-learn's own estimator checks -----------------------------------------------


@numpy_only
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    [
        xpnet.MLPClassifier(max_iter=50, random_state=0),
        xpnet.MLPRegressor(max_iter=50, random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    # scikit-learn runs its CuPy array-API checks wherever cupy imports; without a usable
    # CUDA device (cupy is installed here to test the fallback) they cannot run
    uses = getattr(check, "keywords", {}).values()
    if "cupy" in [str(v).partition(".")[0] for v in uses] and not _backends.probe("cupy").usable:
        pytest.skip(f"no usable CUDA device for CuPy: {_backends.probe('cupy').reason}")
    check(estimator)


# -- the same numbers as scikit-learn -------------------------------------------------


@numpy_only
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("early_stopping", [False, True], ids=["all", "early"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_matches_sklearn_after_a_few_epochs(solver, problem, early_stopping, weighted):
    X, y, Theirs, Ours = PROBLEMS[problem]
    sw = np.random.RandomState(5).uniform(0.2, 3.0, X.shape[0]) if weighted else None
    kw = dict(
        hidden_layer_sizes=(7, 5),
        activation="tanh",
        max_iter=4,
        batch_size=32,
        random_state=3,
        early_stopping=early_stopping,
        learning_rate_init=0.01,
        **SOLVERS[solver],
    )
    theirs = _fit_quietly(Theirs(**kw), X, y, sample_weight=sw)
    ours = _fit_quietly(Ours(**kw), X, y, sample_weight=sw)
    _assert_same_params(ours, theirs)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_ and ours.n_layers_ == theirs.n_layers_
    if early_stopping:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
        assert ours.best_loss_ is None
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-9)
        assert ours.validation_scores_ is None
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)


def _ten_classes(rows):
    return make_classification(rows, 16, n_informative=12, n_classes=10, random_state=0)


@numpy_only
def test_wide_adam_epochs_equal_sklearn_bit_for_bit():
    # Two hidden layers, ten classes, and a short last batch (3000 = 11 * 256 + 184), which
    # borrows the first rows of the full batches' buffers.
    X, y = _ten_classes(3000)
    kw = dict(hidden_layer_sizes=(32, 32), batch_size=256, max_iter=2, random_state=0)
    theirs = _fit_quietly(skl.MLPClassifier(**kw), X, y)
    ours = _fit_quietly(xpnet.MLPClassifier(**kw), X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-13)


@numpy_only
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_peak_memory_is_no_higher_than_sklearn(dtype):
    import tracemalloc

    # Enough rows for the per-row arrays to outweigh the per-batch ones: scikit-learn keeps
    # the targets as int64, 80 bytes a row for ten classes, xpnet as booleans (10 bytes).
    X, y = _ten_classes(60000)
    X = X.astype(dtype)
    kw = dict(hidden_layer_sizes=(64, 64), batch_size=512, max_iter=1, random_state=0)
    peaks = {}
    for name, Estimator in [("sklearn", skl.MLPClassifier), ("xpnet", xpnet.MLPClassifier)]:
        _fit_quietly(Estimator(**kw), X[:600], y[:600])  # imports and caches, not counted
        tracemalloc.start()
        try:
            _fit_quietly(Estimator(**kw), X, y)
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["xpnet"] <= peaks["sklearn"], peaks


@numpy_only
@pytest.mark.parametrize("activation", ["identity", "logistic", "relu"])
def test_matches_sklearn_for_each_activation_and_poisson(activation):
    X, y, _, _ = PROBLEMS["regression"]
    kw = dict(hidden_layer_sizes=(6,), activation=activation, max_iter=3, random_state=0)
    for loss, target in [("squared_error", y), ("poisson", np.abs(y[:, 0]))]:
        theirs = _fit_quietly(skl.MLPRegressor(loss=loss, **kw), X, target)
        ours = _fit_quietly(xpnet.MLPRegressor(loss=loss, **kw), X, target)
        _assert_same_params(ours, theirs)
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@numpy_only
def test_adaptive_learning_rate_and_plateau_stop_match_sklearn():
    X, y, _, _ = PROBLEMS["multiclass"]
    kw = dict(
        hidden_layer_sizes=(5,), solver="sgd", learning_rate="adaptive", tol=0.5,
        n_iter_no_change=2, max_iter=30, random_state=0,
    )  # fmt: skip
    theirs = _fit_quietly(skl.MLPClassifier(**kw), X, y)
    ours = _fit_quietly(xpnet.MLPClassifier(**kw), X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 30  # stopped on the plateau
    assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    _assert_same_params(ours, theirs)


@numpy_only
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_matches_sklearn(solver):
    X, y, _, _ = PROBLEMS["multiclass"]
    theirs = skl.MLPClassifier((6,), solver=solver, random_state=0, batch_size=40)
    ours = xpnet.MLPClassifier((6,), solver=solver, random_state=0, batch_size=40)
    for start in (0, 60, 0):
        part = slice(start, start + 60)
        theirs.partial_fit(X[part], y[part], classes=np.unique(y))
        ours.partial_fit(X[part], y[part], classes=np.unique(y))
    _assert_same_params(ours, theirs)
    assert ours.n_iter_ == theirs.n_iter_ == 1  # one epoch per call
    assert ours.t_ == theirs.t_ == 180


@numpy_only
def test_a_generator_passed_as_random_state_moves_on_as_in_sklearn():
    """Shuffles and splits draw from the caller's RandomState, call after call."""
    X, y, _, _ = PROBLEMS["multiclass"]
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=10, max_iter=2)
    theirs = skl.MLPClassifier(random_state=np.random.RandomState(3), **kw)
    ours = xpnet.MLPClassifier(random_state=np.random.RandomState(3), **kw)
    for _ in range(3):
        theirs.partial_fit(X, y, classes=np.unique(y))
        ours.partial_fit(X, y, classes=np.unique(y))
    _assert_same_params(ours, theirs)
    assert ours.random_state.get_state()[2] == theirs.random_state.get_state()[2]
    kw.update(warm_start=True, early_stopping=True)
    theirs = skl.MLPClassifier(random_state=np.random.RandomState(4), **kw)
    ours = xpnet.MLPClassifier(random_state=np.random.RandomState(4), **kw)
    _fit_quietly(theirs, X, y)
    _fit_quietly(ours, X, y)
    _assert_same_params(ours, theirs)
    best = [W.copy() for W in ours.coefs_]
    _fit_quietly(theirs, X, y)
    _fit_quietly(ours, X, y)  # its scores never beat the first fit's best
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert max(ours.validation_scores_[2:]) < ours.best_validation_score_
    assert ours.random_state.get_state()[2] == theirs.random_state.get_state()[2]
    # so early stopping keeps that best; scikit-learn returns its last iterate here, as
    # its best parameters are the arrays the next warm start updates in place
    for W, W_best in zip(ours.coefs_, best):
        np.testing.assert_array_equal(W, W_best)


@numpy_only
def test_verbose_early_stopping_with_a_non_finite_loss_reports_as_sklearn(capsys):
    X = np.finfo(np.float64).max * np.random.RandomState(0).uniform(size=(40, 2))
    y = np.random.RandomState(1).standard_normal(40)
    kw = dict(early_stopping=True, verbose=True, max_iter=4, random_state=0)
    outputs = []
    for Estimator in (skl.MLPRegressor, xpnet.MLPRegressor):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                Estimator(**kw).fit(X, y)
            except ValueError as exc:
                assert "non-finite" in str(exc)
        outputs.append(capsys.readouterr().out)
    assert "Iteration 1, loss = " in outputs[1]
    assert outputs[1] == outputs[0]


@numpy_only
def test_partial_fit_needs_classes_first_and_a_stochastic_solver():
    X, y, _, _ = PROBLEMS["binary"]
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        xpnet.MLPClassifier().partial_fit(X, y)
    with pytest.raises(AttributeError, match="has no attribute .partial_fit."):
        xpnet.MLPClassifier(solver="lbfgs").partial_fit(X, y, classes=[0, 1])


@numpy_only
@pytest.mark.parametrize("warm_start", [False, True], ids=["refit", "warm start"])
def test_a_batch_whose_weights_sum_to_zero_is_refused_before_training(warm_start):
    X, y, _, _ = PROBLEMS["binary"]
    sw = np.ones(X.shape[0])
    kw = dict(hidden_layer_sizes=(4,), batch_size=50, shuffle=False, max_iter=2, random_state=0)
    clf = _fit_quietly(xpnet.MLPClassifier(warm_start=warm_start, **kw), X, y, sample_weight=sw)
    before = [W.copy() for W in clf.coefs_], list(clf.loss_curve_), clf.n_iter_
    for rows, weights in [((50, 100), 0.0), ((75, 100), -1.0)]:  # all zero, or +1 and -1
        sw = np.ones(X.shape[0])
        sw[slice(*rows)] = weights  # the second batch, unshuffled
        given = sw.copy()
        match = r"mini-batch 2 of \d+ \(rows 50 to 99\) sum to zero.*Leave out"
        with pytest.raises(ValueError, match=match):
            clf.fit(X, y, sample_weight=sw)
        np.testing.assert_array_equal(sw, given)
        # the refused fit left the fitted model as it was
        for a, b in zip(clf.coefs_, before[0], strict=True):
            np.testing.assert_array_equal(a, b)
        assert (clf.loss_curve_, clf.n_iter_) == before[1:]
        # scikit-learn meets the same batch mid-fit, as a division by zero
        with pytest.raises(ZeroDivisionError):
            _fit_quietly(skl.MLPClassifier(**kw), X, y, sample_weight=sw)
    # zero weights that fill no batch train as scikit-learn does
    sw = np.ones(X.shape[0])
    sw[::3] = 0.0
    ours = _fit_quietly(xpnet.MLPClassifier(**kw), X, y, sample_weight=sw)
    _assert_same_params(ours, _fit_quietly(skl.MLPClassifier(**kw), X, y, sample_weight=sw))


def test_a_shuffled_batch_of_zero_weights_is_refused_when_drawn(xb):
    # 310 rows, 30 of them weighted: a last batch of 10 rows is drawn all zero within a few
    # epochs, where the weights would become NaN
    X, y = make_classification(310, 4, random_state=0)
    sw = np.zeros(X.shape[0])
    sw[:30] = 1.0
    clf = xpnet.MLPClassifier(hidden_layer_sizes=(4,), batch_size=50, max_iter=50, random_state=0)
    match = "mini-batch 7 of 7 .as this epoch's shuffle drew it. sum to zero"
    with pytest.raises(ValueError, match=match):
        _fit_quietly(clf, xb.asarray(X), xb.asarray(y), sample_weight=xb.asarray(sw))
    assert not hasattr(clf, "coefs_")  # a failed first fit leaves the estimator unfitted
    # with early stopping (unshuffled), the batches of the rows kept for training
    clf = xpnet.MLPClassifier(
        hidden_layer_sizes=(4,), batch_size=50, shuffle=False, early_stopping=True,
        random_state=0,
    )  # fmt: skip
    sw = np.zeros(X.shape[0])
    sw[:5] = 1.0
    match = r"mini-batch \d of 6 .of the rows early_stopping kept for training. sum to zero"
    with pytest.raises(ValueError, match=match):
        _fit_quietly(clf, xb.asarray(X), xb.asarray(y), sample_weight=xb.asarray(sw))


@numpy_only
def test_get_params_equal_sklearns():
    kw = dict(hidden_layer_sizes=(3, 4), solver="sgd", alpha=0.1, momentum=0.5, max_fun=100)
    ours = xpnet.MLPClassifier(**kw, backend="cupy", device="cuda:0").get_params()
    assert ours.pop("backend") == "cupy" and ours.pop("device") == "cuda:0"
    assert ours.pop("checkpoint") is None and ours.pop("checkpoint_every") == 1
    assert ours == skl.MLPClassifier(**kw).get_params()
    ours = xpnet.MLPRegressor(loss="poisson", **kw).get_params()
    del ours["backend"], ours["device"], ours["checkpoint"], ours["checkpoint_every"]
    assert ours == skl.MLPRegressor(loss="poisson", **kw).get_params()


@numpy_only
def test_bad_parameters_raise_sklearns_errors():
    X, y, _, _ = PROBLEMS["binary"]
    with pytest.raises(ValueError, match="'solver' parameter of MLPClassifier must be"):
        xpnet.MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="'backend' parameter of MLPRegressor must be"):
        xpnet.MLPRegressor(backend="tensorflow").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        xpnet.MLPRegressor(hidden_layer_sizes=(3, 0)).fit(X, y)


# -- lbfgs ---------------------------------------------------------------------------


@numpy_only
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_lbfgs_reaches_sklearns_quality(problem):
    X, y, Theirs, Ours = PROBLEMS[problem]
    kw = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=300, random_state=0)
    theirs = _fit_quietly(Theirs(**kw), X, y)
    ours = _fit_quietly(Ours(**kw), X, y)
    assert ours.score(X, y) >= theirs.score(X, y) - 0.02
    assert 0 < ours.n_iter_ <= 300
    assert not hasattr(ours, "loss_curve_")
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.5, abs=0.05)


@numpy_only
def test_lbfgs_warns_when_max_iter_is_reached():
    X, y, _, _ = PROBLEMS["multiclass"]
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 3 iteration"):
        model = xpnet.MLPClassifier((5,), solver="lbfgs", max_iter=3).fit(X, y)
    assert model.n_iter_ == 3


# -- fitted attributes and problem kinds ----------------------------------------------


@numpy_only
def test_binary_has_one_logistic_output_and_two_probability_columns():
    X, y, _, _ = PROBLEMS["binary"]
    labels = np.where(y == 1, "yes", "no")
    model = _fit_quietly(xpnet.MLPClassifier((4,), max_iter=5, random_state=0), X, labels)
    assert model.n_outputs_ == 1 and model.out_activation_ == "logistic"
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(proba))
    assert set(model.predict(X)) <= {"yes", "no"}
    assert isinstance(model.loss_curve_, list) and all(type(v) is float for v in model.loss_curve_)
    assert len(model.loss_curve_) == model.n_iter_ == 5


@numpy_only
def test_multilabel_matches_sklearn():
    X, Y = make_multilabel_classification(100, 5, n_classes=3, random_state=0)
    kw = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    theirs = _fit_quietly(skl.MLPClassifier(**kw), X, Y)
    ours = _fit_quietly(xpnet.MLPClassifier(**kw), X, Y)
    _assert_same_params(ours, theirs)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6)


@numpy_only
def test_sparse_X_gives_the_dense_results():
    X, y, _, _ = PROBLEMS["multiclass"]
    kw = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0, batch_size=50)
    for solver in ("adam", "lbfgs"):
        dense = _fit_quietly(xpnet.MLPClassifier(solver=solver, **kw), X, y)
        sparse = _fit_quietly(xpnet.MLPClassifier(solver=solver, **kw), sp.csr_matrix(X), y)
        _assert_same_params(sparse, dense, rtol=1e-12)
        np.testing.assert_allclose(sparse.predict_proba(sp.csc_matrix(X)), dense.predict_proba(X))


@numpy_only
def test_max_iter_warns_and_interrupt_keeps_a_usable_model(monkeypatch):
    X, y, _, _ = PROBLEMS["multiclass"]
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        xpnet.MLPClassifier((4,), max_iter=2).fit(X, y)

    calls = {"n": 0}
    step_size = _optim.Adam.step_size

    def interrupted(self, state):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return step_size(self, state)

    monkeypatch.setattr(_optim.Adam, "step_size", interrupted)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        model = xpnet.MLPClassifier((4,), batch_size=40, max_iter=50, random_state=0).fit(X, y)
    assert model.n_iter_ == 2  # 3 batches an epoch: interrupted in the third epoch
    assert model.predict(X).shape == y.shape


@numpy_only
def test_warm_start_continues_like_sklearn():
    X, y, _, _ = PROBLEMS["multiclass"]
    kw = dict(hidden_layer_sizes=(5,), max_iter=2, random_state=0, warm_start=True)
    theirs, ours = skl.MLPClassifier(**kw), xpnet.MLPClassifier(**kw)
    for _ in range(2):
        _fit_quietly(theirs, X, y)
        _fit_quietly(ours, X, y)
    _assert_same_params(ours, theirs)


# -- the scikit-learn ecosystem --------------------------------------------------------


@numpy_only
def test_pipeline_gridsearch_cross_val_clone_and_pickle():
    X, y, _, _ = PROBLEMS["multiclass"]
    pipe = make_pipeline(StandardScaler(), xpnet.MLPClassifier((8,), max_iter=20, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3)
    _fit_quietly(search, X, y)
    assert search.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        regressor = xpnet.MLPRegressor(hidden_layer_sizes=(8,), max_iter=20)
        scores = cross_val_score(regressor, *PROBLEMS["regression"][:2])
    assert scores.shape == (5,)

    model = _fit_quietly(xpnet.MLPClassifier((6,), max_iter=10, random_state=0), X, y)
    fresh = clone(model)
    assert not hasattr(fresh, "coefs_") and fresh.get_params() == model.get_params()
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


# -- backends ------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_backend_training_matches_numpy_in_float64(xb, solver):
    if not _target.Target(xb.name, xb.xp, xb.device).has_float64():
        pytest.skip("no float64 on this device")
    X, y, _, _ = PROBLEMS["multiclass"]
    sw = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    kw = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=3, random_state=0, batch_size=50)
    kw["early_stopping"] = solver != "lbfgs"
    here = xpnet.MLPClassifier(**kw)
    _fit_quietly(here, xb.asarray(X), xb.asarray(y), sample_weight=xb.asarray(sw))
    ref = _fit_quietly(xpnet.MLPClassifier(**kw), X, y, sample_weight=sw)
    _assert_same_params(here, ref, rtol=1e-9)
    Xr, yr, _, _ = PROBLEMS["regression"]
    here = _fit_quietly(xpnet.MLPRegressor(**kw), xb.asarray(Xr), xb.asarray(yr))
    ref = _fit_quietly(xpnet.MLPRegressor(**kw), Xr, yr)
    _assert_same_params(here, ref, rtol=1e-9)


def test_backend_partial_fit_matches_numpy(xb):
    if not _target.Target(xb.name, xb.xp, xb.device).has_float64():
        pytest.skip("no float64 on this device")
    X, y, _, _ = PROBLEMS["binary"]
    here = xpnet.MLPClassifier((5,), solver="sgd", random_state=0, batch_size=50)
    ref = xpnet.MLPClassifier((5,), solver="sgd", random_state=0, batch_size=50)
    for part in (slice(0, 60), slice(60, 120)):
        here.partial_fit(xb.asarray(X[part]), xb.asarray(y[part]), classes=[0, 1])
        ref.partial_fit(X[part], y[part], classes=[0, 1])
    _assert_same_params(here, ref, rtol=1e-9)


def test_predictions_follow_X_namespace_device_and_dtype(xb):
    X, y, _, _ = PROBLEMS["multiclass"]
    model = _fit_quietly(xpnet.MLPClassifier((5,), max_iter=3, random_state=0), X, y)
    X32 = xb.asarray(X, "float32")
    proba = model.predict_proba(X32)
    assert type(proba) is type(X32)
    assert proba.dtype == xb.xp.float32
    assert _target.same_device(_target.device_of(proba), xb.device)
    np.testing.assert_allclose(xb.to_numpy(proba), model.predict_proba(X), rtol=1e-4, atol=1e-6)
    log_proba = model.predict_log_proba(X32)
    assert log_proba.dtype == xb.xp.float32
    labels = model.predict(X32)
    assert type(labels) is type(X32)
    np.testing.assert_array_equal(xb.to_numpy(labels), model.predict(X))
    assert model.score(X32, xb.asarray(y)) == model.score(X, y)

    Xr, yr, _, _ = PROBLEMS["regression"]
    reg = xpnet.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    _fit_quietly(reg, xb.asarray(Xr), yr)
    pred = reg.predict(xb.asarray(Xr, "float32"))
    assert pred.dtype == xb.xp.float32 and tuple(pred.shape) == yr.shape
    assert all(isinstance(W, np.ndarray) for W in reg.coefs_ + reg.intercepts_)


def test_named_backend_with_numpy_X_returns_numpy(xb):
    X, y, _, _ = PROBLEMS["binary"]
    kw = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    there = _fit_quietly(xpnet.MLPClassifier(backend=xb.name, **kw), X, y)
    ref = _fit_quietly(xpnet.MLPClassifier(**kw), X, y)
    proba = there.predict_proba(X)
    assert isinstance(proba, np.ndarray)
    rtol = 1e-9 if there.coefs_[0].dtype == np.float64 else 1e-4
    _assert_same_params(there, ref, rtol=rtol)


@numpy_only
def test_cupy_without_a_gpu_falls_back_with_a_warning_on_every_fit():
    if _backends.probe("cupy").usable:
        pytest.skip("a CUDA device is usable here")
    X, y, _, _ = PROBLEMS["binary"]
    model = xpnet.MLPClassifier((4,), max_iter=2, backend="cupy", random_state=0)
    for _ in range(2):
        with pytest.warns(xpnet.BackendFallbackWarning, match="cupy"):
            _fit_quietly(model, X, y)
    assert isinstance(model.predict_proba(X), np.ndarray)


@numpy_only
def test_verbose_prints_sklearns_progress_lines(capsys):
    X, y, _, _ = PROBLEMS["multiclass"]
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0, verbose=True)
    kw.update(early_stopping=True, n_iter_no_change=1, tol=10.0)
    _fit_quietly(skl.MLPClassifier(**kw), X, y)
    theirs = capsys.readouterr().out
    _fit_quietly(xpnet.MLPClassifier(**kw), X, y)
    ours = capsys.readouterr().out
    assert "Iteration 1, loss = " in ours and "Validation score: " in ours
    assert ours == theirs


@numpy_only
def test_interrupted_lbfgs_keeps_its_last_iterate(monkeypatch):
    from xpnet import _lbfgs

    X, y, _, _ = PROBLEMS["multiclass"]
    real = _lbfgs.minimize_lbfgs
    seen = []

    def interrupted(fun, x0, *, callback, **kw):
        def on_iteration(x):
            callback(x)
            seen.append(np.array(x))
            if len(seen) == 3:
                raise KeyboardInterrupt

        return real(fun, x0, callback=on_iteration, **kw)

    monkeypatch.setattr(_lbfgs, "minimize_lbfgs", interrupted)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        model = xpnet.MLPClassifier((4,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    layers = zip(model.coefs_, model.intercepts_, strict=True)
    flat = np.concatenate([a.ravel() for pair in layers for a in pair])
    np.testing.assert_array_equal(flat, seen[-1])
    assert model.n_iter_ == 3  # the iterations that ran, not 0
    assert np.isfinite(model.loss_) and model.predict(X).shape == y.shape


def test_dataframe_column_names_are_kept_as_in_scikit_learn():
    pd = pytest.importorskip("pandas")
    X, y = make_classification(60, n_features=2, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=["width", "height"])
    ours = xpnet.MLPClassifier((4,), max_iter=5, random_state=0)
    theirs = skl.MLPClassifier((4,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(frame, y)
        theirs.fit(frame, y)
    np.testing.assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    assert ours.n_features_in_ == 2
