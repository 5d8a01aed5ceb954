"""Model files (``save`` / ``xpnet.load``) and pickles, on the backend under test.

Round trips keep every prediction; a file from another backend, or from a GPU
on a machine without one, loads on what is there; and every damaged, foreign
or hostile file is refused with a ModelFileError that says what is wrong,
without executing anything in it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import xpnet
from xpnet import _codec, _files, _target

# -- helpers --------------------------------------------------------------------------------


def _fit(xb, moons, dtype="float64", **settings):
    X, y = moons
    settings = dict(dict(hidden=3, epochs=200, log_every=50), **settings)
    return xpnet.fit(xb.asarray(X, dtype), y, **settings)


def _numpy_model(moons):
    """A small model trained on NumPy: the file tests do not depend on the backend."""
    X, y = moons
    return xpnet.fit(X, y, hidden=3, epochs=50, log_every=10)


def _same_model(loaded, model):
    """Everything but the device-bound parameters equal; the parameters equal on the host."""
    assert type(loaded) is xpnet.Model
    for name in ("hidden", "activation", "l2", "n_features_in_", "output", "settings", "stopped"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert [type(i) for i, _ in loaded.loss_curve] == [int] * len(model.loss_curve)
    np.testing.assert_array_equal(np.array(loaded.loss_curve), np.array(model.loss_curve))  # nan
    assert loaded.classes_.dtype == model.classes_.dtype
    assert [type(c) for c in loaded.classes_.tolist()] == [type(c) for c in model.classes_.tolist()]
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert len(loaded.params) == len(model.params)
    for (W, b), (W0, b0) in zip(loaded.params, model.params, strict=True):
        for a, a0 in ((W, W0), (b, b0)):
            a, a0 = _target.to_host(a), _target.to_host(a0)
            assert a.dtype == a0.dtype
            np.testing.assert_array_equal(a, a0)


def _same_predictions(xb, loaded, model, X, exact=True):
    Xb = xb.asarray(X)
    check = np.testing.assert_array_equal if exact else np.testing.assert_allclose
    proba = loaded.predict_proba(Xb)
    assert _target.adapter_of(proba).name == xb.name  # results follow the caller's data
    check(xb.to_numpy(proba), xb.to_numpy(model.predict_proba(Xb)))
    np.testing.assert_array_equal(
        _target.to_host(loaded.predict(Xb)), _target.to_host(model.predict(Xb))
    )


def _rewrite(path, change):
    """Read an xpnet file, let ``change(meta, arrays)`` alter it, and write it back."""
    archive = _files.read(path, _files.KINDS)
    meta = {k: v for k, v in archive.meta.items() if k not in ("format", "format_name", "kind")}
    meta.pop("xpnet", None)
    arrays = dict(archive.arrays)
    change(meta, arrays)
    _files.write(path, archive.kind, meta, arrays)


def _quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _quiet_partial_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.partial_fit(*args, **kwargs)


def _same_params(a, b):
    """``get_params()`` equal, a RandomState compared by its generator state."""
    pa, pb = a.get_params(), b.get_params()
    assert set(pa) == set(pb)
    for name in pa:
        if isinstance(pa[name], np.random.RandomState):
            sa, sb = pa[name].get_state(), pb[name].get_state()
            assert sa[0] == sb[0] and sa[2:] == sb[2:], name
            np.testing.assert_array_equal(sa[1], sb[1])
        else:
            assert pa[name] == pb[name], name
            assert type(pa[name]) is type(pb[name]), name


def _usable(backend, device):
    info = xpnet.available_backends().get(backend)
    return info is not None and info.usable and device in info.devices


# -- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_model_round_trips_through_a_file(xb, moons, tmp_path, dtype):
    model = _fit(xb, moons, dtype)
    path = tmp_path / "moons.model"
    assert model.save(path) == path
    assert os.listdir(tmp_path) == ["moons.model"]  # the name as given, no temporary left
    loaded = xpnet.load(path)
    _same_model(loaded, model)
    assert loaded.backend == xb.name and str(loaded.device) == str(xb.device)
    assert loaded.dtype == model.dtype
    _same_predictions(xb, loaded, model, moons[0])
    Xb, y = xb.asarray(moons[0]), moons[1]
    assert loaded.score(Xb, y) == model.score(Xb, y) and loaded.loss(Xb, y) == model.loss(Xb, y)


def test_a_string_path_and_a_deep_model(xb, moons, tmp_path):
    model = _fit(xb, moons, hidden=(4, 3), activation="relu")
    path = str(tmp_path / "deep.npz")
    model.save(path)
    loaded = xpnet.load(path)
    assert loaded.hidden == (4, 3) and loaded.activation == "relu"
    _same_predictions(xb, loaded, model, moons[0])


LABELS = {
    "int8": np.array([-3, 7], dtype=np.int8),
    "bool": np.array([False, True]),
    "float": np.array([-1.0, 2.0]),
    "unicode": np.array(["cat", "dog"]),
    "object strings": np.array(["cat", "dog"], dtype=object),
    "bytes": np.array([b"no", b"yes"]),
    "object numbers": np.array([3, 2.0], dtype=object),
}


@pytest.mark.parametrize("kind", list(LABELS))
def test_labels_of_every_kind_come_back_as_they_were(xb, moons, tmp_path, kind):
    X, y = moons
    labels = LABELS[kind][y]
    model = xpnet.fit(xb.asarray(X), labels, hidden=3, epochs=100)
    model.save(tmp_path / "m")
    loaded = xpnet.load(tmp_path / "m")
    _same_model(loaded, model)
    _same_predictions(xb, loaded, model, X)
    assert loaded.score(xb.asarray(X), labels) == model.score(xb.asarray(X), labels)


def test_object_labels_keep_each_value_and_its_type():
    """Object arrays of labels (scikit-learn keeps them for object y) are stored by value."""
    for values in (["a", "bc"], [3, 2.5, True, "x"], [], [np.int64(4), np.float32(0.5)]):
        labels = np.empty(len(values), dtype=object)
        labels[:] = values
        arrays = {}
        node = _codec.labels_node(labels, "classes", arrays)
        back = _codec.labels_from_node(json.loads(json.dumps(node)), arrays, "classes")
        assert back.dtype == object and back.tolist() == [
            v.item() if isinstance(v, np.generic) else v for v in values
        ]
        assert [type(v) for v in back.tolist()] == [
            type(v.item() if isinstance(v, np.generic) else v) for v in values
        ]
    labels = np.empty(2, dtype=object)
    labels[:] = [(0, "a"), (1, "b")]
    with pytest.raises(TypeError, match="label of type tuple"):
        _codec.labels_node(labels, "classes", {})


def test_a_grid_round_trips_through_a_file(xb, moons, tmp_path):
    X, y = moons
    Xb = xb.asarray(X)
    grid = xpnet.fit_many(
        Xb, y, hidden=[1, 3, (3, 2)], lr=[0.001, 5.0], l2=0.0, activation="identity",
        epochs=200, log_every=20, validation=(X[:50], y[:50]),
    )  # fmt: skip
    assert any(r["status"] != "ok" for r in grid.results)  # a diverged model among them
    grid.save(tmp_path / "grid")
    loaded = xpnet.load(tmp_path / "grid")
    assert type(loaded) is xpnet.ModelGrid and len(loaded) == len(grid)
    assert loaded.groups == grid.groups and loaded.layouts == grid.layouts
    assert str(loaded.results) == str(grid.results)
    for row, row0 in zip(loaded.results, grid.results, strict=True):
        assert row.keys() == row0.keys()
        for k in row:
            same = row[k] == row0[k] or (isinstance(row[k], float) and math.isnan(row0[k]))
            assert same and type(row[k]) is type(row0[k]), k
    for m, m0 in zip(loaded, grid, strict=True):
        _same_model(m, m0)
        assert m.backend == xb.name
    for reduce in ("vote", "mean"):
        np.testing.assert_array_equal(
            xb.to_numpy(loaded.predict(Xb, reduce=reduce)), xb.to_numpy(grid.predict(Xb, reduce))
        )
    np.testing.assert_array_equal(
        xb.to_numpy(loaded.predict_proba(Xb)), xb.to_numpy(grid.predict_proba(Xb))
    )


def test_an_empty_grid_round_trips(moons, tmp_path):
    grid = xpnet.fit_many(*moons, hidden=[1, 2], epochs=5)[2:]
    grid.save(tmp_path / "empty")
    loaded = xpnet.load(tmp_path / "empty")
    assert type(loaded) is xpnet.ModelGrid and len(loaded) == 0


# -- between backends -------------------------------------------------------------------------


def test_a_model_saved_here_loads_on_numpy_and_back(xb, moons, tmp_path):
    X, y = moons
    model = _fit(xb, moons)
    model.save(tmp_path / "here")
    on_numpy = xpnet.load(tmp_path / "here", backend="numpy")
    assert on_numpy.backend == "numpy"
    _same_model(on_numpy, model)
    here = xb.to_numpy(model.predict_proba(xb.asarray(X)))
    np.testing.assert_allclose(on_numpy.predict_proba(X), here, rtol=1e-12)
    np.testing.assert_array_equal(on_numpy.predict(X), xb.to_numpy(model.predict(xb.asarray(X))))

    trained = xpnet.fit(X, y, hidden=3, epochs=200)
    trained.save(tmp_path / "numpy")
    moved = xpnet.load(tmp_path / "numpy", backend=xb.name, device=xb.device)
    assert moved.backend == xb.name and str(moved.device) == str(xb.device)
    _same_model(moved, trained)
    proba = moved.predict_proba(xb.asarray(X))
    assert _target.adapter_of(proba).name == xb.name
    np.testing.assert_allclose(xb.to_numpy(proba), trained.predict_proba(X), rtol=1e-12)
    assert xpnet.load(tmp_path / "numpy").backend == "numpy"  # None: where it was saved from


@pytest.mark.parametrize(
    ("backend", "device"), [("cupy", "cuda:0"), ("torch", "cuda:0"), ("mlx", "gpu")]
)
def test_a_model_saved_on_a_gpu_loads_where_there_is_none(moons, tmp_path, backend, device):
    X, _ = moons
    model = _numpy_model(moons)
    path = model.save(tmp_path / "gpu")

    def from_gpu(meta, arrays):
        meta["model"].update(backend=backend, device=device)

    _rewrite(path, from_gpu)
    if _usable(backend, device):  # a machine with that GPU: it goes back there
        loaded = xpnet.load(path)
        assert loaded.backend == backend
    else:
        with pytest.warns(xpnet.BackendFallbackWarning, match=f"{backend!r}"):
            loaded = xpnet.load(path)
        assert loaded.backend == "numpy"
        with pytest.raises(xpnet.BackendUnavailableError):
            xpnet.load(path, fallback=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a backend named here: no word about the GPU
            assert xpnet.load(path, backend="numpy").backend == "numpy"
    np.testing.assert_allclose(
        _target.to_host(loaded.predict_proba(X)), model.predict_proba(X), rtol=1e-12
    )


# -- estimators -----------------------------------------------------------------------------


def _estimators(moons):
    X, y = moons
    names = np.array(["left", "right"])[y]
    return {
        "classifier": (xpnet.MLPClassifier((5,), max_iter=30, random_state=0), names),
        "sgd classifier": (
            xpnet.MLPClassifier(
                (4, 3), solver="sgd", max_iter=20, random_state=1, early_stopping=True
            ),
            y,
        ),
        "lbfgs classifier": (
            xpnet.MLPClassifier((5,), solver="lbfgs", max_iter=30, random_state=0),
            names.astype(object),
        ),
        "regressor": (
            xpnet.MLPRegressor(hidden_layer_sizes=(6,), max_iter=30, random_state=0),
            X[:, 0] + y,
        ),
    }


@pytest.mark.parametrize("case", ["classifier", "sgd classifier", "lbfgs classifier", "regressor"])
def test_an_estimator_round_trips_and_trains_on(xb, moons, tmp_path, case):
    X, _ = moons
    est, y = _estimators(moons)[case]
    Xb = xb.asarray(X)
    _quiet_fit(est, Xb, y)
    est.save(tmp_path / "est")
    loaded = xpnet.load(tmp_path / "est")
    assert type(loaded) is type(est)
    _same_params(loaded, est)
    for name in vars(est):
        assert name == "_random_state" or hasattr(loaded, name), name  # made afresh by fit
    for a, b in zip(loaded.coefs_ + loaded.intercepts_, est.coefs_ + est.intercepts_, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.loss_ == est.loss_ and loaded.n_iter_ == est.n_iter_
    np.testing.assert_array_equal(xb.to_numpy(loaded.predict(Xb)), xb.to_numpy(est.predict(Xb)))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.score(Xb, y) == est.score(Xb, y)
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(
            xb.to_numpy(loaded.predict_proba(Xb)), xb.to_numpy(est.predict_proba(Xb))
        )
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.classes_.dtype == est.classes_.dtype
    if est.solver != "lbfgs" and not est.early_stopping:  # partial_fit goes on where it stopped
        _quiet_partial_fit(est, Xb, y)
        _quiet_partial_fit(loaded, Xb, y)
        assert loaded._opt_state.count == est._opt_state.count
        for a, b in zip(loaded.coefs_, est.coefs_, strict=True):
            np.testing.assert_array_equal(a, b)
    for e in (est, loaded):  # and so does a warm start
        e.set_params(warm_start=True, max_iter=5)
        _quiet_fit(e, Xb, y)
    for a, b in zip(loaded.coefs_ + loaded.intercepts_, est.coefs_ + est.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    if est.solver != "lbfgs":
        assert loaded.loss_curve_ == est.loss_curve_


def test_multilabel_classifier_round_trips(tmp_path):
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(60, 5, n_classes=3, random_state=0)
    est = _quiet_fit(xpnet.MLPClassifier((4,), max_iter=20, random_state=0), X, Y)
    est.save(tmp_path / "ml")
    loaded = xpnet.load(tmp_path / "ml")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_estimator_parameters_json_cannot_hold(moons, tmp_path):
    X, y = moons
    est = _quiet_fit(
        xpnet.MLPClassifier((3,), max_iter=5, random_state=np.random.RandomState(7)), X, y
    )
    est.set_params(checkpoint=tmp_path / "ck")  # a path-like parameter (not written: set after fit)
    est.save(tmp_path / "rs")
    loaded = xpnet.load(tmp_path / "rs")
    _same_params(loaded, est)
    assert loaded.random_state is not est.random_state
    assert loaded.random_state.randint(1 << 30) == est.random_state.randint(1 << 30)
    assert loaded.get_params()["checkpoint"] == tmp_path / "ck"

    est.set_params(random_state=object())  # not a parameter an estimator takes: refused, named
    with pytest.raises(TypeError, match=r"params\.random_state .* cannot be stored"):
        est.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_torch_device_parameter_comes_back_as_a_torch_device(moons, tmp_path):
    torch = pytest.importorskip("torch")
    X, y = moons
    est = xpnet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0, backend="torch",
                             device=torch.device("cpu"))  # fmt: skip
    _quiet_fit(est, X, y.astype(float))
    est.save(tmp_path / "t")
    loaded = xpnet.load(tmp_path / "t")
    assert loaded.get_params()["device"] == torch.device("cpu")
    _same_params(loaded, est)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    moved = xpnet.load(tmp_path / "t", backend="numpy")  # a backend named: the parameter changes
    assert moved.backend == "numpy"


def test_feature_names_come_back(moons, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = moons
    frame = pd.DataFrame(X, columns=["width", "height"])
    est = _quiet_fit(xpnet.MLPClassifier((3,), max_iter=5, random_state=0), frame, y)
    est.save(tmp_path / "named")
    loaded = xpnet.load(tmp_path / "named")
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same names: no warning about them
        np.testing.assert_array_equal(loaded.predict(frame), est.predict(frame))
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(frame.rename(columns={"width": "w"}))


def test_an_unfitted_estimator_is_not_saved(tmp_path):
    with pytest.raises(NotFittedError):
        xpnet.MLPClassifier().save(tmp_path / "nothing")
    assert os.listdir(tmp_path) == []


# -- pickles ----------------------------------------------------------------------------------


def test_a_model_pickles_and_copies(xb, moons, tmp_path):
    model = _fit(xb, moons)
    for copied in (
        pickle.loads(pickle.dumps(model)),
        joblib.load(joblib.dump(model, tmp_path / "m.joblib")[0]),
        copy.deepcopy(model),
    ):
        _same_model(copied, model)
        assert copied.backend == xb.name and str(copied.device) == str(xb.device)
        _same_predictions(xb, copied, model, moons[0])


def test_a_pickled_model_from_a_gpu_loads_on_numpy(moons):
    model = _numpy_model(moons)
    state = model.__getstate__()
    state["meta"]["backend"], state["meta"]["device"] = "cupy", "cuda:7"
    if _usable("cupy", "cuda:7"):
        pytest.skip("this machine has the GPU")
    copied = xpnet.Model.__new__(xpnet.Model)
    with pytest.warns(xpnet.BackendFallbackWarning, match="'cupy'"):
        copied.__setstate__(state)
    assert copied.backend == "numpy"
    np.testing.assert_array_equal(copied.predict_proba(moons[0]), model.predict_proba(moons[0]))


def test_a_damaged_pickled_state_is_refused(moons):
    model = _numpy_model(moons)
    state = model.__getstate__()
    state["arrays"]["W0"] = state["arrays"]["W0"][:, :2]
    with pytest.raises(xpnet.ModelFileError, match=r"pickled xpnet.Model .* W0 has shape \(2, 2\)"):
        pickle.loads(pickle.dumps(model)).__setstate__(state)
    state = model.__getstate__()
    state["xpnet_model_state"] = 99
    with pytest.raises(xpnet.ModelFileError, match="newer xpnet"):
        xpnet.Model.__new__(xpnet.Model).__setstate__(state)


def test_a_grid_pickles(xb, moons, tmp_path):
    X, y = moons
    grid = xpnet.fit_many(xb.asarray(X), y, hidden=[1, 3], epochs=100)
    for copied in (
        pickle.loads(pickle.dumps(grid)),
        joblib.load(joblib.dump(grid, tmp_path / "g.joblib")[0]),
    ):
        assert type(copied) is xpnet.ModelGrid and copied.layouts == grid.layouts
        assert str(copied.results) == str(grid.results)
        np.testing.assert_array_equal(
            xb.to_numpy(copied.predict_proba(xb.asarray(X))),
            xb.to_numpy(grid.predict_proba(xb.asarray(X))),
        )


@pytest.mark.parametrize("case", ["classifier", "sgd classifier", "lbfgs classifier", "regressor"])
def test_an_estimator_fitted_here_pickles(xb, moons, tmp_path, case):
    X, _ = moons
    est, y = _estimators(moons)[case]
    Xb = xb.asarray(X)
    _quiet_fit(est, Xb, y)
    for copied in (
        pickle.loads(pickle.dumps(est)),
        joblib.load(joblib.dump(est, tmp_path / "e.joblib")[0]),
    ):
        assert type(copied) is type(est)
        np.testing.assert_array_equal(xb.to_numpy(copied.predict(Xb)), xb.to_numpy(est.predict(Xb)))


# -- damaged, foreign and hostile files -----------------------------------------------------


@pytest.fixture
def saved(moons, tmp_path):
    """A small model and the file it was saved to."""
    model = _numpy_model(moons)
    return model, model.save(tmp_path / "model.xpnet")


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        xpnet.load(tmp_path / "nothing.xpnet")


def test_saving_into_a_missing_directory_is_file_not_found(saved, tmp_path):
    model, _ = saved
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "no" / "such" / "m")


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_a_truncated_file_is_refused(saved, keep):
    _, path = saved
    data = path.read_bytes()
    n = keep if isinstance(keep, int) and keep >= 0 else len(data) + keep
    n = int(len(data) * keep) if isinstance(keep, float) else n
    path.write_bytes(data[:n])
    with pytest.raises(xpnet.ModelFileError, match="not an .npz archive") as err:
        xpnet.load(path)
    assert str(path) in str(err.value)


def test_a_flipped_byte_is_refused_or_harmless(saved, moons):
    """Every single flipped byte: refused, or in a field nothing reads (the same model)."""
    model, path = saved
    data = path.read_bytes()
    W0 = np.ascontiguousarray(model.params[0][0]).tobytes()
    start = data.find(W0)
    assert start > 0
    refused = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x5A
        path.write_bytes(bytes(flipped))
        try:
            loaded = xpnet.load(path)
        except xpnet.ModelFileError as exc:
            assert str(path) in str(exc)
            refused += 1
            continue
        _same_model(loaded, model)  # a timestamp, an attribute: not read
        assert not start <= i < start + len(W0), f"a flip in W0 at byte {i} went unnoticed"
    assert refused > len(data) // 2  # most bytes matter
    flipped = bytearray(data)
    flipped[start + 3] ^= 0x01  # one bit of one weight: the checksum says so
    path.write_bytes(bytes(flipped))
    with pytest.raises(xpnet.ModelFileError, match="corrupted .*CRC"):
        xpnet.load(path)


def test_random_bytes_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    for n, head in ((0, b""), (100, b""), (5000, b""), (300, b"PK\x03\x04")):
        path = tmp_path / f"random{n}"
        path.write_bytes(head + rng.bytes(n))
        with pytest.raises(xpnet.ModelFileError, match="not an .npz archive"):
            xpnet.load(path)


def test_an_npz_not_written_by_xpnet_is_refused(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, W0=np.zeros((2, 3)), b0=np.zeros(3))
    with pytest.raises(xpnet.ModelFileError, match="no xpnet description"):
        xpnet.load(path)
    np.savez(path, __meta__=np.frombuffer(b'{"format_name": "other"}', np.uint8))
    with pytest.raises(xpnet.ModelFileError, match="description is not xpnet's"):
        xpnet.load(path)
    np.savez(path, __meta__=np.frombuffer(b"\xff{not json", np.uint8))
    with pytest.raises(xpnet.ModelFileError, match="description is corrupted"):
        xpnet.load(path)


def test_a_file_of_a_newer_format_is_refused(saved, monkeypatch):
    model, path = saved
    monkeypatch.setattr(_files, "FORMAT", _files.FORMAT + 1)
    model.save(path)
    monkeypatch.undo()
    with pytest.raises(xpnet.ModelFileError, match="newer xpnet .* upgrade xpnet"):
        xpnet.load(path)


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = _files.write(tmp_path / "ck", "grid", {}, {"x": np.zeros(2)})
    with pytest.raises(xpnet.ModelFileError, match="holds an xpnet 'grid', not a model"):
        _files.read(path, ("model", "estimator"))
    path = _files.write(tmp_path / "ck", "checkpoint", {}, {"x": np.zeros(2)})
    with pytest.raises(xpnet.ModelFileError, match="is a checkpoint of xpnet.fit .*not a model"):
        xpnet.load(path)


def test_loading_a_checkpoint_says_how_to_get_its_model(moons, tmp_path):
    X, y = moons
    path = tmp_path / "run.npz"
    model = xpnet.fit(X, y, hidden=4, epochs=30, log_every=10, checkpoint=path)
    with pytest.raises(
        xpnet.ModelFileError,
        match=r"run.npz is a checkpoint of xpnet.fit \(a training state after 30 passes\), not "
        r"a model: .*make the same call again with the same data, settings and checkpoint: "
        r"xpnet.fit\(X, y, \.\.\., checkpoint='.*run.npz'\) \(its settings: .*hidden=\[4\], .*"
        r"lr=0.01.*\)\. It returns the trained model at once when the run is finished",
    ):
        xpnet.load(path)
    again = xpnet.fit(X, y, hidden=4, epochs=30, log_every=10, checkpoint=path)  # as it says
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))

    path = tmp_path / "mlp.npz"
    kw = dict(hidden_layer_sizes=(3,), max_iter=4, random_state=0, checkpoint=path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        clf = xpnet.MLPClassifier(**kw).fit(X, y)
        with pytest.raises(
            xpnet.ModelFileError,
            match=r"is a checkpoint of MLPClassifier.fit \(a training state after 4 epochs\).*"
            r"MLPClassifier\(\.\.\., checkpoint='.*mlp.npz'\)\.fit\(X, y\) .*when max_iter is "
            r"raised",
        ):
            xpnet.load(path)
        again = xpnet.MLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def _drop(name):
    def change(meta, arrays):
        del arrays[name]

    return change


def _replace(name, make):
    def change(meta, arrays):
        arrays[name] = make(arrays[name])

    return change


def _describe(**fields):
    def change(meta, arrays):
        meta["model"].update(fields)

    return change


BAD_MODELS = {
    "no W1": (_drop("W1"), "is incomplete: it lacks W1"),
    "no b0": (_drop("b0"), "is incomplete: it lacks b0"),
    "no classes": (_drop("classes"), "it lacks the array 'classes'"),
    "narrow W0": (
        _replace("W0", lambda a: a[:, :2]),
        r"W0 has shape \(2, 2\), but the layer sizes \[2, 3, 2\] need \(2, 3\)",
    ),
    "flat b1": (
        _replace("b1", lambda a: a[None, :]),
        r"b1 has shape \(1, 2\), but the layer sizes \[2, 3, 2\] need \(2,\)",
    ),
    "float16 W0": (
        _replace("W0", lambda a: a.astype(np.float16)),
        "W0 has dtype float16, but the model is float64",
    ),
    "int dtype": (_describe(dtype="int64"), "its dtype 'int64' is not float32 or float64"),
    "layers": (_describe(layers=[2, 0, 2]), "layer sizes .* not a list of at least 2 positive"),
    "three classes": (
        _replace("classes", lambda a: np.arange(3)),
        "it has 3 classes but 2 outputs",
    ),
    "activation": (_describe(activation="__import__('os')"), "its activation .* is not one of"),
    "output": (_describe(output="sigmoid"), "its output 'sigmoid' is not one of"),
    "l2": (_describe(l2="0.01"), "its l2 '0.01' is not a non-negative number"),
    "curve": (_describe(loss_curve=[[0, "x"]]), "loss curve is not a list of"),
    "no activation": (lambda meta, arrays: meta["model"].pop("activation"), "lacks activation"),
    "no model": (lambda meta, arrays: meta.pop("model"), "model description is not a JSON"),
    "unknown tag": (
        _describe(settings={"hidden": {"$": "pickle", "data": "..."}}),
        r"settings\.hidden has the tag 'pickle'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_an_inconsistent_model_file_is_refused(saved, case):
    _, path = saved
    change, message = BAD_MODELS[case]
    _rewrite(path, change)
    with pytest.raises(xpnet.ModelFileError, match=message) as err:
        xpnet.load(path)
    assert str(path) in str(err.value)


def _estimator_change(**fitted):
    def change(meta, arrays):
        meta["estimator"]["fitted"].update(fitted)

    return change


BAD_ESTIMATORS = {
    "no coefs": (
        lambda meta, arrays: meta["estimator"]["fitted"].pop("coefs_"),
        "lacks the fitted attributes coefs_",
    ),
    "wide coefs": (
        _replace("fitted.coefs_.1", lambda a: np.zeros((a.shape[0] + 1, a.shape[1]), a.dtype)),
        r"coefs_\.1 is \(6, 1\); it must be 2-D with 5 rows, from coefs_\.0",
    ),
    "missing array": (_drop("fitted.intercepts_.0"), "lacks the array 'fitted.intercepts_.0'"),
    "adam moments": (
        _replace("fitted._opt_state.slots.1.0.1", lambda a: a[:2]),
        r"_opt_state\.slots\.1\.0 has an array of \(\(2,\), dtype\('float64'\)\)",
    ),
    "dunder": (_estimator_change(__class__="MLPRegressor"), "'__class__' is not a fitted attr"),
    "method": (_estimator_change(_fit="print"), "'_fit' is not a fitted attribute"),
    "outputs": (_estimator_change(n_outputs_=3), "coefs_ end with 1 outputs, but n_outputs_ is 3"),
    "unknown parameter": (
        lambda meta, arrays: meta["estimator"]["params"].update(exec="print(1)"),
        r"parameters MLPClassifier does not take: \['exec'\]",
    ),
    "bad parameter": (
        lambda meta, arrays: meta["estimator"]["params"].update(activation="nope"),
        "its parameters are not valid: The 'activation' parameter",
    ),
    "class": (
        lambda meta, arrays: meta["estimator"].update({"class": "os.system"}),
        "it holds no MLPClassifier or MLPRegressor",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ESTIMATORS))
def test_an_inconsistent_estimator_file_is_refused(moons, tmp_path, case):
    X, y = moons
    est = _quiet_fit(xpnet.MLPClassifier((5,), max_iter=3, random_state=0), X, y)
    path = est.save(tmp_path / "est")
    change, message = BAD_ESTIMATORS[case]
    _rewrite(path, change)
    with pytest.raises(xpnet.ModelFileError, match=message):
        xpnet.load(path)


def test_a_grid_whose_rows_and_models_disagree_is_refused(moons, tmp_path):
    grid = xpnet.fit_many(*moons, hidden=[1, 2], epochs=5)
    path = grid.save(tmp_path / "grid")

    def drop_model(meta, arrays):
        meta["grid"]["models"].pop()

    _rewrite(path, drop_model)
    with pytest.raises(xpnet.ModelFileError, match="it has 1 models but 2 results rows"):
        xpnet.load(path)
    grid.save(path)
    _rewrite(path, _drop("m1.W0"))
    with pytest.raises(xpnet.ModelFileError, match="lacks m1.W0"):
        xpnet.load(path)


class _Touch:
    """Unpickling this creates the file ``marker``: what a hostile file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def _touch(marker):
    Path(marker).touch()
    return marker


def test_a_file_with_a_pickled_object_is_refused_unexecuted(saved, tmp_path):
    _, path = saved
    archive = _files.read(path, "model")
    marker = tmp_path / "executed"
    hostile = np.empty(1, dtype=object)
    hostile[0] = _Touch(marker)
    entries = {name: a for name, a in archive.arrays.items() if name != "W0"}
    meta = np.frombuffer(json.dumps(archive.meta, allow_nan=True).encode(), dtype=np.uint8)
    with open(path, "wb") as f:  # a valid xpnet file, but W0 is an object to unpickle
        np.savez(f, __meta__=meta, W0=hostile, **entries)
    with pytest.raises(xpnet.ModelFileError, match="corrupted .*Object arrays cannot be loaded"):
        xpnet.load(path)
    assert not marker.exists()
    # the payload is live: a reader that unpickles would have run it
    with np.load(path, allow_pickle=True) as npz:
        npz["W0"]
    assert marker.exists()


# -- atomic writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(saved, moons, monkeypatch, error):
    model, path = saved
    before = path.read_bytes()
    other = xpnet.fit(*moons, hidden=5, epochs=10)

    def savez_then_fail(file, *args, **kwds):
        file.write(b"PK\x03\x04 half an archive")
        raise error

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(type(error)):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    _same_model(xpnet.load(path), model)


def test_loading_a_model_file_needs_no_scikit_learn(saved):
    _, path = saved
    code = (
        "import sys, xpnet\n"
        f"m = xpnet.load({str(path)!r})\n"
        "print(type(m).__name__, 'sklearn' in sys.modules, 'scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Model", "False", "False"]
