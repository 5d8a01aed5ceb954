"""The xpnet command runs end to end on the backend under test and writes its files."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.datasets import make_moons

import xpnet
from xpnet import cli

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


def test_demo_shows_a_progress_bar_by_default(capfd):
    assert cli.main(["demo", "--epochs", "50", "--backend", "numpy"]) == 0
    out, err = capfd.readouterr()
    assert "pass/s" in err and "Loss after pass 0:" in out


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
        # fit alone agrees; NumPy's overflow warnings on the way there are beside the point
        with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="pass 299"):
            xpnet.fit(X, y, hidden=hidden, epochs=300, seed=4, lr=10000, backend="numpy")
        assert row == [str(hidden), "nan", "diverged", "by", "pass", "299"]


def test_sweep_shows_one_progress_bar_for_all_sizes_and_none_when_quiet(capfd):
    argv = ["sweep", "--backend", "numpy", "--hidden", "1", "2", "3", "--epochs", "300"]
    assert cli.main(argv) == 0
    out, err = capfd.readouterr()
    assert len(_sweep_rows(out, 3)) == 3
    # one bar over the passes of all three (on NumPy each trains on its own: 3 x 300)
    assert len(re.findall(r"\| 0/900 \[", err)) == 1
    assert "pass/s" in err

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
