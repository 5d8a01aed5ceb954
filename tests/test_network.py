"""The network math: gradients against finite differences, a stable softmax."""

from __future__ import annotations

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
