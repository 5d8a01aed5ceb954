"""xpnet: a multi-layer perceptron written once, run on any array library.

The forward and backward passes are written against the Python Array API
standard, so the same code trains on NumPy, CuPy, PyTorch, JAX and
array_api_strict.
"""

from __future__ import annotations

from . import plot  # matplotlib itself is imported only when a plot is drawn
from ._backends import BACKENDS, BackendInfo, available_backends
from ._estimators import MLPClassifier, MLPRegressor
from ._exceptions import BackendFallbackWarning, BackendUnavailableError
from ._fit import fit
from ._grid import ModelGrid, Results, fit_many
from ._model import Model

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "BackendFallbackWarning",
    "BackendInfo",
    "BackendUnavailableError",
    "MLPClassifier",
    "MLPRegressor",
    "Model",
    "ModelGrid",
    "Results",
    "available_backends",
    "fit",
    "fit_many",
    "plot",
]
