"""Permissions of the files xpnet writes: those of any new file of the user's.

A new model, grid, estimator or checkpoint file gets ``0o666 & ~umask`` (as
``np.save``, joblib and matplotlib's files do), and writing over a file keeps
that file's permissions.  The umask is the process's, so these tests set it in
the main process and put it back after.
"""

from __future__ import annotations

import contextlib
import os
import stat

import numpy as np
import pytest

import xpnet

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")

UMASKS = {0o022: 0o644, 0o077: 0o600}


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _model(X, y, path):
    return xpnet.fit(X, y, hidden=3, epochs=20, log_every=10).save(path)


def _grid(X, y, path):
    return xpnet.fit_many(X, y, hidden=[1, 2], epochs=20, log_every=10).save(path)


def _estimator(X, y, path):
    return xpnet.MLPClassifier((3,), max_iter=5, random_state=0).fit(X, y).save(path)


def _checkpoint(X, y, path):
    xpnet.fit(X, y, hidden=3, epochs=20, log_every=10, checkpoint=path, checkpoint_every=10)
    return path


WRITERS = {"model": _model, "grid": _grid, "estimator": _estimator, "checkpoint": _checkpoint}


@pytest.fixture
def data(moons):
    X, y = moons
    return X[:40], y[:40]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("mask", sorted(UMASKS), ids=oct)
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_new_file_has_the_mode_the_umask_gives(data, tmp_path, kind, mask):
    with _umask(mask):
        written = WRITERS[kind](*data, tmp_path / f"{kind}.npz")
        np.save(tmp_path / "plain.npy", np.zeros(2))  # what any other new file gets
    assert _mode(written) == UMASKS[mask] == _mode(tmp_path / "plain.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{kind}.npz", "plain.npy"])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("mask", sorted(UMASKS), ids=oct)
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_writing_over_a_file_keeps_its_mode(data, tmp_path, kind, mask):
    path = tmp_path / f"{kind}.npz"
    with _umask(mask):
        for mode in (0o640, 0o644):  # 644: not made private by a 077 umask
            if kind == "checkpoint":
                _rewrite_checkpoint(*data, path, mode)
            else:
                WRITERS[kind](*data, path)
                os.chmod(path, mode)
                before = os.stat(path).st_ino
                WRITERS[kind](*data, path)
                assert os.stat(path).st_ino != before  # a new file took its place
            assert _mode(path) == mode
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def _rewrite_checkpoint(X, y, path, mode):
    """A checkpointed run whose file is given ``mode`` after it is first written."""
    path.unlink(missing_ok=True)
    first: list[int] = []

    def chmod_once(i, loss):
        if path.exists() and not first:
            os.chmod(path, mode)
            first.append(os.stat(path).st_ino)

    xpnet.fit(
        X, y, hidden=3, epochs=40, log_every=10, checkpoint=path, checkpoint_every=10,
        callback=chmod_once,
    )  # fmt: skip
    assert first and os.stat(path).st_ino != first[0]  # written again after the chmod
