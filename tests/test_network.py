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
