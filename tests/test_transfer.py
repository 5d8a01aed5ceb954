"""Target.asarray between libraries: DLPack on one device, the host path otherwise.

Between NumPy, torch and JAX on the CPU, arrays move through DLPack and, where the
libraries allow, share memory with the caller's array; read-only arrays, negative
strides, layouts a library refuses and lists go by host NumPy.  Whatever the route,
the values are the same and no caller's array is written to.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet
from xpnet import _backends, _target

SMALL = dict(epochs=50, log_every=10, seed=0)


def _torch_target():
    torch = pytest.importorskip("torch")
    return torch, _target.target_for("torch", "cpu")


def _jax_target():
    jax = pytest.importorskip("jax")
    return jax, _target.target_for("jax", "cpu")


@pytest.fixture
def torch_cpu():
    return _torch_target()


@pytest.fixture
def jax_cpu():
    return _jax_target()


@pytest.fixture
def host_path(monkeypatch):
    """The names of the adapters whose ``from_host`` ran: the host path taken."""
    for name in ("numpy", "torch", "jax"):  # probe each CPU's DLPack device before spying
        if _backends.probe(name).usable:
            target = _target.target_for(name, "cpu")
            target.adapter.dlpack_device(target.device)
    calls: list[str] = []
    for cls in {type(a) for a in _backends.ADAPTERS.values()}:
        original = cls.from_host

        def spy(self, a, device, _original=original):
            calls.append(self.name)
            return _original(self, a, device)

        monkeypatch.setattr(cls, "from_host", spy)
    return calls


def _data(dtype=np.float32, shape=(64, 48)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _refused(a: np.ndarray) -> list:
    """Inputs that must go by the host: (name, input) pairs."""
    return [
        ("read-only", _frozen(a)),
        ("negative strides", a[::-1]),
        ("read-only, negative strides", _frozen(a)[::-1]),
        ("list", a.tolist()),
    ]


# -- NumPy to torch on the CPU ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("order", ["C", "F"])
def test_numpy_to_torch_shares_memory(torch_cpu, host_path, dtype, order):
    torch, target = torch_cpu
    a = np.asarray(_data(np.float64) > 0 if dtype is np.bool_ else _data(dtype), order=order)
    before = a.copy()
    out = target.asarray(a)
    assert isinstance(out, torch.Tensor) and out.device == target.device
    assert out.data_ptr() == a.ctypes.data  # no copy
    assert host_path == []
    np.testing.assert_array_equal(out.numpy(), before)
    assert a.tobytes() == before.tobytes()


def test_numpy_to_torch_shares_a_strided_view(torch_cpu):
    torch, target = torch_cpu
    base = _data(np.float64)
    a = base[:, ::2]
    out = target.asarray(a)
    assert out.data_ptr() == a.ctypes.data
    np.testing.assert_array_equal(out.numpy(), a)


def test_numpy_to_torch_casts_after_the_transfer(torch_cpu):
    torch, target = torch_cpu
    a = _data(np.float64)
    before = a.copy()
    out = target.asarray(a, torch.float32)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), before.astype(np.float32))
    assert a.tobytes() == before.tobytes()  # the cast made a new array, not a write


@pytest.mark.parametrize("case", range(4), ids=[n for n, _ in _refused(np.zeros((2, 2)))])
def test_numpy_to_torch_falls_back_to_the_host(torch_cpu, host_path, case):
    torch, target = torch_cpu
    a = _data(np.float64)
    _, x = _refused(a)[case]
    expected = np.asarray(x)
    before = expected.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "not writable" warning included
        out = target.asarray(x)
    assert host_path == ["torch"]
    assert isinstance(out, torch.Tensor) and out.device == target.device
    np.testing.assert_array_equal(out.numpy(), expected)
    if isinstance(x, np.ndarray):
        assert not np.shares_memory(out.numpy(), x)  # a copy: torch has no read-only tensors
        assert x.tobytes() == before.tobytes()


# -- NumPy to JAX on the CPU ------------------------------------------------------------------
def test_numpy_to_jax_goes_through_dlpack(jax_cpu, host_path):
    # JAX documents that from_dlpack may copy (its CPU client shares only buffers aligned to
    # 64 bytes), so the test asserts the route and the values, not shared memory.
    jax, target = jax_cpu
    a = _data(np.float32)
    before = a.copy()
    out = target.asarray(a)
    assert isinstance(out, jax.Array)
    assert out.devices() == {target.device}
    assert host_path == []
    np.testing.assert_array_equal(np.asarray(out), before)
    assert a.tobytes() == before.tobytes()


def test_numpy_to_jax_falls_back_for_layouts_it_refuses(jax_cpu, host_path):
    jax, target = jax_cpu
    a = _data(np.float32)[:, ::2]  # not compact: JAX's DLPack import refuses it
    out = target.asarray(a)
    assert host_path == ["jax"]
    np.testing.assert_array_equal(np.asarray(out), a)


@pytest.mark.parametrize("case", range(4), ids=[n for n, _ in _refused(np.zeros((2, 2)))])
def test_numpy_to_jax_falls_back_to_the_host(jax_cpu, host_path, case):
    jax, target = jax_cpu
    a = _data(np.float32)
    _, x = _refused(a)[case]
    expected = np.asarray(x)
    before = expected.copy()
    out = target.asarray(x)
    assert host_path == ["jax"]
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(np.asarray(out), expected)
    if isinstance(x, np.ndarray):
        assert x.tobytes() == before.tobytes()


# -- other pairs, and back to NumPy -----------------------------------------------------------
def test_torch_to_numpy_shares_memory(torch_cpu, host_path):
    torch, _ = torch_cpu
    t = torch.arange(12.0, dtype=torch.float64).reshape(3, 4)
    out = _target.target_for("numpy", None).asarray(t)
    assert isinstance(out, np.ndarray)
    assert out.ctypes.data == t.data_ptr()
    assert host_path == []
    np.testing.assert_array_equal(out, t.numpy())


def test_torch_that_requires_grad_goes_by_the_host(torch_cpu):
    torch, target = torch_cpu
    t = torch.ones(3, 2, requires_grad=True)  # DLPack refuses it; the host path detaches
    out = _target.target_for("numpy", None).asarray(t)
    np.testing.assert_array_equal(out, np.ones((3, 2), np.float32))


def test_jax_to_numpy(jax_cpu, host_path):
    jax, _ = jax_cpu
    with jax.default_device(jax.devices("cpu")[0]):  # JAX's default device may be a GPU
        j = jax.numpy.arange(12.0, dtype=jax.numpy.float32).reshape(3, 4)
    out = _target.target_for("numpy", None).asarray(j)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert host_path == []
    np.testing.assert_array_equal(out, np.arange(12.0, dtype=np.float32).reshape(3, 4))


def test_torch_and_jax_to_each_other(torch_cpu, jax_cpu, host_path):
    torch, to_torch = torch_cpu
    jax, to_jax = jax_cpu
    a = _data(np.float32)
    j = to_jax.asarray(torch.asarray(a.copy()))
    assert isinstance(j, jax.Array)
    np.testing.assert_array_equal(np.asarray(j), a)
    with jax.default_device(jax.devices("cpu")[0]):
        t = to_torch.asarray(jax.numpy.asarray(a))
    assert isinstance(t, torch.Tensor) and t.device == to_torch.device
    np.testing.assert_array_equal(t.numpy(), a)
    assert host_path == []


@pytest.mark.parametrize("source", ["list", "numpy", "read-only numpy", "torch", "jax"])
def test_any_source_reaches_the_backend_under_test(xb, source):
    a = _data(np.float32, (8, 5))
    if source == "list":
        x = a.tolist()
    elif source == "numpy":
        x = a.copy()
    elif source == "read-only numpy":
        x = _frozen(a)
    elif source == "torch":
        x = _torch_target()[0].asarray(a.copy())
    else:
        x = _jax_target()[0].numpy.asarray(a)
    out = _target.Target(xb.name, xb.xp, xb.device).asarray(x, xb.xp.float32)
    assert _target.adapter_of(out).name == xb.name
    assert str(_target.device_of(out)) == str(xb.device)
    np.testing.assert_array_equal(xb.to_numpy(out), a)


# -- training leaves the caller's arrays alone ------------------------------------------------
def _params(params) -> list[np.ndarray]:
    return [np.array(_target.to_host(a)) for pair in params for a in pair]


@pytest.mark.parametrize("dtype", [None, "float32"])
def test_fit_on_torch_leaves_numpy_input_alone(torch_cpu, moons, dtype):
    torch, _ = torch_cpu
    X, y = moons
    X, y = X.copy(), y.copy()
    X_before, y_before = X.copy(), y.copy()
    model = xpnet.fit(X, y, backend="torch", device="cpu", dtype=dtype, **SMALL)
    proba = model.predict_proba(X)
    pred = model.predict(X)
    assert X.tobytes() == X_before.tobytes() and y.tobytes() == y_before.tobytes()
    assert isinstance(pred, np.ndarray)

    ref = xpnet.fit(torch.asarray(X_before), y_before, dtype=dtype, **SMALL)
    assert ref.backend == model.backend == "torch"
    assert model.loss_curve == ref.loss_curve
    for mine, theirs in zip(_params(model.params), _params(ref.params), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(proba, _target.to_host(ref.predict_proba(X_before)))
    np.testing.assert_array_equal(pred, ref.predict(X_before))


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimator_on_torch_leaves_numpy_input_alone(torch_cpu, moons, solver):
    torch, _ = torch_cpu
    X, y = moons
    X, y = X.copy(), y.copy()
    weights = np.linspace(0.5, 1.5, len(y))
    before = [X.copy(), y.copy(), weights.copy()]
    settings = dict(
        hidden_layer_sizes=(5,), solver=solver, max_iter=30, random_state=0, batch_size=64
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged
        clf = xpnet.MLPClassifier(backend="torch", device="cpu", **settings)
        clf.fit(X, y, sample_weight=weights)
        pred = clf.predict(X)
        ref = xpnet.MLPClassifier(**settings).fit(
            torch.asarray(before[0]), y, sample_weight=weights
        )
    for now, then in zip([X, y, weights], before, strict=True):
        assert now.tobytes() == then.tobytes()
    assert isinstance(pred, np.ndarray)
    for mine, theirs in zip(
        clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(pred, _target.to_host(ref.predict(torch.asarray(before[0]))))
