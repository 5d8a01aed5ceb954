"""An estimator's epoch on JAX as one compiled scan, against stepping its batches one by one.

W2's shapes (N x 64 float32, 64-256-256-10 tanh, Adam, batch 1024, one epoch of
``xpnet.MLPClassifier`` on a JAX array), both ways in one process, interleaved, best of
``--rounds``; the batch-by-batch side is xpnet's path before the scan (``Data.in_one_call``
switched off).  Needs jax.

    python benchmarks/jax_epoch.py [--rows 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import xpnet
    from xpnet import _train

    warnings.simplefilter("ignore")  # one epoch: scikit-learn's ConvergenceWarning
    rng = np.random.RandomState(0)
    X = jnp.asarray(rng.randn(args.rows, 64).astype(np.float32))
    y = rng.randint(0, 10, args.rows)
    settings = dict(
        hidden_layer_sizes=(256, 256), activation="tanh", batch_size=1024, max_iter=1,
        random_state=0,
    )  # fmt: skip
    one_call = _train.Data.in_one_call

    def fit(scan: bool) -> xpnet.MLPClassifier:
        _train.Data.in_one_call = one_call if scan else (lambda self, step: False)
        return xpnet.MLPClassifier(**settings).fit(X, y)

    same = all(
        np.array_equal(a, b)
        for a, b in zip(fit(True).coefs_, fit(False).coefs_, strict=True)  # also compiles
    )
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for scan in (True, False) if r % 2 == 0 else (False, True):
            start = time.perf_counter()
            fit(scan)
            seconds[scan].append(time.perf_counter() - start)
    scan, steps = min(seconds[True]), min(seconds[False])
    print(
        f"W2 on JAX ({jax.devices()[0].platform}), {args.rows} rows: one scan {scan:.3f} s, "
        f"batch by batch {steps:.3f} s, {scan / steps:.2f}x; same weights: {same}"
    )


if __name__ == "__main__":
    main()
