"""Progress reporting of xpnet.fit: silent by default, a bar when asked, a callback."""

from __future__ import annotations

import numpy as np

import xpnet
from xpnet import _train


def test_quiet_fit_writes_nothing(xb, moons, capfd):
    X, y = moons
    xpnet.fit(xb.asarray(X), xb.asarray(y), epochs=30, log_every=10, verbose=False)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_verbose_fit_shows_a_bar_on_stderr(xb, moons, capfd):
    X, y = moons
    xpnet.fit(xb.asarray(X), xb.asarray(y), epochs=30, log_every=10, verbose=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "/30 [" in err and "pass/s" in err  # tqdm's bar; the loss it shows is tested below


def test_callback_gets_int_and_float_at_the_recorded_passes(xb, moons):
    X, y = moons
    calls = []
    model = xpnet.fit(
        xb.asarray(X), xb.asarray(y), epochs=25, log_every=10,
        callback=lambda i, loss: calls.append((i, loss)),
    )  # fmt: skip
    assert [i for i, _ in calls] == [0, 10, 20, 24]  # the last pass included
    assert calls == model.loss_curve
    assert all(type(i) is int and type(loss) is float for i, loss in calls)
    # The reported loss is the model's loss after that pass: the last one is the final model's.
    np.testing.assert_allclose(calls[-1][1], model.loss(X, y), rtol=1e-6)


class _Recorder:
    """Stands in for the tqdm bar and records what training tells it."""

    def __init__(self, total):
        self.total, self.steps, self.postfix, self.closed = total, [], [], False

    def update(self, n):
        self.steps.append(n)

    def set_postfix(self, **kwargs):
        self.postfix.append(kwargs)

    def close(self):
        self.closed = True


def _record(bars, total):
    bars.append(_Recorder(total))
    return bars[-1]


def test_the_bar_advances_smoothly_between_logged_passes(monkeypatch, moons):
    bars = []
    monkeypatch.setattr(_train, "progress_bar", lambda total: _record(bars, total))
    X, y = moons
    model = xpnet.fit(X, y, epochs=1000, log_every=1000, verbose=True)
    (bar,) = bars
    assert bar.total == 1000 and sum(bar.steps) == 1000 and bar.closed
    assert len(bar.steps) >= 100  # many ticks, although the loss is logged only twice
    assert [p["loss"] for p in bar.postfix] == [f"{loss:.6f}" for _, loss in model.loss_curve]


def test_the_bar_is_closed_when_the_callback_raises(monkeypatch, moons):
    bars = []
    monkeypatch.setattr(_train, "progress_bar", lambda total: _record(bars, total))

    def stop(i, loss):
        raise KeyboardInterrupt

    X, y = moons
    try:
        xpnet.fit(X, y, epochs=10, verbose=True, callback=stop)
    except KeyboardInterrupt:
        pass
    assert bars[0].closed
