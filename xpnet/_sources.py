"""The one place that picks a source of rows (see :mod:`xpnet._rows`)."""

from __future__ import annotations

from typing import Any

from . import _dask, _rows


def source_of(X: Any, *others: Any, backend: Any = None) -> Any:
    """The source of the rows of ``X`` (and of ``others``, the labels or weights beside it)
    for ``backend``: chunks for a dask array or ``backend="dask"``, else memory.

    Raises ValueError for a dask X with another named backend, before anything is
    computed.
    """
    if _dask.trains_on_chunks(X, backend) or any(_dask.is_dask(a) for a in others):
        return _dask.CHUNKS
    return _rows.IN_MEMORY
