"""Checkpoints: a :class:`~xpnet._train.TrainState` in a file, tied to the run that wrote it.

The training state is plain data (arrays, numbers, tuples), so a checkpoint is
that data in one of xpnet's files (:mod:`xpnet._files`): the arrays on the
host, and the nesting of lists and tuples described in the JSON.  Next to it
goes the run's *identity*: a hash of the training data and the settings that
decide every number.  A run resumes only from a checkpoint of the same
identity; any other is refused, never mixed in.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from . import _files, _target
from ._codec import Invalid
from ._exceptions import CheckpointMismatchError, ModelFileError
from ._optim import OptState, opt_state_from
from ._target import host_tree, moved
from ._train import Shuffle, TrainState

# The fields of TrainState that live on the training device.
_ON_DEVICE = ("params", "best_params")


def data_hash(*arrays: Any) -> str:
    """A SHA-256 of arrays (any backend; None allowed): their shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            digest.update(b"none;")
            continue
        if hasattr(a, "toarray"):  # SciPy sparse: its dense values decide the numbers
            a = a.toarray()
        host = np.ascontiguousarray(_target.to_host(a))
        if host.dtype.kind in "OU":  # labels: their text decides the classes
            host = np.array([repr(v) for v in host.tolist()]).astype("U")
        digest.update(f"{host.shape};{host.dtype.str};".encode())
        digest.update(host.tobytes())
    return digest.hexdigest()


#: The settings that say how long a run goes on, not what its passes compute: they are no
#: part of its identity, so that a run continues to a larger count (checkpoints of xpnet
#: 0.x held them; they are ignored there too).
LENGTHS = ("epochs", "max_iter")


def identity(data: str, settings: dict) -> dict:
    """A run's identity: the hash of its data, and its settings (but :data:`LENGTHS`) as
    JSON-able values."""
    kept = {k: _plain(v) for k, v in sorted(settings.items()) if k not in LENGTHS}
    return {"data": data, "settings": kept}


def check_length(path: Any, done: int, total: int, name: str, unit: str) -> None:
    """Raise CheckpointMismatchError when the checkpoint at ``path``, ``done`` ``unit``s in,
    is past the ``total`` that ``name`` asks for: a run continues, it never goes back."""
    if done > total:
        raise CheckpointMismatchError(
            f"{path} holds a run of {done} {unit}, more than {name}={total}: a checkpoint "
            f"continues a run to a larger {name}, it cannot shorten one. Pass {name}={done} "
            f"or more to get its model (the same call returns it, or trains on), or delete "
            f"{path}, or pass another checkpoint path, to start afresh"
        )


def _plain(value: Any) -> Any:
    """A JSON-able form of a setting (tuples become lists, other objects their repr)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def save(path: str | os.PathLike, state: TrainState, run: dict) -> None:
    """Write ``state`` and the run's identity to ``path``, atomically."""
    host = state._replace(
        params=host_tree(state.params),
        opt=state.opt._replace(slots=host_tree(state.opt.slots)),
        best_params=host_tree(state.best_params),
        shuffle=None if state.shuffle is None else tuple(state.shuffle),
    )
    encode = _target.encoder(OptState)  # arrays apart, the nesting in JSON
    fields = {name: encode(getattr(host, name), f"state.{name}") for name in TrainState._fields}
    _files.write(path, "checkpoint", {"run": run, "state": fields}, encode.arrays)


def load(path: str | os.PathLike, run: dict, target: _target.Target, dtype: Any) -> Any:
    """The state saved at ``path`` (device arrays on ``target``), or None without a file.

    Raises
    ------
    CheckpointMismatchError
        When the checkpoint was written by a run of other data or settings.
    ModelFileError
        When the file is not a readable checkpoint.
    """
    if not os.path.exists(path):
        return None
    archive = _files.read(path, "checkpoint")
    _check_identity(path, archive.meta.get("run"), run)
    fields = archive.meta.get("state")
    try:
        if not isinstance(fields, dict) or set(fields) != set(TrainState._fields):
            raise Invalid("its training state does not have the fields of one")
        decode = _target.decoder(archive.arrays, OptState=opt_state_from)
        values = {name: decode(fields[name], f"state.{name}") for name in TrainState._fields}
        if not isinstance(values["opt"], OptState):
            raise Invalid("state.opt is not an optimizer state")
        shuffle = values["shuffle"]
        values["shuffle"] = None if shuffle is None else Shuffle(*shuffle)
    except (Invalid, TypeError) as exc:
        raise ModelFileError(f"{path} is not a valid xpnet checkpoint: {exc}") from None
    opt = values["opt"]
    values["opt"] = opt._replace(slots=moved(target, opt.slots, dtype))
    for name in _ON_DEVICE:
        values[name] = moved(target, values[name], dtype)
    return TrainState(**values)


def _check_identity(path: Any, saved: Any, run: dict) -> None:
    if not isinstance(saved, dict) or set(saved) != {"data", "settings"}:
        raise ModelFileError(f"{path} is a checkpoint without the identity of its run")
    advice = f"delete {path}, or pass another checkpoint path, to start afresh"
    before, now = saved["settings"], run["settings"]
    if isinstance(before, dict):
        before = {k: v for k, v in before.items() if k not in LENGTHS}
    if before != now:
        if not isinstance(before, dict):
            raise ModelFileError(f"{path} is a checkpoint without the settings of its run")
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        what = "; ".join(f"{k} was {before.get(k)!r}, now {now.get(k)!r}" for k in changed)
        raise CheckpointMismatchError(
            f"{path} was written by a run with other settings ({what}): it cannot be "
            f"resumed with these; {advice}"
        )
    if saved["data"] != run["data"]:
        raise CheckpointMismatchError(
            f"{path} was written by a run on other data (X, y or sample weights differ): "
            f"it cannot be resumed on this data; {advice}"
        )


def explain(meta: dict, path: Any) -> str:
    """What a checkpoint file holds and how to get its model: for :func:`xpnet.load`, which
    reads models, not checkpoints (a checkpoint has no classes, only its data's hash)."""
    run = meta.get("run") if isinstance(meta.get("run"), dict) else {}
    settings = run.get("settings") if isinstance(run.get("settings"), dict) else {}
    state = meta.get("state") if isinstance(meta.get("state"), dict) else {}
    done = state.get("epoch")
    done = done if isinstance(done, int) and not isinstance(done, bool) else None
    estimator = settings.get("estimator")
    if isinstance(estimator, str):
        what, length, unit = f"{estimator}.fit", "max_iter", "epochs"
        call = f"{estimator}(..., checkpoint={str(path)!r}).fit(X, y)"
        result = "the fitted estimator"
    else:
        what, length, unit = "xpnet.fit", "epochs", "passes"
        call = f"xpnet.fit(X, y, ..., checkpoint={str(path)!r})"
        result = "the trained model"
    shown = ", ".join(
        f"{k}={v!r}" for k, v in settings.items() if k not in ("kind", "estimator", *LENGTHS)
    )
    after = f" after {done} {unit}" if done is not None else ""
    shown = f" (its settings: {shown})" if shown else ""
    return (
        f"{path} is a checkpoint of {what} (a training state{after}), not a model: it holds "
        f"no classes, only a hash of the data. To get {result}, make the same call again "
        f"with the same data, settings and checkpoint: {call}{shown}. "
        f"It returns {result} at once when the run is finished, and trains on when it was "
        f"interrupted or when {length} is raised"
    )
