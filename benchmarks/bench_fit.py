"""Time xpnet.fit side by side: against a plain-NumPy loop, and across backends.

Run:  python benchmarks/bench_fit.py [--epochs 20000] [--repeats 5] [--large]

Every figure is a median over --repeats runs measured in this one process, and is
reported as a ratio to the first row, so machine speed and load cancel out.
``--large`` adds a bigger problem (50,000 samples, 64 hidden units) where a GPU pays off.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import make_moons

import xpnet


def plain_numpy(X, y, hidden, epochs, lr=0.01, l2=0.01):
    """The tutorial's loop in plain NumPy, as the baseline (stable softmax)."""
    rng = np.random.RandomState(0)
    n, d = X.shape
    k = int(y.max()) + 1
    W1 = rng.randn(d, hidden) / np.sqrt(d)
    W2 = rng.randn(hidden, k) / np.sqrt(hidden)
    b1, b2 = np.zeros(hidden), np.zeros(k)
    onehot = np.eye(k)[y]
    for _ in range(epochs):
        a1 = np.tanh(X @ W1 + b1)
        z = a1 @ W2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        delta = e / e.sum(axis=1, keepdims=True) - onehot
        dW2, db2 = a1.T @ delta + l2 * W2, delta.sum(axis=0)
        delta1 = (delta @ W2.T) * (1 - a1**2)
        dW1, db1 = X.T @ delta1 + l2 * W1, delta1.sum(axis=0)
        W1, b1, W2, b2 = W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
    return W1, b1, W2, b2


def median_seconds(fn, repeats):
    fn()  # warm up: imports, JIT compilation, CUDA context
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(title, X, y, hidden, epochs, repeats, lr):
    print(f"\n{title}: {X.shape[0]} samples, hidden {hidden}, {epochs} passes, median of {repeats}")
    rows = [("plain NumPy loop", lambda: plain_numpy(X, y, hidden, epochs, lr=lr))]
    report = xpnet.available_backends()
    for name in ("numpy", "torch", "jax", "array_api_strict", "cupy"):
        if not report[name].usable:
            continue
        rows.append(
            (
                f"xpnet.fit backend={name}",
                lambda name=name: xpnet.fit(
                    X, y, hidden=hidden, epochs=epochs, backend=name, lr=lr, log_every=epochs
                ),
            )
        )
    base = None
    for label, fn in rows:
        seconds = median_seconds(fn, repeats)
        base = base or seconds
        per_pass = seconds / epochs * 1e6
        print(f"  {label:34s} {seconds:8.3f} s  {per_pass:8.1f} us/pass  x{seconds / base:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", action="store_true")
    args = parser.parse_args()
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # compare like with like: float64
    except ImportError:
        pass
    warnings.simplefilter("ignore", xpnet.BackendFallbackWarning)
    X, y = make_moons(200, noise=0.20, random_state=0)
    run("The article's problem", X, y, 3, args.epochs, args.repeats, lr=0.01)
    if args.large:
        X, y = make_moons(50_000, noise=0.20, random_state=0)
        run("A larger problem", X, y, 64, 200, args.repeats, lr=1e-5)


if __name__ == "__main__":
    main()
