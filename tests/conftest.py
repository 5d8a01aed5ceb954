"""The backend under test comes from XPNET_TEST_BACKEND (numpy by default).

Each nox session sets it, so the same suite runs once per backend.  Tests take
the ``xb`` fixture: the backend's name, namespace and device, and helpers to
put NumPy data on it and bring results back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

BACKEND = os.environ.get("XPNET_TEST_BACKEND", "numpy")
_KNOWN = ("numpy", "array_api_strict", "torch", "jax", "cupy")
if BACKEND not in _KNOWN:
    raise pytest.UsageError(f"XPNET_TEST_BACKEND={BACKEND!r}; choose one of {_KNOWN}")

if BACKEND == "jax":
    import jax

    jax.config.update("jax_enable_x64", True)  # the float64 comparisons need it


@dataclass(frozen=True)
class XB:
    """The backend under test."""

    name: str
    xp: Any
    device: Any

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """NumPy data as an array of this backend, on its device."""
        from xpnet import _target

        arr = _target.Target(self.name, self.xp, self.device).asarray(np.asarray(a))
        return arr if dtype is None else self.xp.astype(arr, getattr(self.xp, dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        from xpnet import _target

        return _target.to_host(x)


def _make_xb() -> XB:
    from xpnet import _backends, _target

    if BACKEND == "cupy" and not _backends.probe("cupy").usable:
        pytest.skip(f"no usable CUDA device: {_backends.probe('cupy').reason}")
    device = "device1" if BACKEND == "array_api_strict" else None
    target = _target.target_for(BACKEND, device)
    return XB(target.name, target.xp, target.device)


@pytest.fixture(scope="session")
def xb() -> XB:
    """The backend under test: name, namespace, device (array_api_strict uses device1)."""
    return _make_xb()


@pytest.fixture(scope="session")
def moons() -> tuple[np.ndarray, np.ndarray]:
    """The article's data: make_moons(200, noise=0.20, random_state=0)."""
    from sklearn.datasets import make_moons

    return make_moons(200, noise=0.20, random_state=0)


@pytest.fixture
def fresh_probe():
    """Clear the cached backend probe before and after a test that fakes imports."""
    from xpnet import _backends

    _backends.probe.cache_clear()
    yield
    _backends.probe.cache_clear()


def pytest_report_header(config: pytest.Config) -> str:
    return f"xpnet test backend: {BACKEND}"
