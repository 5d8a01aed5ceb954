"""The fast paths agree with the portable reference they stand in for.

* A library's native step (NumPy, PyTorch: reused buffers, one flat vector)
  against the portable step of :mod:`xpnet._network` and :mod:`xpnet._optim`.
* A run of passes as one call (a compiled loop on JAX, a plain loop elsewhere)
  against the same passes one by one through :func:`xpnet._train.run`.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

import xpnet
from xpnet import _init, _optim, _steps, _target, _train
from xpnet._rows import one_hot

OPTIMIZERS = {
    "sgd": _optim.SGD(0.05),
    "momentum": _optim.SGD(0.05, momentum=0.9),
    "nesterov": _optim.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": _optim.Adam(0.01),
}
# (output, how many columns its targets have)
OUTPUTS = {"softmax": 3, "logistic": 2, "identity": 2}


def _data(xb, output, n=64, dtype="float64"):
    rs = np.random.RandomState(0)
    X = rs.randn(n, 4)
    target = _target.Target(xb.name, xb.xp, xb.device)
    dt = getattr(xb.xp, dtype)
    if output == "softmax":
        Y = one_hot(target, rs.randint(0, 3, n), 3, dt)
    elif output == "logistic":
        Y = target.asarray(rs.randint(0, 2, (n, 2)).astype(float), dt)
    else:
        Y = target.asarray(rs.randn(n, 2), dt)
    return target, target.asarray(X, dt), Y, dt


def _fast_and_portable(target, optimizer, activation, output, mean_gradients):
    """The step training uses here, and the portable reference beside it."""
    step = _steps.step_for(target, optimizer, activation, output, 0.01, mean_gradients)
    if not step.fast:
        pytest.skip(f"{target.name} has no native step")
    return step, step.function.portable


def _host(tree):
    return [np.array(_target.to_host(a)) for pair in tree for a in pair]


def _assert_close(xb, got, want, exact):
    for g, w in zip(_host(got), _host(want), strict=True):
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            # sums taken in another order: rounding-level differences, relative to the scale
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13 * np.abs(w).max())


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("mean_gradients", [True, False])
def test_native_step_equals_portable_step(xb, optimizer, activation, output, mean_gradients):
    target, X, Y, dt = _data(xb, output)
    opt = OPTIMIZERS[optimizer]
    native, portable = _fast_and_portable(target, opt, activation, output, mean_gradients)
    sizes = (4, 5, 6, Y.shape[1])
    params = _target.moved(target, _init.init_normal(sizes, 0), dt)
    state = opt.init(xb.xp, params)
    fast = slow = (params, state.slots)
    # The article's rule sums the gradients over the 64 samples: a smaller step keeps the
    # trajectory out of the chaotic regime, where any rounding difference grows.
    lr = 0.05 if mean_gradients else 0.002
    for _ in range(15):
        p, s, fast_loss = native(*fast, X, Y, None, lr)
        fast = (p, s)
        p, s, slow_loss = portable(*slow, X, Y, None, lr)
        slow = (p, s)
        if mean_gradients:
            assert float(fast_loss) == pytest.approx(float(slow_loss), rel=1e-12)
        else:
            assert fast_loss is None and slow_loss is None
    # scikit-learn's rule on NumPy is the same arithmetic in the same order
    exact = mean_gradients and xb.name == "numpy"
    _assert_close(xb, fast[0], slow[0], exact)
    assert len(fast[1]) == len(slow[1])  # the same moments: none, a velocity, or Adam's two
    flat = [pair for moment in fast[1] for pair in moment]
    ref = [pair for moment in slow[1] for pair in moment]
    _assert_close(xb, flat, ref, exact)


def test_native_step_with_sample_weight(xb):
    target, X, Y, dt = _data(xb, "softmax")
    native, portable = _fast_and_portable(target, OPTIMIZERS["adam"], "tanh", "softmax", True)
    sw = target.asarray(np.random.RandomState(1).rand(X.shape[0]), dt)
    params = _target.moved(target, _init.init_normal((4, 5, 3), 0), dt)
    slots = OPTIMIZERS["adam"].init(xb.xp, params).slots
    fast = native(params, slots, X, Y, sw, 0.01)
    slow = portable(params, slots, X, Y, sw, 0.01)
    assert float(fast[2]) == pytest.approx(float(slow[2]), rel=1e-12)
    _assert_close(xb, fast[0], slow[0], xb.name == "numpy")


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_native_step_never_writes_its_inputs(xb, optimizer):
    target, X, Y, dt = _data(xb, "softmax")
    opt = OPTIMIZERS[optimizer]
    native, _ = _fast_and_portable(target, opt, "tanh", "softmax", True)
    params = _target.moved(target, _init.init_normal((4, 5, 3), 0), dt)
    slots = opt.init(xb.xp, params).slots
    if slots:  # nonzero moments, so that a write would show
        slots = native(params, slots, X, Y, None, 0.01)[1]
    before = copy.deepcopy((_host(params), X, Y))
    slots_before = copy.deepcopy(_target.to_host(slots[0][0][0])) if slots else None
    for _ in range(3):
        native(params, slots, X, Y, None, 0.01)
        native.passes(params, slots, X, Y, None, 0.01, 2)
    for a, b in zip(_host(params), before[0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_target.to_host(X), _target.to_host(before[1]))
    if slots:
        np.testing.assert_array_equal(_target.to_host(slots[0][0][0]), slots_before)


def test_native_step_leaves_what_it_cannot_serve_to_the_portable_step(xb):
    target, X, Y, dt = _data(xb, "softmax")
    native, portable = _fast_and_portable(target, OPTIMIZERS["sgd"], "tanh", "softmax", False)
    stacked = _target.moved(target, _init.init_normal((4, 5, 3), 0), dt)
    stacked = [(xb.xp.stack([W, W]), xb.xp.stack([b[None, :], b[None, :]])) for W, b in stacked]
    per_model = target.asarray(np.array([0.01, 0.02]).reshape(2, 1, 1), dt)
    fast = native(stacked, (), X, Y, None, per_model)
    slow = portable(stacked, (), X, Y, None, per_model)
    _assert_close(xb, fast[0], slow[0], exact=True)


# -- runs of passes as one call ---------------------------------------------------------
def _problem(xb, moons, repeat, activation="tanh", hidden=(4,)):
    X, y = moons
    target = _target.Target(xb.name, xb.xp, xb.device)
    dt = xb.xp.float64
    Xt, Y = target.asarray(X, dt), one_hot(target, y, 2, dt)
    params = _target.moved(target, _init.init_normal((2, *hidden, 2), 0), dt)
    opt = _optim.SGD(0.002)
    loss = xpnet._steps.loss_for(target, activation, "softmax", 0.01)
    step = _steps.step_for(target, opt, activation, "softmax", 0.01, False)
    problem = _train.Problem(
        data=_train.Data(target, Xt, Y, None, Xt.shape[0]),
        optimizer=opt,
        step=step if repeat else dataclasses.replace(step, passes=None),
        evaluate=lambda p: float(_target.to_host(loss(p, Xt, Y))),
    )
    return problem, _train.start(params, opt, xb.xp)


def _run(xb, moons, repeat, epochs, log_every=10, observe=None, **network):
    problem, state = _problem(xb, moons, repeat, **network)
    rules = _train.Rules(epochs=epochs, log_every=log_every, divergence="raise")
    return _train.run(state, problem, rules, observe)


@pytest.mark.parametrize("hidden", [(4,), (3, 2)])
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_repeated_passes_equal_single_passes(xb, moons, activation, hidden):
    """Replayed, compiled or looped: the passes between log points are the same passes."""
    events = []
    network = dict(activation=activation, hidden=hidden)
    fused = _run(xb, moons, True, 37, observe=lambda e, s, d: events.append((e, d)), **network)
    single = _run(xb, moons, False, 37, **network)
    assert [e for e, _ in fused.history] == [e for e, _ in single.history] == [0, 10, 20, 30, 36]
    np.testing.assert_allclose(fused.losses, single.losses, rtol=1e-12)
    # NumPy and the other uncompiled loops run the very same step: equal to the bit
    exact = xb.name != "jax"
    _assert_close(xb, fused.params, single.params, exact)
    assert (fused.epoch, fused.samples, fused.opt.count) == (37, 37 * 200, 37)
    assert len(events) == 37  # every pass is seen, the recorded ones with their loss
    assert [d for _, d in events if d is not None] == fused.losses


def test_repeated_passes_resume_from_the_state(xb, moons):
    problem, state = _problem(xb, moons, True)
    whole = _train.run(state, problem, _train.Rules(epochs=25, log_every=7))
    half = _train.run(state, problem, _train.Rules(epochs=11, log_every=7))
    rest = _train.run(half, problem, _train.Rules(epochs=14, log_every=7))
    # the log points follow the epoch count, the 11-epoch run adding its last (10)
    assert [e for e, _ in rest.history] == [0, 7, 10, 14, 21, 24]
    assert [e for e, _ in whole.history] == [0, 7, 14, 21, 24]
    _assert_close(xb, rest.params, whole.params, xb.name != "jax")


def test_fit_callback_sees_every_recorded_pass(xb, moons):
    X, y = moons
    seen = []
    model = xpnet.fit(
        xb.asarray(X), y, epochs=2500, log_every=500, callback=lambda i, loss: seen.append(i)
    )
    assert seen == [0, 500, 1000, 1500, 2000, 2499] == [i for i, _ in model.loss_curve]


def test_a_pass_logged_every_time_reads_the_input_of_this_run(xb, moons):
    # NumPy copies the input beside its column of ones once per run while the same X comes
    # back; a caller who changes X between two runs must not meet the old copy.
    X, y = moons
    Xt = xb.asarray(X.copy())
    kw = dict(hidden=3, epochs=30, log_every=1)
    every = xpnet.fit(Xt, y, **kw)
    fewer = xpnet.fit(Xt, y, **{**kw, "log_every": 10})
    _assert_close(xb, every.params, fewer.params, xb.name != "jax")
    if xb.name == "numpy":
        Xt *= 2.0  # the very array of the last run, changed in place
    else:
        Xt = xb.asarray(2.0 * X)
    again = xpnet.fit(Xt, y, **kw)
    fresh = xpnet.fit(xb.asarray(2.0 * X), y, **kw)
    _assert_close(xb, again.params, fresh.params, True)


def test_native_step_meets_another_input_of_the_same_shape(xb):
    target, X, Y, dt = _data(xb, "softmax")
    native, portable = _fast_and_portable(target, OPTIMIZERS["sgd"], "tanh", "softmax", False)
    params = _target.moved(target, _init.init_normal((4, 5, Y.shape[1]), 0), dt)
    for inputs in (X, 2 * X, X):  # the buffers keep one copy of the input: the right one
        got, _, _ = native(params, (), inputs, Y, None, 0.002)
        want, _, _ = portable(params, (), inputs, Y, None, 0.002)
        _assert_close(xb, got, want, False)


def test_the_fast_path_is_keyed_by_the_maths_own_names():
    # A fast kernel for an activation, output or optimizer the math does not have would
    # never be used; one the math adds without a kernel falls back to the portable step.
    from xpnet import _native
    from xpnet._network import ACTIVATION_TABLE, OUTPUT_TABLE
    from xpnet._optim import OPTIMIZERS as RULES

    assert set(_native._ACTIVATIONS) <= set(ACTIVATION_TABLE)
    assert set(_native._OUTPUTS) <= set(OUTPUT_TABLE)
    assert set(_native._UPDATES) <= set(RULES)
    assert all(cls(0.1).rule()[0] == name for name, cls in RULES.items())
