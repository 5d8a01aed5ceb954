"""A small network's run of passes as one CUDA kernel (xpnet/_tiny.py), on the CPU.

The stand-in ``cupy`` module of benchmarks/launch_counts.py runs the kernel's NumPy twin and
counts its launches.  The twin is held to the portable step (to rounding: the portable
products sum in BLAS's order) and to a thread-by-thread transcription of the CUDA source
(bit for bit: the same partial sums and tree); the source itself is compiled by nvrtc where
it loads.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from xpnet import _init, _kernels, _network, _optim, _steps, _tiny

if "launch_counts" in sys.modules:  # loaded by tests/test_launches.py already
    launch_counts = sys.modules["launch_counts"]
else:
    _spec = importlib.util.spec_from_file_location(
        "launch_counts", Path(__file__).parents[1] / "benchmarks" / "launch_counts.py"
    )
    launch_counts = sys.modules["launch_counts"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(launch_counts)

CP = launch_counts.STAND_IN
#: Sums in another order: each array to rounding, relative to its scale.
RTOL = {"float64": 1e-12, "float32": 1e-5}


def _on_device(a: np.ndarray):
    return np.array(a).view(launch_counts._Counted)


def _problem(sizes, n, dtype, output="softmax", seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, sizes[0])
    if output == "softmax":
        Y = np.eye(sizes[-1])[rng.randint(0, sizes[-1], n)]
    elif output == "logistic":
        Y = rng.randint(0, 2, (n, sizes[-1])).astype(float)
    else:
        Y = rng.randn(n, sizes[-1])
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in _init.init_normal(sizes, seed)]
    return X.astype(dtype), Y.astype(dtype), params


def _moons(dtype):
    """The article's workload: make_moons(200, noise 0.2, seed 0), 2-3-2, seed 0."""
    from sklearn.datasets import make_moons

    X, y = make_moons(200, noise=0.20, random_state=0)
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in _init.init_normal((2, 3, 2), 0)]
    return X.astype(dtype), np.eye(2, dtype=dtype)[y], params


def _call(on_device, Xd, Yd, lr, m, activation="tanh", output="softmax", l2=0.01):
    """``_tiny.passes`` on stand-in arrays."""
    terms = dict(activation=activation, output=output, l2=l2)
    return _tiny.passes(CP, _kernels.Launcher(CP), on_device, Xd, Yd, lr, m, **terms)


def _tiny_passes(params, X, Y, lr, m, *config):
    """``_tiny.passes`` on copies of host arrays."""
    on_device = [(_on_device(W), _on_device(b)) for W, b in params]
    return _call(on_device, _on_device(X), _on_device(Y), lr, m, *config)


def _portable_passes(params, X, Y, lr, m, activation="tanh", output="softmax", l2=0.01):
    step = _steps.portable_step(xp_numpy, _optim.SGD(lr), activation, output, l2, False)
    for _ in range(m):
        params, _, _ = step(params, (), X, Y, None, lr)
    return params


def _assert_close(got, want, dtype):
    for pair, other in zip(got, want, strict=True):
        for g, w in zip(pair, other, strict=True):
            g = np.asarray(g)
            assert g.dtype == w.dtype and g.shape == w.shape
            scale = np.abs(w).max()
            np.testing.assert_allclose(g, w, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


# -- the numbers -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_article_passes_equal_the_portable_steps(dtype):
    X, Y, params = _moons(dtype)
    got = _tiny_passes(params, X, Y, 0.01, 1000)
    assert got is not None
    _assert_close(got, _portable_passes(params, X, Y, 0.01, 1000), dtype)


#: (layer sizes, rows, hidden activation, output); the last has four layers, the most.
SHAPES = [
    ((3, 5, 4), 50, "relu", "softmax"),
    ((4, 6, 5, 2), 37, "logistic", "logistic"),
    ((2, 8, 3), 300, "identity", "identity"),
    ((3, 4, 4, 4, 3), 70, "tanh", "softmax"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("sizes", "n", "activation", "output"), SHAPES)
def test_other_small_networks_equal_the_portable_steps(sizes, n, activation, output, dtype):
    X, Y, params = _problem(sizes, n, dtype, output)
    # Summed gradients: a step small for the rows keeps the run out of the chaotic regime,
    # where any rounding difference grows.
    lr = 0.1 / n
    got = _tiny_passes(params, X, Y, lr, 200, activation, output)
    assert got is not None
    _assert_close(got, _portable_passes(params, X, Y, lr, 200, activation, output), dtype)


def _kernel_by_threads(params, X, Y, lr, m, activation, output, l2, B):
    """xpnet_tiny_passes transcribed line by line, its threads run one after another
    between barriers, on one flat ``shared`` array sized as the launch sizes it (an index
    past it fails).  Returns the result and the last pass's gradient sums."""
    T = X.dtype.type
    n, L = X.shape[0], len(params)
    w = [X.shape[1], *(W.shape[1] for W, _ in params)]
    d, c = w[0], w[L]
    act_code, out_code = _tiny.ACTIVATION_CODES[activation], _tiny.OUTPUT_CODES[output]
    wofs, bofs, aofs, P, S = [], [], [], 0, 0
    for layer in range(L):
        wofs.append(P)
        bofs.append(P + w[layer] * w[layer + 1])
        P = bofs[layer] + w[layer + 1]
        aofs.append(S)
        S += w[layer + 1]
    shared = np.full(
        _tiny.shared_bytes(n, tuple(w), B, X.dtype.itemsize) // X.dtype.itemsize, np.nan, X.dtype
    )
    theta, Xs, Ys, act, partial = 0, P, P + n * d, P + n * (d + c), P + n * (d + c) + S * B

    def activate(x):
        return _network.ACTIVATION_TABLE[activation].function(np, np.asarray(x))[()]

    def slope(a):
        return _network.ACTIVATION_TABLE[activation].slope(np, np.asarray(a))[()]

    for t in range(B):
        for layer in range(L):
            W, b = (a.reshape(-1) for a in params[layer])
            for e in range(t, W.size, B):
                shared[theta + wofs[layer] + e] = W[e]
            for e in range(t, b.size, B):
                shared[theta + bofs[layer] + e] = b[e]
        for e in range(t, n * d, B):
            shared[Xs + e] = X.reshape(-1)[e]
        for e in range(t, n * c, B):
            shared[Ys + e] = Y.reshape(-1)[e]
    sums = None
    for _ in range(m):
        for t in range(B):
            for e in range(P):
                shared[partial + e * B + t] = T(0)
            for r in range(t, n, B):

                def value(layer, k, r=r, t=t):
                    if layer == 0:
                        return shared[Xs + r * d + k]
                    return shared[act + (aofs[layer - 1] + k) * B + t]

                for layer in range(L):
                    for j in range(w[layer + 1]):
                        acc = T(0)
                        for k in range(w[layer]):
                            weight = shared[theta + wofs[layer] + k * w[layer + 1] + j]
                            acc = acc + value(layer, k) * weight
                        acc = acc + shared[theta + bofs[layer] + j]
                        shared[act + (aofs[layer] + j) * B + t] = (
                            activate(acc) if layer < L - 1 else acc
                        )
                z = act + aofs[L - 1] * B + t
                if out_code == 2:
                    mx = shared[z]
                    for j in range(1, c):
                        mx = shared[z + j * B] if shared[z + j * B] > mx else mx
                    for j in range(c):
                        shared[z + j * B] = np.exp(shared[z + j * B] - mx)
                    s = _kernels.row_sum(shared[z : z + c * B : B])
                    for j in range(c):
                        shared[z + j * B] = shared[z + j * B] / s
                elif out_code == 1:
                    for j in range(c):
                        shared[z + j * B] = _network.logistic(np, shared[z + j * B])
                for j in range(c):
                    shared[z + j * B] = shared[z + j * B] - shared[Ys + r * c + j]
                for layer in range(L - 1, -1, -1):
                    delta = act + aofs[layer] * B + t
                    fan_out = w[layer + 1]
                    for j in range(fan_out):
                        p = partial + (bofs[layer] + j) * B + t
                        shared[p] = shared[p] + shared[delta + j * B]
                    for i in range(w[layer]):
                        a = value(layer, i)
                        for j in range(fan_out):
                            p = partial + (wofs[layer] + i * fan_out + j) * B + t
                            shared[p] = shared[p] + a * shared[delta + j * B]
                        if layer > 0:
                            row = theta + wofs[layer] + i * fan_out
                            s = T(0)
                            for j in range(fan_out):
                                s = s + shared[delta + j * B] * shared[row + j]
                            if act_code != 0:
                                s = s * slope(a)
                            shared[act + (aofs[layer - 1] + i) * B + t] = s
        half = B // 2
        while half > 0:
            for t in range(B):
                for k in range(t, P * half, B):
                    e, i = k // half, k % half
                    q = partial + e * B + i
                    shared[q] = shared[q] + shared[q + half]
            half //= 2
        sums = shared[partial : partial + P * B : B].copy()
        for t in range(B):
            for e in range(t, P, B):
                g = shared[partial + e * B]
                is_weight = any(wofs[k] <= e < bofs[k] for k in range(L))
                old = shared[theta + e]
                shared[theta + e] = old - lr * (g + l2 * old) if is_weight else old - lr * g
    return shared[theta : theta + P].copy(), sums


#: (layer sizes, rows, activation, output, dtype, the block's threads): a thread a row, or
#: (the article in float64, a wider layer) several rows a thread, where the shared memory
#: holds fewer threads' sums.
BY_THREADS = [
    ((2, 3, 2), 45, "tanh", "softmax", "float32", 64),
    ((3, 4, 3, 2), 40, "logistic", "logistic", "float64", 64),
    ((2, 3, 9), 33, "relu", "softmax", "float32", 64),
    ((2, 3, 2), 200, "tanh", "softmax", "float64", 128),
    ((2, 20, 2), 100, "identity", "identity", "float64", 32),
    ((3, 20, 4), 90, "tanh", "softmax", "float32", 32),
]


@pytest.mark.parametrize(("sizes", "n", "activation", "output", "dtype", "threads"), BY_THREADS)
def test_the_twin_does_what_the_cuda_source_says(sizes, n, activation, output, dtype, threads):
    """Bit for bit: the twin's result, and its gradient sums (``_kernels.block_sum`` of the
    rows' terms), against the kernel's source run thread by thread."""
    X, Y, params = _problem(sizes, n, dtype, output)
    lr, l2 = X.dtype.type(0.01), X.dtype.type(0.01)
    B = _tiny.threads_for(n, sizes, X.dtype.itemsize)
    assert B == threads
    by_threads, sums = _kernel_by_threads(params, X, Y, lr, 2, activation, output, l2, B)
    got = _tiny_passes(params, X, Y, 0.01, 2, activation, output)
    np.testing.assert_array_equal(np.concatenate([np.ravel(a) for p in got for a in p]), by_threads)
    once = [
        (np.asarray(W), np.asarray(b))
        for W, b in _tiny_passes(params, X, Y, 0.01, 1, activation, output)
    ]
    terms = _tiny.row_terms(once, X, Y, activation, output)
    np.testing.assert_array_equal(_kernels.block_sum(terms, B), sums)


def test_the_rows_terms_sum_to_the_gradient():
    X, Y, params = _problem((3, 4, 3, 2), 40, "float64", "logistic")
    terms = _tiny.row_terms(params, X, Y, "logistic", "logistic")
    grads = _network.gradients(
        xp_numpy, params, X, Y, activation="logistic", output="logistic", l2=0.0
    )
    want = np.concatenate([np.ravel(a) for pair in grads for a in pair])
    np.testing.assert_allclose(terms.sum(axis=0), want, rtol=1e-13, atol=1e-13)


# -- one launch, new arrays ------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 1000])
def test_a_run_is_one_launch_and_no_sync(m):
    X, Y, params = _moons("float64")
    on_device = [(_on_device(W), _on_device(b)) for W, b in params]
    Xd, Yd = _on_device(X), _on_device(Y)
    count = launch_counts.count_cupy_stand_in(lambda: _call(on_device, Xd, Yd, 0.01, m))
    assert (count.launches, count.syncs) == (1, 0), count.operations


def test_the_benchmarks_w1_run_is_one_launch():
    count = launch_counts.cupy_w1_run()
    assert (count.launches, count.syncs) == (1, 0), count.operations


def test_the_inputs_are_never_written_and_the_result_is_new():
    X, Y, params = _moons("float64")
    on_device = [(_on_device(W), _on_device(b)) for W, b in params]
    Xd, Yd = _on_device(X), _on_device(Y)
    before = [np.array(a) for a in (Xd, Yd, *(a for pair in on_device for a in pair))]
    got = _call(on_device, Xd, Yd, 0.01, 5)
    after = [Xd, Yd, *(a for pair in on_device for a in pair)]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    flat = got[0][0]
    while flat.base is not None:  # the vector the views are of
        flat = flat.base
    assert flat.shape == (17,) and all(np.shares_memory(a, flat) for pair in got for a in pair)
    assert not any(np.shares_memory(a, flat) for a in after)
    unchanged = _call(on_device, Xd, Yd, 0.01, 0)
    for pair, other in zip(unchanged, params, strict=True):
        for a, b in zip(pair, other, strict=True):
            np.testing.assert_array_equal(a, b)


# -- what it does not serve ------------------------------------------------------------------
def test_the_article_fits_and_the_bound_is_the_shared_memory():
    assert _tiny.threads_for(200, (2, 3, 2), 8) == 128  # 256 threads' sums do not fit
    assert _tiny.threads_for(200, (2, 3, 2), 4) == 256
    assert _tiny.shared_bytes(200, (2, 3, 2), 128, 8) <= _tiny.SHARED_BUDGET
    assert _tiny.shared_bytes(200, (2, 3, 2), 256, 8) > _tiny.SHARED_BUDGET
    assert _tiny.threads_for(1355, (2, 3, 2), 8) == 32
    assert _tiny.threads_for(1356, (2, 3, 2), 8) is None  # too many rows
    assert _tiny.threads_for(200, (2, 26, 2), 8) == 32
    assert _tiny.threads_for(200, (2, 27, 2), 8) is None  # too many units


@pytest.mark.parametrize(
    "case",
    ["wide", "deep", "rows", "activation", "output", "float16", "mixed", "strided", "lr array"],
)
def test_none_where_it_does_not_serve(case):
    sizes, n, dtype = (2, 3, 2), 200, "float64"
    activation, output, lr = "tanh", "softmax", 0.01
    if case == "wide":
        sizes = (2, 100, 2)
    elif case == "deep":
        sizes = (2, 3, 3, 3, 3, 2)
    elif case == "rows":
        n = 5000
    elif case == "float16":
        dtype = "float16"
    elif case == "activation":
        activation = "softplus"
    elif case == "output":
        output = "exp"
    X, Y, params = _problem(sizes, n, dtype)
    Xd, Yd = _on_device(X), _on_device(Y)
    if case == "mixed":
        Yd = _on_device(Y.astype("float32"))
    elif case == "strided":
        Xd = _on_device(np.asfortranarray(X))
    elif case == "lr array":
        lr = np.full((1,), 0.01)
    on_device = [(_on_device(W), _on_device(b)) for W, b in params]
    config = (activation, output)
    count = launch_counts.count_cupy_stand_in(lambda: _call(on_device, Xd, Yd, lr, 3, *config))
    got = _call(on_device, Xd, Yd, lr, 3, *config)
    assert got is None and count.launches == 0


# -- the CUDA source -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_kernel_compiles(dtype):
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        program = nvrtc.createProgram(_tiny._PASSES.code(dtype), "tiny.cu", (), ())
    except Exception as error:  # the module imports, the library does not load
        pytest.skip(f"nvrtc does not load: {error}")
    try:
        nvrtc.compileProgram(program, _kernels.OPTIONS + ("-arch=compute_90",))
    except Exception:
        pytest.fail(nvrtc.getProgramLog(program))
