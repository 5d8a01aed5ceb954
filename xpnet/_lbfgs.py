"""Limited-memory BFGS written against the Array API standard.

SciPy's ``minimize(method="L-BFGS-B")`` runs on the host in float64, so an
estimator that trains on a GPU would copy its parameters back and forth on
every evaluation.  :func:`minimize_lbfgs` keeps every array in the namespace
and on the device of ``x0``; only a few scalars per evaluation (the objective,
a directional derivative, the largest gradient entry) come to the host, where
they steer the control flow.

Without bounds, the search direction of L-BFGS-B's compact representation is
the one of the two-loop recursion with ``H0 = (s.y / y.y) I``, so this module
computes that direction (in matrix form, see ``_kernels``) and reproduces
SciPy's first step, stopping rules and counters, which scikit-learn's
``n_iter_`` and ``max_fun`` rely on:

* ``nfev`` counts every call of ``fun``, the one at ``x0`` included;
* ``nit`` counts completed iterations (accepted line searches);
* after each iteration, ``callback`` runs, then the limits are tested
  (``nit >= maxiter``, then ``nfev > maxfun``: a line search in progress is
  never cut short, so ``nfev`` may pass ``maxfun`` by up to ``maxls``, twice
  that when a failed search is retried along ``-g``), and
  only then the convergence tests (``max|g| <= gtol``, then the relative
  reduction of ``f`` against ``ftol``);
* ``max|g| <= gtol`` at ``x0`` returns at once with ``nit == 0``;
* the first trial step is ``1/|g|`` (a move of unit length, uncapped, as SciPy
  takes it), later ones are 1;
* where the decrease the model promises is below the rounding of ``f``, the
  iteration ends in place and the ``ftol`` test stops the run (SciPy accepts a
  step there and stops the same way, or, sometimes, reports an abnormal stop).

The per-iteration array work is a handful of pure kernels, compiled through
``Target.jit`` where the backend compiles (JAX), once per namespace; their
shapes never change during a run, so one compilation serves it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import array_api_compat

from . import _target

__all__ = ["LbfgsResult", "minimize_lbfgs"]

Array = Any

# Strong Wolfe constants and limits, as SciPy's L-BFGS-B sets them.
_C1 = 1e-3  # sufficient decrease
_C2 = 0.9  # curvature
_MAX_STEP = 1e10
# A predicted decrease below this many ulps of f is rounding noise.
_NOISE = 100.0

# Status codes follow SciPy's ``warnflag`` so callers can test ``status != 0``.
CONVERGED, LIMIT, ABNORMAL = 0, 1, 2


@dataclass(frozen=True)
class LbfgsResult:
    """What :func:`minimize_lbfgs` found.

    Attributes
    ----------
    x : array
        The final iterate, in the namespace, on the device and with the dtype of ``x0``.
    fun : float
        The objective at ``x``.
    jac : array
        The gradient at ``x``, like ``x``.
    nit : int
        Completed iterations.
    nfev : int
        Calls of ``fun``, the one at ``x0`` included.
    status : int
        0 converged (``gtol`` or ``ftol``), 1 stopped by ``maxiter`` or ``maxfun``,
        2 stopped abnormally (the line search could not make progress, or ``fun``
        was not finite at ``x0``).
    success : bool
        True when ``status == 0``.
    message : str
        Which stop, in words.
    """

    x: Array
    fun: float
    jac: Array
    nit: int
    nfev: int
    status: int
    success: bool
    message: str


@dataclass
class _Point:
    """A point on the search line: step ``a``, its iterate, value and gradient."""

    a: float
    x: Array
    f: float
    g: Array
    slope: float  # g . d, the derivative along the line
    gmax: float  # max |g|, for the gtol test


def minimize_lbfgs(
    fun: Callable[[Array], tuple[Any, Array]],
    x0: Array,
    *,
    maxiter: int,
    maxfun: int,
    gtol: float = 1e-5,
    ftol: float = 2.220446049250313e-09,
    m: int = 10,
    maxls: int = 20,
    callback: Callable[[Array], Any] | None = None,
) -> LbfgsResult:
    """Minimise ``fun`` by L-BFGS, on the namespace and device of ``x0``.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)``: the objective (a 0-d array or a Python float) and
        its gradient (an array like ``x``).
    x0 : array
        The starting point: a 1-D real floating array of any Array API
        namespace.  It is not modified.
    maxiter : int
        Stop after this many iterations (at least 1).
    maxfun : int
        Stop after the iteration during which the number of calls of ``fun``
        passed this (at least 1).
    gtol : float, default=1e-5
        Converged when the largest gradient entry, in absolute value, is at most this.
    ftol : float, default=2.220446049250313e-09
        Converged when ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``.
    m : int, default=10
        Number of stored correction pairs.
    maxls : int, default=20
        Most calls of ``fun`` in one line search.
    callback : callable, optional
        Called as ``callback(x)`` after each iteration.

    Returns
    -------
    LbfgsResult
        The final iterate and how the run ended.

    Raises
    ------
    ValueError
        If ``x0`` is not a 1-D real floating array of finite values, if a limit
        or tolerance is out of range, or if ``fun`` returns a gradient whose
        shape differs from ``x0``'s.

    Notes
    -----
    The line search brackets a step satisfying the strong Wolfe conditions
    (``c1 = 1e-3``, ``c2 = 0.9``) and zooms in by safeguarded cubic
    interpolation.  A step where ``fun`` is not finite counts as a failed trial
    and the step shrinks.  When a line search cannot decrease ``f``, the stored
    pairs are dropped and the iteration restarts along ``-g``; if that fails
    too, the run ends with ``status == 2`` at the last good iterate.

    Examples
    --------
    >>> import numpy as np
    >>> res = minimize_lbfgs(lambda x: (x @ x, 2 * x), np.ones(3), maxiter=50, maxfun=100)
    >>> res.success, float(np.max(np.abs(res.x))) < 1e-5
    (True, True)
    """
    xp = array_api_compat.array_namespace(x0)
    _check_args(xp, x0, maxiter=maxiter, maxfun=maxfun, gtol=gtol, ftol=ftol, m=m, maxls=maxls)
    eps = float(xp.finfo(x0.dtype).eps)
    kernels = _kernels(xp, _target.target_of(x0).adapter.jit)
    if not bool(kernels.all_finite(x0)):
        raise ValueError("x0 contains NaN or infinity; start from finite values")

    nfev = 0

    def evaluate(a: float, x: Array, d: Array | None) -> _Point:
        nonlocal nfev
        f, g = fun(x)
        nfev += 1
        if tuple(g.shape) != tuple(x0.shape):
            raise ValueError(
                f"fun returned a gradient of shape {tuple(g.shape)} for x of shape "
                f"{tuple(x0.shape)}; return the gradient flattened like x"
            )
        host_f = isinstance(f, (int, float))  # a Python float needs no transfer
        summary = kernels.summary(None if host_f else f, g, d)
        f_val, slope, gmax = _target.to_host(summary).tolist()
        return _Point(a, x, float(f) if host_f else f_val, g, slope, gmax)

    here = evaluate(0.0, x0, None)
    if not math.isfinite(here.f) or not math.isfinite(here.gmax):
        return _result(here, 0, nfev, ABNORMAL, "ABNORMAL: fun(x0) is not finite")
    if here.gmax <= gtol:
        return _result(here, 0, nfev, CONVERGED, "CONVERGENCE: max|g| <= gtol at x0")

    # The m newest correction pairs as rows of S and Y, newest last.  Empty rows are
    # zeros, which the two-loop recursion passes through unchanged, so shapes never vary.
    empty = xp.zeros((m, x0.shape[0]), dtype=x0.dtype, device=array_api_compat.device(x0))
    S = Y = empty
    stored = 0
    nit = 0
    while True:
        d, stats = kernels.direction(here.g, S, Y)
        slope0, d_norm = _target.to_host(stats).tolist()
        # SciPy's first trial step moves x by unit length; later ones take the full step.
        a0 = min(1.0 / d_norm, _MAX_STEP) if nit == 0 and stored == 0 and d_norm > 0 else 1.0
        new = None
        if math.isfinite(slope0) and slope0 < 0:
            origin = _Point(0.0, here.x, here.f, here.g, slope0, here.gmax)
            new = _line_search(evaluate, kernels.step, origin, d, a0, maxls, eps)
            if new is None and -a0 * slope0 <= _NOISE * eps * max(abs(here.f), 1.0):
                # The decrease the model promises is below f's rounding: nothing left to
                # gain.  SciPy accepts such a step and its ftol test then stops; staying put
                # keeps its counters (one more iteration, reduction 0 <= ftol) without moving.
                new = here
        if new is None:
            if stored:  # the stored pairs misled; forget them and go down the gradient
                S = Y = empty
                stored = 0
                continue
            return _result(here, nit, nfev, ABNORMAL, "ABNORMAL: the line search cannot decrease f")

        # s = a d, so s.y = a (g_new.d - g.d) needs no reduction of its own.
        sy = new.a * (new.slope - slope0)
        if new is not here and sy > eps * new.a * -slope0:  # skip pairs without curvature
            S, Y = kernels.update(S, Y, new.x, here.x, new.g, here.g)
            stored = min(stored + 1, m)
        f_old, here = here.f, new
        nit += 1
        if callback is not None:
            callback(here.x)

        if nit >= maxiter:
            return _result(here, nit, nfev, LIMIT, "STOP: iteration limit maxiter reached")
        if nfev > maxfun:
            return _result(here, nit, nfev, LIMIT, "STOP: evaluation limit maxfun exceeded")
        if here.gmax <= gtol:
            return _result(here, nit, nfev, CONVERGED, "CONVERGENCE: max|g| <= gtol")
        if f_old - here.f <= ftol * max(abs(f_old), abs(here.f), 1.0):
            return _result(
                here, nit, nfev, CONVERGED, "CONVERGENCE: relative reduction of f <= ftol"
            )


def _check_args(xp: Any, x0: Array, **opts: Any) -> None:
    """Raise ValueError for a bad ``x0`` or option, before any evaluation."""
    if x0.ndim != 1:
        raise ValueError(f"x0 must be 1-D, got shape {tuple(x0.shape)}; flatten it first")
    if not xp.isdtype(x0.dtype, "real floating"):
        raise ValueError(f"x0 must have a real floating dtype, got {x0.dtype}; cast it first")
    for name in ("maxiter", "maxfun", "m", "maxls"):
        value = opts[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name in ("gtol", "ftol"):
        value = opts[name]
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class _Kernels(NamedTuple):
    """The array work of one iteration, as pure functions (compiled where the backend can)."""

    summary: Callable  # (f or None, g, d or None) -> [f or 0, g.d or 0, max|g|]
    direction: Callable  # (g, S, Y) -> (d, [g.d, |d|])
    update: Callable  # (S, Y, x_new, x, g_new, g) -> (S, Y)
    step: Callable  # (x, a, d) -> x + a d
    all_finite: Callable  # x -> bool


@functools.cache
def _kernels(xp: Any, jit: Callable) -> _Kernels:
    """Build the kernels for namespace ``xp``, once per namespace so compiled code is reused."""

    def summary(f: Array | None, g: Array, d: Array | None) -> Array:
        # f may be wider than g (a float64 loss of float32 parameters): keep its precision.
        dtype = g.dtype if f is None else xp.result_type(f.dtype, g.dtype)
        gmax = xp.astype(xp.max(xp.abs(g)), dtype)
        zero = xp.zeros_like(gmax)
        f = zero if f is None else xp.astype(xp.reshape(f, ()), dtype)  # None: f is on the host
        slope = zero if d is None else xp.astype(xp.vecdot(g, d), dtype)  # None: at x0, no line
        return xp.stack([f, slope, gmax])

    def direction(g: Array, S: Array, Y: Array) -> tuple[Array, Array]:
        # The two-loop recursion for -H g, with its two scalar recurrences written as
        # unit-triangular systems over the m x m products S Y' (few, large operations
        # rather than 4m small ones).  Empty (zero) rows get rho = 0 and change nothing.
        m = S.shape[0]
        eye = xp.eye(m, dtype=S.dtype, device=array_api_compat.device(S))
        idx = xp.arange(m, device=array_api_compat.device(S))
        SY = S @ xp.matrix_transpose(Y)  # SY[i, j] = s_i . y_j
        sy = xp.sum(SY * eye, axis=1)
        stored = sy > 0
        rho = xp.where(stored, 1.0 / xp.where(stored, sy, xp.ones_like(sy)), xp.zeros_like(sy))
        yy = xp.vecdot(Y[-1, :], Y[-1, :])
        one = xp.ones_like(yy)
        gamma = xp.where(stored[-1], sy[-1] / xp.where(stored[-1], yy, one), one)
        # Newest first: alpha_i = rho_i s_i.(g - sum_{j>i} alpha_j y_j).
        upper = SY * xp.astype(idx[None, :] > idx[:, None], S.dtype)
        alpha = xp.linalg.solve(eye + rho[:, None] * upper, (rho * (S @ g))[:, None])[:, 0]
        q = g - alpha @ Y
        # Oldest first: beta_i = rho_i y_i.(gamma q + sum_{j<i} (alpha_j - beta_j) s_j).
        lower = xp.matrix_transpose(upper)
        rhs = rho * (gamma * (Y @ q) + lower @ alpha)
        beta = xp.linalg.solve(eye + rho[:, None] * lower, rhs[:, None])[:, 0]
        d = -(gamma * q + (alpha - beta) @ S)
        return d, xp.stack([xp.vecdot(g, d), xp.linalg.vector_norm(d)])

    def update(
        S: Array, Y: Array, x_new: Array, x: Array, g_new: Array, g: Array
    ) -> tuple[Array, Array]:
        S = xp.concat([S[1:, :], (x_new - x)[None, :]], axis=0)
        Y = xp.concat([Y[1:, :], (g_new - g)[None, :]], axis=0)
        return S, Y

    def step(x: Array, a: Any, d: Array) -> Array:
        return x + a * d

    def all_finite(x: Array) -> Array:
        return xp.all(xp.isfinite(x))

    return _Kernels(*(jit(k) for k in (summary, direction, update, step, all_finite)))


def _line_search(
    evaluate: Callable,
    step: Callable,
    origin: _Point,
    d: Array,
    a: float,
    maxls: int,
    eps: float,
) -> _Point | None:
    """Find a step along ``d`` satisfying the strong Wolfe conditions.

    Returns the accepted point, or the best point that decreased ``f`` enough
    when the conditions could not be met within ``maxls`` evaluations, or None
    when no trial decreased ``f``.
    """
    f0, slope0 = origin.f, origin.slope
    lo = origin  # the best point so far that satisfies sufficient decrease
    hi: _Point | None = None  # the other end of a bracket, once there is one
    prev = origin  # the previous lo, for extrapolation
    widths: list[float] = []
    for _ in range(maxls):
        trial = evaluate(a, step(origin.x, a, d), d)
        if not (math.isfinite(trial.f) and math.isfinite(trial.slope)):
            hi = trial  # unusable: it bounds the step from above
        elif trial.f > f0 + _C1 * a * slope0 or trial.f >= lo.f:
            hi = trial  # too far: a minimiser lies between lo and this step
        elif abs(trial.slope) <= -_C2 * slope0:
            return trial  # strong Wolfe
        else:
            if hi is not None and trial.slope * (hi.a - lo.a) >= 0:
                hi = lo
            elif hi is None and trial.slope > 0:
                hi = lo  # passed the minimiser: bracket between here and the last lo
            prev, lo = lo, trial

        if hi is None:
            a = _extrapolate(prev, lo)
        else:
            width = abs(hi.a - lo.a)
            if width <= eps * max(abs(hi.a), abs(lo.a)):
                break  # the bracket cannot shrink any further in this precision
            widths.append(width)
            a = _zoom_step(lo, hi, widths)
        if lo.a >= _MAX_STEP:
            break  # no longer step is allowed
    return lo if lo is not origin else None


def _extrapolate(prev: _Point, lo: _Point) -> float:
    """A longer step while the slope stays steep: cubic guess, kept in a sane range."""
    span = lo.a - prev.a
    low, high = lo.a + 1.1 * span, lo.a + 4.0 * span
    guess = _cubic_min(prev, lo)
    a = high if guess is None else min(max(guess, low), high)
    return min(a, _MAX_STEP)


def _zoom_step(lo: _Point, hi: _Point, widths: list[float]) -> float:
    """The next trial inside the bracket between ``lo`` and ``hi``.

    Cubic interpolation of both ends' values and slopes, falling back to a
    quadratic, kept away from the ends; bisection when the bracket has not
    shrunk by a third over two trials, since interpolation can stall at one end.
    """
    left, right = min(lo.a, hi.a), max(lo.a, hi.a)
    width = right - left
    if not math.isfinite(hi.f):
        # No model beyond lo; shrink hard from a fresh start, halve otherwise.
        return lo.a + (0.1 if lo.a == 0.0 else 0.5) * (hi.a - lo.a)
    if len(widths) >= 3 and widths[-1] > 0.66 * widths[-3]:
        return 0.5 * (left + right)
    guess = _cubic_min(lo, hi)
    if guess is None:
        guess = _quadratic_min(lo, hi)
    if guess is None:
        return 0.5 * (left + right)
    margin = 0.01 * width
    return min(max(guess, left + margin), right - margin)


def _cubic_min(p: _Point, q: _Point) -> float | None:
    """The minimiser of the cubic matching values and slopes at ``p`` and ``q``."""
    if p.a == q.a:
        return None
    d1 = p.slope + q.slope - 3.0 * (p.f - q.f) / (p.a - q.a)
    disc = d1 * d1 - p.slope * q.slope
    if not math.isfinite(disc) or disc < 0:
        return None
    d2 = math.copysign(math.sqrt(disc), q.a - p.a)
    denom = q.slope - p.slope + 2.0 * d2
    if denom == 0:
        return None
    a = q.a - (q.a - p.a) * (q.slope + d2 - d1) / denom
    return a if math.isfinite(a) else None


def _quadratic_min(p: _Point, q: _Point) -> float | None:
    """The minimiser of the parabola through ``p`` (value, slope) and ``q``'s value."""
    h = q.a - p.a
    curv = q.f - p.f - p.slope * h
    if h == 0 or not curv > 0:
        return None
    return p.a - p.slope * h * h / (2.0 * curv)


def _result(p: _Point, nit: int, nfev: int, status: int, message: str) -> LbfgsResult:
    return LbfgsResult(
        x=p.x,
        fun=p.f,
        jac=p.g,
        nit=nit,
        nfev=nfev,
        status=status,
        success=status == CONVERGED,
        message=message,
    )
