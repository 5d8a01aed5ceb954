"""The examples in the public docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import os

import pytest

ON_NUMPY = os.environ.get("XPNET_TEST_BACKEND", "numpy") == "numpy"

MODULES = [
    "xpnet._backends",
    "xpnet._fit",
    "xpnet._fit_many",
    "xpnet._load",
    "xpnet._lbfgs",
    "xpnet.plot",
]


@pytest.mark.skipif(not ON_NUMPY, reason="the examples use NumPy input: run once")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
