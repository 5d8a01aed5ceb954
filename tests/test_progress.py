"""Progress reporting of xpnet.fit: silent by default, a bar when asked, a callback.

The bar draws itself only on a terminal: under pytest stderr is a file, so the
tests that look at the bar give the process a fake terminal for stderr.
"""

from __future__ import annotations

import contextlib
import io
import sys

import numpy as np
import pytest

import xpnet
from xpnet import _progress


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps what was written to it."""

    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def on_terminal():
    """sys.stderr replaced by a fake terminal, within the test's body.

    Not a fixture: pytest's capture puts its own sys.stderr back as the test's
    call begins, and a fixture's patch would be undone after capture's.
    """
    tty = _Terminal()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", tty)
        yield tty


def _last_frame(drawn: str) -> str:
    """The line a bar leaves behind: its last frame, after the last carriage return."""
    assert drawn.endswith("\n")
    return drawn.rstrip("\n").rsplit("\r", 1)[-1]


def test_quiet_fit_writes_nothing(xb, moons, capfd):
    X, y = moons
    xpnet.fit(xb.asarray(X), xb.asarray(y), epochs=30, log_every=10, verbose=False)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_verbose_fit_shows_a_bar_on_a_terminal_and_leaves_its_last_line(xb, moons):
    X, y = moons
    with on_terminal() as terminal:
        model = xpnet.fit(xb.asarray(X), xb.asarray(y), epochs=30, log_every=10, verbose=True)
    drawn = terminal.getvalue()
    assert "/30 [" in drawn and "pass/s" in drawn  # tqdm's bar
    last = _last_frame(drawn)
    assert "30/30" in last and f"loss={model.loss_curve[-1][1]:.6f}" in last


def test_verbose_fit_is_silent_when_stderr_is_not_a_terminal(moons, capfd):
    X, y = moons  # stderr is a file here, as in `python train.py 2> log`
    xpnet.fit(X, y, epochs=30, log_every=10, verbose=True)
    assert capfd.readouterr() == ("", "")


def test_a_short_run_shows_its_losses(moons):
    # 300 passes take milliseconds, less than tqdm's redraw interval: the bar still shows
    # the first loss as it comes and keeps the last one on its final line.
    X, y = moons
    with on_terminal() as terminal:
        model = xpnet.fit(X, y, epochs=300, verbose=True)
    assert [i for i, _ in model.loss_curve] == [0, 299]
    last = model.loss_curve[-1][1]
    drawn = terminal.getvalue()
    assert f"loss={model.loss_curve[0][1]:.6f}" in drawn
    final = _last_frame(drawn)
    assert "300/300" in final and f"loss={last:.6f}" in final
    assert drawn.count("\n") == 1  # one line left behind, no stale frames


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
        self.refreshed = 0

    def update(self, n):
        self.steps.append(n)

    def set_postfix(self, **kwargs):
        self.postfix.append(kwargs)

    def refresh(self):
        self.refreshed += 1

    def close(self):
        self.closed = True


def _record(bars, total):
    bars.append(_Recorder(total))
    return bars[-1]


def test_the_bar_advances_smoothly_between_logged_passes(monkeypatch, moons):
    bars = []
    monkeypatch.setattr(_progress, "progress_bar", lambda total: _record(bars, total))
    X, y = moons
    model = xpnet.fit(X, y, epochs=1000, log_every=1000, verbose=True)
    (bar,) = bars
    assert bar.total == 1000 and sum(bar.steps) == 1000 and bar.closed
    assert len(bar.steps) >= 100  # many ticks, although the loss is logged only twice
    assert [p["loss"] for p in bar.postfix] == [f"{loss:.6f}" for _, loss in model.loss_curve]
    assert bar.refreshed == 1  # the first loss is drawn at once; later ones at tqdm's pace


def test_the_bar_is_closed_when_the_callback_raises(monkeypatch, moons):
    bars = []
    monkeypatch.setattr(_progress, "progress_bar", lambda total: _record(bars, total))

    def stop(i, loss):
        raise RuntimeError("stop")

    X, y = moons
    with pytest.raises(RuntimeError, match="stop"):
        xpnet.fit(X, y, epochs=10, verbose=True, callback=stop)
    assert bars[0].closed


def test_an_interrupted_fit_leaves_the_bar_at_the_passes_done(moons):
    def stop(i, loss):
        if i == 100:
            raise KeyboardInterrupt

    X, y = moons
    with on_terminal() as terminal, pytest.warns(xpnet.TrainingInterruptedWarning):
        model = xpnet.fit(X, y, epochs=1000, log_every=100, verbose=True, callback=stop)
    assert model.stopped == "interrupted"
    final = _last_frame(terminal.getvalue())
    assert "/1000" in final and "1000/1000" not in final and "loss=" in final
