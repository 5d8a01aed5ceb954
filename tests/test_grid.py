"""xpnet.fit_many and ModelGrid on the backend under test."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import xpnet
from xpnet import _fit, _fit_many

# The article's sweep.  At lr=0.01 these seeds stay insensitive to rounding for the
# first 300 passes (two backends agree to 1e-11), so a grid can be held to 1e-9.
SWEEP = [1, 2, 3, 4, 5, 20, 50]


def _curve(model):
    return np.array([loss for _, loss in model.loss_curve])


def _same_as_alone(xb, grid, Xb, y, rtol=1e-9):
    """Every model of ``grid`` equals xpnet.fit with its settings: curve and predictions."""
    for model in grid:
        alone = xpnet.fit(Xb, y, **model.settings)
        assert [i for i, _ in model.loss_curve] == [i for i, _ in alone.loss_curve]
        np.testing.assert_allclose(_curve(model), _curve(alone), rtol=rtol, err_msg=model.settings)
        np.testing.assert_array_equal(
            xb.to_numpy(model.predict(Xb)), xb.to_numpy(alone.predict(Xb))
        )


# -- exactness --------------------------------------------------------------------------
def test_each_model_equals_the_one_fit_trains_alone(xb, moons):
    X, y = moons
    Xb = xb.asarray(X)
    grid = xpnet.fit_many(Xb, y, hidden=SWEEP, seed=[0, 1], epochs=300, log_every=25)
    assert len(grid) == 14
    assert [m.settings["hidden"] for m in grid] == [(h,) for h in SWEEP for _ in (0, 1)]
    _same_as_alone(xb, grid, Xb, y)
    assert all(m.backend == xb.name for m in grid)


@pytest.mark.parametrize("layout", _fit_many.LAYOUTS)
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_every_layout_keeps_the_models_apart(xb, moons, activation, layout):
    """No padded or foreign unit reaches another model, for every activation."""
    X, y = moons
    Xb = xb.asarray(X)
    hidden = [(3, 2)] if layout == "stacked" else [(1, 4), (3, 2), (5, 1)]
    # a small step: at the article's, deeper relu and linear networks are chaotic
    combos = _fit_many._combine(
        dict(hidden=hidden, seed=[0, 1], lr=[0.002, 0.001], l2=[0.0, 0.05], activation=activation,
             epochs=120, log_every=40),
        False,
    )  # fmt: skip
    data = _fit.prepare(Xb, y, None, None, None, True)
    grid = _fit_many.train_grid(data, combos, None, None, False, layout=layout)
    assert set(grid.layouts) == {layout}
    _same_as_alone(xb, grid, Xb, y)


def test_each_group_takes_the_layout_that_trains_it_fastest(xb, moons):
    X, y = moons
    Xb = xb.asarray(X)
    data = _fit.prepare(Xb, y, None, None, None, True)
    ensemble = xpnet.fit_many(Xb, y, seed=range(4), epochs=5)
    sweep = xpnet.fit_many(Xb, y, hidden=SWEEP, epochs=5)
    if data.target.on_host() and xb.name in ("numpy", "torch"):
        # a native step per model beats the portable stacks, but for many equal ones
        assert ensemble.groups == ((0,), (1,), (2,), (3,))
        assert set(ensemble.layouts) == set(sweep.layouts) == {"one_by_one"}
        settings = dict(hidden=3, lr=0.01, l2=0.01, activation="tanh", epochs=5, log_every=9)
        many = _fit_many._combine(dict(settings, seed=list(range(65))), False)
        assert {p.layout for p in _fit_many.plan(data, many, None)} == {"stacked"}
    else:
        assert ensemble.groups == ((0, 1, 2, 3),) and ensemble.layouts == ("stacked",)
        assert sweep.layouts == ("side_by_side",)


def test_models_that_differ_in_depth_activation_or_epochs_train_apart(xb, moons):
    X, y = moons
    Xb = xb.asarray(X)
    grid = xpnet.fit_many(
        Xb, y, hidden=[3, (3, 2)], activation=["tanh", "relu"], epochs=[30, 40], lr=0.002,
        log_every=10,
    )  # fmt: skip
    assert len(grid) == 8 and len(grid.groups) == 8
    assert sorted(i for g in grid.groups for i in g) == list(range(8))
    _same_as_alone(xb, grid, Xb, y)
    assert [m.loss_curve[-1][0] for m in grid] == [29, 39] * 4


def test_chunks_under_a_memory_budget_give_the_same_models(xb, moons):
    X, y = moons
    Xb = xb.asarray(X)
    whole = xpnet.fit_many(Xb, y, hidden=[2, 3, 4, 5], epochs=60, log_every=20)
    one_model = 6 * 200 * (5 + 2) * 8  # about one model's activations
    chunked = xpnet.fit_many(Xb, y, hidden=[2, 3, 4, 5], epochs=60, log_every=20,
                             memory_budget=2 * one_model)  # fmt: skip
    # the CPU's native steps train models one by one, each its own group, unless a budget
    # sizes the stacks
    assert len(whole.groups) == 1 or set(whole.layouts) == {"one_by_one"}
    assert len(chunked.groups) > 1 and "one_by_one" not in chunked.layouts
    for a, b in zip(whole, chunked):  # other stacks sum in another order: the grid's 1e-9
        np.testing.assert_allclose(_curve(a), _curve(b), rtol=1e-9)


def test_plans_follow_the_device_and_the_budget(moons, monkeypatch):
    X, y = moons
    data = _fit.prepare(X, y, "numpy", None, None, True)
    combos = _fit_many._combine(
        dict(hidden=list(range(1, 51)), seed=[0, 1], lr=0.01, l2=0.01, activation="tanh",
             epochs=10, log_every=10),
        False,
    )  # fmt: skip
    cpu = _fit_many.plan(data, combos, None)
    assert len(cpu) > 4  # cache-sized stacks on the CPU
    assert sorted(i for p in cpu for i in p.members) == list(range(100))
    assert len(_fit_many.plan(data, combos, 10 * 1024**3)) == 1  # an explicit budget is kept
    # a GPU with 8 GiB free takes everything at once; one that says nothing, 2 GiB
    monkeypatch.setattr(type(data.target), "free_memory", lambda self: 8 * 1024**3)
    monkeypatch.setattr(type(data.target), "on_host", lambda self: False)
    assert len(_fit_many.plan(data, combos, None)) == 1
    monkeypatch.setattr(type(data.target), "free_memory", lambda self: None)
    assert len(_fit_many.plan(data, combos, None)) == 1
    # side by side, the weights grow with the square of the models: they count too
    wide = _fit_many._combine(
        dict(hidden=[(200 + k, 200) for k in range(40)], seed=0, lr=0.01, l2=0.01,
             activation="tanh", epochs=10, log_every=10),
        False,
    )  # fmt: skip
    (p,) = _fit_many.plan(data, wide, 10 * 1024**3)
    footprint = _fit_many._Footprint(200, 8)
    for i in p.members:
        footprint = footprint.add(_fit_many._sizes(data, wide[i]))
    assert footprint.bytes("side_by_side") > 40 * 200 * 200 * 40 * 8
    small = _fit_many.plan(data, wide, 64 * 1024**2)
    assert len(small) > 1
    for p in small:
        footprint = _fit_many._Footprint(200, 8)
        for i in p.members:
            footprint = footprint.add(_fit_many._sizes(data, wide[i]))
        assert footprint.bytes(p.layout) <= 64 * 1024**2 or len(p.members) == 1


def test_float32_grid_keeps_float32_and_follows_fit(xb, moons):
    X, y = moons
    X32 = xb.asarray(X, "float32")
    grid = xpnet.fit_many(X32, y, hidden=[2, 5], epochs=100, log_every=25)
    for model in grid:
        assert model.dtype == xb.xp.float32
        alone = xpnet.fit(X32, y, **model.settings)
        np.testing.assert_allclose(_curve(model), _curve(alone), rtol=1e-4)


# -- divergence ----------------------------------------------------------------------------
@pytest.mark.parametrize("deep", [False, True], ids=["one-hidden", "two-hidden"])
@pytest.mark.parametrize("layout", _fit_many.LAYOUTS)
def test_a_diverging_model_does_not_stop_or_touch_the_others(xb, moons, layout, deep):
    X, y = moons
    Xb = xb.asarray(X)
    hidden = [3] if layout == "stacked" else [1, 3]
    if deep:  # errors then cross a block-diagonal hidden layer on their way back
        hidden = [(3, 2)] if layout == "stacked" else [(1, 2), (3, 2)]
    combos = _fit_many._combine(
        dict(hidden=hidden, seed=0, lr=[0.001, 5.0], l2=0.0, activation="identity", epochs=200,
             log_every=20),
        False,
    )  # fmt: skip
    data = _fit.prepare(Xb, y, None, None, None, True)
    grid = _fit_many.train_grid(data, combos, None, None, False, layout=layout)
    rows = grid.results.to_list()
    for model, row in zip(grid, rows):
        if row["lr"] == 5.0:
            assert row["status"].startswith("diverged by pass ")
            assert np.isnan(row["train_accuracy"]) and not np.isfinite(row["final_loss"])
            assert model.loss_curve[-1][0] == int(row["status"].rsplit(" ", 1)[1])
        else:
            assert row["status"] == "ok"
            alone = xpnet.fit(Xb, y, **model.settings)
            np.testing.assert_allclose(_curve(model), _curve(alone), rtol=1e-9)
            assert model.loss_curve[-1][0] == 199
    # the ensemble leaves the diverged models out
    working = [m for m, r in zip(grid, rows) if r["status"] == "ok"]
    mean = np.mean([xb.to_numpy(m.predict_proba(Xb)) for m in working], axis=0)
    np.testing.assert_allclose(xb.to_numpy(grid.predict_proba(Xb, reduce="mean")), mean)
    votes = np.stack([xb.to_numpy(m.predict(Xb)) for m in working])
    majority = np.array([np.bincount(col, minlength=2).argmax() for col in votes.T])
    np.testing.assert_array_equal(xb.to_numpy(grid.predict(Xb)), majority)


def test_a_grid_that_all_diverged_refuses_to_predict(moons):
    X, y = moons
    grid = xpnet.fit_many(X, y, lr=[5.0, 6.0], l2=0.0, activation="identity", epochs=200,
                          log_every=20)  # fmt: skip
    assert all(r["status"] != "ok" for r in grid.results)
    with pytest.raises(ValueError, match="every model of this grid diverged"):
        grid.predict(X)


# -- ensembles -------------------------------------------------------------------------------
def test_seed_ensemble_predictions(xb, moons):
    X, y = moons
    Xb = xb.asarray(X)
    grid = xpnet.fit_many(Xb, y, hidden=2, seed=range(5), epochs=150)
    each = np.stack([xb.to_numpy(m.predict_proba(Xb)) for m in grid])
    proba = grid.predict_proba(Xb)
    assert tuple(proba.shape) == (5, 200, 2) and type(proba) is type(Xb)
    np.testing.assert_allclose(xb.to_numpy(proba), each)
    mean = grid.predict_proba(Xb, reduce="mean")
    np.testing.assert_allclose(xb.to_numpy(mean), each.mean(axis=0))
    np.testing.assert_array_equal(
        xb.to_numpy(grid.predict(Xb, reduce="mean")), each.mean(0).argmax(1)
    )
    # majority vote, ties to the first class
    votes = np.stack([xb.to_numpy(m.predict(Xb)) for m in grid])
    majority = (votes.sum(axis=0) > 2).astype(int)
    np.testing.assert_array_equal(xb.to_numpy(grid.predict(Xb)), majority)
    even = grid[:4]
    four = votes[:4].sum(axis=0)
    np.testing.assert_array_equal(xb.to_numpy(even.predict(Xb)), (four > 2).astype(int))


def test_votes_with_three_classes_break_ties_to_the_first_class(xb):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(150, centers=3, cluster_std=3.0, random_state=0)
    Xb = xb.asarray(X)
    grid = xpnet.fit_many(Xb, y, hidden=2, seed=range(4), epochs=30, lr=0.001)
    votes = np.stack([xb.to_numpy(m.predict(Xb)) for m in grid])
    counts = np.stack([np.bincount(col, minlength=3) for col in votes.T])
    assert (np.sort(counts, axis=1)[:, -1] == np.sort(counts, axis=1)[:, -2]).any()  # ties
    np.testing.assert_array_equal(xb.to_numpy(grid.predict(Xb)), counts.argmax(axis=1))


def test_ensemble_labels_follow_the_classes(moons):
    X, y = moons
    names = np.array(["left", "right"])[y]
    grid = xpnet.fit_many(X, names, seed=[0, 1, 2], epochs=200)
    assert set(grid.predict(X)) <= {"left", "right"}
    assert np.mean(grid.predict(X) == names) > 0.8


def test_bad_reduce_is_refused(moons):
    X, y = moons
    grid = xpnet.fit_many(X, y, seed=[0, 1], epochs=5)
    with pytest.raises(ValueError, match="'vote' or 'mean'"):
        grid.predict(X, reduce="median")
    with pytest.raises(ValueError, match="None or 'mean'"):
        grid.predict_proba(X, reduce="vote")


# -- settings and results -----------------------------------------------------------------------
def test_axes_combine_as_a_product_or_pair_up(moons):
    X, y = moons
    grid = xpnet.fit_many(X, y, hidden=[2, 3], lr=[0.01, 0.002], seed=np.array([4]), epochs=3)
    assert [(m.settings["hidden"], m.settings["lr"]) for m in grid] == [
        ((2,), 0.01), ((2,), 0.002), ((3,), 0.01), ((3,), 0.002)
    ]  # fmt: skip
    assert all(m.settings["seed"] == 4 and type(m.settings["seed"]) is int for m in grid)
    paired = xpnet.fit_many(X, y, hidden=[2, (3, 2)], lr=[0.01, 0.002], zip=True, epochs=3)
    assert [(m.hidden, m.settings["lr"]) for m in paired] == [((2,), 0.01), ((3, 2), 0.002)]
    one = xpnet.fit_many(X, y, hidden=(3, 2), seed=range(2), epochs=3)
    assert [m.hidden for m in one] == [(3, 2), (3, 2)]
    assert one[0].settings == dict(
        hidden=(3, 2), activation="tanh", epochs=3, lr=0.01, l2=0.01, seed=0, log_every=1000
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(hidden=[2, 3], lr=[0.1, 0.2, 0.3], zip=True), "equal lengths"),
        (dict(hidden=[]), "empty sweep axis"),
        (dict(lr=[0.01, -1.0]), r"lr must be a positive.*\(in the model with lr=-1.0\)"),
        (dict(hidden=[2, 0]), "at least 1 unit"),
        (dict(activation=["tanh", "softsign"]), "unknown activation"),
        (dict(memory_budget=0), "memory_budget"),
        (dict(validation=(np.zeros((5, 3)), np.zeros(5))), "3 features"),
        (dict(validation="held out"), "pair"),
    ],
)
def test_bad_settings_are_refused_before_training(moons, kw, message):
    X, y = moons
    with pytest.raises(ValueError, match=message):
        xpnet.fit_many(X, y, epochs=5, **kw)


def test_results_table(moons):
    from sklearn.datasets import make_moons

    X, y = moons
    X_val, y_val = make_moons(100, noise=0.2, random_state=1)
    grid = xpnet.fit_many(X, y, hidden=[2, 3], seed=[0, 1], epochs=200, validation=(X_val, y_val))
    rows = grid.results.to_list()
    assert len(rows) == len(grid.results) == 4
    for model, row in zip(grid, rows):
        assert row["final_loss"] == model.loss_curve[-1][1]
        assert row["train_accuracy"] == model.score(X, y)
        assert row["validation_accuracy"] == model.score(X_val, y_val)
        assert row["status"] == "ok"
        assert {k: row[k] for k in model.settings} == model.settings
    text = str(grid.results)
    header, *lines = text.splitlines()
    assert header.split() == ["hidden", "seed", "final_loss", "train_accuracy",
                              "validation_accuracy", "status"]  # fmt: skip
    assert len(lines) == 4 and lines[0].split()[:2] == ["2", "0"]
    assert repr(grid.results) == text
    pd = pytest.importorskip("pandas")
    assert pd.DataFrame(grid.results.to_list()).shape == (4, 11)


def test_inputs_are_not_modified(xb, moons):
    X, y = moons
    Xb, yb = xb.asarray(X), xb.asarray(y)
    grid = xpnet.fit_many(Xb, yb, hidden=[2, 3], epochs=20, validation=(Xb, yb))
    grid.predict(Xb), grid.predict_proba(Xb, reduce="mean")
    np.testing.assert_array_equal(xb.to_numpy(Xb), X)
    np.testing.assert_array_equal(xb.to_numpy(yb), y)


def test_verbose_shows_one_bar_and_quiet_writes_nothing(moons, capfd):
    X, y = moons
    xpnet.fit_many(X, y, hidden=[2, 3], epochs=[30, 40], log_every=10)
    assert capfd.readouterr() == ("", "")

    class Terminal(io.StringIO):  # the bar shows only on a terminal
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", tty)
        xpnet.fit_many(X, y, hidden=[2, 3], epochs=[30, 40], log_every=10, verbose=True)
    # one bar over every pass: on NumPy each model trains on its own (30 + 30 + 40 + 40);
    # a pass of a stack would train all its models
    assert "/140 [" in tty.getvalue() and "pass/s" in tty.getvalue()
    assert capfd.readouterr() == ("", "")
