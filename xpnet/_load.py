"""``xpnet.load``: the one place that knows every kind of xpnet file, through a table.

Each kind of object writes and reads its own record (:mod:`xpnet._model`,
:mod:`xpnet._grid`, :mod:`xpnet._estimator_files`) through the file container
of :mod:`xpnet._files`, whose codec knows none of them.  Reading a file executes
nothing, and everything read is checked before it is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _files, _model
from ._exceptions import ModelFileError
from ._grid import ModelGrid
from ._model import Model

if TYPE_CHECKING:
    from ._estimators import MLPClassifier, MLPRegressor

__all__ = ["load"]


def load(
    path: str | os.PathLike,
    backend: str | None = None,
    device: Any = None,
    *,
    fallback: bool = True,
) -> Model | ModelGrid | MLPClassifier | MLPRegressor:
    """Read a model, a grid or an estimator saved by its ``save`` method.

    Parameters
    ----------
    path : str or os.PathLike
        The file written by :meth:`xpnet.Model.save`,
        :meth:`xpnet.ModelGrid.save`, :meth:`xpnet.MLPClassifier.save` or
        :meth:`xpnet.MLPRegressor.save`.
    backend : {None, "auto", "numpy", "cupy", "torch", "jax", "array_api_strict", "dask"}
        Where the parameters go.  None puts a model (or grid) back on the
        backend and device it was saved from when they are usable here, and
        falls back to NumPy with a :class:`~xpnet.BackendFallbackWarning`
        otherwise, so a GPU-trained model loads on a CPU-only machine.  A
        named backend moves it there, falling back as :func:`xpnet.fit` does.
        For an estimator, whose parameters are host arrays, a backend or
        device given here replaces its ``backend`` or ``device`` parameter.
    device : object, optional
        A device of that backend ("cuda:1", "cpu", a torch.device, ...).
        With ``backend=None``, a device of the backend it was saved from.
    fallback : bool, default True
        When the backend cannot be used: True loads onto NumPy with a
        warning, False raises :class:`~xpnet.BackendUnavailableError`.

    Returns
    -------
    Model, ModelGrid, MLPClassifier or MLPRegressor
        An object of the type that was saved.  A float64 model keeps float64
        wherever the backend has it (JAX without ``jax_enable_x64``: float32,
        with a warning).

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ModelFileError
        When the file is truncated, corrupted, not written by xpnet, of a newer
        format, or inconsistent (a missing array, a wrong shape or dtype); the
        message says which.  Nothing in the file is executed to find out.  A
        checkpoint (``checkpoint=`` of :func:`xpnet.fit` or of an estimator)
        holds a training state, not a model: the message says how to get the
        model, by the same ``fit`` call with the same checkpoint.
    BackendUnavailableError
        When the backend cannot be used and ``fallback=False``.

    Examples
    --------
    >>> import os, tempfile
    >>> import xpnet
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, noise=0.20, random_state=0)
    >>> model = xpnet.fit(X, y, hidden=3, epochs=2000)
    >>> path = model.save(os.path.join(tempfile.mkdtemp(), "moons.xpnet"))
    >>> again = xpnet.load(path)
    >>> again
    <xpnet.Model hidden=(3,) activation='tanh' classes=2 backend='numpy' device=cpu dtype=float64>
    >>> round(again.score(X, y), 3)
    0.975
    """
    archive = _files.read(path, tuple(_READERS), also=("checkpoint",))
    if archive.kind == "checkpoint":
        from . import _checkpoint

        raise ModelFileError(_checkpoint.explain(archive.meta, path))
    return _READERS[archive.kind](archive, path, backend, device, fallback)


def _read_model(
    archive: _files.Archive, where: Any, backend: Any, device: Any, fallback: bool
) -> Model:
    return _model.from_archive(archive, where, "model", "", backend, device, fallback)


def _estimator(archive: _files.Archive, where: Any, backend: Any, device: Any, fallback: bool):
    from . import _estimator_files, _estimators  # scikit-learn comes with them

    classes = (_estimators.MLPClassifier, _estimators.MLPRegressor)
    return _estimator_files.from_archive(archive, where, backend, device, fallback, classes)


#: What each kind of file holds, and how it is read back.
_READERS: dict[str, Callable[..., Any]] = {
    "model": _read_model,
    "grid": ModelGrid.from_archive,
    "estimator": _estimator,
}
