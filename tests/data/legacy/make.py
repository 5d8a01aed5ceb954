"""Writes the files of tests/data/legacy/ (run once, by xpnet at commit 64cad81).

They are kept so that files written by that xpnet stay readable after the package's
modules were reorganised: tests/test_legacy_files.py loads each and checks that it
predicts exactly what it predicted when it was written (predictions.npz, also written here).

    python tests/data/legacy/make.py tests/data/legacy
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import make_moons, make_regression

import xpnet

out = Path(sys.argv[1])
X, y = make_moons(200, noise=0.20, random_state=0)
Xr, yr = make_regression(120, 4, random_state=0)

model = xpnet.fit(X, y, hidden=3, epochs=500)
model.save(out / "model.npz")
grid = xpnet.fit_many(X, y, hidden=[1, 3, 5], epochs=300)
grid.save(out / "grid.npz")
clf = xpnet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, y)
clf.save(out / "classifier.npz")
reg = xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=40, random_state=0).fit(Xr, yr)
reg.save(out / "regressor.npz")
# a finished checkpointed run: the same call again returns its model without training
ckpt = xpnet.fit(X, y, hidden=4, epochs=400, checkpoint=out / "checkpoint.npz")
clf_ckpt = xpnet.MLPClassifier(
    hidden_layer_sizes=(5,), max_iter=12, random_state=0, checkpoint=out / "clf_checkpoint.npz"
).fit(X, y)
with open(out / "model.pickle", "wb") as f:
    pickle.dump(model, f)
np.savez(
    out / "predictions.npz",
    model=model.predict_proba(X),
    grid=grid.predict_proba(X),
    classifier=clf.predict_proba(X),
    regressor=reg.predict(Xr),
    checkpoint=ckpt.predict_proba(X),
    clf_checkpoint=clf_ckpt.predict_proba(X),
)
