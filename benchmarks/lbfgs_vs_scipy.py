"""Time xpnet's Array API L-BFGS against SciPy's L-BFGS-B on the same MLP objective.

Both optimisers minimise the network's own mean objective (``xpnet._network``)
for a fixed number of iterations (``gtol = ftol = 0``, so neither stops early),
side by side in one process; the report gives seconds per iteration and the
ratio to SciPy driving the NumPy objective.  The objective's cost is shared,
so the ratio measures the optimiser's overhead and the backend's speed.

Run from the repository root::

    JAX_ENABLE_X64=1 PYTHONPATH=$PWD python benchmarks/lbfgs_vs_scipy.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import minimize
from sklearn.datasets import make_moons

from xpnet import _backends, _target
from xpnet._init import init_normal
from xpnet._lbfgs import minimize_lbfgs
from xpnet._network import gradients, objective


def flat_objective(xp, X, Y, sizes, l2):
    """The network's mean objective and gradient on a flat parameter vector."""
    math = dict(activation="tanh", output="logistic", l2=l2)
    n = X.shape[0]

    def fun(w):
        params, start = [], 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            W = xp.reshape(w[start : start + fan_in * fan_out], (fan_in, fan_out))
            start += fan_in * fan_out
            params.append((W, w[start : start + fan_out]))
            start += fan_out
        grads = gradients(xp, params, X, Y, **math)
        flat = xp.concat([xp.concat([xp.reshape(dW, (-1,)), db]) for dW, db in grads])
        return objective(xp, params, X, Y, **math) / n, flat / n

    return fun


def best_of(repeats, run):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    X, y = make_moons(args.samples, noise=0.2, random_state=0)
    Y = y[:, None].astype(float)
    sizes = [2, args.hidden, 1]
    x0 = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in init_normal(sizes, 0)])
    opts = dict(maxiter=args.iterations, maxfun=100 * args.iterations, gtol=0.0, ftol=0.0)

    host = _target.target_of(x0)
    numpy_fun = flat_objective(host.xp, X, Y, sizes, 1e-4)

    def scipy_run():
        res = minimize(
            lambda w: (lambda f, g: (float(f), g))(*numpy_fun(w)),
            x0,
            jac=True,
            method="L-BFGS-B",
            options=opts,
        )
        return res.nit, res.nfev, float(res.fun)

    scipy_run()  # warm up as the others are
    base, (nit, nfev, loss) = best_of(args.repeats, scipy_run)
    print(f"{len(x0)} parameters, {args.samples} samples, {args.iterations} iterations")
    row = "{:30s} {:>10.2e} {:>7.2f} {:>5d} {:>5d}  {:.6g}"
    print(f"{'run':30s} {'s/iter':>10s} {'ratio':>7s} {'nit':>5s} {'nfev':>5s}  loss")
    print(row.format("scipy L-BFGS-B (numpy)", base / nit, 1.0, nit, nfev, loss))

    for name, info in _backends.available_backends().items():
        if not info.usable:
            continue
        target = _target.target_for(name, None)
        if not target.has_float64():  # JAX without JAX_ENABLE_X64=1, MPS
            print(f"xpnet lbfgs ({name}): skipped, no float64")
            continue
        fun = target.jit(
            flat_objective(target.xp, target.asarray(X), target.asarray(Y), sizes, 1e-4)
        )
        start = target.asarray(x0)

        def ours(fun=fun, start=start, target=target):
            with target.activate():
                res = minimize_lbfgs(fun, start, **opts)
            return res.nit, res.nfev, res.fun

        ours()  # compile (JAX) and warm up outside the timing
        secs, (nit, nfev, loss) = best_of(args.repeats, ours)
        print(row.format(f"xpnet lbfgs ({name})", secs / nit, secs / base, nit, nfev, loss))


if __name__ == "__main__":
    main()
