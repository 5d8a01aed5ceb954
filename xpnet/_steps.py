"""Steps: one factory and cache that hands out a declared training step.

A training step is ``(params, slots, X, Y, sample_weight, lr) -> (params,
slots, loss or None)``: the gradient of the network's objective, then the
optimizer's update.  :func:`step_for` builds it once per configuration
(backend, device, network, update rule) and keeps it, so that repeated fits
(warm starts, ``partial_fit``, grid searches) reuse what JAX compiled.

Every step is a :class:`Step`, which declares what it offers besides one call:
a run of ``m`` full-batch passes as one call (a compiled loop on JAX, a
recorded and replayed pass on a fast path), buffers to release at the end of a
run, and whether it is a fast path.  The portable step, written once against
the Array API (:mod:`xpnet._network`, :mod:`xpnet._optim`), is the reference;
:data:`FAST_PATHS` holds, per backend, a step with the same contract and the
same numbers (:mod:`xpnet._native` for NumPy and torch, :mod:`xpnet._fused` for CuPy;
tests hold each to the portable one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ._network import gradients, loss_and_gradients, mean_loss
from ._optim import Optimizer
from ._target import Target

# One step: (params, slots, X, Y, sample_weight, lr) -> (params, slots, batch loss or None).
StepFunction = Callable[..., tuple[list, Any, Any]]
# m steps: (params, slots, X, Y, sample_weight, lr, m) -> (params, slots).
Passes = Callable[..., tuple[list, Any]]
# An epoch's full batches: (params, slots, X, Y, sample_weight, index, lrs) ->
# (params, slots, the batches' summed loss times their sizes).
Batches = Callable[..., tuple[list, Any, Any]]


@dataclasses.dataclass(frozen=True)
class Step:
    """A training step, and what it declares about itself.

    Attributes
    ----------
    function : callable
        One step (see the module's docstring).
    passes : callable or None
        ``m`` steps without losses as one call, equal to ``function`` called
        ``m`` times; None where steps are taken one by one.
    batches : callable or None
        The mini-batches of an epoch as one call: row ``k`` of ``index`` (shape
        ``(batches, batch size)``) gathers batch ``k`` from ``X``, ``Y`` and the
        weights, stepped with the step size ``lrs[k]``; equal to ``function``
        called on each in turn.  None where batches are stepped one by one.
    release : callable or None
        Frees the step's buffers, at the end of a run.
    fast : bool
        Whether this is a backend's fast path rather than the portable step.
    """

    function: StepFunction
    passes: Passes | None = None
    release: Callable[[], None] | None = None
    fast: bool = False
    batches: Batches | None = None

    def __call__(self, params: list, slots: Any, X: Any, Y: Any, sw: Any, lr: Any) -> tuple:
        return self.function(params, slots, X, Y, sw, lr)


def descent(
    xp: Any, optimizer: Optimizer, grads: Callable[[list, Any, Any, Any], tuple[Any, list]]
) -> StepFunction:
    """The step ``grads(params, X, Y, sw) -> (loss or None, gradients)``, then the
    optimizer's update: the one way every step of xpnet descends."""

    def step(params, slots, X, Y, sw, lr):
        loss, g = grads(params, X, Y, sw)
        params, slots = optimizer.update(xp, params, g, slots, lr)
        return params, slots, loss

    return step


def portable_step(
    xp: Any, optimizer: Optimizer, activation: str, output: str, l2: float, mean_gradients: bool
) -> StepFunction:
    """The portable step of one network (uncompiled).

    With ``mean_gradients`` (scikit-learn's rule) the gradient of the summed
    objective is divided by the batch's total sample weight and the step
    returns the batch's mean reported loss; otherwise (the article's rule) the
    gradient is used as is and the loss is None.
    """
    terms = dict(activation=activation, output=output, l2=l2)
    # Only the constants of the rule matter: a copy without the step size, so that the
    # compiled step does not keep the first caller's (per-model) step sizes alive.
    rule = dataclasses.replace(optimizer, learning_rate_init=0.0)

    if mean_gradients:

        def mean(params, X, Y, sw):
            loss, grads = loss_and_gradients(xp, params, X, Y, sample_weight=sw, **terms)
            total = X.shape[0] if sw is None else xp.sum(sw)
            return loss / total, [(dW / total, db / total) for dW, db in grads]

        return descent(xp, rule, mean)
    return descent(xp, rule, lambda params, X, Y, sw: (None, gradients(
        xp, params, X, Y, sample_weight=sw, **terms
    )))  # fmt: skip


def declare(target: Target, portable: StepFunction) -> Step:
    """``portable`` as a Step on ``target``: compiled where the backend compiles, with its
    passes as one compiled loop there (the loop wants the uncompiled body), a plain loop
    elsewhere, and an epoch's batches as one compiled scan where the backend has one."""
    compiled = target.jit(portable)
    loop = target.loop(_without_loss(portable if target.compiles_loops() else compiled))
    return Step(
        compiled,
        passes=lambda p, s, X, Y, sw, lr, m: loop((p, s), m, X, Y, sw, lr),
        batches=_scanned(target, portable),
    )


def _scanned(target: Target, step: StepFunction) -> Batches | None:
    """The batches of an epoch as one scan of ``step`` (see :class:`Step`), or None."""
    xp = target.xp

    def body(carry, batch, X, Y, sw):
        params, slots, total = carry
        index, lr = batch
        Xb, Yb = xp.take(X, index, axis=0), xp.take(Y, index, axis=0)
        if Yb.dtype != Xb.dtype:  # one-hot labels kept as booleans: cast a batch at a time
            Yb = xp.astype(Yb, Xb.dtype)
        swb = None if sw is None else xp.take(sw, index, axis=0)
        params, slots, loss = step(params, slots, Xb, Yb, swb, lr)
        return params, slots, total + loss * index.shape[0]

    scan = target.scan(body)
    if scan is None:
        return None

    def batches(params, slots, X, Y, sw, index, lrs):
        start = (params, slots, xp.zeros((), dtype=X.dtype, device=target.device))
        return scan(start, (index, lrs), X, Y, sw)

    return batches


def _without_loss(step: StepFunction) -> Callable:
    def body(carry, X, Y, sw, lr):
        params, slots, _ = step(*carry, X, Y, sw, lr)
        return params, slots

    return body


def _native_step(library: str) -> Callable[..., Step | None]:
    def make(target: Target, portable: StepFunction, *config: Any) -> Step | None:
        from . import _native  # with the first fit: import xpnet stays light

        fast = _native.step(library, target.xp, *config, portable=portable)
        if fast is None:
            return None
        batches = getattr(fast, "batches", None)  # torch's, with losses; never NumPy's
        return Step(fast, passes=fast.passes, release=fast.release, fast=True, batches=batches)

    return make


def _fused_step(target: Target, portable: StepFunction, *config: Any) -> Step | None:
    import cupy  # with the first fit on CuPy

    from . import _fused

    fused = _fused.step(cupy, *config, portable=portable)
    if fused is None:
        return None
    return Step(fused, fused.passes, fused.release, fast=True, batches=fused.batches)


#: Per backend, the factory of its fast step: ``(target, portable, optimizer, activation,
#: output, l2, mean_gradients) -> Step`` or None where the configuration has none.
FAST_PATHS: dict[str, Callable[..., Step | None]] = {
    "numpy": _native_step("numpy"),
    "torch": _native_step("torch"),
    "cupy": _fused_step,
}


def step_for(
    target: Target,
    optimizer: Optimizer,
    activation: str,
    output: str,
    l2: float,
    mean_gradients: bool,
) -> Step:
    """The training step of one network on ``target``: its fast path where the backend has
    one for this configuration, else the portable step, compiled where it can be; kept per
    configuration.  The step reads only the optimizer's constants (momentum, betas); the
    step size is an argument."""
    key = (
        "step", target.name, str(target.device), activation, output, float(l2),
        mean_gradients, optimizer.rule(),
    )  # fmt: skip
    if key not in _CACHE:
        portable = portable_step(
            target.xp, optimizer, activation, output, float(l2), mean_gradients
        )
        fast = FAST_PATHS.get(target.name)
        config = (optimizer, activation, output, float(l2), mean_gradients)
        step = fast(target, portable, *config) if fast is not None else None
        remember(key, step if step is not None else declare(target, portable))
    return _CACHE[key]


def loss_for(target: Target, activation: str, output: str, l2: float) -> Callable:
    """``loss(params, X, Y)``: the mean loss of :func:`xpnet._network.mean_loss`, compiled
    where the backend can; kept per configuration, as the steps are."""
    key = ("mean loss", target.name, str(target.device), activation, output, float(l2))
    if key not in _CACHE:
        xp = target.xp
        terms = dict(activation=activation, output=output, l2=l2)
        remember(key, target.jit(lambda params, X, Y: mean_loss(xp, params, X, Y, **terms)))
    return _CACHE[key]


#: Steps and losses, by configuration; the oldest go first past 64.
_CACHE: dict[tuple, Any] = {}


def remember(key: tuple, value: Any) -> None:
    _CACHE[key] = value
    while len(_CACHE) > 64:
        _CACHE.pop(next(iter(_CACHE)))
