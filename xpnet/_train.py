"""Initialisation and the training loop, on any backend."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _backends
from ._network import gradients, objective

Callback = Callable[[int, float], Any]


def init_article(
    layer_sizes: Sequence[int], seed: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The article's initialisation, drawn on the host in float64.

    ``W = RandomState(seed).randn(fan_in, fan_out) / sqrt(fan_in)`` for each
    layer in order, biases zero.  Drawing on the host and transferring gives
    every backend identical starting weights.
    """
    rng = np.random.RandomState(seed)
    params = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        params.append((rng.randn(fan_in, fan_out) / np.sqrt(fan_in), np.zeros(fan_out)))
    return params


def to_target(target: _backends.Target, host_params: Sequence[tuple[Any, Any]], dtype: Any) -> list:
    """Move ``(W, b)`` pairs from any backend onto ``target`` as ``dtype``."""
    return [(target.asarray(W, dtype), target.asarray(b, dtype)) for W, b in host_params]


def _should_log(i: int, epochs: int, log_every: int) -> bool:
    return i % log_every == 0 or i == epochs - 1


def gradient_descent(
    target: _backends.Target,
    params: list,
    X: Any,
    Y: Any,
    *,
    activation: str,
    output: str,
    lr: float,
    l2: float,
    epochs: int,
    log_every: int,
    callback: Callback | None = None,
    progress: bool = False,
) -> tuple[list, list[tuple[int, float]]]:
    """The article's full-batch gradient descent.

    Each pass takes ``W <- W - lr * (sum_i dloss_i/dW + l2 * W)`` (biases
    without the penalty).  After pass 0, every ``log_every`` passes and the
    last pass, the mean loss is recorded and handed to ``callback``.

    Returns
    -------
    params : list of (W, b)
        The trained parameters, on ``target``.
    curve : list of (int, float)
        The recorded ``(pass, loss)`` pairs.
    """
    xp = target.xp
    n = X.shape[0]
    terms = dict(activation=activation, output=output, l2=l2)

    def step(params, X, Y):
        grads = gradients(xp, params, X, Y, **terms)
        return [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]

    def mean_loss(params, X, Y):
        return objective(xp, params, X, Y, **terms) / n

    step, mean_loss = target.jit(step), target.jit(mean_loss)
    bar = _progress_bar(epochs) if progress else None
    # Advance the bar in about 200 ticks rather than per pass: smooth to the
    # eye, and tqdm's per-call cost stays negligible next to a pass.
    tick = max(1, epochs // 200)
    curve: list[tuple[int, float]] = []
    done = 0
    try:
        with target.activate():
            for i in range(epochs):
                params = step(params, X, Y)
                logged = _should_log(i, epochs, log_every)
                if logged:
                    loss = float(_backends.to_host(mean_loss(params, X, Y)))
                    if not math.isfinite(loss):
                        raise FloatingPointError(
                            f"training diverged: the loss is {loss} after pass {i}; "
                            f"lower the learning rate (lr={lr}) or scale the features"
                        )
                    curve.append((i, loss))
                if bar is not None and (logged or (i + 1) % tick == 0):
                    if logged:
                        bar.set_postfix(loss=f"{loss:.6f}", refresh=False)
                    bar.update(i + 1 - done)
                    done = i + 1
                if logged and callback is not None:
                    callback(i, loss)
    finally:
        if bar is not None:
            bar.close()
    return params, curve


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="pass", file=sys.stderr, dynamic_ncols=True, leave=False)
