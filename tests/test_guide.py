"""The user guide's Python code runs: each page of docs/guide (and README.md) in one
namespace, in order.

A code block preceded by a comment ``.. guide-test: needs X, Y`` runs only where each of
X, Y is there: an importable module (``torch``, ``dask``, ``dask_cuda``), ``gpu``, a
usable CUDA device (CuPy's or torch's), or ``array_api_dispatch``, scikit-learn's array API
dispatch (SCIPY_ARRAY_API=1, which nox sets).  The blocks run on NumPy input, once: when the
suite runs for NumPy (``XPNET_TEST_BACKEND=numpy``), as tests/test_docs.py does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path

import pytest

ON_NUMPY = os.environ.get("XPNET_TEST_BACKEND", "numpy") == "numpy"
ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide"
PAGES = [*sorted(GUIDE.glob("*.rst")), ROOT / "README.md"]

_CODE = re.compile(r"^\.\. code-block:: python\s*$")
_NEEDS = re.compile(r"^\.\. guide-test: needs (.+)$")


def markdown_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line number, code, [])`` of each fenced python block of a Markdown file."""
    lines, blocks, start = path.read_text(encoding="utf-8").splitlines(), [], None
    for i, line in enumerate(lines):
        if start is None and line.strip() == "```python":
            start = i + 1
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines[start:i]) + "\n", []))
            start = None
    return blocks


def code_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line number, code, needs)`` of each ``.. code-block:: python`` on a page."""
    if path.suffix == ".md":
        return markdown_blocks(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, needs = [], []
    for i, line in enumerate(lines):
        if match := _NEEDS.match(line):
            needs = [word.strip() for word in match.group(1).split(",")]
            continue
        if not _CODE.match(line):
            if line.strip():
                needs = []  # the comment names the block right after it
            continue
        body, j = [], i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith("   ")):
            body.append(lines[j][3:])
            j += 1
        blocks.append((i + 1, "\n".join(body).strip("\n") + "\n", needs))
        needs = []
    return blocks


def _gpu() -> bool:
    import xpnet

    backends = xpnet.available_backends()
    return backends["cupy"].usable or any(
        str(d).startswith("cuda") for d in backends["torch"].devices
    )


def missing(needs: list[str]) -> list[str]:
    """What of ``needs`` this machine lacks."""
    lacking = []
    for need in needs:
        if need == "gpu":
            there = _gpu()
        elif need == "array_api_dispatch":
            there = os.environ.get("SCIPY_ARRAY_API") == "1"
        else:
            there = importlib.util.find_spec(need) is not None
        if need == "dask" and there:
            there = importlib.util.find_spec("distributed") is not None
        if not there:
            lacking.append(need)
    return lacking


def test_every_page_has_code():
    assert PAGES, f"no guide pages under {GUIDE}"
    names = {page.stem for page in PAGES if code_blocks(page)}
    assert {"getting_started", "backends", "many_models", "saving", "sklearn", "README"} <= names


@pytest.mark.skipif(not ON_NUMPY, reason="the guide uses NumPy input: run once")
@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_guide_page(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the pages write model files and figures to the working folder
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__main__"}  # a script's main() guard runs, as it would
    skipped = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pages show warnings on purpose (fallback, ...)
        for line, code, needs in code_blocks(page):
            if lacking := missing(needs):
                skipped.append(f"line {line} (needs {', '.join(lacking)})")
                continue
            try:
                exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{page.name}, the block at line {line} failed") from error
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except ImportError:
        pass
    if skipped:  # shown by pytest -rP; the rest of the page ran
        print(f"{page.name}: skipped the blocks at {'; '.join(skipped)}")
