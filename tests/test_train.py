"""Training as data: the state carries everything, the optimizers are pure, the loop resumes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from xpnet import _init, _optim, _steps, _target, _train
from xpnet._network import objective
from xpnet._rows import one_hot


def _problem(xb, optimizer, *, batch_size, mean_gradients):
    rs = np.random.RandomState(0)
    X, y = rs.randn(90, 3), rs.randint(0, 3, 90)
    target = _target.Target(xb.name, xb.xp, xb.device)
    dtype = xb.xp.float64
    Xt, Y = target.asarray(X, dtype), one_hot(target, y, 3, dtype)
    params = _target.moved(target, _init.init_normal((3, 5, 3), 1), dtype)
    step = _steps.step_for(target, optimizer, "tanh", "softmax", 0.01, mean_gradients)
    problem = _train.Problem(_train.Data(target, Xt, Y, None, batch_size, dtype), optimizer, step)
    return problem, params


OPTIMIZERS = {
    "sgd": _optim.SGD(0.01),
    "nesterov-invscaling": _optim.SGD(0.05, momentum=0.9, nesterov=True, schedule="invscaling"),
    "adam": _optim.Adam(0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_two_runs_from_the_state_equal_one_run(xb, name):
    """3 epochs, then 2 more from the returned state, give the 5-epoch run exactly."""
    optimizer = OPTIMIZERS[name]
    problem, params = _problem(xb, optimizer, batch_size=32, mean_gradients=True)
    state = _train.start(params, optimizer, xb.xp)
    state = state._replace(
        shuffle=_train.Shuffle(np.random.RandomState(7).get_state(), np.arange(90))
    )
    rules = _train.Rules(epochs=5)
    whole = _train.run(state, problem, rules)
    part = _train.run(state, problem, rules._replace(epochs=3))
    part = _train.run(part, problem, rules._replace(epochs=2))
    assert whole.epoch == part.epoch == 5 and whole.samples == part.samples == 450
    assert whole.opt.count == part.opt.count == 15 and whole.losses == part.losses
    assert whole.opt.learning_rate == part.opt.learning_rate
    np.testing.assert_array_equal(whole.shuffle.order, part.shuffle.order)
    for a, b in zip(_target.host_tree(whole.params), _target.host_tree(part.params)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_the_article_loop_resumes_with_its_log_points(xb):
    """Log points follow the epoch count in the state: a resumed run records as a whole one."""
    optimizer = _optim.SGD(0.001)
    problem, params = _problem(xb, optimizer, batch_size=90, mean_gradients=False)
    target, X, Y = problem.data.target, problem.data.X, problem.data.Y

    def evaluate(params):
        total = objective(target.xp, params, X, Y, activation="tanh", output="softmax", l2=0.01)
        return float(xb.to_numpy(total)) / 90

    problem = problem._replace(evaluate=evaluate)
    state = _train.start(params, optimizer, xb.xp)
    rules = _train.Rules(epochs=7, log_every=2)
    whole = _train.run(state, problem, rules)
    part = _train.run(state, problem, rules._replace(epochs=5))  # a run records its last epoch:
    part = _train.run(part, problem, rules._replace(epochs=2))  # split where it is a log point
    assert [i for i, _ in whole.history] == [i for i, _ in part.history] == [0, 2, 4, 6]
    np.testing.assert_array_equal(whole.losses, part.losses)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_are_pure(xb, name):
    """The same state and gradients give the same result, and nothing passed in changes."""
    optimizer = OPTIMIZERS[name]
    on = lambda a: xb.asarray(a, "float64")  # noqa: E731
    params = [(on(np.ones((2, 3))), on(np.zeros(3)))]
    grads = [(on(np.full((2, 3), 0.5)), on(np.full(3, -1.0)))]
    state = optimizer.init(xb.xp, params)
    before = copy.deepcopy((state.count, state.learning_rate, _target.host_tree(state.slots)))
    lr = optimizer.step_size(state)
    first = optimizer.update(xb.xp, params, grads, state.slots, lr)
    again = optimizer.update(xb.xp, params, grads, state.slots, optimizer.step_size(state))
    assert (state.count, state.learning_rate) == before[:2]
    host = _target.host_tree(state.slots)
    assert len(host) == len(before[2])
    if host:
        for a, b in zip(np.concatenate([np.ravel(x) for x in _flat(host)]),
                        np.concatenate([np.ravel(x) for x in _flat(before[2])])):  # fmt: skip
            assert a == b
    np.testing.assert_array_equal(xb.to_numpy(params[0][0]), np.ones((2, 3)))
    np.testing.assert_array_equal(xb.to_numpy(first[0][0][0]), xb.to_numpy(again[0][0][0]))
    after = optimizer.advance(state, lr, first[1])
    assert after.count == state.count + 1 and state.count == 0


def _flat(tree):
    if isinstance(tree, (list, tuple)):
        return [a for t in tree for a in _flat(t)]
    return [tree]


def test_adam_step_size_is_a_function_of_the_step_count():
    adam = _optim.Adam(0.1)
    state = _optim.OptState(4, 0.1, None)
    expected = 0.1 * np.sqrt(1 - 0.999**5) / (1 - 0.9**5)
    assert adam.step_size(state) == adam.step_size(state) == pytest.approx(expected, rel=1e-15)


def test_schedules_react_to_epochs_and_plateaus_without_mutation():
    sgd = _optim.SGD(0.1, schedule="adaptive")
    state = sgd.init(np, [(np.zeros((1, 1)), np.zeros(1))])
    stop, slower, news = sgd.plateau(state)
    assert not stop and slower.learning_rate == pytest.approx(0.02) and state.learning_rate == 0.1
    assert news == "Setting learning rate to 0.020000"
    tiny = state._replace(learning_rate=1e-7)
    assert sgd.plateau(tiny)[0] and sgd.plateau(tiny)[2] == "Learning rate too small. Stopping."
    inv = _optim.SGD(0.1, schedule="invscaling", power_t=0.25)
    assert inv.epoch_end(state, 8).learning_rate == 0.1 / 9**0.25
    assert state.learning_rate == 0.1


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_epoch_in_one_call_equals_its_batches_one_by_one(xb, monkeypatch, solver, dtype):
    # Where the backend compiles a scan (JAX), an estimator's epoch is one call over its full
    # batches and the short last one apart: the numbers of stepping batch by batch, exactly.
    import xpnet

    target = _target.Target(xb.name, xb.xp, xb.device)
    if _steps.step_for(target, _optim.Adam(0.001), "tanh", "softmax", 1e-4, True).batches is None:
        pytest.skip(f"{xb.name} steps an epoch's batches one by one")
    rs = np.random.RandomState(0)
    X, y, sw = rs.randn(300, 5), rs.randint(0, 3, 300), rs.uniform(0.5, 2.0, 300)
    kw = dict(hidden_layer_sizes=(7,), solver=solver, batch_size=64, max_iter=4, random_state=0)
    calls = []
    real = _train._epoch_in_one_call
    monkeypatch.setattr(_train, "_epoch_in_one_call", lambda *a: calls.append(1) or real(*a))
    with pytest.warns(Warning):  # scikit-learn's ConvergenceWarning after 4 epochs
        one_call = xpnet.MLPClassifier(**kw).fit(xb.asarray(X, dtype), y, sample_weight=sw)
    assert len(calls) == 4  # one call an epoch
    monkeypatch.setattr(_train.Data, "in_one_call", lambda self, step: False)
    with pytest.warns(Warning):
        by_batch = xpnet.MLPClassifier(**kw).fit(xb.asarray(X, dtype), y, sample_weight=sw)
    for a, b in zip(
        one_call.coefs_ + one_call.intercepts_, by_batch.coefs_ + by_batch.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert one_call.loss_curve_ == by_batch.loss_curve_
