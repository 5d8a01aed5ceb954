"""Device memory: out-of-memory errors become xpnet.DeviceMemoryError, and predictions
go through the device in chunks of rows.

No GPU is needed: the libraries' errors are raised by hand inside the forward
pass (fake classes named as the libraries name theirs, and a real
``torch.OutOfMemoryError`` where torch is installed), and chunking is forced
by a small byte budget.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import xpnet
from xpnet import _model, _network, _steps, _target


def _named(module: str, name: str, base: type[Exception]) -> type[Exception]:
    """An exception class that calls itself ``module.name``, as a library's would."""
    return type(name, (base,), {"__module__": module})


#: Errors the libraries raise when a device runs out of memory.
OUT_OF_MEMORY = {
    "cupy": lambda: _named("cupy.cuda.memory", "OutOfMemoryError", MemoryError)(
        "Out of memory allocating 8,589,934,592 bytes (allocated so far: 0 bytes)."
    ),
    "cupy runtime": lambda: _named(
        "cupy_backends.cuda.api.runtime", "CUDARuntimeError", RuntimeError
    )("cudaErrorMemoryAllocation: out of memory"),
    "jax": lambda: _named("jax.errors", "JaxRuntimeError", RuntimeError)(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8589934592 bytes."
    ),
    "jaxlib, old name": lambda: _named("jaxlib.xla_extension", "XlaRuntimeError", RuntimeError)(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8589934592 bytes."
    ),
    "torch": lambda: _named("torch", "OutOfMemoryError", RuntimeError)(
        "CUDA out of memory. Tried to allocate 8.00 GiB."
    ),
}

#: Errors that are not about device memory, and must pass through unchanged.
OTHER_ERRORS = {
    "jax, another status": lambda: _named("jax.errors", "JaxRuntimeError", RuntimeError)(
        "INVALID_ARGUMENT: shapes do not match"
    ),
    "a plain RuntimeError": lambda: RuntimeError("out of memory"),
    "host memory": lambda: MemoryError("cannot allocate on the host"),
}


def _real_torch_error() -> Exception:
    torch = pytest.importorskip("torch")
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB.")


@pytest.mark.parametrize("library", OUT_OF_MEMORY)
def test_the_libraries_out_of_memory_errors_are_recognised(library):
    loaded = set(sys.modules)
    assert _target.is_out_of_memory(OUT_OF_MEMORY[library]())
    assert set(sys.modules) == loaded  # recognised by name: nothing imported to check


def test_torch_own_out_of_memory_error_is_recognised():
    assert _target.is_out_of_memory(_real_torch_error())


@pytest.mark.parametrize("kind", OTHER_ERRORS)
def test_other_errors_are_not_taken_for_device_memory(kind):
    assert not _target.is_out_of_memory(OTHER_ERRORS[kind]())


@pytest.fixture
def fail_in_forward(monkeypatch):
    """``fail(error)`` makes every forward pass raise ``error`` from now on."""

    def fail(error: Exception) -> None:
        def forward(*args, **kwargs):
            raise error

        monkeypatch.setattr(_network, "forward", forward)  # training's losses and steps
        monkeypatch.setattr(_model, "forward", forward)  # predictions
        monkeypatch.setattr(_steps, "_CACHE", {})  # no compiled function from before

    return fail


def _check(raised: pytest.ExceptionInfo, error: Exception) -> None:
    assert isinstance(raised.value, MemoryError)
    assert raised.value.__cause__ is error  # the library's own report stays in the chain
    message = str(raised.value)
    assert "batch_size" in message and "memory_budget" in message and "fewer rows" in message


@pytest.mark.parametrize("library", [*OUT_OF_MEMORY, "torch, real"])
def test_fit_reports_device_memory_errors(library, xb, moons, fail_in_forward):
    error = _real_torch_error() if library == "torch, real" else OUT_OF_MEMORY[library]()
    X, y = moons
    fail_in_forward(error)
    with pytest.raises(xpnet.DeviceMemoryError) as raised:
        xpnet.fit(xb.asarray(X), xb.asarray(y), epochs=5, l2=0.0123)
    _check(raised, error)


@pytest.mark.parametrize("library", ["cupy", "jax", "torch, real"])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_predict_reports_device_memory_errors(library, method, xb, moons, fail_in_forward):
    error = _real_torch_error() if library == "torch, real" else OUT_OF_MEMORY[library]()
    X, y = moons
    model = xpnet.fit(xb.asarray(X), xb.asarray(y), epochs=5)
    fail_in_forward(error)
    args = (xb.asarray(X), y) if method == "score" else (xb.asarray(X),)
    with pytest.raises(xpnet.DeviceMemoryError) as raised:
        getattr(model, method)(*args)
    _check(raised, error)


@pytest.mark.parametrize("kind", OTHER_ERRORS)
def test_other_errors_in_predict_pass_through(kind, moons, fail_in_forward):
    error = OTHER_ERRORS[kind]()
    X, y = moons
    model = xpnet.fit(X, y, epochs=5)
    fail_in_forward(error)
    with pytest.raises(type(error)) as raised:
        model.predict(X)
    assert raised.value is error


def _many_rows(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2)) * [1.0, 0.5] + [0.5, 0.25]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chunked_predictions_equal_unchunked_ones(dtype, xb, moons, monkeypatch):
    if dtype == "float64" and not _target.Target(xb.name, xb.xp, xb.device).has_float64():
        pytest.skip(f"{xb.name} has no float64 on {xb.device}")
    X, y = moons
    model = xpnet.fit(xb.asarray(X, dtype), xb.asarray(y), hidden=(5, 4), epochs=50)
    Xb = xb.asarray(_many_rows(1000), dtype)
    whole = model.predict_proba(Xb), model.predict(Xb)

    seen = []
    forward = _model.forward

    def counting(xp, params, Xt, activation):
        seen.append(Xt.shape[0])
        return forward(xp, params, Xt, activation)

    monkeypatch.setattr(_model, "forward", counting)
    itemsize = np.dtype(dtype).itemsize
    monkeypatch.setattr(_model, "PREDICT_CHUNK_BYTES", 7 * itemsize * (2 + 5 + 4 + 2 + 2 * 5))
    assert _model.chunk_rows(model) == 7
    chunked = model.predict_proba(Xb), model.predict(Xb)

    assert seen == [7] * 142 + [6] * 1 + [7] * 142 + [6]  # 1000 rows, twice
    for a, b in zip(whole, chunked, strict=True):
        assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
        assert str(_target.device_of(a)) == str(_target.device_of(b))
        a, b = xb.to_numpy(a), xb.to_numpy(b)
        on_host = _target.Target(xb.name, xb.xp, xb.device).on_host()
        if (xb.name == "jax" or not on_host) and a.dtype.kind == "f":
            # XLA's kernels, and cuBLAS's on a GPU, are chosen by operand shape: a 7-row
            # product may differ in the last bit, which the softmax carries to the probabilities
            np.testing.assert_allclose(b, a, rtol=64 * np.finfo(dtype).eps, atol=0)
        else:  # the same arithmetic row by row: the same bits
            np.testing.assert_array_equal(b, a)


def test_a_chunk_stays_within_the_byte_budget(moons):
    X, y = moons
    model = xpnet.fit(X, y, hidden=64, epochs=1)
    rows = _model.chunk_rows(model)
    per_row = 8 * (2 + 64 + 2 + 2 * 64)  # the layers' values and the widest layer's temporaries
    assert rows * per_row <= _model.PREDICT_CHUNK_BYTES < (rows + 1) * per_row
    assert math.ceil(10_000_000 / rows) < 300  # 10 million rows: a few hundred calls
    model32 = xpnet.fit(X.astype(np.float32), y, hidden=64, epochs=1)
    assert _model.chunk_rows(model32) == _model.PREDICT_CHUNK_BYTES // (per_row // 2)


def test_small_inputs_go_through_in_one_piece(moons, monkeypatch):
    X, y = moons
    model = xpnet.fit(X, y, epochs=5)
    seen = []
    forward = _model.forward
    monkeypatch.setattr(
        _model, "forward", lambda xp, p, Xt, a: seen.append(Xt.shape[0]) or forward(xp, p, Xt, a)
    )
    model.predict(X)
    assert seen == [200]
