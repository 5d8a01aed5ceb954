"""Files written by an earlier xpnet (64cad81, before its modules were reorganised) still
load and predict exactly as they did: see tests/data/legacy/make.py, which wrote them."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons, make_regression

import xpnet

LEGACY = Path(__file__).parent / "data" / "legacy"
ON_NUMPY = os.environ.get("XPNET_TEST_BACKEND", "numpy") == "numpy"
pytestmark = pytest.mark.skipif(not ON_NUMPY, reason="host files and NumPy predictions: run once")


@pytest.fixture(scope="module")
def expected():
    with np.load(LEGACY / "predictions.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def data():
    return make_moons(200, noise=0.20, random_state=0), make_regression(120, 4, random_state=0)


def test_model_grid_and_estimators_predict_as_written(expected, data):
    (X, _), (Xr, _) = data
    model = xpnet.load(LEGACY / "model.npz")
    assert isinstance(model, xpnet.Model) and model.hidden == (3,)
    np.testing.assert_array_equal(model.predict_proba(X), expected["model"])
    grid = xpnet.load(LEGACY / "grid.npz")
    assert isinstance(grid, xpnet.ModelGrid) and len(grid) == 3
    np.testing.assert_array_equal(grid.predict_proba(X), expected["grid"])
    clf = xpnet.load(LEGACY / "classifier.npz")
    assert isinstance(clf, xpnet.MLPClassifier)
    np.testing.assert_array_equal(clf.predict_proba(X), expected["classifier"])
    reg = xpnet.load(LEGACY / "regressor.npz")
    assert isinstance(reg, xpnet.MLPRegressor)
    np.testing.assert_array_equal(reg.predict(Xr), expected["regressor"])


def test_pickled_model_predicts_as_written(expected, data):
    (X, _), _ = data
    with open(LEGACY / "model.pickle", "rb") as f:
        model = pickle.load(f)  # noqa: S301 - our own test file
    np.testing.assert_array_equal(model.predict_proba(X), expected["model"])


def test_finished_checkpoints_give_their_models_back(expected, data, tmp_path):
    (X, y), _ = data
    shutil.copy(LEGACY / "checkpoint.npz", tmp_path / "checkpoint.npz")
    shutil.copy(LEGACY / "clf_checkpoint.npz", tmp_path / "clf_checkpoint.npz")
    passes = []
    model = xpnet.fit(
        X, y, hidden=4, epochs=400, checkpoint=tmp_path / "checkpoint.npz",
        callback=lambda i, loss: passes.append(i),
    )  # fmt: skip
    assert passes == []  # finished: nothing left to train
    np.testing.assert_array_equal(model.predict_proba(X), expected["checkpoint"])
    # their identity held epochs (now no part of it): more epochs continue them
    longer = xpnet.fit(X, y, hidden=4, epochs=450, checkpoint=tmp_path / "checkpoint.npz")
    assert [i for i, _ in longer.loss_curve] == [0, 449]
    clf = xpnet.MLPClassifier(
        hidden_layer_sizes=(5,), max_iter=12, random_state=0,
        checkpoint=tmp_path / "clf_checkpoint.npz",
    ).fit(X, y)  # fmt: skip
    np.testing.assert_array_equal(clf.predict_proba(X), expected["clf_checkpoint"])
