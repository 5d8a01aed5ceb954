"""The Array API L-BFGS against SciPy's L-BFGS-B, on the backend under test.

The objectives are written once against the Array API: built with the
backend's namespace (and compiled through ``Target.jit`` where the backend can,
as the estimators do), every evaluation runs on that backend and device; built
with NumPy's, they give SciPy the same problem as the reference.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
from scipy.optimize import minimize

from xpnet import _target
from xpnet._init import init_normal
from xpnet._lbfgs import minimize_lbfgs
from xpnet._network import gradients, objective


def rosenbrock(xp):
    """The n-D Rosenbrock function and its gradient, on ``xp``."""

    def fun(x):
        head, tail = x[:-1], x[1:]
        gap = tail - head**2
        f = xp.sum(100.0 * gap**2 + (1.0 - head) ** 2)
        zero = xp.zeros_like(x[:1])
        g = xp.concat([-400.0 * head * gap - 2.0 * (1.0 - head), zero]) + xp.concat(
            [zero, 200.0 * gap]
        )
        return f, g

    return fun


def quadratic(xp, Q, b):
    """``x'Qx/2 - b'x`` and its gradient, for ``Q`` and ``b`` on ``xp``."""

    def fun(x):
        Qx = Q @ x
        return 0.5 * xp.vecdot(x, Qx) - xp.vecdot(b, x), Qx - b

    return fun


def flat_network(xp, X, Y, sizes, l2):
    """The network's own mean objective (logistic output) on a flat parameter vector."""
    math = dict(activation="tanh", output="logistic", l2=l2)
    n = X.shape[0]

    def unpack(w):
        params, start = [], 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            W = xp.reshape(w[start : start + fan_in * fan_out], (fan_in, fan_out))
            start += fan_in * fan_out
            params.append((W, w[start : start + fan_out]))
            start += fan_out
        return params

    def fun(w):
        params = unpack(w)
        grads = gradients(xp, params, X, Y, **math)
        flat = xp.concat([xp.concat([xp.reshape(dW, (-1,)), db]) for dW, db in grads])
        return objective(xp, params, X, Y, **math) / n, flat / n

    return fun


def random_spd(n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A @ A.T + np.eye(n), rng.standard_normal(n)


def scipy_lbfgs(fun, x0, **options):
    return minimize(fun, x0, jac=True, method="L-BFGS-B", options=options)


NP = array_api_compat.array_namespace(np.zeros(0))  # NumPy, for the SciPy reference


def for_scipy(fun):
    """``fun`` built on NumPy's namespace, returning the float SciPy wants."""

    def wrapped(x):
        f, g = fun(x)
        return float(f), np.asarray(g)

    return wrapped


def compiled(xb, fun):
    """``fun`` compiled where the backend compiles (JAX), as the estimators do."""
    return _target.Target(xb.name, xb.xp, xb.device).jit(fun)


def rosen_start(n):
    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    return x0


def assert_on_backend(xb, arr, dtype):
    assert array_api_compat.array_namespace(arr) is array_api_compat.array_namespace(
        xb.asarray(np.zeros(1))
    )
    assert _target.same_device(array_api_compat.device(arr), xb.device)
    assert arr.dtype == dtype


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_reaches_minimiser_like_scipy(xb, n):
    x0 = rosen_start(n)
    fun = compiled(xb, rosenbrock(xb.xp))
    opts = dict(maxiter=2000, maxfun=4000, gtol=1e-9, ftol=0.0)
    res = minimize_lbfgs(fun, xb.asarray(x0), **opts)
    ref = scipy_lbfgs(for_scipy(rosenbrock(NP)), x0, **opts)

    assert res.success and res.status == 0, res.message
    np.testing.assert_allclose(xb.to_numpy(res.x), np.ones(n), atol=1e-7)
    assert res.fun < 1e-14
    assert_on_backend(xb, res.x, xb.xp.float64)
    assert_on_backend(xb, res.jac, xb.xp.float64)
    # Same algorithm, same line-search constants: the work is of the same order.
    assert ref.nit / 2 <= res.nit <= 2 * ref.nit
    assert ref.nfev / 2 <= res.nfev <= 2 * ref.nfev


def test_default_tolerances_stop_where_scipy_does(xb):
    """With SciPy's defaults (the ftol stop), n_iter_ means the same thing."""
    x0 = rosen_start(10)
    fun = compiled(xb, rosenbrock(xb.xp))
    res = minimize_lbfgs(fun, xb.asarray(x0), maxiter=15000, maxfun=15000)
    ref = scipy_lbfgs(for_scipy(rosenbrock(NP)), x0, maxiter=15000, maxfun=15000)
    assert res.success and "ftol" in res.message
    assert abs(res.nit - ref.nit) <= 0.2 * ref.nit
    assert abs(res.nfev - ref.nfev) <= 0.2 * ref.nfev
    assert res.fun < 1e-9 and ref.fun < 1e-9


def test_random_convex_quadratic(xb):
    Q, b = random_spd(10)
    fun = compiled(xb, quadratic(xb.xp, xb.asarray(Q), xb.asarray(b)))
    x0 = np.zeros(10)
    # ftol=0: it stops at gtol, or where f cannot decrease beyond rounding (as SciPy does)
    opts = dict(maxiter=1000, maxfun=2000, gtol=1e-10, ftol=0.0)
    res = minimize_lbfgs(fun, xb.asarray(x0), **opts)
    ref = scipy_lbfgs(for_scipy(quadratic(NP, Q, b)), x0, **opts)

    assert res.success, res.message  # SciPy may call this rounding floor ABNORMAL instead
    np.testing.assert_allclose(xb.to_numpy(res.x), np.linalg.solve(Q, b), rtol=0, atol=1e-7)
    np.testing.assert_allclose(xb.to_numpy(res.x), ref.x, rtol=0, atol=1e-7)
    assert np.max(np.abs(xb.to_numpy(res.jac))) <= 1e-7
    assert ref.nit / 2 <= res.nit <= 2 * ref.nit


def wavy_bowl(xp, c):
    """``c |x|^2 / 2 + sum cos x`` and its gradient.

    For tiny ``c`` the first unit-length step is far too short (the line search must
    extrapolate); for huge ``c`` far too long (it must zoom in).
    """

    def fun(x):
        return 0.5 * c * xp.vecdot(x, x) + xp.sum(xp.cos(x)), c * x - xp.sin(x)

    return fun


@pytest.mark.parametrize("c", [1e-4, 1e6])
def test_badly_scaled_first_step_is_recovered(xb, c):
    x0 = np.linspace(1.0, 30.0, 10)
    opts = dict(maxiter=1000, maxfun=3000)
    res = minimize_lbfgs(compiled(xb, wavy_bowl(xb.xp, c)), xb.asarray(x0), **opts)
    ref = scipy_lbfgs(for_scipy(wavy_bowl(NP, c)), x0, **opts)
    assert res.success and ref.success, res.message
    assert res.fun == pytest.approx(ref.fun, rel=1e-8)
    assert abs(res.nit - ref.nit) <= 2 and abs(res.nfev - ref.nfev) <= 2


def test_first_step_and_counters_match_scipy(xb):
    """The first trial moves x by unit length, so this takes 1 iteration and 3 evaluations."""
    xp = xb.xp
    seen = []

    def fun(x):
        seen.append(xb.to_numpy(x))
        return 0.5 * xp.vecdot(x, x), x

    res = minimize_lbfgs(fun, xb.asarray(np.array([0.1, 0.0])), maxiter=100, maxfun=100)
    ref = scipy_lbfgs(lambda x: (0.5 * x @ x, x), np.array([0.1, 0.0]))
    np.testing.assert_allclose(seen[1], [-0.9, 0.0])  # step 1/|g| = 10 along -g
    assert (res.nit, res.nfev) == (ref.nit, ref.nfev) == (1, 3)
    assert res.success


def test_objective_as_python_float(xb):
    """``fun`` may return its value as a Python float (already on the host)."""
    Q, b = random_spd(10)
    inner = compiled(xb, quadratic(xb.xp, xb.asarray(Q), xb.asarray(b)))

    def fun(x):
        f, g = inner(x)
        return float(f), g

    res = minimize_lbfgs(fun, xb.asarray(np.zeros(10)), maxiter=200, maxfun=400, gtol=1e-8)
    ref = minimize_lbfgs(inner, xb.asarray(np.zeros(10)), maxiter=200, maxfun=400, gtol=1e-8)
    assert res.success and isinstance(res.fun, float)
    assert (res.nit, res.nfev, res.fun) == (ref.nit, ref.nfev, ref.fun)


def test_converged_at_start_takes_no_iteration(xb):
    xp = xb.xp
    res = minimize_lbfgs(
        lambda x: (xp.sum(x * x), 2.0 * x), xb.asarray(np.zeros(3)), maxiter=10, maxfun=10
    )
    assert (res.nit, res.nfev, res.success) == (0, 1, True)


def test_maxiter_is_respected(xb):
    x0 = rosen_start(10)
    fun = compiled(xb, rosenbrock(xb.xp))
    iterates = []
    res = minimize_lbfgs(fun, xb.asarray(x0), maxiter=5, maxfun=1000, callback=iterates.append)
    ref = scipy_lbfgs(for_scipy(rosenbrock(NP)), x0, maxiter=5, maxfun=1000)
    assert res.nit == ref.nit == 5
    assert len(iterates) == 5
    assert res.status == 1 and not res.success and "maxiter" in res.message
    np.testing.assert_array_equal(xb.to_numpy(iterates[-1]), xb.to_numpy(res.x))


@pytest.mark.parametrize("maxfun", [1, 20])
def test_maxfun_stops_after_the_iteration_that_passes_it(xb, maxfun):
    """Like SciPy: the limit is tested after each iteration, never inside a line search."""
    x0 = rosen_start(10)
    inner = compiled(xb, rosenbrock(xb.xp))
    calls = 0

    def fun(x):
        nonlocal calls
        calls += 1
        return inner(x)

    at_iteration = []
    res = minimize_lbfgs(
        fun,
        xb.asarray(x0),
        maxiter=1000,
        maxfun=maxfun,
        callback=lambda x: at_iteration.append(calls),
    )
    ref = scipy_lbfgs(for_scipy(rosenbrock(NP)), x0, maxiter=1000, maxfun=maxfun)
    assert res.nfev == calls == at_iteration[-1]
    assert res.nfev > maxfun
    assert len(at_iteration) == 1 or at_iteration[-2] <= maxfun  # stopped at the first chance
    assert res.status == 1 and "maxfun" in res.message
    assert ref.status == 1 and ref.nfev > maxfun
    assert abs(res.nit - ref.nit) <= 2


def test_float32_stays_float32_on_its_device(xb):
    xp = xb.xp
    Q, b = random_spd(10, seed=1)
    fun = compiled(xb, quadratic(xp, xb.asarray(Q, "float32"), xb.asarray(b, "float32")))
    x0 = xb.asarray(np.zeros(10), "float32")
    before = xb.to_numpy(x0).copy()
    res = minimize_lbfgs(fun, x0, maxiter=200, maxfun=400, gtol=1e-4)
    assert_on_backend(xb, res.x, xp.float32)
    assert_on_backend(xb, res.jac, xp.float32)
    assert isinstance(res.fun, float)
    assert res.status in (0, 2), res.message  # float32 may hit rounding before gtol
    np.testing.assert_allclose(xb.to_numpy(res.x), np.linalg.solve(Q, b), rtol=0, atol=1e-3)
    np.testing.assert_array_equal(xb.to_numpy(x0), before)  # the caller's x0 is untouched


def test_wider_objective_keeps_its_precision(xb):
    """A float64 loss of float32 parameters is reported in float64, not rounded."""
    xp = xb.xp
    Q, b = random_spd(10, seed=1)
    inner = compiled(xb, quadratic(xp, xb.asarray(Q, "float32"), xb.asarray(b, "float32")))

    def fun(x):
        f, g = inner(x)
        wide = xp.asarray(xp.astype(f, xp.float64) + 1e-12)  # offset below float32's resolution
        return wide, g

    res = minimize_lbfgs(fun, xb.asarray(np.zeros(10), "float32"), maxiter=50, maxfun=100)
    assert res.x.dtype == xp.float32
    assert res.fun == float(fun(res.x)[0])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_region_is_backed_out_of(xb):
    """A log barrier: steps that leave the domain give NaN and must be shrunk."""
    xp = xb.xp
    c_host = np.linspace(5.0, 50.0, 10)
    c = xb.asarray(c_host)
    non_finite = 0

    def fun(x):
        nonlocal non_finite
        f = xp.vecdot(c, x) - xp.sum(xp.log(x))
        non_finite += not np.isfinite(float(f))
        return f, c - 1.0 / x

    opts = dict(maxiter=200, maxfun=400, gtol=1e-8, ftol=0.0)
    res = minimize_lbfgs(fun, xb.asarray(np.full(10, 0.5)), **opts)
    assert non_finite > 0  # the barrier was actually hit
    assert res.success, res.message
    np.testing.assert_allclose(xb.to_numpy(res.x), 1.0 / c_host, rtol=1e-6)


def test_line_search_failure_ends_cleanly(xb):
    """An objective that is NaN everywhere but x0: a clean stop at x0, not a hang or NaN x."""
    xp = xb.xp
    x0 = xb.asarray(np.array([1.0, -2.0]))

    def fun(x):
        f = xp.sum(x * x)
        return xp.where(xp.all(x == x0), f, xp.asarray(float("nan"), device=xb.device)), 2.0 * x

    res = minimize_lbfgs(fun, x0, maxiter=100, maxfun=1000, maxls=20)
    assert res.status == 2 and not res.success
    assert "line search" in res.message
    np.testing.assert_array_equal(xb.to_numpy(res.x), [1.0, -2.0])
    assert res.nfev == 1 + 20 and res.nit == 0


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_non_finite_start_is_reported(xb):
    xp = xb.xp
    res = minimize_lbfgs(
        lambda x: (xp.sum(xp.log(x)), 1.0 / x),
        xb.asarray(np.array([0.0, 1.0])),
        maxiter=5,
        maxfun=5,
    )
    assert res.status == 2 and not res.success and "x0" in res.message


def test_logistic_regression_matches_scipy_loss(xb, moons):
    """The network's own objective with no hidden layer: convex, so the optimum is unique."""
    X, y = moons
    Y = y[:, None].astype(float)
    fun = compiled(xb, flat_network(xb.xp, xb.asarray(X), xb.asarray(Y), [2, 1], l2=0.1))
    x0 = np.zeros(3)
    opts = dict(maxiter=200, maxfun=15000)
    res = minimize_lbfgs(fun, xb.asarray(x0), **opts)
    ref = scipy_lbfgs(for_scipy(flat_network(NP, X, Y, [2, 1], l2=0.1)), x0, **opts)
    assert res.success and ref.success
    assert res.fun == pytest.approx(ref.fun, rel=1e-6)
    np.testing.assert_allclose(xb.to_numpy(res.x), ref.x, rtol=1e-3, atol=1e-4)


def test_small_mlp_matches_scipy_loss(xb, moons):
    """A 2-3-1 tanh network from the article's initialisation, run to a tight gtol.

    Both runs take the same steps while the first trial step is accepted, then part
    ways where the line searches interpolate differently; on this well-regularised
    problem they still settle in the same minimum.  (Non-convex: other set-ups can
    end in different minima, so this compares one where SciPy's is known to be shared.)
    """
    X, y = moons
    Y = y[:, None].astype(float)
    sizes = [2, 3, 1]
    x0 = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in init_normal(sizes, 0)])
    fun = compiled(xb, flat_network(xb.xp, xb.asarray(X), xb.asarray(Y), sizes, l2=0.1))
    opts = dict(maxiter=1000, maxfun=15000, gtol=1e-6, ftol=0.0)
    res = minimize_lbfgs(fun, xb.asarray(x0), **opts)
    ref = scipy_lbfgs(for_scipy(flat_network(NP, X, Y, sizes, l2=0.1)), x0, **opts)
    assert res.success and ref.success, (res.message, ref.message)
    assert res.fun == pytest.approx(ref.fun, rel=1e-6)
    assert ref.nit / 2 <= res.nit <= 2 * ref.nit


@pytest.mark.parametrize(
    ("x0", "options", "match"),
    [
        (np.zeros((2, 2)), {}, "1-D"),
        (np.zeros(2, dtype=np.int64), {}, "floating"),
        (np.array([0.0, np.nan]), {}, "NaN"),
        (np.zeros(2), {"maxiter": 0}, "maxiter"),
        (np.zeros(2), {"maxfun": 0}, "maxfun"),
        (np.zeros(2), {"m": 0}, "m must"),
        (np.zeros(2), {"gtol": -1.0}, "gtol"),
    ],
)
def test_bad_input_raises_before_any_evaluation(xb, x0, options, match):
    calls = []

    def fun(x):
        calls.append(1)
        return xb.xp.sum(x * x), 2.0 * x

    kwargs = {"maxiter": 10, "maxfun": 10, **options}
    with pytest.raises(ValueError, match=match):
        minimize_lbfgs(fun, xb.asarray(x0), **kwargs)
    assert calls == []


def test_gradient_of_wrong_shape_is_rejected(xb):
    xp = xb.xp
    with pytest.raises(ValueError, match="gradient of shape"):
        minimize_lbfgs(
            lambda x: (xp.sum(x * x), xp.reshape(2.0 * x, (1, -1))),
            xb.asarray(np.ones(3)),
            maxiter=5,
            maxfun=5,
        )
