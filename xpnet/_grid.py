"""The grid :func:`xpnet.fit_many` returns: its models, and their results table.

A :class:`ModelGrid` writes and reads its own record (its models' records, the
results, the groups and layouts) through xpnet's file container.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from . import _target, _validation
from ._codec import Invalid, is_int
from ._exceptions import ModelFileError
from ._model import Model, Stored, like_input

if TYPE_CHECKING:
    from ._files import Archive

#: The sweepable settings, in the order their product varies (the first slowest).
AXES = ("hidden", "seed", "lr", "l2", "activation", "epochs", "log_every")


class Results(Sequence):
    """One row per model: its settings, final loss, accuracies and status.

    Rows are dicts with the :func:`xpnet.fit` settings (``hidden``,
    ``activation``, ``epochs``, ``lr``, ``l2``, ``seed``, ``log_every``),
    ``final_loss``, ``train_accuracy``, ``validation_accuracy`` (with
    ``validation=``) and ``status`` ("ok", or "diverged by pass N": the first
    recorded pass whose loss was not finite).  Printing
    shows the settings that differ between models and the figures;
    :meth:`to_list` gives the rows (``pandas.DataFrame(results.to_list())``
    makes a data frame).
    """

    def __init__(self, rows: list[dict]) -> None:
        self._rows = [dict(r) for r in rows]

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> dict: ...
    @overload
    def __getitem__(self, i: slice) -> Results: ...
    def __getitem__(self, i: int | slice) -> dict | Results:
        if isinstance(i, slice):
            return Results(self._rows[i])
        return dict(self._rows[i])

    def to_list(self) -> list[dict]:
        """The rows, as a list of dicts (copies)."""
        return [dict(r) for r in self._rows]

    def _columns(self) -> list[str]:
        settings = [name for name in AXES if len({repr(r[name]) for r in self._rows}) > 1] or [
            "hidden"
        ]
        figures = [
            c for c in ("final_loss", "train_accuracy", "validation_accuracy") if c in self._rows[0]
        ]
        return [*settings, *figures, "status"]

    def __str__(self) -> str:
        if not self._rows:
            return "(no models)"
        columns = self._columns()
        cells = [[_cell(r[c]) for c in columns] for r in self._rows]
        widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        return "\n".join(lines)

    __repr__ = __str__


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


# -- the grid -----------------------------------------------------------------------------------
class ModelGrid(Sequence):
    """The models trained by :func:`xpnet.fit_many`, in the order of their settings.

    A sequence of ordinary :class:`xpnet.Model` objects (each with
    ``.settings``), with ``results`` (a :class:`Results` table) and ensemble
    predictions.

    Attributes
    ----------
    results : Results
        One row per model: settings, final loss, accuracies, status.
    groups : tuple of tuple of int
        The indices of the models that trained together, stack by stack.
    layouts : tuple of str
        Each group's layout: "stacked", "padded", "side_by_side" or "one_by_one".
    """

    def __init__(
        self,
        models: list[Model],
        results: Results,
        groups: tuple[tuple[int, ...], ...] = (),
        layouts: tuple[str, ...] = (),
    ) -> None:
        self._models = list(models)
        self.results = results
        self.groups = groups
        self.layouts = layouts

    def __len__(self) -> int:
        return len(self._models)

    @overload
    def __getitem__(self, i: int) -> Model: ...
    @overload
    def __getitem__(self, i: slice) -> ModelGrid: ...
    def __getitem__(self, i: int | slice) -> Model | ModelGrid:
        if isinstance(i, slice):
            return ModelGrid(self._models[i], self.results[i])
        return self._models[i]

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models)

    def __repr__(self) -> str:
        first = self._models[0] if self._models else None
        where = f" backend={first.backend!r} device={first.device!s}" if first else ""
        return f"<xpnet.ModelGrid of {len(self)} models{where}>"

    def save(self, path: str | os.PathLike) -> Path:
        """Write every model and the results to ``path``, to be read back by :func:`xpnet.load`.

        One file (an ``.npz`` archive of the parameters and a JSON
        description), written atomically as :meth:`xpnet.Model.save` writes.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write, in a directory that exists.

        Returns
        -------
        pathlib.Path
            ``path``, as written.
        """
        models, arrays = [], {}
        for k, model in enumerate(self):
            meta, more = model.record(prefix=f"m{k}.")
            models.append(meta)
            arrays.update(more)
        encode = _target.encoder()
        meta = {
            "models": models,
            "results": encode(self.results.to_list(), "results"),
            "groups": encode(tuple(self.groups), "groups"),
            "layouts": encode(tuple(self.layouts), "layouts"),
        }
        arrays.update(encode.arrays)
        from . import _files  # zipfile and json load when a file is written

        return _files.write(path, "grid", {"grid": meta}, arrays)

    @classmethod
    def from_archive(
        cls, archive: Archive, where: Any, backend: Any, device: Any, fallback: bool
    ) -> ModelGrid:
        """The grid of ``archive``, its models placed as :func:`xpnet.load` says."""
        meta = archive.meta.get("grid")
        try:
            if not isinstance(meta, dict) or not isinstance(meta.get("models"), list):
                raise Invalid("it has no list of models")
            decode = _target.decoder(archive.arrays)
            rows = decode(meta.get("results"), "results")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise Invalid("its results are not a list of rows")
            if len(rows) != len(meta["models"]):
                raise Invalid(f"it has {len(meta['models'])} models but {len(rows)} results rows")
            groups = decode(meta.get("groups", {"$": "tuple", "items": []}), "groups")
            layouts = decode(meta.get("layouts", {"$": "tuple", "items": []}), "layouts")
            if not isinstance(groups, tuple) or not all(
                isinstance(g, tuple) and all(is_int(i) for i in g) for g in groups
            ):
                raise Invalid("its groups are not tuples of model indices")
            if not isinstance(layouts, tuple) or not all(isinstance(s, str) for s in layouts):
                raise Invalid("its layouts are not strings")
            stored = []
            for k, one in enumerate(meta["models"]):
                try:
                    stored.append(Stored.read(one, archive.arrays, where, f"m{k}."))
                except Invalid as exc:
                    raise Invalid(f"model {k}: {exc}") from None
        except Invalid as exc:
            raise ModelFileError(f"{where} is not a valid xpnet grid: {exc}") from None
        models = []
        if stored:  # every model of a grid lives on one device
            first = stored[0]
            target = _target.placed(first.backend, first.device, backend, device, fallback)
            models.append(first.build(target))
            with warnings.catch_warnings():  # a dtype the backend lacks: the first model said so
                warnings.simplefilter("ignore", UserWarning)
                models += [s.build(target) for s in stored[1:]]
        return cls(models, Results(rows), groups, layouts)

    def _working(self) -> list[Model]:
        """The models that did not diverge: the ensemble."""
        working = [
            m for m, r in zip(self._models, self.results, strict=True) if r["status"] == "ok"
        ]
        if not working:
            raise ValueError("every model of this grid diverged; there is nothing to predict with")
        return working

    def predict_proba(self, X: Any, reduce: str | None = None) -> Any:
        """Class probabilities of every model, or their mean.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            From any backend, or a list.
        reduce : {None, "mean"}, default None
            None gives every model's probabilities, shape
            ``(n_models, n_samples, n_classes)``; "mean" averages the models
            that did not diverge, shape ``(n_samples, n_classes)``.

        Returns
        -------
        array
            In X's namespace, on its device, in its float dtype.

        Raises
        ------
        ValueError
            For X as :meth:`xpnet.Model.predict_proba` does, an unknown
            ``reduce``, or no model to predict with.
        """
        if reduce not in (None, "mean"):
            raise ValueError(f"reduce must be None or 'mean' for predict_proba, got {reduce!r}")
        models = self._models if reduce is None else self._working()
        if not models:
            raise ValueError("this grid holds no models; there is nothing to predict with")
        X = _validation.check_X(X, n_features=models[0].n_features_in_, when="predict")
        here = _target.target_of(X)
        each = [like_input(m.probabilities(m.outputs(X)), X, keep_float=True) for m in models]
        with here.activate():
            probas = here.xp.stack(each)
            return probas if reduce is None else here.xp.mean(probas, axis=0)

    def predict(self, X: Any, reduce: str = "vote") -> Any:
        """The ensemble's labels: a majority vote, or the class of the mean probability.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        reduce : {"vote", "mean"}, default "vote"
            "vote": each model that did not diverge votes for its predicted
            class; the most votes win, ties going to the class first in
            ``classes_``.  "mean": the class of the highest mean probability.

        Returns
        -------
        array of shape (n_samples,)
            As :meth:`xpnet.Model.predict`.

        Raises
        ------
        ValueError
            For X as :meth:`xpnet.Model.predict` does, an unknown ``reduce``,
            or no model that did not diverge.
        """
        if reduce not in ("vote", "mean"):
            raise ValueError(f"reduce must be 'vote' or 'mean' for predict, got {reduce!r}")
        models = self._working()
        first = models[0]
        X = _validation.check_X(X, n_features=first.n_features_in_, when="predict")
        here = _target.target_of(X)
        xp = here.xp
        if reduce == "mean":
            mean = self.predict_proba(X, reduce="mean")
            with here.activate():
                index = xp.argmax(mean, axis=-1)
        else:
            each = [here.asarray(m.class_index(m.outputs(X))) for m in models]
            with here.activate():
                classes = xp.arange(len(first.classes_), device=here.device)
                votes = sum(xp.astype(i[:, None] == classes[None, :], xp.int32) for i in each)
                index = xp.argmax(votes, axis=-1)  # ties: the first class
        return first.labels_of(index, X)
