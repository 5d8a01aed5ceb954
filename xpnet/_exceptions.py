"""Exceptions and warnings raised by xpnet, one type per kind of failure."""

from __future__ import annotations

__all__ = ["BackendFallbackWarning", "BackendUnavailableError"]


class BackendFallbackWarning(UserWarning):
    """The requested backend could not be used, so xpnet trained on NumPy instead.

    The message says what was missing (the package, or a usable device).
    Pass ``fallback=False`` to get :class:`BackendUnavailableError` instead.
    """


class BackendUnavailableError(RuntimeError):
    """The requested backend is not installed or has no usable device.

    Raised instead of falling back to NumPy when ``fallback=False``.
    """
