"""The `xpnet demo` command: the article's run, reported."""

from __future__ import annotations

import re
import subprocess
import sys

from xpnet import cli


def test_demo_prints_the_articles_run(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    losses = re.findall(r"^Loss after pass (\d+): ([0-9.]+)$", out, flags=re.M)
    assert [int(i) for i, _ in losses] == [*range(0, 20000, 1000), 19999]
    assert losses[0][1] == "0.432387" and losses[1][1] == "0.068947"
    assert re.search(r"^backend: (numpy|cupy), device: \S+", out, flags=re.M)
    assert "training accuracy: 0.975" in out
    assert re.search(r"^wall time: \d+\.\d+ s$", out, flags=re.M)


def test_the_console_script_module_runs():
    done = subprocess.run(
        [sys.executable, "-m", "xpnet", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in done.stdout
