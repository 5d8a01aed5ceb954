"""Initialisation and the training loop, on any backend."""

from __future__ import annotations

import copy
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _backends
from ._network import gradients, loss_and_gradients, objective

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


def to_target(target: _backends.Target, host_params: Sequence[tuple[Any, Any]], dtype: Any) -> list:
    """Move ``(W, b)`` pairs from any backend onto ``target`` as ``dtype``."""
    return [(target.asarray(W, dtype), target.asarray(b, dtype)) for W, b in host_params]


class SGD:
    """Gradient descent with optional (Nesterov) momentum and a step-size schedule.

    The update of each parameter ``p`` with gradient ``g`` is
    ``v <- momentum * v - lr * g`` then ``p <- p + v``, or with Nesterov
    ``p <- p + momentum * v - lr * g``.  With ``momentum=0`` that is
    ``p <- p - lr * g`` and no velocity is kept.

    Schedules: "constant"; "invscaling", ``lr = lr_init / (t + 1) ** power_t``
    after each epoch with ``t`` the samples seen; "adaptive", ``lr /= 5`` on
    each plateau until it is at most 1e-6.
    """

    def __init__(
        self,
        learning_rate_init: float,
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        schedule: str = "constant",
        power_t: float = 0.5,
    ) -> None:
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov) and self.momentum > 0
        self.schedule = schedule
        self.power_t = power_t

    def rule(self) -> tuple:
        """The constants of the update (not the step size): a cache key."""
        return ("sgd", self.momentum, self.nesterov)

    def init(self, xp: Any, params: list) -> list | None:
        """The device state: one velocity per array, or None without momentum."""
        if self.momentum == 0:
            return None
        return [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]

    def step_size(self) -> float:
        """The host-side step size of the next update."""
        return self.learning_rate

    def update(self, xp: Any, params: list, grads: list, state: list | None, lr: Any) -> tuple:
        """Pure update: new ``(params, state)``."""
        if state is None:
            return [
                (W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads, strict=True)
            ], None
        mu = self.momentum
        velocities = [
            (mu * vW - lr * dW, mu * vb - lr * db)
            for (vW, vb), (dW, db) in zip(state, grads, strict=True)
        ]
        if self.nesterov:
            moves = [
                (mu * vW - lr * dW, mu * vb - lr * db)
                for (vW, vb), (dW, db) in zip(velocities, grads, strict=True)
            ]
        else:
            moves = velocities
        params = [(W + mW, b + mb) for (W, b), (mW, mb) in zip(params, moves, strict=True)]
        return params, velocities

    def epoch_end(self, samples_seen: int) -> None:
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (samples_seen + 1) ** self.power_t

    def plateau(self) -> tuple[bool, str]:
        """React to a plateau: ``(stop, what happened)``."""
        if self.schedule != "adaptive":
            return True, "Stopping."
        if self.learning_rate <= 1e-6:
            return True, "Learning rate too small. Stopping."
        self.learning_rate /= 5.0
        return False, f"Setting learning rate to {self.learning_rate:f}"


class Adam:
    """Adam (Kingma and Ba, 2014) with the bias correction folded into the step size.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2`` and
    ``p <- p - lr_t m / (sqrt(v) + eps)`` with
    ``lr_t = lr_init sqrt(1 - b2^t) / (1 - b1^t)`` computed on the host.
    """

    def __init__(
        self,
        learning_rate_init: float,
        *,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0

    def rule(self) -> tuple:
        """The constants of the update (not the step size): a cache key."""
        return ("adam", self.beta_1, self.beta_2, self.epsilon)

    def init(self, xp: Any, params: list) -> list:
        zeros = [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]
        return [zeros, [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]]

    def step_size(self) -> float:
        self.t += 1
        self.learning_rate = (
            self.learning_rate_init * math.sqrt(1 - self.beta_2**self.t) / (1 - self.beta_1**self.t)
        )
        return self.learning_rate

    def update(self, xp: Any, params: list, grads: list, state: list, lr: Any) -> tuple:
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
        flat_g = [g for pair in grads for g in pair]
        ms = [b1 * m + (1 - b1) * g for m, g in zip(_flat(state[0]), flat_g, strict=True)]
        vs = [b2 * v + (1 - b2) * (g * g) for v, g in zip(_flat(state[1]), flat_g, strict=True)]
        moves = [(-lr * m) / (xp.sqrt(v) + eps) for m, v in zip(ms, vs, strict=True)]
        flat_p = [p + d for p, d in zip(_flat(params), moves, strict=True)]
        return _pairs(flat_p), [_pairs(ms), _pairs(vs)]

    def epoch_end(self, samples_seen: int) -> None:
        pass

    def plateau(self) -> tuple[bool, str]:
        return True, "Stopping."


def _flat(pairs: Sequence[tuple[Any, Any]]) -> list:
    return [a for pair in pairs for a in pair]


def _pairs(flat: list) -> list:
    return list(zip(flat[0::2], flat[1::2], strict=True))


class Batches:
    """The mini-batches of one epoch, gathered on the target device.

    ``order`` is a host RandomState drawing scikit-learn's permutation for each
    epoch (``sklearn.utils.shuffle`` of the previous order), or None to take
    the rows in order.  Rows are read with ``xp.take`` from one device copy of
    the permutation; a SciPy sparse X (host only) is densified batch by batch.
    """

    def __init__(
        self,
        target: _backends.Target,
        X: Any,
        Y: Any,
        sample_weight: Any | None,
        batch_size: int,
        order: np.random.RandomState | None,
        dtype: Any = None,
    ) -> None:
        self.target, self.X, self.Y, self.sample_weight = target, X, Y, sample_weight
        self.n = Y.shape[0]
        self.batch_size = batch_size
        self.order = order
        self.dtype = dtype
        self.index = np.arange(self.n)
        self.sparse = hasattr(X, "tocsr")
        self.full = batch_size >= self.n and order is None and not self.sparse

    def _rows(self, a: Any, idx: Any, host_idx: np.ndarray, start: int, stop: int) -> Any:
        if a is None:
            return None
        if self.sparse and a is self.X:
            rows = a[host_idx[start:stop]] if host_idx is not None else a[start:stop]
            return self.target.asarray(rows.toarray(), self.dtype)
        if idx is None:
            return a[start:stop, ...]
        return self.target.xp.take(a, idx[start:stop], axis=0)

    def __iter__(self):
        if self.full:  # the whole data set, as is: no copies
            yield self.X, self.Y, self.sample_weight, self.n
            return
        host_idx = idx = None
        if self.order is not None:
            from sklearn.utils import shuffle

            self.index = shuffle(self.index, random_state=self.order)
            host_idx = self.index
            idx = self.target.asarray(host_idx)
        for start in range(0, self.n, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            yield (
                self._rows(self.X, idx, host_idx, start, stop),
                self._rows(self.Y, idx, host_idx, start, stop),
                self._rows(self.sample_weight, idx, host_idx, start, stop),
                stop - start,
            )


EpochEnd = Callable[[int, list, Any], bool]


def _step(
    target: _backends.Target,
    optimizer: SGD | Adam,
    activation: str,
    output: str,
    l2: float,
    mean_gradients: bool,
) -> Callable:
    """The training step, compiled by ``target.jit`` once per configuration.

    JAX compiles on the first call of each jitted function, so the steps are
    kept per backend, device, network and update rule: repeated fits (warm
    starts, partial_fit, grid searches) reuse them.  The step reads only the
    optimizer's constants (momentum, betas); the step size is an argument.
    """
    key = (
        target.name, str(target.device), activation, output, float(l2), mean_gradients,
        optimizer.rule(),
    )  # fmt: skip
    if key not in _STEPS:
        _STEPS[key] = target.jit(_make_step(target.xp, copy.copy(optimizer), key))
        while len(_STEPS) > _MAX_STEPS:
            _STEPS.pop(next(iter(_STEPS)))
    return _STEPS[key]


_STEPS: dict[tuple, Callable] = {}
_MAX_STEPS = 64


def _make_step(xp: Any, optimizer: SGD | Adam, key: tuple) -> Callable:
    _, _, activation, output, l2, mean_gradients, _ = key
    terms = dict(activation=activation, output=output, l2=l2)

    if mean_gradients:

        def step(params, state, X, Y, sw, lr):
            loss, grads = loss_and_gradients(xp, params, X, Y, sample_weight=sw, **terms)
            total = X.shape[0] if sw is None else xp.sum(sw)
            grads = [(dW / total, db / total) for dW, db in grads]
            params, state = optimizer.update(xp, params, grads, state, lr)
            return params, state, loss / total

        return step

    def step(params, state, X, Y, sw, lr):
        grads = gradients(xp, params, X, Y, sample_weight=sw, **terms)
        params, state = optimizer.update(xp, params, grads, state, lr)
        return params, state, None

    return step


def train(
    target: _backends.Target,
    params: list,
    optimizer: SGD | Adam,
    state: Any,
    batches: Batches,
    *,
    activation: str,
    output: str,
    l2: float,
    epochs: int,
    mean_gradients: bool,
    epoch_end: EpochEnd,
    interruptible: bool = False,
) -> tuple[list, Any, int]:
    """The training loop shared by :func:`xpnet.fit` and the estimators.

    Each epoch runs ``optimizer`` over ``batches``; each step takes the
    gradient of the summed objective, divided by the batch's total sample
    weight when ``mean_gradients`` (scikit-learn's rule) or as is (the
    article's).  With ``mean_gradients`` the step also returns the batch's
    mean reported loss, and the epoch's loss (the batch losses weighted by
    batch size, over the sample count) is handed to
    ``epoch_end(epoch, params, loss)``; otherwise the loss is None.  Training
    stops when ``epoch_end`` returns True.  With ``interruptible``, a
    KeyboardInterrupt ends training with a warning, keeping the parameters
    of the last finished step.

    Returns
    -------
    params, state : the trained parameters and the optimizer's state.
    epochs_done : int
        The number of epochs that ran to their end.
    """
    step = _step(target, optimizer, activation, output, l2, mean_gradients)
    done = 0
    try:
        with target.activate():
            for epoch in range(epochs):
                total_loss = None
                for Xb, Yb, swb, size in batches:
                    params, state, loss = step(params, state, Xb, Yb, swb, optimizer.step_size())
                    if loss is not None:
                        total_loss = loss * size if total_loss is None else total_loss + loss * size
                done = epoch + 1
                epoch_loss = None
                if total_loss is not None:
                    epoch_loss = float(_backends.to_host(total_loss)) / batches.n
                if epoch_end(epoch, params, epoch_loss):
                    break
    except KeyboardInterrupt:
        if not interruptible:
            raise
        warnings.warn("Training interrupted by user.", stacklevel=2)
    return params, state, done


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
    """The article's full-batch gradient descent: :func:`train` with one batch.

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

    def mean_loss(params, X, Y):
        return objective(xp, params, X, Y, activation=activation, output=output, l2=l2) / n

    mean_loss = target.jit(mean_loss)
    bar = _progress_bar(epochs) if progress else None
    # Advance the bar in about 200 ticks rather than per pass: smooth to the
    # eye, and tqdm's per-call cost stays negligible next to a pass.
    tick = max(1, epochs // 200)
    curve: list[tuple[int, float]] = []
    done = 0

    def record(i: int, params: list, _: Any) -> bool:
        nonlocal done
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
        return False

    try:
        params, _, _ = train(
            target, params, SGD(lr), None, Batches(target, X, Y, None, n, None),
            activation=activation, output=output, l2=l2, epochs=epochs,
            mean_gradients=False, epoch_end=record,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return params, curve


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="pass", file=sys.stderr, dynamic_ncols=True, leave=False)
