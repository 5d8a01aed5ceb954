"""Exceptions and warnings raised by xpnet, one type per kind of failure."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendFallbackWarning",
    "BackendUnavailableError",
    "CheckpointMismatchError",
    "DeviceMemoryError",
    "DivergenceError",
    "DivergenceWarning",
    "ModelFileError",
    "TrainingInterruptedWarning",
]


class BackendFallbackWarning(UserWarning):
    """The requested backend could not be used, so xpnet trained on NumPy instead.

    The message says what was missing (the package, or a usable device).
    Pass ``fallback=False`` to get :class:`BackendUnavailableError` instead.
    """


class BackendUnavailableError(RuntimeError):
    """The requested backend is not installed or has no usable device.

    Raised instead of falling back to NumPy when ``fallback=False``.
    """


class ModelFileError(ValueError):
    """A model or checkpoint file cannot be read: truncated, corrupted, foreign, or of
    another format version.  The message says which, and what the file was expected to be.

    A missing file raises :class:`FileNotFoundError` instead.
    """


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a run with other data or settings.

    Training never mixes such a checkpoint in: delete the file, or pass
    another path, to start afresh.
    """


class TrainingInterruptedWarning(UserWarning):
    """Training was interrupted (Ctrl-C); the model holds the parameters of the last
    finished pass, and its history ends there."""


class DivergenceError(ValueError, FloatingPointError):
    """The training loss stopped being finite.

    A ValueError (the settings do not suit the data), and a FloatingPointError
    as xpnet raised before this type existed.

    Attributes
    ----------
    epoch : int
        The first pass whose loss is not finite.
    loss : float
        That loss (nan or inf).
    params : list of (W, b)
        The parameters after the last pass whose loss was finite, as NumPy arrays.
    history : list of (int, float)
        The losses recorded before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int,
        loss: float,
        params: list | None = None,
        history: list | None = None,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.loss = loss
        self.params: Any = params
        self.history = list(history or [])


class DivergenceWarning(UserWarning):
    """Training ended with a loss above the one it started from: the step is too large
    (or the data needs scaling), even though every loss stayed finite."""


class DeviceMemoryError(MemoryError):
    """The device ran out of memory during training or prediction.

    The message suggests what to change: a smaller ``batch_size``, a smaller
    ``memory_budget`` for :func:`xpnet.fit_many`, or fewer rows at a time.
    """


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointed at the caller's line: the first frame outside xpnet
    (and outside scikit-learn's ``fit`` wrapper, which the estimators pass through)."""
    import os
    import sys
    import warnings

    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        inside = name.startswith(here) or name.endswith(os.path.join("sklearn", "base.py"))
        if not inside:
            break
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
