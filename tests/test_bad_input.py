"""Bad input is refused before any work, with a ValueError that says what to fix.

The same rules hold for ``xpnet.fit``, ``xpnet.fit_many``, a Model's methods
and the estimators' input from other backends (NumPy input to the estimators
meets scikit-learn's own checks).  Nothing is ever written into the caller's
arrays, and xpnet's warnings point at the caller's line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning

import xpnet
from xpnet import _backends, _target

X, Y = make_moons(40, noise=0.2, random_state=0)
NAMES = np.array(["cat", "dog", "emu"])


def _copy(a):
    return a.copy() if isinstance(a, np.ndarray) else a


def _refused(call, *args, match: str, **kwargs) -> str:
    """``call(*args, **kwargs)`` raises a ValueError matching ``match``, leaving the
    NumPy arguments as they were."""
    before = [_copy(a) for a in args]
    with pytest.raises(ValueError, match=match) as info:
        call(*args, **kwargs)
    for a, b in zip(args, before, strict=True):
        if isinstance(a, np.ndarray) and a.dtype == object:
            assert a.tolist() == b.tolist()  # the same objects (NaN is itself)
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
    return str(info.value)


def _fits(X, y, match, **kw):
    """fit and fit_many both refuse ``(X, y)`` with the same message."""
    kw = {"epochs": 2, **kw}
    _refused(xpnet.fit, X, y, match=match, **kw)
    _refused(xpnet.fit_many, X, y, match=match, **kw)


def _with(value, *where):
    bad = X.copy()
    for i, j in where:
        bad[i, j] = value
    return bad


# -- X -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: _with(np.nan, (3, 1)),
            r"NaN or infinity \(1 value, the first in row 3, column 1\)",
        ),
        (lambda: _with(np.inf, (5, 0), (7, 1)), r"\(2 values, the first in row 5, column 0\)"),
        (lambda: _with(-np.inf, (0, 0)), "before fitting"),
        (lambda: X[:, 0], r"2-D .* shape \(40,\); reshape"),
        (lambda: X[:, :, None], r"2-D .* shape \(40, 2, 1\)"),
        (lambda: X[:0], r"empty \(shape \(0, 2\)\)"),
        (lambda: X[:, :0], r"empty \(shape \(40, 0\)\)"),
        (lambda: X + 1j, "real numbers, got dtype complex.*X.real"),
    ],
    ids=["nan", "inf", "-inf", "1-D", "3-D", "no rows", "no columns", "complex"],
)
def test_bad_X_on_the_backend(xb, make, match):
    host = make()
    X_b = xb.asarray(host)
    y = Y[: host.shape[0]] if host.ndim else Y
    _fits(X_b, y, match)
    np.testing.assert_array_equal(xb.to_numpy(X_b), host)


@pytest.mark.parametrize(
    ("X_bad", "match"),
    [
        (np.array([["a", "b"]] * 40), "dtype <U1; encode text columns"),
        (np.array([[1.0, None]] * 40, dtype=object), "holds None .* object array"),
        (np.array([[1.0, "x"]] * 40, dtype=object), "holds 'x'"),
        ([[1.0, 2.0], [3.0]] * 20, "could not be read as a 2-D numeric array"),
        (None, "X is None"),
        (5.0, r"2-D .* shape \(\)"),
    ],
    ids=["strings", "object None", "object str", "ragged", "None", "scalar"],
)
def test_host_only_X(X_bad, match):
    _fits(X_bad, Y, match)


def test_object_X_of_numbers_reads_as_float64(xb):
    X_obj = X.astype(object)
    model = xpnet.fit(X_obj, Y, epochs=3)
    assert model.dtype == np.float64
    assert model.predict(X_obj).shape == (40,)
    assert X_obj.dtype == object


# -- y -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("y_bad", "match"),
    [
        (Y[:-1], "40 samples but y has 39 labels"),
        (np.zeros(40, int), r"1 class \(\[0\]\); a classifier needs at least 2"),
        (X[:, 0], "Unknown label type: continuous .* xpnet.MLPRegressor"),
        ([0, "a"] * 20, "mixes strings and numbers"),
        (np.array([0, "a"] * 20, dtype=object), "mixes strings and numbers"),
        (np.array(["a", None] * 20, dtype=object), "holds None"),
        (np.array(["a", np.nan] * 20, dtype=object), "missing label"),
        (np.where(Y == 0, np.nan, 1.0), "y contains NaN or infinity"),
        (np.eye(2)[Y], r"1-D .* shape \(40, 2\); for one-hot rows pass y.argmax\(axis=1\)"),
        (Y + 0.5j, "numbers or strings, got dtype complex"),
        (None, "y is None"),
    ],
    ids=[
        "length", "one class", "continuous", "mixed list", "mixed object", "None", "nan object",
        "nan", "one-hot", "complex", "y None",
    ],
)  # fmt: skip
def test_bad_labels(xb, y_bad, match):
    _fits(xb.asarray(X), y_bad, match)


def test_labels_on_the_backend_are_checked(xb):
    _fits(xb.asarray(X), xb.asarray(X[:, 0]), "continuous")
    _fits(xb.asarray(X), xb.asarray(np.zeros(40)), "1 class")
    _fits(xb.asarray(X), xb.asarray(Y[:10]), "40 samples but y has 10 labels")


def test_whole_float_labels_are_classes(xb):
    model = xpnet.fit(xb.asarray(X), Y * 2.0 + 1.0, epochs=3)
    assert model.classes_.tolist() == [1.0, 3.0]


# -- settings ----------------------------------------------------------------------------
BAD_SETTINGS = [
    (dict(hidden=0), "hidden must be > 0, got 0: every hidden layer needs at least 1 unit"),
    (dict(hidden=np.int64(0)), "hidden must be > 0, got 0: "),  # as passed, not [0]
    (dict(hidden=(0,)), r"hidden must be > 0, got \(0,\): "),
    (dict(hidden=(3, -1)), r"hidden must be > 0, got \(3, -1\): .*at least 1 unit"),
    (dict(hidden=True), r"got True \(a bool\)"),
    (dict(hidden="3"), "a string: pass the number itself"),
    (dict(hidden=2.5), "int or a tuple"),
    (dict(hidden=2**40), "at most 2147483647 units a layer, got 1099511627776$"),
    (dict(epochs=0), "epochs must be an int from 1"),
    (dict(epochs=True), r"epochs .* got True \(a bool\)"),
    (dict(epochs=5.0), r"got 5.0 \(a float\)"),
    (dict(epochs="5"), "a string"),
    (dict(epochs=2**40), "epochs must be an int from 1 to 2147483647"),
    (dict(log_every=0), "log_every"),
    (dict(lr=0), "lr must be a positive finite number"),
    (dict(lr=-0.1), "lr must be a positive"),
    (dict(lr=float("inf")), "lr must be a positive"),
    (dict(lr="0.1"), "a string"),
    (dict(lr=10**400), "lr must be a positive"),
    (dict(l2=-0.01), "l2 must be a non-negative"),
    (dict(l2=float("nan")), "l2 must be a non-negative"),
    (dict(l2=True), "l2 .* bool"),
    (dict(seed=-1), "seed must be an int from 0 to 4294967295"),
    (dict(seed=2**32), "seed must be an int from 0 to 4294967295"),
    (dict(seed=1.5), "seed"),
    (dict(activation="softsign"), "unknown activation 'softsign'"),
    (dict(activation=("tanh",)), "unknown activation"),  # a list is a sweep in fit_many
    (dict(backend="tensorflow"), "unknown backend 'tensorflow'"),
    (dict(backend=["numpy"]), "unknown backend"),
    (dict(dtype="float16"), "float32 or float64"),
    (dict(dtype=["x"]), "float32 or float64"),
    (dict(device="banana"), "device='banana' is not a device name"),
    (dict(device="cuda:x"), "is not a device name"),
    (dict(device=2.5), "is not a device name"),
    (dict(device=-1), "is not a device name"),
    (dict(backend="numpy", device="banana"), "is not a device name"),
    (dict(backend="torch", device="banana"), "is not a device name"),
    (dict(backend="jax", device="tpu:one"), "is not a device name"),
    (dict(backend="auto", device="cpu"), "cannot be combined with backend='auto'"),
]


@pytest.mark.parametrize(("kw", "match"), BAD_SETTINGS, ids=lambda v: repr(v)[:40])
def test_bad_settings(xb, kw, match):
    _fits(xb.asarray(X), Y, match, **kw)


def test_a_bad_hidden_size_is_shown_as_passed():
    _refused(xpnet.fit, X, Y, match=r"hidden must be > 0, got 0: ", hidden=0, epochs=2)
    _refused(xpnet.fit, X, Y, match=r"hidden must be > 0, got \[3, 0\]: ", hidden=[3, 0])
    _refused(xpnet.fit, X, Y, match=r"got \(3, 0\): ", hidden=(np.int64(3), np.int64(0)))
    # in fit_many a list is a sweep: the message names the size and the model
    message = _refused(xpnet.fit_many, X, Y, match=r"got 0: ", hidden=[3, 0], epochs=2)
    assert message.endswith("(in the model with hidden=0)")


def test_a_bad_setting_in_a_sweep_names_its_model():
    message = _refused(xpnet.fit_many, X, Y, match="at least 1 unit", hidden=[2, 0], epochs=2)
    assert "(in the model with hidden=0)" in message
    _refused(xpnet.fit_many, X, Y, match="empty sweep axis", lr=[], epochs=2)
    _refused(xpnet.fit_many, X, Y, match="memory_budget", memory_budget=0, epochs=2)
    _refused(xpnet.fit_many, X, Y, match="memory_budget", memory_budget=True, epochs=2)


def test_numpy_numbers_are_settings(xb):
    model = xpnet.fit(
        xb.asarray(X), Y, hidden=np.int64(2), epochs=np.int32(3), lr=np.float32(0.01),
        l2=np.float64(0.0), seed=np.uint8(7), log_every=np.int16(1),
    )  # fmt: skip
    assert model.hidden == (2,) and len(model.loss_curve) == 3
    assert type(model.settings["epochs"]) is int and type(model.settings["lr"]) is float
    grid = xpnet.fit_many(xb.asarray(X), Y, hidden=np.array([1, 2]), epochs=2)
    assert [m.hidden for m in grid] == [(1,), (2,)]


def test_callback_must_be_callable():
    _refused(xpnet.fit, X, Y, match="callback must be callable", callback=3)


# -- devices -----------------------------------------------------------------------------
def test_an_absent_device_falls_back_with_a_warning(xb):
    # NumPy has no CUDA device anywhere: a well-formed device it lacks, not a mistake
    with pytest.warns(xpnet.BackendFallbackWarning, match="'cuda:0' is not available"):
        model = xpnet.fit(X, Y, backend="numpy", device="cuda:0", epochs=2)
    assert model.backend == "numpy"
    with pytest.raises(xpnet.BackendUnavailableError):
        xpnet.fit(X, Y, backend="numpy", device="gpu:1", epochs=2, fallback=False)


def test_a_missing_cuda_falls_back_for_torch_and_jax():
    for backend, device in (("torch", "cuda:7"), ("jax", "gpu:7"), ("jax", 7)):
        if not _backends.probe(backend).installed:
            continue
        with pytest.warns(xpnet.BackendFallbackWarning, match="not available"):
            assert xpnet.fit(X, Y, backend=backend, device=device, epochs=2).backend == "numpy"


def test_a_gpu_on_a_backend_without_gpus_points_at_those_with_them():
    for backend in ("numpy", "array_api_strict"):
        if not _backends.probe(backend).installed:
            continue
        for device in ("gpu", "cuda", "cuda:1", 0):
            with pytest.warns(xpnet.BackendFallbackWarning) as caught:
                xpnet.fit(X, Y, backend=backend, device=device, epochs=2)
            [message] = [str(w.message) for w in caught]
            assert re.search(
                r"not available: .*\. For a GPU use backend='cupy', 'torch' or 'jax' "
                r"\(for example backend='torch', device='cuda'\)\. Falling back to NumPy",
                message,
            ), message
            assert ".." not in message
    with pytest.raises(
        xpnet.BackendUnavailableError,
        match=r"For a GPU use backend='cupy', 'torch' or 'jax' .*"
        r", or pass fallback=True",
    ):
        xpnet.fit(X, Y, backend="numpy", device="gpu", epochs=2, fallback=False)
    # a CPU device asks for no GPU: no such advice
    with pytest.warns(xpnet.BackendFallbackWarning) as caught:
        xpnet.fit(X, Y, backend="numpy", device="tpu", epochs=2)
    assert "For a GPU" not in str(caught[0].message)


def test_torch_gpu_says_that_torch_names_it_cuda():
    if not _backends.probe("torch").installed:
        pytest.skip("torch is not installed")
    for device in ("gpu", "gpu:1"):
        with pytest.warns(xpnet.BackendFallbackWarning) as caught:
            xpnet.fit(X, Y, backend="torch", device=device, epochs=2)
        [message] = [str(w.message) for w in caught]
        assert re.search(r"torch names the GPU 'cuda', not 'gpu': use device='cuda'", message)
        assert "privateuseone" not in message and len(message) < 250, message


@pytest.mark.parametrize(
    ("backend", "match"),
    [
        ("cuda", r"unknown backend 'cuda': 'cuda' names a device, not a backend; for a GPU use "
         r"backend='cupy', 'torch' or 'jax' \(for example backend='torch', device='cuda'\)"),
        ("gpu", r"'gpu' names a device, not a backend; for a GPU use backend='cupy'"),
        ("nump", r"unknown backend 'nump': did you mean 'numpy'\?; choose one of"),
        ("Torch", r"did you mean 'torch'\?"),
        ("tensorflow", r"unknown backend 'tensorflow'; choose one of"),
    ],
)  # fmt: skip
def test_unknown_backends_are_explained(backend, match):
    _fits(X, Y, match, backend=backend)


def test_model_to_refuses_a_malformed_device(xb):
    model = xpnet.fit(xb.asarray(X), Y, epochs=2)
    _refused(model.to, "numpy", "banana", match="not a device name")
    _refused(model.to, "pandas", match="unknown backend")
    with pytest.warns(xpnet.BackendFallbackWarning):
        assert model.to("numpy", "cuda:0").backend == "numpy"


def test_device_objects_and_indices_are_well_formed():
    for device in ("cpu", "cuda", "cuda:12", "gpu:0", "mps", "tpu", 0, 3, np.int64(1)):
        _target.check_device("numpy", device)
    for device in ("device1", "CPU_DEVICE"):
        _target.check_device("array_api_strict", device)
    if _backends.probe("torch").installed:
        import torch

        _target.check_device("torch", torch.device("cpu"))
        _target.check_device("torch", "meta")  # torch's own kinds, as torch parses them
    for device in ("banana", "cuda:", "cuda:-1", "cuda:0:1", " cpu", "CUDA", 1.0, True, [0]):
        with pytest.raises(ValueError, match="not a device name"):
            _target.check_device("numpy", device)


# -- prediction ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(xb):
    return xpnet.fit(xb.asarray(X), Y, epochs=5)


def test_predict_refuses_bad_X(xb, fitted):
    for method in (fitted.predict, fitted.predict_proba):
        _refused(method, xb.asarray(X[:, :1]), match="X has 1 feature, but the model was fitted")
        _refused(method, xb.asarray(np.hstack([X, X])), match="4 features, but .* 2 features")
        message = _refused(method, xb.asarray(_with(np.nan, (2, 0))), match="NaN")
        assert "before predicting" not in message and "fitting" not in message
        assert "cannot predict" in message
        _refused(method, xb.asarray(X[:0]), match="empty")
        _refused(method, xb.asarray(X[0]), match=r"X.reshape\(1, -1\)")
    for method in (fitted.score, fitted.loss):
        _refused(method, xb.asarray(X), Y[:-1], match="40 samples but y has 39 labels")
        _refused(method, xb.asarray(X), NAMES[Y], match="y holds strings, but .* numbers")
        _refused(method, xb.asarray(X), X[:, 0], match="continuous")
        _refused(method, xb.asarray(X), [0, "a"] * 20, match="mixes")


def test_score_counts_unseen_labels_as_wrong_and_loss_refuses_them(xb, fitted):
    Xb = xb.asarray(X)
    predicted = xb.to_numpy(fitted.predict(Xb))
    y_other = np.where(predicted == 1, 7, predicted)  # every predicted 1 is now wrong
    assert fitted.score(Xb, y_other) == pytest.approx(np.mean(predicted == 0))
    _refused(fitted.loss, Xb, y_other, match=r"not trained on: \[7\]")


def test_string_labels_predict_on_backend_arrays(xb):
    Xb = xb.asarray(X)
    model = xpnet.fit(Xb, NAMES[Y], epochs=5)
    assert set(model.predict(Xb).tolist()) <= {"cat", "dog"}
    assert 0 <= model.score(Xb, NAMES[Y]) <= 1
    assert model.score(Xb, NAMES[2 - Y]) <= 1  # "emu" was never seen: wrong, not an error
    _refused(model.score, Xb, Y, match="y holds numbers, but the model's classes are strings")


def test_grid_predictions_refuse_bad_X(xb):
    grid = xpnet.fit_many(xb.asarray(X), Y, hidden=[1, 2], epochs=2)
    for method in (grid.predict, grid.predict_proba):
        _refused(method, xb.asarray(X[:, :1]), match="X has 1 feature, but")
        _refused(method, xb.asarray(_with(np.inf, (0, 0))), match="cannot predict")
        _refused(method, xb.asarray(X), reduce="median", match="reduce must be")
    _refused(grid[2:].predict_proba, xb.asarray(X), match="holds no models")
    _refused(grid[2:].predict, xb.asarray(X), match="nothing to predict with")


# -- the estimators ------------------------------------------------------------------------
def _estimator(**kw):
    return xpnet.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0, **kw)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_refuse_bad_input(xb):
    Xb = xb.asarray(X)
    _refused(_estimator().fit, xb.asarray(_with(np.nan, (1, 1))), Y, match="NaN")
    _refused(_estimator().fit, Xb, X[:, 0], match="Unknown label type")
    _refused(_estimator().fit, Xb, Y[:-1], match="40")
    regressor = xpnet.MLPRegressor(max_iter=2)
    _refused(regressor.fit, xb.asarray(_with(np.inf, (0, 0))), X[:, 0], match="infinity")
    _refused(_estimator(device="banana").fit, Xb, Y, match="not a device name")
    clf = _estimator().fit(Xb, Y)
    _refused(clf.predict, xb.asarray(X[:, :1]), match="1 feature")
    _refused(clf.predict_proba, xb.asarray(_with(np.nan, (0, 1))), match="NaN")
    if xb.name != "numpy":  # scikit-learn's own checks take NumPy input
        _refused(_estimator().fit, Xb, [0, "a"] * 20, match="mixes strings and numbers")
        message = _refused(clf.predict, xb.asarray(_with(np.nan, (0, 1))), match="NaN")
        assert "cannot predict" in message


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_explain_scikit_learns_errors_about_host_input():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"size": X[:, 0], "colour": ["red", "blue"] * 20})
    for est, y in ((_estimator(), Y), (xpnet.MLPRegressor(max_iter=2), X[:, 1])):
        # scikit-learn's message first, then where the text is and what to do
        _refused(
            est.fit, frame, y,
            match=r"^could not convert string to float: 'red'\. X holds 'red' \(of type str\) "
            r"in column 'colour' \(row 0, column 1\); .*encode text columns as numbers first",
        )  # fmt: skip
        listed = [[1.0, "x"]] * 40
        _refused(est.fit, listed, y, match=r"X holds 'x' .* in row 0, column 1; .*encode text")
    labels = Y.astype(float)
    labels[[3, 7]] = np.nan
    _refused(
        _estimator().fit, X, labels,
        match=r"^Input y contains NaN\. y has 2 missing labels \(None or NaN\), the first at "
        r"index 3; every sample needs a label: drop the unlabelled samples",
    )  # fmt: skip
    _refused(
        xpnet.MLPRegressor(max_iter=2).fit, X, labels,
        match=r"^Input y contains NaN\. y has 2 missing targets .* needs a target",
    )  # fmt: skip
    nones = Y.astype(object)
    nones[5] = None
    # scikit-learn's own error is a TypeError from sorting the labels: its type stays
    with pytest.raises(
        TypeError, match=r"y has 1 missing label \(None or NaN\), the first at index 5"
    ):
        _estimator().fit(X, nones)
    with pytest.raises(TypeError, match=r"missing label .* index 5"):
        _estimator().fit(X, pd.Series(nones))
    # errors that xpnet has nothing to add to stay scikit-learn's, word for word
    with pytest.raises(ValueError, match=r"^Found input variables with inconsistent") as info:
        _estimator().fit(X, Y[:-1])
    assert "xpnet" not in str(info.value) and "missing" not in str(info.value)


@pytest.mark.parametrize(
    ("backend", "match"),
    [
        ("cuda", r"^The 'backend' parameter of MLPClassifier must be .* Got 'cuda' instead\. "
         r"'cuda' names a device, not a backend; for a GPU use backend='cupy', 'torch' or 'jax'"),
        ("gpu", r"Got 'gpu' instead\. 'gpu' names a device"),
        ("nump", r"Got 'nump' instead\. Did you mean 'numpy'\?$"),
    ],
)  # fmt: skip
def test_estimators_explain_an_unknown_backend(backend, match):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=match):
        _estimator(backend=backend).fit(X, Y)
    with pytest.raises(InvalidParameterError, match=r"Got 'tensorflow' instead\.$"):
        _estimator(backend="tensorflow").fit(X, Y)


def test_estimators_on_a_backend_without_gpus_point_at_those_with_them():
    with pytest.warns(xpnet.BackendFallbackWarning, match="For a GPU use backend='cupy'"):
        _estimator(device="gpu").fit(X, Y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_classes", [2, 3])
def test_estimator_string_labels_predict_and_score_on_backend_arrays(xb, n_classes):
    labels = NAMES[np.arange(40) % n_classes]
    for train_on in (X, xb.asarray(X)):
        clf = _estimator().fit(train_on, labels)
        predicted = clf.predict(xb.asarray(X))
        assert isinstance(predicted, np.ndarray) and set(predicted) <= set(labels)
        assert 0 <= clf.score(xb.asarray(X), labels) <= 1
        assert clf.predict_log_proba(xb.asarray(X)).shape == (40, n_classes)


# -- warnings point at the caller -----------------------------------------------------------
def _caught(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


def test_warnings_point_at_the_callers_line(xb):
    Xb = xb.asarray(X)
    calls = [
        lambda: xpnet.fit(X, Y, backend="numpy", device="cuda:0", epochs=2),
        lambda: xpnet.fit_many(X, Y, backend="numpy", device="cuda:0", epochs=2),
        lambda: xpnet.fit(Xb, Y, epochs=2).to("numpy", "cuda:0"),
        lambda: _estimator(backend="numpy", device="cuda:0").fit(X, Y),
        lambda: _estimator(batch_size=1000, solver="sgd").fit(Xb, Y),
        lambda: xpnet.MLPRegressor(max_iter=2, batch_size=500).partial_fit(Xb, X[:, 0]),
    ]
    for call in calls:
        caught = _caught(call)
        ours = [w for w in caught if issubclass(w.category, (UserWarning, ConvergenceWarning))]
        assert ours, call
        for w in ours:
            assert w.filename == __file__, (w.category.__name__, str(w.message), w.filename)


# -- float64 on a device without it ----------------------------------------------------------
@pytest.mark.skipif(
    os.environ.get("XPNET_TEST_BACKEND", "numpy") not in ("numpy", "jax"),
    reason="one run is enough: JAX without x64, in a fresh process",
)
def test_float64_on_jax_without_x64():
    pytest.importorskip("jax")
    script = textwrap.dedent(
        """
        import warnings
        import numpy as np
        import xpnet
        from sklearn.datasets import make_moons

        X, y = make_moons(30, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = xpnet.fit(X, y, backend="jax", epochs=2)
        assert np.dtype(model.dtype).name == "float32", model.dtype
        [w] = [w for w in caught if "has no float64" in str(w.message)]
        assert w.filename == "<string>" and "float64 X trains in float32" in str(w.message)
        try:
            xpnet.fit(X, y, backend="jax", dtype="float64", epochs=2)
        except ValueError as exc:
            assert "no float64" in str(exc) and "dtype='float32'" in str(exc)
        else:
            raise AssertionError("dtype='float64' without x64 trained")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            moved = xpnet.fit(X, y, epochs=2).to("jax")
        assert np.dtype(moved.dtype).name == "float32"
        assert any("float64 parameters become float32" in str(w.message) for w in caught)
        assert int(np.asarray(moved.predict(X)).shape[0]) == 30
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
