"""Initial parameters, drawn on the host with NumPy: every backend starts from the same
weights, so that results agree across backends and the seeds' numbers reproduce."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def init_normal(
    layer_sizes: Sequence[int], seed: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The article's initialisation, drawn on the host in float64.

    ``W = RandomState(seed).randn(fan_in, fan_out) / sqrt(fan_in)`` for each
    layer in order, biases zero.  Drawing on the host and transferring gives
    every backend identical starting weights.
    """
    rng = np.random.RandomState(seed)
    params = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        params.append((rng.randn(fan_in, fan_out) / np.sqrt(fan_in), np.zeros(fan_out)))
    return params


def init_glorot(
    layer_sizes: Sequence[int], random_state: np.random.RandomState, activation: str, dtype: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's initialisation, drawn on the host from ``random_state``.

    For each layer in order: ``W`` then ``b`` uniform in ``[-r, r]`` with
    ``r = sqrt(k / (fan_in + fan_out))``, ``k = 2`` for the logistic
    activation and 6 otherwise (Glorot and Bengio, 2010), drawn in float64 and
    cast to ``dtype``.  The draws consume the stream as scikit-learn's do.
    """
    k = 2.0 if activation == "logistic" else 6.0
    params = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        bound = np.sqrt(k / (fan_in + fan_out))
        W = random_state.uniform(-bound, bound, (fan_in, fan_out))
        b = random_state.uniform(-bound, bound, fan_out)
        params.append((W.astype(dtype, copy=False), b.astype(dtype, copy=False)))
    return params
