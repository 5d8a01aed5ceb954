"""Checkpoints, interruption and divergence: a crash, a Ctrl-C or too large a step never
costs the user their training, nor leaves them a model silently full of NaN."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import xpnet
from xpnet import _files, _optim


def _host_params(params) -> list[np.ndarray]:
    from xpnet import _target

    return [np.asarray(_target.to_host(a)) for pair in params for a in pair]


def _assert_same_params(a, b) -> None:
    for x, y in zip(_host_params(a), _host_params(b), strict=True):
        np.testing.assert_array_equal(x, y)  # a resumed run retraces the same arithmetic


def _stop_at(when: int):
    """A callback that presses Ctrl-C when pass ``when`` is recorded, and logs the passes."""
    seen: list[int] = []

    def callback(i: int, loss: float) -> None:
        seen.append(i)
        if i == when:
            raise KeyboardInterrupt

    return callback, seen


# -- xpnet.fit ---------------------------------------------------------------------------------
def test_ctrl_c_returns_the_model_of_the_last_pass_and_a_checkpoint_resumes_it(xb, moons, tmp_path):
    X, y = xb.asarray(moons[0]), xb.asarray(moons[1])
    kw = dict(epochs=2000, log_every=250)
    full = xpnet.fit(X, y, **kw)
    path = tmp_path / "run.npz"

    callback, seen = _stop_at(1000)
    with pytest.warns(xpnet.TrainingInterruptedWarning, match="after 1001 of 2000 passes") as w:
        stopped = xpnet.fit(X, y, checkpoint=path, checkpoint_every=300, callback=callback, **kw)
    assert w[0].filename == __file__  # the warning points at the caller's line
    assert stopped.stopped == "interrupted" and seen[-1] == 1000
    assert stopped.loss_curve == full.loss_curve[: len(stopped.loss_curve)]
    assert stopped.loss_curve[-1][0] == 1000
    assert stopped.score(X, y) > 0.8  # a usable model

    callback, seen = _stop_at(-1)
    resumed = xpnet.fit(X, y, checkpoint=path, checkpoint_every=300, callback=callback, **kw)
    assert seen == [1250, 1500, 1750, 1999]  # nothing before the checkpoint is replayed
    assert resumed.stopped is None and resumed.loss_curve == full.loss_curve
    _assert_same_params(resumed.params, full.params)

    # The finished run's checkpoint holds its end: the same call returns it without training.
    again = xpnet.fit(X, y, checkpoint=path, callback=callback, **kw)
    assert seen == [1250, 1500, 1750, 1999]
    _assert_same_params(again.params, full.params)


def test_ctrl_c_between_recorded_passes_records_the_last_one(xb, moons):
    X, y = xb.asarray(moons[0]), xb.asarray(moons[1])
    calls = {"n": 0}
    real = _optim.SGD.step_size

    def step_size(self, state):  # read once per step, or per run of unrecorded passes
        calls["n"] += 1
        if calls["n"] == 3:  # past pass 1, before pass 10 is recorded
            raise KeyboardInterrupt
        return real(self, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_optim.SGD, "step_size", step_size)
        with pytest.warns(xpnet.TrainingInterruptedWarning):
            model = xpnet.fit(X, y, epochs=50, log_every=10)
    last = model.loss_curve[-1][0]
    assert len(model.loss_curve) == 2 and 0 < last < 10  # the last finished pass, recorded
    expected = xpnet.fit(X, y, epochs=last + 1, log_every=10)
    assert model.loss_curve == expected.loss_curve
    _assert_same_params(model.params, expected.params)


def test_a_checkpoint_of_another_run_or_file_is_refused(moons, tmp_path):
    X, y = moons
    path = tmp_path / "run.npz"
    xpnet.fit(X, y, epochs=30, log_every=10, checkpoint=path)
    before = path.read_bytes()
    for change, named in [
        (
            dict(epochs=20),
            "holds a run of 30 passes, more than epochs=20: .* Pass epochs=30 or more",
        ),
        (dict(lr=0.02), "lr was 0.01, now 0.02"),
        (dict(hidden=4), "hidden"),
        (dict(seed=1), "seed"),
        (dict(dtype="float32"), "dtype"),
    ]:
        kw = {**dict(epochs=30, log_every=10, checkpoint=path), **change}
        with pytest.raises(xpnet.CheckpointMismatchError, match=named):
            xpnet.fit(X, y, **kw)
    with pytest.raises(xpnet.CheckpointMismatchError, match="other data"):
        xpnet.fit(X[::-1], y[::-1], epochs=30, log_every=10, checkpoint=path)
    with pytest.raises(xpnet.CheckpointMismatchError, match="other data"):
        xpnet.fit(X, 1 - y, epochs=30, log_every=10, checkpoint=path)
    assert path.read_bytes() == before  # a refused checkpoint is left as it was

    model_file = tmp_path / "model.npz"
    _files.write(model_file, "model", {}, {"W0": np.zeros((2, 3))})
    with pytest.raises(xpnet.ModelFileError, match="not a checkpoint"):
        xpnet.fit(X, y, epochs=30, checkpoint=model_file)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(xpnet.ModelFileError, match="not an .npz archive"):
        xpnet.fit(X, y, epochs=30, checkpoint=garbage)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(before[: len(before) // 2])
    with pytest.raises(xpnet.ModelFileError):
        xpnet.fit(X, y, epochs=30, log_every=10, checkpoint=truncated)

    archive = _files.read(path, "checkpoint")  # a description tampered with: refused
    state = {**archive.meta["state"], "opt": {"$": "pickle", "text": "os.system"}}
    meta = {"run": archive.meta["run"], "state": state}
    _files.write(tmp_path / "tampered.npz", "checkpoint", meta, archive.arrays)
    with pytest.raises(xpnet.ModelFileError, match="state.opt has the tag 'pickle'"):
        xpnet.fit(X, y, epochs=30, log_every=10, checkpoint=tmp_path / "tampered.npz")

    with pytest.raises(ValueError, match="checkpoint_every needs a checkpoint"):
        xpnet.fit(X, y, epochs=30, checkpoint_every=10)
    with pytest.raises(ValueError, match="checkpoint_every"):
        xpnet.fit(X, y, epochs=30, checkpoint=tmp_path / "new.npz", checkpoint_every=0)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        xpnet.fit(X, y, epochs=30, checkpoint=3)
    assert not (tmp_path / "new.npz").exists()


@pytest.mark.parametrize(
    ("first", "log_every"), [(130, 50), (150, 50), (7, 1)], ids=["between", "on", "each"]
)
def test_more_epochs_continue_a_finished_run_as_one_run(xb, moons, tmp_path, first, log_every):
    X, y = xb.asarray(moons[0]), xb.asarray(moons[1])
    path, total = tmp_path / "run.npz", 2 * first + 11
    shorter = xpnet.fit(X, y, epochs=first, log_every=log_every, checkpoint=path)
    assert shorter.loss_curve[-1][0] == first - 1  # a run records its last pass
    seen: list[int] = []
    longer = xpnet.fit(
        X, y, epochs=total, log_every=log_every, checkpoint=path,
        callback=lambda i, loss: seen.append(i),
    )  # fmt: skip
    one = xpnet.fit(X, y, epochs=total, log_every=log_every)
    _assert_same_params(longer.params, one.params)  # bit for bit
    # the loss curve of one run: the shorter run's last pass only where it is a log point
    assert longer.loss_curve == one.loss_curve
    assert ((first - 1, shorter.loss_curve[-1][1]) in longer.loss_curve) == (
        (first - 1) % log_every == 0
    )
    assert seen[0] >= first and seen[-1] == total - 1  # only the new passes are trained
    assert longer.settings["epochs"] == total
    # and once more: the longer run's checkpoint gives its model back, and goes on again
    again = xpnet.fit(X, y, epochs=total, log_every=log_every, checkpoint=path)
    _assert_same_params(again.params, one.params)
    assert again.loss_curve == one.loss_curve


def test_an_interrupted_run_ends_where_the_new_epochs_say(moons, tmp_path):
    X, y = moons
    path = tmp_path / "run.npz"
    callback, _ = _stop_at(100)
    with pytest.warns(xpnet.TrainingInterruptedWarning):
        xpnet.fit(X, y, epochs=500, log_every=50, checkpoint=path, callback=callback)
    for epochs in (101, 260):  # the checkpoint holds 101 passes: exactly those, then more
        resumed = xpnet.fit(X, y, epochs=epochs, log_every=50, checkpoint=path)
        one = xpnet.fit(X, y, epochs=epochs, log_every=50)
        _assert_same_params(resumed.params, one.params)
        assert resumed.loss_curve == one.loss_curve  # pass 100, the last, recorded
    with pytest.raises(xpnet.CheckpointMismatchError, match="more than epochs=200"):
        xpnet.fit(X, y, epochs=200, log_every=50, checkpoint=path)


_CHILD = """
import signal
import sys
import numpy as np
from sklearn.datasets import make_moons
import xpnet

# Hear Ctrl-C even when started from a shell without job control, which ignores SIGINT.
signal.signal(signal.SIGINT, signal.default_int_handler)
X, y = make_moons(200, noise=0.20, random_state=0)
def report(i, loss):
    print(i, flush=True)
model = xpnet.fit(X, y, epochs={epochs}, log_every=1000, checkpoint=sys.argv[1],
                  checkpoint_every=1000, callback=report, backend="numpy")
print("stopped", model.stopped, flush=True)
"""


def _child(tmp_path, epochs: int) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD.format(epochs=epochs)))
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "run.npz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(child: subprocess.Popen, at_least: int) -> int:
    for line in child.stdout:
        if line.split()[0].isdigit() and int(line.split()[0]) >= at_least:
            return int(line.split()[0])
    raise AssertionError(f"the child ended early: {child.stderr.read()}")


def test_a_run_killed_by_sigkill_resumes_to_the_same_parameters(moons, tmp_path):
    X, y = moons
    epochs = 30000
    child = _child(tmp_path, epochs)
    try:
        reached = _read_until(child, 3000)
        child.send_signal(signal.SIGKILL)  # no cleanup, no handler: a crash
        child.wait(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL and reached < epochs - 1000

    seen: list[int] = []
    kw = dict(epochs=epochs, log_every=1000, backend="numpy")
    resumed = xpnet.fit(
        X, y, checkpoint=tmp_path / "run.npz", checkpoint_every=1000,
        callback=lambda i, loss: seen.append(i), **kw,
    )  # fmt: skip
    assert 3000 <= seen[0] and seen[-1] == epochs - 1  # it went on from a checkpoint
    full = xpnet.fit(X, y, **kw)
    assert resumed.loss_curve == full.loss_curve
    _assert_same_params(resumed.params, full.params)  # bit for bit, float64 NumPy
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_sigint_to_a_training_process_ends_it_with_a_usable_model(tmp_path):
    child = _child(tmp_path, 10_000_000)
    try:
        _read_until(child, 2000)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.strip().endswith("stopped interrupted")
    assert "TrainingInterruptedWarning" in err and "Traceback" not in err
    assert (tmp_path / "run.npz").exists()  # written on the way out


def test_a_non_finite_loss_raises_with_the_last_finite_parameters(xb, moons):
    X, y = xb.asarray(moons[0]), xb.asarray(moons[1])
    kw = dict(activation="relu", lr=100.0, epochs=2000, log_every=500)
    with np.errstate(all="ignore"), pytest.raises(xpnet.DivergenceError) as caught:
        xpnet.fit(X, y, **kw)
    error = caught.value
    assert isinstance(error, ValueError)
    assert f"after pass {error.epoch}" in str(error) and "Lower the learning rate" in str(error)
    assert 0 < error.epoch < 500 and not np.isfinite(error.loss)
    assert [i for i, _ in error.history] == [0]
    assert all(np.all(np.isfinite(a)) for pair in error.params for a in pair)
    with np.errstate(all="ignore"), pytest.warns(xpnet.DivergenceWarning):
        before = xpnet.fit(X, y, **{**kw, "epochs": error.epoch})  # to the pass before
    for a, b in zip(_host_params(before.params), _host_params(error.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_a_loss_that_ends_above_its_start_warns(xb, moons):
    X, y = xb.asarray(moons[0]), xb.asarray(moons[1])
    with np.errstate(all="ignore"), pytest.warns(xpnet.DivergenceWarning, match="rose") as w:
        model = xpnet.fit(X, y, lr=100.0, epochs=300, log_every=100)
    assert w[0].filename == __file__
    assert model.loss_curve[-1][1] > model.loss_curve[0][1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run that learns says nothing
        xpnet.fit(X, y, epochs=300, log_every=100)


# -- the estimators ------------------------------------------------------------------------------
def _classification():
    from sklearn.datasets import make_classification

    return make_classification(240, 8, n_classes=3, n_informative=5, random_state=0)


@pytest.mark.parametrize(
    "extra",
    [dict(solver="adam"), dict(solver="sgd", learning_rate="adaptive"), dict(early_stopping=True)],
    ids=["adam", "sgd-adaptive", "early-stopping"],
)
def test_an_estimator_resumes_from_its_checkpoint(xb, tmp_path, extra):
    X, y = _classification()
    Xb, yb = xb.asarray(X), xb.asarray(y)
    kw = dict(hidden_layer_sizes=(6,), max_iter=12, batch_size=60, random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        full = xpnet.MLPClassifier(**kw).fit(Xb, yb)
    optimizer = _optim.SGD if extra.get("solver") == "sgd" else _optim.Adam
    calls = {"n": 0}
    real = optimizer.step_size

    def step_size(self, state):
        calls["n"] += 1
        if calls["n"] == 4 * 5 + 2:  # 4 batches an epoch: in the sixth epoch
            raise KeyboardInterrupt
        return real(self, state)

    path = tmp_path / "mlp.npz"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mp.setattr(optimizer, "step_size", step_size)
        xpnet.MLPClassifier(checkpoint=path, checkpoint_every=2, **kw).fit(Xb, yb)
    interrupted = [x for x in w if issubclass(x.category, xpnet.TrainingInterruptedWarning)]
    assert len(interrupted) == 1 and interrupted[0].filename == __file__

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = xpnet.MLPClassifier(checkpoint=path, checkpoint_every=2, **kw).fit(Xb, yb)
    assert resumed.n_iter_ == full.n_iter_ and resumed.t_ == full.t_
    assert resumed.loss_curve_ == full.loss_curve_
    _assert_same_params(
        list(zip(resumed.coefs_, resumed.intercepts_)), list(zip(full.coefs_, full.intercepts_))
    )

    with pytest.raises(xpnet.CheckpointMismatchError, match="alpha"):
        xpnet.MLPClassifier(checkpoint=path, alpha=0.1, **kw).fit(Xb, yb)


@pytest.mark.parametrize(
    "extra",
    [
        dict(solver="adam"),
        dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=1),
        dict(solver="sgd", learning_rate="invscaling"),
        dict(early_stopping=True),
        dict(tol=0.5, n_iter_no_change=2),  # stops early, before the first max_iter
    ],
    ids=["adam", "sgd-adaptive", "sgd-invscaling", "early-stopping", "stopped-early"],
)
def test_a_larger_max_iter_continues_an_estimators_run_as_one_fit(xb, tmp_path, extra):
    X, y = _classification()
    Xb, yb = xb.asarray(X), xb.asarray(y)
    kw = dict(hidden_layer_sizes=(6,), batch_size=60, random_state=0, **extra)
    path = tmp_path / "mlp.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        xpnet.MLPClassifier(max_iter=5, checkpoint=path, **kw).fit(Xb, yb)
        longer = xpnet.MLPClassifier(max_iter=15, checkpoint=path, **kw).fit(Xb, yb)
        one = xpnet.MLPClassifier(max_iter=15, **kw).fit(Xb, yb)
    assert longer.n_iter_ == one.n_iter_ and longer.t_ == one.t_
    assert longer.loss_curve_ == one.loss_curve_ and longer.loss_ == one.loss_
    assert longer.validation_scores_ == one.validation_scores_
    assert longer._optimizer.learning_rate == one._optimizer.learning_rate
    _assert_same_params(
        list(zip(longer.coefs_, longer.intercepts_)), list(zip(one.coefs_, one.intercepts_))
    )
    if "tol" in extra and extra["tol"] == 0.5:
        assert one.n_iter_ < 5  # stopped before either max_iter: nothing more to train
    with pytest.raises(
        xpnet.CheckpointMismatchError,
        match=rf"holds a run of {one.n_iter_} epochs, more than max_iter=2: .*Pass "
        rf"max_iter={one.n_iter_} or more",
    ):
        xpnet.MLPClassifier(max_iter=2, checkpoint=path, **kw).fit(Xb, yb)


def test_estimator_checkpoints_need_a_resumable_solver(tmp_path):
    X, y = _classification()
    with pytest.raises(ValueError, match="sgd and adam solvers"):
        xpnet.MLPClassifier(solver="lbfgs", checkpoint=tmp_path / "x.npz").fit(X, y)
    rng = np.random.RandomState(0)
    with pytest.raises(ValueError, match="random_state to be an int"):
        xpnet.MLPClassifier(max_iter=2, random_state=rng, checkpoint=tmp_path / "x.npz").fit(X, y)
    assert not (tmp_path / "x.npz").exists()
