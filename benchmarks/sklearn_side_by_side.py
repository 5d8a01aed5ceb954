"""xpnet's MLPClassifier/MLPRegressor against scikit-learn's, side by side.

For each data set, solver and random_state (0-4), both estimators get the same
parameters (scikit-learn's defaults, a StandardScaler in front) and the same
train/test split; the held-out score (accuracy, or R^2) is averaged over the
five random_states.  The time ratio is xpnet's fit time over scikit-learn's,
both measured in this run.

    python benchmarks/sklearn_side_by_side.py [--quick]

``--quick`` uses max_iter=50 and 3 random_states.  Exits 1 when xpnet's mean
held-out score is worse than scikit-learn's by more than 0.02 anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import sklearn.neural_network as skl
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_moons,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xpnet

DATA = {
    "moons": (lambda: make_moons(500, noise=0.3, random_state=0), True),
    "digits": (lambda: load_digits(return_X_y=True), True),
    "breast_cancer": (lambda: load_breast_cancer(return_X_y=True), True),
    "make_regression": (lambda: make_regression(500, 10, noise=10.0, random_state=0), False),
    "diabetes": (lambda: load_diabetes(return_X_y=True), False),
}


def run(max_iter: int, seeds: range) -> bool:
    ok = True
    print(f"{'data':16}{'solver':7}{'sklearn':>9}{'xpnet':>9}{'diff':>8}{'time x':>8}")
    for name, (load, classify) in DATA.items():
        X, y = load()
        if not classify:
            y = (y - y.mean()) / y.std()  # both learn the same scaled target
        for solver in ("sgd", "adam", "lbfgs"):
            scores = {"sklearn": [], "xpnet": []}
            times = {"sklearn": 0.0, "xpnet": 0.0}
            for seed in seeds:
                split = train_test_split(X, y, test_size=0.25, random_state=seed)
                X_train, X_test, y_train, y_test = split
                for who, module in (("sklearn", skl), ("xpnet", xpnet)):
                    Est = module.MLPClassifier if classify else module.MLPRegressor
                    model = make_pipeline(
                        StandardScaler(),
                        Est(solver=solver, max_iter=max_iter, random_state=seed),
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        start = time.perf_counter()
                        model.fit(X_train, y_train)
                        times[who] += time.perf_counter() - start
                    scores[who].append(model.score(X_test, y_test))
            ours, theirs = np.mean(scores["xpnet"]), np.mean(scores["sklearn"])
            ratio = times["xpnet"] / times["sklearn"]
            flag = "" if ours >= theirs - 0.02 else "  WORSE"
            ok &= not flag
            row = f"{theirs:9.4f}{ours:9.4f}{ours - theirs:+8.4f}{ratio:8.2f}"
            print(f"{name:16}{solver:7}{row}{flag}")
            sys.stdout.flush()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="max_iter=50, 3 random_states")
    args = parser.parse_args()
    ok = run(50, range(3)) if args.quick else run(200, range(5))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
