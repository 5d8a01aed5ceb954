"""Backend selection: following the data, 'auto', the CPU fallback, the probe cache."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet
from xpnet import _backends, _files, _target

SMALL = dict(epochs=5)


def _cupy_state() -> str:
    info = _backends.probe("cupy")
    return "usable" if info.usable else ("no-device" if info.installed else "missing")


def test_backend_none_follows_the_data(xb, moons):
    X, y = moons
    model = xpnet.fit(xb.asarray(X), y, **SMALL)
    assert model.backend == xb.name
    assert str(model.device) == str(xb.device)


def test_lists_train_on_numpy(moons):
    X, y = moons
    model = xpnet.fit(X.tolist(), y.tolist(), **SMALL)
    assert model.backend == "numpy"
    assert isinstance(model.predict(X.tolist()), np.ndarray)


@pytest.mark.skipif(_cupy_state() == "usable", reason="a CUDA device is present")
@pytest.mark.parametrize("device", [None, "cuda:0"])
def test_cupy_without_a_gpu_falls_back_with_a_warning(moons, device):
    X, y = moons
    with pytest.warns(xpnet.BackendFallbackWarning, match="cupy") as record:
        model = xpnet.fit(X, y, backend="cupy", device=device, **SMALL)
    expected = "not installed" if _cupy_state() == "missing" else "CUDA"
    assert expected in str(record[0].message)
    assert "Falling back to NumPy" in str(record[0].message)
    assert model.backend == "numpy"
    assert issubclass(xpnet.BackendFallbackWarning, UserWarning)


@pytest.mark.skipif(_cupy_state() == "usable", reason="a CUDA device is present")
def test_cupy_without_a_gpu_raises_when_fallback_is_off(moons):
    X, y = moons
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on this path, only the error
        with pytest.raises(xpnet.BackendUnavailableError, match="cupy"):
            xpnet.fit(X, y, backend="cupy", fallback=False, **SMALL)
    assert issubclass(xpnet.BackendUnavailableError, RuntimeError)


def test_cupy_not_installed_falls_back(moons, monkeypatch, fresh_probe):
    # Fail xpnet's import of cupy as an absent package does.  (Blocking it in sys.modules
    # instead would also break the import of torch, which looks for cupy.)
    def no_cupy():
        raise ModuleNotFoundError("No module named 'cupy'")

    monkeypatch.setattr(_backends.ADAPTERS["cupy"], "load", no_cupy)
    X, y = moons
    with pytest.warns(xpnet.BackendFallbackWarning, match="cupy is not installed"):
        model = xpnet.fit(X, y, backend="cupy", **SMALL)
    assert model.backend == "numpy"
    with pytest.raises(xpnet.BackendUnavailableError, match="cupy is not installed"):
        xpnet.fit(X, y, backend="cupy", fallback=False, **SMALL)
    info = xpnet.available_backends()["cupy"]
    assert not info.installed and not info.usable and info.devices == ()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_dask_not_installed_falls_back(moons, monkeypatch, fresh_probe):
    def no_dask():
        raise ModuleNotFoundError("No module named 'dask'")

    monkeypatch.setattr(_backends.ADAPTERS["dask"], "load", no_dask)
    X, y = moons
    with pytest.warns(xpnet.BackendFallbackWarning, match="dask is not installed"):
        model = xpnet.fit(X, y, backend="dask", **SMALL)
    assert model.backend == "numpy"
    with pytest.warns(xpnet.BackendFallbackWarning, match="dask is not installed"):
        clf = xpnet.MLPClassifier(max_iter=5, random_state=0, backend="dask").fit(X, y)
    # Scored without dask, and trained exactly as on NumPy.
    on_numpy = xpnet.MLPClassifier(max_iter=5, random_state=0).fit(X, y)
    assert clf.score(X, y) == on_numpy.score(X, y)
    np.testing.assert_array_equal(clf.coefs_[0], on_numpy.coefs_[0])
    with pytest.raises(xpnet.BackendUnavailableError, match="dask is not installed"):
        xpnet.fit(X, y, backend="dask", fallback=False, **SMALL)


def test_a_model_trained_on_dask_loads_without_dask_and_without_a_warning(
    moons, monkeypatch, fresh_probe, tmp_path
):
    # Earlier xpnets wrote backend "dask" into the files of models trained on chunks, whose
    # parameters were NumPy arrays all along: loading one needs no dask, and warns of nothing.
    X, y = moons
    path = xpnet.fit(X, y, **SMALL).save(tmp_path / "model.npz")
    archive = _files.read(path, "model")
    _files.write(
        path,
        "model",
        {**archive.meta, "model": {**archive.meta["model"], "backend": "dask"}},
        archive.arrays,
    )

    def no_dask():
        raise ModuleNotFoundError("No module named 'dask'")

    monkeypatch.setattr(_backends.ADAPTERS["dask"], "load", no_dask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = xpnet.load(path)
    assert model.backend == "numpy"
    np.testing.assert_array_equal(model.predict(X), xpnet.load(path).predict(X))


@pytest.fixture
def fake_gpu(monkeypatch):
    """A usable CUDA device, faked: CuPy's probe says so, and its target is a stand-in
    (NumPy's namespace under CuPy's name) that nothing here computes on."""
    real_probe, real_target_for = _backends.probe, _target.target_for
    gpu = xpnet.BackendInfo("cupy", True, "faked", ("cuda:0",), None)
    stand_in = _target.Target("cupy", _backends.ADAPTERS["numpy"].namespace(), "cuda:0")

    def probe(name):
        return gpu if name == "cupy" else real_probe(name)

    def target_for(name, device):
        return stand_in if name == "cupy" else real_target_for(name, device)

    monkeypatch.setattr(_backends, "probe", probe)
    monkeypatch.setattr(_target, "target_for", target_for)


def test_auto_keeps_the_article_on_the_cpu_and_sends_w2_to_the_gpu(moons, fake_gpu):
    # The article's pass is microseconds of arithmetic: launching its ~30 kernels on a GPU
    # would cost far more.  A W2 batch is hundreds of MFLOP: the GPU.
    article = _target.resolve("auto", None, None, True, _target.Work(200, (2, 3, 2)))
    assert article.name == "numpy"
    assert "NumPy on the CPU" in article.reason and "kernel launches" in article.reason
    w2 = _target.resolve("auto", None, None, True, _target.Work(1024, (64, 256, 256, 10)))
    assert w2.name == "cupy"
    assert "CuPy on the GPU" in w2.reason and "1024 rows through 64-256-256-10" in w2.reason
    whole = _target.resolve("auto", None, None, True, _target.Work(2_000_000, (64, 256, 256, 10)))
    assert whole.name == "cupy"
    X, y = moons
    model = xpnet.fit(X, y, backend="auto", **SMALL)  # the article's network, with a "GPU"
    assert model.backend == "numpy" and model.backend_reason == article.reason
    assert xpnet.fit(X, y, backend="numpy", **SMALL).backend_reason is None  # named: obeyed


def test_auto_never_warns(moons):
    X, y = moons
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = xpnet.fit(X, y, backend="auto", **SMALL)
    assert model.backend == ("cupy" if _cupy_state() == "usable" else "numpy")


def test_auto_refuses_a_device(moons):
    X, y = moons
    with pytest.raises(ValueError, match="backend='auto'"):
        xpnet.fit(X, y, backend="auto", device="cuda:1", **SMALL)


def test_torch_cuda_without_a_gpu_falls_back(moons):
    pytest.importorskip("torch")
    if any(d.startswith("cuda") for d in _backends.probe("torch").devices):
        pytest.skip("a CUDA device is present")
    X, y = moons
    with pytest.warns(xpnet.BackendFallbackWarning, match="CUDA is not available"):
        model = xpnet.fit(X, y, backend="torch", device="cuda", **SMALL)
    assert model.backend == "numpy"


def test_the_probe_runs_once_per_process(monkeypatch, fresh_probe):
    calls = []
    adapter = _backends.ADAPTERS["numpy"]
    original = adapter.device_names
    monkeypatch.setattr(adapter, "device_names", lambda mod: calls.append(1) or original(mod))
    for _ in range(3):
        xpnet.available_backends()
        _target.resolve("numpy", None, None, True)
    assert len(calls) == 1


def test_available_backends_reports_every_backend():
    report = xpnet.available_backends()
    assert tuple(report) == xpnet.BACKENDS
    assert report["numpy"].usable and report["numpy"].devices == ("cpu",)
    for info in report.values():
        assert info.usable == (info.reason is None)
        if not info.installed:
            assert info.version is None and info.devices == ()


def test_model_reports_backend_and_device(xb, moons):
    X, y = moons
    model = xpnet.fit(X, y, backend=xb.name, device=xb.device, **SMALL)
    assert model.backend == xb.name
    assert str(model.device) == str(xb.device)
    assert xb.name in repr(model)
