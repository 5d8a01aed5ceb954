"""The network math: gradients against finite differences, a stable softmax."""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest

from xpnet import _network
from xpnet._network import ACTIVATIONS, OUTPUTS

rng = np.random.RandomState(42)


def _problem(output: str, n: int = 7, d: int = 3, k: int = 3):
    X = rng.randn(n, d)
    if output == "softmax":
        Y = np.eye(k)[rng.randint(0, k, n)]
    elif output == "logistic":
        Y = (rng.rand(n, k) > 0.5).astype(float)
    elif output == "exp":
        Y = rng.poisson(2.0, (n, k)).astype(float)
    else:
        Y = rng.randn(n, k)
    return X, Y


def _params(sizes):
    return [(rng.randn(i, o), rng.randn(o)) for i, o in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("hidden", [(4,), (4, 3)], ids=["one-hidden", "two-hidden"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_gradients_match_central_differences(xb, activation, hidden, output):
    X, Y = _problem(output)
    host = _params((X.shape[1], *hidden, Y.shape[1]))
    w = rng.rand(X.shape[0]) + 0.5
    math = dict(activation=activation, output=output, l2=0.3)
    on = lambda a: xb.asarray(a, "float64")  # noqa: E731
    Xd, Yd, wd = on(X), on(Y), on(w)

    def f(params_host):
        params = [(on(W), on(b)) for W, b in params_host]
        return float(
            xb.to_numpy(_network.objective(xb.xp, params, Xd, Yd, sample_weight=wd, **math))
        )

    params = [(on(W), on(b)) for W, b in host]
    grads = _network.gradients(xb.xp, params, Xd, Yd, sample_weight=wd, **math)
    h = 1e-6
    for layer, (dW, db) in enumerate(grads):
        for which, analytic in ((0, dW), (1, db)):
            analytic = xb.to_numpy(analytic)
            numeric = np.zeros_like(analytic)
            for idx in np.ndindex(analytic.shape):
                plus = [tuple(np.array(p, copy=True) for p in pair) for pair in host]
                minus = [tuple(np.array(p, copy=True) for p in pair) for pair in host]
                plus[layer][which][idx] += h
                minus[layer][which][idx] -= h
                numeric[idx] = (f(plus) - f(minus)) / (2 * h)
            error = np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric)
            assert error < 1e-6, (layer, which, error)


def test_log_softmax_is_stable_for_huge_logits(xb):
    z = xb.asarray([[1000.0, 0.0, -1000.0], [800.0, 800.0, 0.0]], "float64")
    out = xb.to_numpy(_network.log_softmax(xb.xp, z))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0, :2], [0.0, -1000.0], atol=1e-12)
    np.testing.assert_allclose(out[1, :2], [-np.log(2.0), -np.log(2.0)], atol=1e-12)


def test_softmax_in_float32_does_not_overflow_past_89(xb):
    z = xb.asarray([[100.0, 0.0], [-100.0, 95.0]], "float32")
    p = xb.to_numpy(_network.out_activation(xb.xp, "softmax", z))
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.0, 1.0]], atol=1e-6)


def test_losses_are_finite_for_confident_wrong_predictions(xb):
    z = xb.asarray([[-1000.0, 1000.0]], "float64")
    Y = xb.asarray([[1.0, 0.0]], "float64")
    for output in ("softmax", "logistic"):
        loss = float(xb.to_numpy(xb.xp.sum(_network.sample_losses(xb.xp, output, z, Y))))
        assert np.isfinite(loss) and loss > 999.0


# -- the logistic over its whole range -------------------------------------------------------
def _logistic_reference(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` in float64 where exp(-z) is finite, and exp(z) below z = -700,
    where ``1 + exp(-z)`` is ``exp(-z)`` to far better than rounding."""
    safe = 1.0 / (1.0 + np.exp(-np.maximum(z, -700.0)))
    return np.where(z >= -700.0, safe, np.exp(np.minimum(z, -700.0)))


def _no_warnings():
    """A context in which any warning, NumPy's floating-point ones included, fails."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("error")
    stack.enter_context(np.errstate(over="raise", divide="raise", invalid="raise"))
    return stack


@pytest.mark.parametrize(
    ("dtype", "low", "high"), [("float64", -745.0, 40.0), ("float32", -103.0, 17.0)]
)
def test_logistic_is_accurate_over_the_whole_range(xb, dtype, low, high):
    grid = np.linspace(low, high, 20001)
    z = np.concatenate([grid, [-744.4, -709.9, -37.5, -1e-300, 0.0, 1e-300, 36.8, 37.5]])
    z = np.sort(z[(z >= low) & (z <= high)]).astype(dtype)
    with _no_warnings():
        got = xb.to_numpy(_network.logistic(xb.xp, xb.asarray(z, dtype))).astype(np.float64)
    want = _logistic_reference(z.astype(np.float64))
    info = np.finfo(dtype)
    normal = want >= info.tiny  # below it, libraries that flush subnormals (JAX) give 0
    assert np.all(got[normal] > 0)
    relative = np.abs(got[normal] - want[normal]) / want[normal]
    assert relative.max() < 8 * info.eps, z[normal][np.argmax(relative)]
    assert np.all(np.abs(got[~normal] - want[~normal]) <= info.tiny)
    assert np.all(np.diff(got) >= 0)  # monotone, as the logistic is


def test_logistic_is_scipys_expit_for_positive_z():
    expit = pytest.importorskip("scipy.special").expit
    import array_api_compat.numpy as xp

    z = np.random.RandomState(0).uniform(0.0, 40.0, 10000)
    ours, theirs = _network.logistic(xp, z), expit(z)
    # expit calls the C library's exp; NumPy may use its own (the AVX-512 one, on CPUs that
    # have it), which can differ in the last bit: bit for bit wherever the two exps agree,
    # elsewhere that bit, carried through 1 + e and the division, moves the result <= 2 ulps
    same_exp = np.exp(-z) == np.array([math.exp(-v) for v in z])
    np.testing.assert_array_equal(ours[same_exp], theirs[same_exp])
    np.testing.assert_array_max_ulp(ours, theirs, maxulp=2)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_native_logistic_kernel_equals_the_portable_logistic(library):
    """The in-place kernel of the native steps, bit for bit, NaN and signed zeros included."""
    pytest.importorskip(library)
    from xpnet import _native, _target

    kernels = _native._KERNELS[library]()
    target = _target.target_for(library, "cpu")
    z_host = np.concatenate(
        [np.linspace(-750.0, 750.0, 30001), [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-310]]
    )
    for dtype in ("float64", "float32"):
        z = target.asarray(z_host.astype(dtype))
        want = _target.to_host(_network.logistic(target.xp, z))
        work, scratch = target.asarray(z_host.astype(dtype)), target.asarray(z_host.astype(dtype))
        with np.errstate(over="raise", divide="raise", invalid="ignore"):  # inf - inf: nan
            _native._logistic(kernels, work, scratch)
        got = _target.to_host(work)
        finite = np.isfinite(z_host)
        np.testing.assert_array_equal(got[finite], want[finite])
        assert np.isnan(got[~finite][0]) and np.isnan(want[~finite][0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_proba_and_log_proba_follow_scikit_learn_far_in_the_tails():
    """A binary classifier's logistic output, z from -740 to 40: where scikit-learn's
    probabilities are positive ours agree to rounding, and ours stay positive below its
    z = -709.8; predict_log_proba is finite wherever scikit-learn's is."""
    skl = pytest.importorskip("sklearn.neural_network")
    import xpnet

    X0, y0 = np.arange(8.0)[:, None], np.arange(8) % 2
    kw = dict(hidden_layer_sizes=(1,), activation="identity", max_iter=1, random_state=0)
    ours, theirs = xpnet.MLPClassifier(**kw).fit(X0, y0), skl.MLPClassifier(**kw).fit(X0, y0)
    for est in (ours, theirs):  # z = x exactly
        est.coefs_ = [np.ones((1, 1)), np.ones((1, 1))]
        est.intercepts_ = [np.zeros(1), np.zeros(1)]
    X = np.linspace(-740.0, 40.0, 7801)[:, None]
    p_ours, p_theirs = ours.predict_proba(X), theirs.predict_proba(X)
    positive = p_theirs > 0
    np.testing.assert_allclose(p_ours[positive], p_theirs[positive], rtol=4e-16, atol=0)
    assert np.all(p_ours[:, 1] > 0) and not np.all(p_theirs[:, 1] > 0)
    with np.errstate(divide="ignore"):  # both take log(0) for the other class when z > 37
        log_ours, log_theirs = ours.predict_log_proba(X), theirs.predict_log_proba(X)
    finite = np.isfinite(log_theirs)
    assert np.all(np.isfinite(log_ours[finite]))
    np.testing.assert_allclose(log_ours[finite], log_theirs[finite], rtol=1e-15)
    with _no_warnings():  # where scikit-learn's own log is finite, no divide-by-zero either
        ours.predict_log_proba(X[X[:, 0] < 30.0])


# -- the model axis ----------------------------------------------------------------------
def _stack(models):
    """K models' (W, b) pairs as stacked arrays: W (K, fan_in, fan_out), b (K, 1, fan_out)."""
    return [
        (np.stack([m[layer][0] for m in models]), np.stack([m[layer][1] for m in models])[:, None])
        for layer in range(len(models[0]))
    ]


@pytest.mark.parametrize("hidden", [(4,), (4, 3)], ids=["one-hidden", "two-hidden"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_k_stacked_models_equal_k_separate_ones(xb, activation, hidden, output):
    X, Y = _problem(output)
    w = rng.rand(X.shape[0]) + 0.5
    sizes = (X.shape[1], *hidden, Y.shape[1])
    models = [_params(sizes) for _ in range(3)]
    l2s = [0.0, 0.3, 1.5]
    on = lambda a: xb.asarray(a, "float64")  # noqa: E731
    Xd, Yd, wd = on(X), on(Y), on(w)
    terms = dict(activation=activation, output=output, sample_weight=wd)
    stacked = [(on(W), on(b)) for W, b in _stack(models)]
    l2 = on(np.array(l2s)[:, None, None])
    objectives = xb.to_numpy(_network.objective(xb.xp, stacked, Xd, Yd, l2=l2, **terms))
    grads = _network.gradients(xb.xp, stacked, Xd, Yd, l2=l2, **terms)
    assert objectives.shape == (3,)
    for k, (host, c) in enumerate(zip(models, l2s)):
        params = [(on(W), on(b)) for W, b in host]
        alone = _network.objective(xb.xp, params, Xd, Yd, l2=c, **terms)
        np.testing.assert_allclose(objectives[k], xb.to_numpy(alone), rtol=1e-12)
        for (dW, db), (sW, sb) in zip(
            _network.gradients(xb.xp, params, Xd, Yd, l2=c, **terms), grads
        ):
            np.testing.assert_allclose(xb.to_numpy(sW)[k], xb.to_numpy(dW), rtol=1e-11, atol=1e-13)
            assert tuple(sb.shape) == (3, 1, db.shape[0])
            np.testing.assert_allclose(
                xb.to_numpy(sb)[k, 0], xb.to_numpy(db), rtol=1e-11, atol=1e-13
            )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_padded_units_never_reach_outputs_or_gradients(xb, activation):
    """Models of widths 2 and 5 padded to 5: the padding is invisible, for every activation."""
    X, Y = _problem("softmax")
    narrow, wide = _params((3, 2, 3)), _params((3, 5, 3))
    padded = [
        (np.pad(narrow[0][0], ((0, 0), (0, 3))), np.pad(narrow[0][1], (0, 3))),
        (np.pad(narrow[1][0], ((0, 3), (0, 0))), narrow[1][1]),
    ]
    on = lambda a: xb.asarray(a, "float64")  # noqa: E731
    Xd, Yd = on(X), on(Y)
    stacked = [(on(W), on(b)) for W, b in _stack([padded, wide])]
    mask = on(np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=float)[:, None, :])
    wiring = _network.Wiring(unit_masks=[mask])
    terms = dict(activation=activation, output="softmax", l2=0.2)
    objectives = xb.to_numpy(_network.objective(xb.xp, stacked, Xd, Yd, wiring=wiring, **terms))
    (dW1, db1), (dW2, _) = _network.gradients(xb.xp, stacked, Xd, Yd, wiring=wiring, **terms)
    alone = [(on(W), on(b)) for W, b in narrow]
    np.testing.assert_allclose(
        objectives[0], xb.to_numpy(_network.objective(xb.xp, alone, Xd, Yd, **terms)), rtol=1e-12
    )
    (aW1, _), (aW2, _) = _network.gradients(xb.xp, alone, Xd, Yd, **terms)
    np.testing.assert_allclose(xb.to_numpy(dW1)[0, :, :2], xb.to_numpy(aW1), rtol=1e-11)
    np.testing.assert_allclose(xb.to_numpy(dW2)[0, :2], xb.to_numpy(aW2), rtol=1e-11)
    # the padding's own gradients are exactly zero, so its weights never move from zero
    assert not np.any(xb.to_numpy(dW1)[0, :, 2:])
    assert not np.any(xb.to_numpy(db1)[0, :, 2:])
    assert not np.any(xb.to_numpy(dW2)[0, 2:])
