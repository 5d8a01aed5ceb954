"""xpnet: a multi-layer perceptron written once, run on any array library.

The forward and backward passes are written against the Python Array API
standard, so the same code trains on NumPy, CuPy, PyTorch, JAX and
array_api_strict.

``import xpnet`` stays light: the scikit-learn estimators (``MLPClassifier``,
``MLPRegressor``) and the plotting module (``xpnet.plot``) load on first use,
and scikit-learn, SciPy, tqdm and matplotlib with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._backends import BACKENDS, BackendInfo, available_backends
from ._exceptions import (
    BackendFallbackWarning,
    BackendUnavailableError,
    CheckpointMismatchError,
    DeviceMemoryError,
    DivergenceError,
    DivergenceWarning,
    ModelFileError,
    TrainingInterruptedWarning,
)
from ._fit import fit
from ._fit_many import fit_many
from ._grid import ModelGrid, Results
from ._model import Model
from ._version import __version__ as __version__

if TYPE_CHECKING:  # loaded on first use, by __getattr__ below
    from . import plot
    from ._estimators import MLPClassifier, MLPRegressor
    from ._load import load


__all__ = [
    "BACKENDS",
    "BackendFallbackWarning",
    "BackendInfo",
    "BackendUnavailableError",
    "CheckpointMismatchError",
    "DeviceMemoryError",
    "DivergenceError",
    "DivergenceWarning",
    "MLPClassifier",
    "MLPRegressor",
    "Model",
    "ModelFileError",
    "ModelGrid",
    "Results",
    "TrainingInterruptedWarning",
    "available_backends",
    "fit",
    "fit_many",
    "load",
    "plot",
]

#: Public names loaded on first access (PEP 562), with the module that defines them.
_LAZY = {
    "MLPClassifier": "._estimators",  # scikit-learn (and SciPy) come with the estimators
    "MLPRegressor": "._estimators",
    "load": "._load",
    "plot": ".plot",  # a module; matplotlib itself is imported only when a plot is drawn
}


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if module_name == f".{name}" else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
