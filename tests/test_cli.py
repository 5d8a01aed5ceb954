"""The xpnet command runs end to end on the backend under test and writes its files.

It also behaves as a command should: one line per warning or error on stderr,
no traceback, a clean log when redirected, quiet exits on Ctrl-C and on a
closed pipe, and an exit status that says what happened.
"""

from __future__ import annotations

import contextlib
import io
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons

import xpnet
from xpnet import _backends, _fit, _fit_many, cli

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.image import imread  # noqa: E402

SHARED = (
    "--backend",
    "--epochs",
    "--samples",
    "--noise",
    "--seed",
    "--lr",
    "--l2",
    "--out",
    "--quiet",
    "--no-fallback",
)

#: The repository root, where ``python -m xpnet`` finds the package under test.
ROOT = Path(xpnet.__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, and keeps what was written to it."""

    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def on_terminal():
    """sys.stderr replaced by a fake terminal, within the test's body (pytest's capture
    resets sys.stderr as the call begins, so a fixture's patch would not hold)."""
    tty = _Terminal()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", tty)
        yield tty


@contextlib.contextmanager
def one_stream():
    """stdout and stderr into one buffer, as in ``xpnet ... > log 2>&1``: shows the order."""
    both = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", both)
        patch.setattr(sys, "stderr", both)
        yield both


def _xpnet(*argv: str, **kwargs) -> subprocess.Popen:
    """``python -m xpnet ARGV`` in a fresh process, text mode."""
    return subprocess.Popen([sys.executable, "-m", "xpnet", *argv], cwd=ROOT, text=True, **kwargs)


# ``python -m xpnet`` that hears SIGINT even when the tests run in the background of a shell
# without job control, which starts its children with SIGINT ignored (Python then installs no
# KeyboardInterrupt handler).
_HEARING_SIGINT = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('xpnet', run_name='__main__', alter_sys=True)"
)


def _assert_picture(path):
    """A real PNG with something drawn on it."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rgb = imread(path)[..., :3]
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10


def test_demo_prints_the_article_lines_and_writes_three_figures(xb, tmp_path, capsys):
    out = tmp_path / "new" / "dir"
    assert cli.main(["demo", "--backend", xb.name, "--epochs", "1001", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    losses = re.findall(r"^Loss after pass (\d+): (\d+\.\d{6})$", stdout, re.M)
    assert [int(i) for i, _ in losses] == [0, 1000]  # the last pass is 1000
    assert float(losses[0][1]) == pytest.approx(0.432387, abs=2e-6)  # the article's pass 0
    assert re.search(rf"^backend: {xb.name}, device: \S", stdout, re.M)
    accuracy = re.search(r"^training accuracy: (\d\.\d{3})$", stdout, re.M)
    assert 0.9 < float(accuracy.group(1)) <= 1
    assert re.search(r"^wall time: \d+\.\d\d s$", stdout, re.M)
    for name in ("data", "boundary", "loss"):
        _assert_picture(out / f"{name}.png")


def test_demo_without_out_writes_no_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--epochs", "5", "--backend", "numpy"]) == 0
    assert list(tmp_path.iterdir()) == []


def test_quiet_drops_the_bar_and_loss_lines_but_keeps_the_summary(capfd):
    assert cli.main(["demo", "--epochs", "50", "--backend", "numpy", "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert err == ""
    assert "Loss after pass" not in out
    assert "training accuracy:" in out and "wall time:" in out


def test_demo_shows_a_progress_bar_on_a_terminal(capsys):
    with on_terminal() as terminal:
        assert cli.main(["demo", "--epochs", "50", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "pass/s" in terminal.getvalue() and "Loss after pass 0:" in out
    # The bar leaves one line: the passes done and the final loss.
    final = terminal.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    last_loss = re.findall(r"^Loss after pass 49: (\S+)$", out, re.M)
    assert "50/50" in final and f"loss={last_loss[0]}" in final


def test_demo_draws_no_bar_when_stderr_is_not_a_terminal(capfd):
    assert cli.main(["demo", "--epochs", "50", "--backend", "numpy"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and "Loss after pass 0:" in out


def test_a_redirected_log_is_clean(tmp_path):
    log = tmp_path / "log.txt"
    with log.open("w") as file:  # xpnet demo --epochs 2000 > log.txt 2>&1
        done = _xpnet(
            "demo", "--epochs", "2000", "--backend", "numpy",
            stdout=file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert done.wait(timeout=120) == 0
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("xpnet demo: make_moons(200")
    assert lines[1:4] == [
        "Loss after pass 0: 0.432387",
        "Loss after pass 1000: 0.068947",
        lines[3],
    ] and lines[3].startswith("Loss after pass 1999: ")
    assert [line.split(":")[0] for line in lines[4:]] == [
        "backend",
        "training accuracy",
        "wall time",
    ]


def _sweep_rows(stdout: str, n: int) -> list[list[str]]:
    """The n table rows under the sweep's header line, split into cells."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["hidden"])
    assert lines[header].split() == ["hidden", "final", "loss", "train", "acc", "held-out", "acc"]
    return [line.split() for line in lines[header + 1 : header + 1 + n]]


def test_sweep_table_matches_models_trained_alike(xb, tmp_path, capsys):
    argv = [
        "sweep",
        "--backend",
        xb.name,
        "--hidden",
        "1",
        "3",
        "--epochs",
        "300",
        "--samples",
        "120",
        "--noise",
        "0.3",
        "--seed",
        "2",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    rows = _sweep_rows(stdout, 2)
    assert [r[0] for r in rows] == ["1", "3"]
    assert re.search(r"^wall time: \d+\.\d\d s$", stdout, re.M)
    assert re.search(rf"^backend: {xb.name}, device: \S", stdout, re.M)
    _assert_picture(tmp_path / "sweep.png")

    # Seed 2: a run whose gradient descent stays smooth, so that backends and layouts agree
    # to rounding (at some seeds the loss oscillates mid-run and amplifies rounding).
    X, y = make_moons(120, noise=0.3, random_state=2)
    X_test, y_test = make_moons(120, noise=0.3, random_state=3)
    for row, hidden in zip(rows, (1, 3), strict=True):
        model = xpnet.fit(X, y, hidden=hidden, epochs=300, seed=2, backend=xb.name)
        assert len(row) == 4  # no per-model seconds: the models train together
        loss, train, held_out = map(float, row[1:])
        assert loss == pytest.approx(model.loss_curve[-1][1], abs=2e-6)
        assert train == pytest.approx(model.score(X, y), abs=1e-3)
        assert held_out == pytest.approx(model.score(X_test, y_test), abs=1e-3)


def test_sweep_reports_a_diverged_network_instead_of_its_accuracies(capsys):
    argv = ["sweep", "--backend", "numpy", "--hidden", "1", "3", "--epochs", "300"]
    assert cli.main([*argv, "--samples", "120", "--seed", "4", "--lr", "10000", "--quiet"]) == 0
    rows = _sweep_rows(capsys.readouterr().out, 2)
    X, y = make_moons(120, noise=0.2, random_state=4)
    for row, hidden in zip(rows, (1, 3), strict=True):
        # fit alone diverges too; NumPy's overflow warnings on the way are beside the point
        with np.errstate(all="ignore"), pytest.raises(xpnet.DivergenceError):
            xpnet.fit(X, y, hidden=hidden, epochs=300, seed=4, lr=10000, backend="numpy")
        assert row == [str(hidden), "nan", "diverged", "by", "pass", "299"]


def test_sweep_shows_one_progress_bar_for_all_sizes_and_none_when_quiet(capfd):
    argv = ["sweep", "--backend", "numpy", "--hidden", "1", "2", "3", "--epochs", "300"]
    with on_terminal() as terminal:
        assert cli.main(argv) == 0
    out, err = capfd.readouterr()
    assert len(_sweep_rows(out, 3)) == 3
    # one bar over the passes of all three (on NumPy each trains on its own: 3 x 300)
    assert len(re.findall(r"\| 0/900 \[", terminal.getvalue())) == 1
    assert "pass/s" in terminal.getvalue() and err == ""

    assert cli.main([*argv, "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert err == ""
    assert [row[0] for row in _sweep_rows(out, 3)] == ["1", "2", "3"]


def test_info_lists_every_backend(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for name, info in xpnet.available_backends().items():
        row = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert row.split()[1] == ("yes" if info.usable else "no")
        for device in info.devices:
            assert device in row
    with pytest.raises(SystemExit):
        cli.main(["info", "--epochs", "3"])  # info takes no options


@pytest.mark.parametrize("command", ["demo", "sweep"])
def test_help_documents_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in (*SHARED, "--hidden"):
        assert re.search(rf"^\s+{option}\b.*\S", text, re.M), option
    assert "20000" in text and "0.2" in text and "0.01" in text  # the article's defaults


@pytest.mark.parametrize("command", ["demo", "sweep"])
def test_help_lists_hidden_with_the_training_options(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    training = text[text.index("\ntraining (") : text.index("\noutput:")]
    assert re.search(r"^\s+--hidden N\b", training, re.M)
    assert text.count("--hidden N") == 2  # once in the usage line, once in the training group


def test_demo_help_and_header_name_the_hidden_size_asked_for(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "2-H-2 tanh network, H hidden units from --hidden (default 3" in text
    assert "2-3-2" not in text
    assert cli.main(["demo", "--hidden", "5", "--epochs", "5", "--backend", "numpy"]) == 0
    assert "hidden layer of 5 tanh units" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--epochs", "0"],
        ["demo", "--samples", "-3"],
        ["demo", "--lr", "0"],
        ["demo", "--noise", "nan"],
        ["sweep", "--hidden"],
        ["sweep", "--hidden", "0"],
        ["demo", "--backend", "fortran"],
    ],
)
def test_bad_options_are_refused_before_training(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "error" in captured.err and captured.out == ""


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"xpnet {xpnet.__version__}\n"


def test_help_lists_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for status in ("0", "1", "2", "130", "141"):
        assert re.search(rf"^  {status}\s+\w", text, re.M), status


def test_a_closed_pipe_ends_the_command_quietly():
    # xpnet demo | head -1: the reader leaves after the first line, the demo writes on
    child = _xpnet(
        "demo", "--backend", "numpy", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )  # fmt: skip
    assert child.stdout.readline().startswith("xpnet demo:")  # then a second of training
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(timeout=120) == 141  # 128 + SIGPIPE, as a shell reports `seq 1e9 | head`
    assert err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child there")
def test_ctrl_c_during_training_prints_one_line_and_exits_130():
    child = subprocess.Popen(
        [sys.executable, "-c", _HEARING_SIGINT, "demo", "--epochs", "10000000", "--backend",
         "numpy", "--quiet"],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout.readline().startswith("xpnet demo:")  # printed just before training
    time.sleep(1.0)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert "Traceback" not in err and err.count("\n") == 1
    # fit caught it: the demo says how far training got (a Ctrl-C before fit started
    # training, on a very slow machine, gives the plain line)
    assert re.fullmatch(
        r"xpnet: interrupted( after \d+ of 10000000 passes, loss \d+\.\d{6})?\n", err
    ), err
    assert "training accuracy" not in out


def test_an_interrupted_demo_says_how_far_it_got_and_draws_nothing(monkeypatch, tmp_path, capsys):
    real_fit = _fit.fit

    def interrupted_fit(*args, **kwargs):
        def press_ctrl_c(i, loss):
            if i == 1000:
                raise KeyboardInterrupt

        return real_fit(*args, **{**kwargs, "callback": press_ctrl_c})

    monkeypatch.setattr(_fit, "fit", interrupted_fit)
    argv = ["demo", "--epochs", "5000", "--backend", "numpy", "--quiet", "--out", str(tmp_path)]
    assert cli.main(argv) == 130
    out, err = capsys.readouterr()
    # The loss curve ends at the last finished pass, which is pass 1000 (the 1001st).
    assert err == "xpnet: interrupted after 1001 of 5000 passes, loss 0.068947\n"
    assert "training accuracy" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["data", "sweep"])
def test_ctrl_c_outside_fit_prints_one_line_and_exits_130(where, monkeypatch, capsys):
    def press_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "data":  # while make_moons runs
        monkeypatch.setattr(cli, "_moons", press_ctrl_c)
        argv = ["demo", "--quiet"]
    else:  # while fit_many trains
        monkeypatch.setattr(_fit_many, "fit_many", press_ctrl_c)
        argv = ["sweep", "--quiet", "--backend", "numpy"]
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == "xpnet: interrupted\n"


def test_a_diverging_demo_is_an_error(capsys):
    argv = ["demo", "--backend", "numpy", "--lr", "10000", "--epochs", "300", "--samples", "120"]
    with np.errstate(all="ignore"):
        assert cli.main([*argv, "--seed", "4", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "training accuracy" not in out
    assert re.fullmatch(
        r"xpnet: error: training diverged: the loss is (inf|nan) after pass \d+ "
        r"\(it was \S+ after pass 0\); lower --lr \(it is 10000\)\n",
        err,
    ), err


def test_a_demo_that_ends_above_its_first_loss_fails_after_its_summary():
    # xpnet demo --lr 100: every loss finite, but training made the model worse
    with one_stream() as log:
        status = cli.main(["demo", "--backend", "numpy", "--lr", "100", "--epochs", "1000"])
    assert status == 1
    lines = log.getvalue().splitlines()
    assert lines[-4].startswith("backend: numpy")
    assert lines[-3] == "training accuracy: 0.500"
    assert lines[-2].startswith("wall time:")
    assert lines[-1].startswith("xpnet: warning: the loss rose from ")  # last: why status 1
    assert sum("xpnet: warning" in line for line in lines) == 1


@pytest.fixture
def cupy_missing(monkeypatch):
    """CuPy reported as unusable, whether or not this machine has it."""
    real = _backends.probe

    def probe(name):
        if name == "cupy":
            return xpnet.BackendInfo("cupy", False, None, (), "cupy is not installed (faked)")
        return real(name)

    monkeypatch.setattr(_backends, "probe", probe)


def test_an_unusable_backend_falls_back_with_command_line_advice(cupy_missing, capsys):
    assert cli.main(["demo", "--backend", "cupy", "--epochs", "5", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == (
        "xpnet: warning: backend 'cupy' is not available: cupy is not installed (faked); "
        "training on NumPy instead (--backend numpy avoids this warning, --no-fallback "
        "makes it an error)\n"
    )
    assert "fallback=" not in err and "backend: numpy" in out


@pytest.mark.parametrize("command", ["demo", "sweep"])
def test_no_fallback_makes_an_unusable_backend_an_error(command, cupy_missing, capsys):
    argv = [command, "--backend", "cupy", "--no-fallback", "--epochs", "5", "--quiet"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error: backend 'cupy' is not available: cupy is not ")
    assert err.count("\n") == 1 and "xpnet info" in err


def test_warnings_print_as_one_line_without_file_and_line(monkeypatch, capsys):
    real_moons = cli._moons

    def moons_with_warnings(args, random_state):
        warnings.warn("something odd:\n  twice", xpnet.BackendFallbackWarning, stacklevel=1)
        warnings.warn_explicit("not ours", UserWarning, "/elsewhere/lib.py", 3)
        return real_moons(args, random_state)

    monkeypatch.setattr(cli, "_moons", moons_with_warnings)
    # Another library's warning goes on to Python's (here pytest's) machinery as it is:
    # its format says whose it is.
    with pytest.warns(UserWarning, match="not ours") as caught:
        assert cli.main(["demo", "--backend", "numpy", "--epochs", "5", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == "xpnet: warning: something odd: twice\n"
    assert [w.filename for w in caught] == ["/elsewhere/lib.py"]


def test_running_out_of_device_memory_is_an_error(monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise xpnet.DeviceMemoryError("cuda:0 ran out of memory; use fewer rows")

    monkeypatch.setattr(_fit, "fit", out_of_memory)
    assert cli.main(["demo", "--backend", "numpy", "--quiet"]) == 1
    assert capsys.readouterr().err == "xpnet: error: cuda:0 ran out of memory; use fewer rows\n"


def test_out_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--out", str(tmp_path / "figures")])
    message = str(exit_.value.code)
    assert "pip install matplotlib" in message and "pip install '.[plot]'" in message
    assert "xpnet[plot]" not in message


def test_python_m_xpnet_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "xpnet", "--version"], cwd=ROOT, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"xpnet {xpnet.__version__}\n", "")
