"""Pictures of data, models and training: the article's figures, for any backend.

Needs matplotlib (``pip install xpnet[plot]``).  matplotlib is imported only when
a function here is called, so ``import xpnet`` stays light.  No function calls
``plt.show()``: each returns its Axes (or Figure) for the caller to show or save.

Colours follow the article: the Spectral colour map, sampled once per class, so
that class ``k`` has the same colour in the data, the regions and the points.
"""

from __future__ import annotations

import inspect
import math
import numbers
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _target, _validation
from ._fit_many import fit_many as _fit_many
from ._grid import ModelGrid
from ._model import Model

if TYPE_CHECKING:  # only for annotations; matplotlib is imported on use
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure

__all__ = ["data", "decision_boundary", "loss_curve", "sweep"]


def __dir__() -> list[str]:
    """The public functions only (PEP 562): the imports and helpers are not the API."""
    return list(__all__)


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "xpnet.plot needs matplotlib; install it with pip install 'xpnet[plot]'"
        ) from None
    return plt


def _new_axes(ax: Axes | None) -> Axes:
    """``ax``, or the Axes of a new figure (as scikit-learn's displays do)."""
    if ax is not None:
        return ax
    return _pyplot().subplots()[1]


def _check_model(model: Any) -> None:
    if not isinstance(model, Model):
        raise ValueError(
            f"model must be an xpnet.Model (from xpnet.fit), got {type(model).__name__}"
        )


def _class_colours(cmap: str | Colormap, n_classes: int) -> tuple[Colormap, Normalize]:
    """A colour map with one colour per class index, and the norm that maps index k to it."""
    _pyplot()
    import matplotlib
    from matplotlib.colors import Normalize

    try:
        base = matplotlib.colormaps.get_cmap(cmap)
    except (ValueError, KeyError):
        raise ValueError(
            f"unknown colour map {cmap!r}; use a name from matplotlib.colormaps"
        ) from None
    return base.resampled(n_classes), Normalize(vmin=-0.5, vmax=n_classes - 0.5)


def _points(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """X (2 columns) and y from any backend, as NumPy arrays on the host."""
    X = _validation.check_X(X)
    if X.shape[1] != 2:
        raise ValueError(
            f"plots need 2 features (x1, x2), got X with {X.shape[1]}; "
            "project the data to two dimensions first"
        )
    y = _validation.check_labels(y, X.shape[0])
    return _target.to_host(X), y


def data(X: Any, y: Any, ax: Axes | None = None, *, cmap: str | Colormap = "Spectral") -> Axes:
    """Scatter the samples, coloured by class (the article's Figure 1).

    Parameters
    ----------
    X : array of shape (n_samples, 2)
        From any backend, or a list.
    y : array of shape (n_samples,)
        Class labels, any number of classes.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    cmap : str or Colormap, default "Spectral"
        Sampled once per class.

    Returns
    -------
    matplotlib.axes.Axes
    """
    Xh, yh = _points(X, y)
    classes, index = np.unique(yh, return_inverse=True)
    colours, norm = _class_colours(cmap, len(classes))
    ax = _new_axes(ax)
    for k, label in enumerate(classes):
        mine = index.reshape(-1) == k
        ax.scatter(
            Xh[mine, 0], Xh[mine, 1], color=colours(norm(k)), edgecolors="k",
            linewidths=0.5, s=25, label=str(label),
        )  # fmt: skip
    ax.legend(title="class")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    return ax


def _grid_classes(
    model: Model, bounds: tuple[float, float, float, float], resolution: int, chunk_size: int
) -> np.ndarray:
    """Predicted class index at each node of a ``resolution`` x ``resolution`` grid.

    The grid is built and evaluated on the model's device, ``chunk_size``
    nodes at a time, so memory stays bounded; only the class indices (one
    small int per node) come back to the host.  Row ``i`` holds the nodes with
    the ``i``-th y value, column ``j`` those with the ``j``-th x value.
    """
    x0, x1, y0, y1 = bounds
    t = model.target
    xp = t.xp
    n = resolution * resolution
    out = np.empty(n, dtype=np.int32)
    with t.activate():
        xs = xp.linspace(x0, x1, resolution, dtype=model.dtype, device=t.device)
        ys = xp.linspace(y0, y1, resolution, dtype=model.dtype, device=t.device)
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            node = xp.arange(start, stop, device=t.device)
            column, row = node % resolution, node // resolution
            pts = xp.stack([xp.take(xs, column), xp.take(ys, row)], axis=1)
            out[start:stop] = _target.to_host(model.class_index(model.outputs(pts)))
    return out.reshape(resolution, resolution)


def decision_boundary(
    model: Model,
    X: Any,
    y: Any,
    ax: Axes | None = None,
    *,
    resolution: int = 500,
    margin: float = 0.5,
    chunk_size: int = 65536,
    cmap: str | Colormap = "Spectral",
) -> Axes:
    """The model's predicted class over the plane, with the samples on top (Figure 3).

    The plane spans the samples plus ``margin`` on every side, sampled by a
    ``resolution`` x ``resolution`` grid that is evaluated on the model's
    device in chunks of ``chunk_size`` points, so memory stays bounded for
    large grids on CPU and GPU alike.  Each filled region takes its predicted
    class's colour, and each sample is drawn in its true class's colour.

    Parameters
    ----------
    model : Model
        A model trained on 2 features, on any backend.
    X : array of shape (n_samples, 2)
        The samples to draw, from any backend; they also set the plotted area.
    y : array of shape (n_samples,)
        Their labels, each one of ``model.classes_``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    resolution : int, default 500
        Grid nodes along each axis (at least 2).
    margin : float, default 0.5
        Padding around the samples, in data units (the article's 0.5).
    chunk_size : int, default 65536
        Grid nodes evaluated at once on the device.
    cmap : str or Colormap, default "Spectral"
        Sampled once per class.

    Returns
    -------
    matplotlib.axes.Axes
    """
    return _draw_boundary(
        model, X, y, ax, resolution=resolution, margin=margin, chunk_size=chunk_size, cmap=cmap
    )


def _check_planar(model: Any) -> None:
    _check_model(model)
    if model.n_features_in_ != 2:
        raise ValueError(
            f"decision_boundary needs a model of 2 features, this one has {model.n_features_in_}"
        )


def _check_labels(model: Model, yh: np.ndarray) -> None:
    unknown = np.setdiff1d(yh, model.classes_)
    if unknown.size:
        raise ValueError(f"y has labels the model was not trained on: {unknown.tolist()}")


def _drawing_options(resolution: Any, margin: Any, chunk_size: Any) -> tuple[int, float, int]:
    return (
        _validation.check_int("resolution", resolution, 2),
        _validation.check_float("margin", margin, positive=False),
        _validation.check_int("chunk_size", chunk_size, 1),
    )


def _draw_boundary(
    model: Model,
    X: Any,
    y: Any,
    ax: Axes | None,
    *,
    resolution: int,
    margin: float,
    chunk_size: int,
    cmap: str | Colormap,
    regions: bool = True,
) -> Axes:
    """:func:`decision_boundary`; without ``regions``, the samples alone on the same area."""
    _check_planar(model)
    resolution, margin, chunk_size = _drawing_options(resolution, margin, chunk_size)
    Xh, yh = _points(X, y)
    _check_labels(model, yh)
    colours, norm = _class_colours(cmap, len(model.classes_))

    x0, y0 = Xh.min(axis=0) - margin
    x1, y1 = Xh.max(axis=0) + margin
    ax = _new_axes(ax)
    if regions:
        Z = _grid_classes(model, (x0, x1, y0, y1), resolution, chunk_size)
        # Each grid cell is centred on its node, so the colour at a node is its class.
        dx, dy = (x1 - x0) / (resolution - 1), (y1 - y0) / (resolution - 1)
        ax.imshow(
            Z, origin="lower", extent=(x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2),
            cmap=colours, norm=norm, interpolation="nearest", aspect="auto",
        )  # fmt: skip
    ax.scatter(
        Xh[:, 0], Xh[:, 1], c=np.searchsorted(model.classes_, yh), cmap=colours, norm=norm,
        edgecolors="k", linewidths=0.5, s=20,
    )  # fmt: skip
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    return ax


def loss_curve(model: Model, ax: Axes | None = None) -> Axes:
    """The recorded training loss against the pass (``model.loss_curve``).

    Parameters
    ----------
    model : Model
        A trained model, on any backend.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check_model(model)
    passes, losses = zip(*model.loss_curve, strict=True)
    ax = _new_axes(ax)
    ax.plot(passes, losses, marker="o" if len(passes) <= 30 else None, markersize=3)
    ax.set_xlabel("pass")
    ax.set_ylabel("loss")
    ax.set_title("Training loss")
    ax.grid(True, alpha=0.3)
    return ax


def _hidden_title(model: Model) -> str:
    """As the title of ``xpnet demo``'s boundary.png: "hidden layer size 3"."""
    if len(model.hidden) == 1:
        return f"Hidden layer size {model.hidden[0]}"
    return f"Hidden layer sizes {model.hidden}"  # (5, 5), as hidden takes them


def _is_hidden(item: Any) -> bool:
    """One model's hidden layers: an int, or a non-empty tuple of ints (bools are not sizes)."""

    def size(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    return size(item) or (isinstance(item, tuple) and bool(item) and all(map(size, item)))


def _sweep_items(models: Any) -> tuple[list, bool]:
    """The items of ``models``, and whether they are trained models (else hidden sizes)."""
    what = (
        "models must be a non-empty sequence of trained xpnet.Model objects (a ModelGrid, or "
        "models from xpnet.fit) or of hidden sizes to train (ints, or tuples of ints such as "
        "(5, 5) for several layers)"
    )
    if isinstance(models, (str, bytes, Model)) or not isinstance(models, Iterable):
        hint = (
            "; put a single one in a list" if isinstance(models, (Model, numbers.Integral)) else ""
        )
        raise ValueError(f"{what}, got {type(models).__name__}{hint}")
    items = list(models)
    if not items:
        raise ValueError(f"{what}, got an empty {type(models).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, Model) and not _is_hidden(item):
            raise ValueError(f"{what}; item {i} is {reprlib.repr(item)} ({type(item).__name__})")
    trained = [isinstance(item, Model) for item in items]
    if any(trained) and not all(trained):
        raise ValueError(
            "models mixes trained xpnet.Model objects and hidden sizes; pass either the "
            "trained models, or the hidden sizes for sweep to train"
        )
    return items, all(trained)


def _keyword_defaults(function: Any) -> dict:
    """The keyword-only parameters of ``function`` and their defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }


def _fit_options(fit: Any) -> dict:
    """``fit``, checked before any training (fit_many itself refuses unknown names)."""
    if fit is None:
        return {}
    if not isinstance(fit, Mapping):
        raise ValueError(
            f"fit must be a dict of xpnet.fit_many arguments such as {{'epochs': 2000}}, "
            f"got {type(fit).__name__}"
        )
    if "hidden" in fit:
        raise ValueError(
            "fit must not set hidden: sweep trains the hidden sizes given as models; "
            "put the sizes in models instead"
        )
    return dict(fit)


def _titles(models: Sequence[Model], diverged: list[bool]) -> list[str]:
    """Each panel's title: its hidden sizes, and any other setting that varies between panels."""
    settings = [m.settings for m in models]
    varying = [
        name
        for name in ("activation", "lr", "l2", "seed", "epochs")
        if all(name in s for s in settings) and len({repr(s[name]) for s in settings}) > 1
    ]
    return [
        ", ".join([_hidden_title(m), *(f"{name} {m.settings[name]}" for name in varying)])
        + (" (diverged)" if broken else "")
        for m, broken in zip(models, diverged, strict=True)
    ]


def sweep(
    models: ModelGrid | Sequence[Model] | Sequence[int | tuple[int, ...]],
    X: Any,
    y: Any,
    *,
    ncols: int = 2,
    fit: Mapping[str, Any] | None = None,
    **boundary: Any,
) -> Figure:
    """One decision-boundary panel per model, titled by hidden size (Figure 4).

    Titles also name any other setting that differs between the panels
    (``activation``, ``lr``, ``l2``, ``seed``, ``epochs``).

    ``models`` are trained models, or hidden sizes that ``sweep`` first trains
    on ``X, y``, all together, with :func:`xpnet.fit_many`.  When the models
    come from :func:`xpnet.fit_many` (a :class:`~xpnet.ModelGrid`, passed or
    trained here), the panel of a model that diverged shows the samples alone
    and its title ends in " (diverged)": its weights are not finite, so it has
    no boundary to draw.

    Parameters
    ----------
    models : ModelGrid, sequence of Model, or sequence of int or tuple of int
        Models trained on 2 features, on any backends; or hidden sizes to
        train, an int for one hidden layer and a tuple of ints for several,
        e.g. ``[1, 2, 3, (5, 5)]``.
    X, y : arrays
        The samples drawn in every panel, from any backend; with hidden
        sizes, also the training data.
    ncols : int, default 2
        Panels per row (the article's layout has 2).
    fit : dict, optional
        With hidden sizes only: further :func:`xpnet.fit_many` arguments
        such as ``{"epochs": 2000, "backend": "torch"}``.  Unset ones take
        :func:`xpnet.fit_many`'s defaults, the article's settings.
    **boundary
        Passed to :func:`decision_boundary`: ``resolution``, ``margin``,
        ``chunk_size``, ``cmap``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When ``models`` holds neither trained models nor hidden sizes (or
        both), when ``fit`` comes with trained models, or for bad ``fit``
        arguments, data or drawing options; always before training or drawing.
    TypeError
        For a keyword argument that :func:`decision_boundary` does not take.

    Examples
    --------
    >>> import xpnet
    >>> from sklearn.datasets import make_moons
    >>> X, y = make_moons(200, noise=0.20, random_state=0)
    >>> fig = xpnet.plot.sweep([1, 2, 3, 4, 5, 20, 50], X, y, fit={"epochs": 2000})
    >>> fig.savefig("sweep.png")  # doctest: +SKIP
    """
    items, trained = _sweep_items(models)
    if trained and fit is not None:
        raise ValueError(
            "fit= sets how sweep trains hidden sizes, but models are already trained; "
            "drop fit=, or pass hidden sizes instead of models"
        )
    if not isinstance(ncols, numbers.Integral) or isinstance(ncols, bool) or ncols < 1:
        raise ValueError(f"ncols must be an int of at least 1, got {ncols!r}")
    options = _keyword_defaults(decision_boundary)
    unknown = [name for name in boundary if name not in options]
    if unknown:
        raise TypeError(
            f"sweep() got unexpected keyword arguments {unknown}; it passes "
            f"{', '.join(options)} on to decision_boundary"
        )
    options.update(boundary)
    # Refuse what drawing would refuse before training (long) and before the figure opens.
    _drawing_options(options["resolution"], options["margin"], options["chunk_size"])
    _class_colours(options["cmap"], 2)
    if trained:
        for model in items:
            _check_planar(model)
    _, yh = _points(X, y)
    if not trained:
        models = _fit_many(X, y, hidden=items, **_fit_options(fit))
        items = list(models)
    for model in items:
        _check_labels(model, yh)
    if isinstance(models, ModelGrid):
        diverged = [row["status"] != "ok" for row in models.results]
    else:
        diverged = [False] * len(items)

    ncols = min(int(ncols), len(items))
    nrows = math.ceil(len(items) / ncols)
    fig = _pyplot().figure(figsize=(4.5 * ncols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, model, broken, title in zip(axes, items, diverged, _titles(items, diverged)):
        _draw_boundary(model, X, y, ax, regions=not broken, **options)
        ax.set_title(title)
    for ax in axes[len(items) :]:  # the last row's empty cells: no empty frames
        fig.delaxes(ax)
    return fig
