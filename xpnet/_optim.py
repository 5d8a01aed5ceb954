"""Optimizers as pure functions of a plain state, in the manner of optax.

An optimizer is an immutable set of constants with:

* ``init(xp, params) -> OptState``: the state before the first update;
* ``step_size(state)``: the step size of the next update, a function of the
  state alone (Adam's bias correction is a function of the step count);
* ``update(xp, params, grads, slots, lr) -> (params, slots)``: the device
  work of one update, pure, so it can be compiled (it reads only constants);
* ``advance(state, lr, slots) -> OptState``: the state after that update;
* ``fixed_rate()``: whether the step size never changes but on a plateau;
* ``epoch_end(state, samples_seen)`` and ``plateau(state)``: the schedule's
  reaction to the end of an epoch and to a plateau of the monitored loss.

Nothing is mutated: every function returns a new state, so a state can be
saved, resumed, stacked over models or carried through a compiled loop.

A step size may be a float, an array of shape ``(K, 1, 1)`` (one per model of
a stack), or a list with one array per layer that scales each column by its
model's value (models side by side: shape ``(1, fan_out)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._codec import Invalid, is_int

Pairs = list  # [(W, b), ...]


class OptState(NamedTuple):
    """What an optimizer carries from one update to the next.

    Attributes
    ----------
    count : int
        Updates taken so far.
    learning_rate : float, array or list
        The step size of the last update (before any update: of the first).
        scikit-learn reads it as ``_optimizer.learning_rate``.
    slots : tuple
        The moments the optimizer keeps, each a list of ``(W, b)`` pairs on the
        device: none for plain SGD, the velocity with momentum, Adam's first
        and second moments.
    """

    count: int
    learning_rate: Any
    slots: Any


def opt_state_from(fields: dict, path: str) -> OptState:
    """An :class:`OptState` from a file's decoded fields, checked (see :mod:`xpnet._codec`).

    Files before the moments were always a tuple hold None for plain SGD and a bare list
    for SGD's velocity: both read as today's tuple.
    """
    count = fields.get("count")
    if not is_int(count) or count < 0:
        raise Invalid(f"{path}.count is {count!r}, not a count of updates")
    slots = fields.get("slots")
    if slots is None or isinstance(slots, list):
        slots = () if slots is None else (slots,)
    if not isinstance(slots, tuple):
        raise Invalid(f"{path}.slots is not a tuple of moments")
    return OptState(count, fields.get("learning_rate"), slots)


def _scaled(rate: Any, n_layers: int) -> list:
    return rate if isinstance(rate, list) else [rate] * n_layers


@dataclass(frozen=True)
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

    learning_rate_init: Any
    momentum: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    power_t: float = 0.5

    def rule(self) -> tuple:
        """The constants :meth:`update` reads: a cache key for compiled steps."""
        return ("sgd", float(self.momentum), bool(self.nesterov) and self.momentum > 0)

    def init(self, xp: Any, params: Pairs) -> OptState:
        slots: tuple = ()
        if self.momentum != 0:
            slots = ([(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params],)
        return OptState(0, self.learning_rate_init, slots)

    def step_size(self, state: OptState) -> Any:
        return state.learning_rate

    def fixed_rate(self) -> bool:
        """Whether the step size stays put from step to step and epoch to epoch.

        Then a run of epochs without a plateau check is one step size, repeated.
        """
        return self.schedule != "invscaling"

    def update(self, xp: Any, params: Pairs, grads: Pairs, slots: Any, lr: Any) -> tuple:
        rates = _scaled(lr, len(params))
        if not slots:
            return [
                (W - r * dW, b - r * db)
                for (W, b), (dW, db), r in zip(params, grads, rates, strict=True)
            ], ()
        mu = self.momentum
        (velocity,) = slots
        velocities = [
            (mu * vW - r * dW, mu * vb - r * db)
            for (vW, vb), (dW, db), r in zip(velocity, grads, rates, strict=True)
        ]
        moves = velocities
        if self.nesterov:
            moves = [
                (mu * vW - r * dW, mu * vb - r * db)
                for (vW, vb), (dW, db), r in zip(velocities, grads, rates, strict=True)
            ]
        params = [(W + mW, b + mb) for (W, b), (mW, mb) in zip(params, moves, strict=True)]
        return params, (velocities,)

    def advance(self, state: OptState, lr: Any, slots: Any) -> OptState:
        return OptState(state.count + 1, lr, slots)

    def epoch_end(self, state: OptState, samples_seen: int) -> OptState:
        if self.schedule != "invscaling":
            return state
        rate = self.learning_rate_init / (samples_seen + 1) ** self.power_t
        return state._replace(learning_rate=rate)

    def plateau(self, state: OptState) -> tuple[bool, OptState, str]:
        """React to a plateau: ``(stop, new state, what happened)``."""
        if self.schedule != "adaptive":
            return True, state, "Stopping."
        if state.learning_rate <= 1e-6:
            return True, state, "Learning rate too small. Stopping."
        rate = state.learning_rate / 5.0
        return False, state._replace(learning_rate=rate), f"Setting learning rate to {rate:f}"


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma and Ba, 2014) with the bias correction folded into the step size.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2`` and
    ``p <- p - lr_t m / (sqrt(v) + eps)`` with
    ``lr_t = lr_init sqrt(1 - b2^t) / (1 - b1^t)`` for the ``t``-th update.
    """

    learning_rate_init: float
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8

    def rule(self) -> tuple:
        """The constants :meth:`update` reads: a cache key for compiled steps."""
        return ("adam", self.beta_1, self.beta_2, self.epsilon)

    def init(self, xp: Any, params: Pairs) -> OptState:
        def zeros() -> list:
            return [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]

        return OptState(0, self.learning_rate_init, (zeros(), zeros()))

    def step_size(self, state: OptState) -> float:
        t = state.count + 1
        return self.learning_rate_init * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)

    def fixed_rate(self) -> bool:
        return False  # the bias correction changes the step size at every step

    def update(self, xp: Any, params: Pairs, grads: Pairs, slots: Any, lr: Any) -> tuple:
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon

        def pairwise(fn, *trees):
            return [
                tuple(fn(*arrays) for arrays in zip(*pairs, strict=True))
                for pairs in zip(*trees, strict=True)
            ]

        first = pairwise(lambda m, g: b1 * m + (1 - b1) * g, slots[0], grads)
        second = pairwise(lambda v, g: b2 * v + (1 - b2) * (g * g), slots[1], grads)
        params = pairwise(lambda p, m, v: p + (-lr * m) / (xp.sqrt(v) + eps), params, first, second)
        return params, (first, second)

    def advance(self, state: OptState, lr: Any, slots: Any) -> OptState:
        return OptState(state.count + 1, lr, slots)

    def epoch_end(self, state: OptState, samples_seen: int) -> OptState:
        return state

    def plateau(self, state: OptState) -> tuple[bool, OptState, str]:
        return True, state, "Stopping."


Optimizer = SGD | Adam

#: The optimizers, by the name their ``rule()`` starts with.
OPTIMIZERS: dict[str, type] = {"sgd": SGD, "adam": Adam}
