"""CuPy's fused step, run on the CPU: its kernels' NumPy twins stand in for the CUDA.

The step takes its ``cupy`` module as an argument; here it gets the stand-in of
benchmarks/launch_counts.py, whose ``RawKernel`` runs each kernel's twin.  So
these tests hold the fused step's arithmetic (the twins') to the portable
step's, bit for bit in the parameters, and the CUDA sources to compiling; the
GPU script checks each compiled kernel against its twin on a device.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import array_api_compat.numpy as xnp
import numpy as np
import pytest

from xpnet import _fused, _init, _kernels, _optim, _steps, _target, _train, _tree

_spec = importlib.util.spec_from_file_location(
    "launch_counts", Path(__file__).parents[1] / "benchmarks" / "launch_counts.py"
)
launch_counts = sys.modules.setdefault("launch_counts", importlib.util.module_from_spec(_spec))
if not hasattr(launch_counts, "STAND_IN"):
    _spec.loader.exec_module(launch_counts)
Counted = launch_counts._Counted

OPTIMIZERS = {
    "adam": _optim.Adam(0.01),
    "sgd": _optim.SGD(0.05),
    "nesterov": _optim.SGD(0.05, momentum=0.9, nesterov=True),
}
#: The reported loss is summed over rows and weights in another order than NumPy's.
LOSS_RTOL = {"float32": 1e-5, "float64": 1e-13}


def _counted(tree):
    return _tree.map(lambda a: None if a is None else np.asarray(a).view(Counted), tree)


def _problem(rows, sizes, dtype, *, weighted=False, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(rows, sizes[0]).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.randint(0, sizes[-1], rows)]
    sw = rng.uniform(0.5, 2.0, rows).astype(dtype) if weighted else None
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in _init.init_normal(sizes, seed)]
    return X, Y, sw, params


def _assert_same_params(got, want):
    for (gW, gb), (wW, wb) in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(gW), wW)
        np.testing.assert_array_equal(np.asarray(gb), wb)


def test_row_sum_sums_in_numpys_order():
    rng = np.random.RandomState(0)
    for dtype in ("float32", "float64"):
        for columns in [*range(1, 40), 127, 128, 129, 200, 300, 1000]:
            v = rng.randn(16, columns).astype(dtype) * 10 ** rng.uniform(-4, 4, (16, columns))
            v = v.astype(dtype)
            np.testing.assert_array_equal(_kernels.row_sum(v), np.sum(v, axis=-1))


def test_block_sum_adds_as_one_block_of_threads():
    """Thread t adds elements t, t + B, ... in turn; then the block halves its sums."""
    rng = np.random.RandomState(1)
    values = (rng.randn(1000) * 10 ** rng.uniform(-6, 6, 1000)).astype("float32")
    threads = np.zeros(256, "float32")
    for i, v in enumerate(values):
        threads[i % 256] = threads[i % 256] + v
    while threads.shape[0] > 1:
        half = threads.shape[0] // 2
        threads = threads[:half] + threads[half:]
    assert _kernels.block_sum(values, 256) == threads[0]
    assert _kernels.block_sum(values, 256) != np.float32(np.sum(values))  # an order of its own


def test_the_cuda_sources_compile():
    """Every kernel compiles with nvrtc for both float types (no device needed)."""
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        nvrtc.createProgram("", "probe.cu", (), ())
    except Exception as error:  # the library is there, nvrtc's shared object is not
        pytest.skip(f"nvrtc is not usable here: {error}")
    failures = []
    for kernel in _kernels.KERNELS.values():
        for dtype in ("float32", "float64"):
            for labels in ("bool", dtype) if kernel is _fused._GATHER else (None,):
                program = nvrtc.createProgram(kernel.code(dtype, labels), "k.cu", (), ())
                try:
                    nvrtc.compileProgram(program, (*_kernels.OPTIONS, "-arch=compute_80"))
                except Exception:
                    failures.append(f"{kernel.name} {dtype}: {nvrtc.getProgramLog(program)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("activation", list(_fused.ACTIVATIONS))
@pytest.mark.parametrize("output", list(_fused.OUTPUTS))
@pytest.mark.parametrize("mean_gradients", [True, False])
def test_fused_step_equals_portable_step(optimizer, activation, output, mean_gradients):
    """Three steps, in float32 and float64, with and without sample weights: the same
    parameters and moments to the bit; the reported loss to rounding."""
    opt = OPTIMIZERS[optimizer]
    fused = launch_counts.cupy_step(opt, activation, output, 0.01, mean_gradients)
    for dtype in ("float32", "float64"):
        for weighted in (False, True):
            X, Y, sw, params = _problem(64, (4, 7, 5, 10), dtype, weighted=weighted)
            slots = opt.init(xnp, params).slots
            want = (params, slots)
            got = _counted((params, slots))
            for _ in range(3):
                *want, want_loss = fused.portable(*want, X, Y, sw, 0.01)
                *got, loss = fused(*got, *_counted((X, Y, sw)), 0.01)
            _assert_same_params(got[0], want[0])
            for g, w in zip(got[1], want[1], strict=True):
                _assert_same_params(g, w)
            if mean_gradients:
                np.testing.assert_allclose(float(loss), float(want_loss), rtol=LOSS_RTOL[dtype])
            else:
                assert loss is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("labels", ["float", "bool"])
def test_an_epochs_batches_equal_the_portable_steps_one_by_one(dtype, weighted, labels):
    """W2's shapes (64-256-256-10, Adam, L2): batches gathered on the device by a shuffled
    index, stepped with the optimizer's step sizes, equal the portable step batch by batch."""
    opt = _optim.Adam(0.001)
    X, Y, sw, params = _problem(4 * 96, (64, 256, 256, 10), dtype, weighted=weighted)
    index = np.random.RandomState(3).permutation(X.shape[0]).reshape(4, 96)
    lrs = np.asarray([0.001 * (k + 1) for k in range(4)], dtype)
    fused = launch_counts.cupy_step(opt, "tanh", "softmax", 1e-4, True)
    slots = opt.init(xnp, params).slots
    want, total = (params, slots), 0.0
    for k, rows in enumerate(index):
        *want, loss = fused.portable(
            *want, X[rows], Y[rows], None if sw is None else sw[rows], float(lrs[k])
        )
        total += float(loss) * rows.shape[0]
    kept_labels = Y.astype(bool) if labels == "bool" else Y
    got_params, got_slots, got_total = fused.batches(
        *_counted((params, slots, X, kept_labels, sw)), index, lrs
    )
    _assert_same_params(got_params, want[0])
    for g, w in zip(got_slots, want[1], strict=True):
        _assert_same_params(g, w)
    assert got_total.shape == ()
    np.testing.assert_allclose(float(got_total), total, rtol=LOSS_RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tiny", [True, False])
def test_the_articles_passes_equal_the_portable_steps(dtype, tiny):
    """The article's workload (200 rows, 2-3-2, plain gradient descent with L2): a run of
    passes as one call equals the portable step taken pass by pass: to the bit a step at a
    time; to rounding as one kernel (:mod:`xpnet._tiny`, sums over rows in a block's order)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(200, noise=0.20, random_state=0)
    X, Y = X.astype(dtype), np.eye(2, dtype=dtype)[y]
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in _init.init_normal((2, 3, 2), 0)]
    fused = launch_counts.cupy_step(_optim.SGD(0.01), "tanh", "softmax", 0.01, False, tiny)
    want = params
    for _ in range(50):
        want, _, _ = fused.portable(want, (), X, Y, None, 0.01)
    count = launch_counts.count_cupy_stand_in(
        lambda: fused.passes(*_counted((params, (), X, Y)), None, 0.01, 50)
    )
    # one kernel; or 11 a pass, with the parameters' copy-in and the rows' weight
    assert count.launches == (1 if tiny else 50 * 11 + 2) and count.syncs == 0
    got, slots = fused.passes(*_counted((params, (), X, Y)), None, 0.01, 50)
    assert slots == ()
    if not tiny:
        _assert_same_params(got, want)
        return
    for (gW, gb), (wW, wb) in zip(got, want, strict=True):
        for g, w in ((gW, wW), (gb, wb)):
            scale = np.abs(w).max()
            rtol = {"float32": 1e-5, "float64": 1e-12}[dtype]
            np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=rtol * scale)


def test_a_training_run_on_the_fused_step_equals_one_on_the_portable_step():
    """Through the training loop: shuffled epochs in one call each, a short last batch
    stepped apart, the loss read once an epoch, early-stopping counters."""
    opt = _optim.Adam(0.01)
    X, Y, _, params = _problem(250, (5, 16, 3), "float32")
    target = _target.target_for("numpy", None)
    fused = launch_counts.cupy_step(opt, "tanh", "softmax", 1e-3, True)
    runs = {}
    for name, step in {
        "fused": _steps.Step(fused, fused.passes, fused.release, True, fused.batches),
        "portable": _steps.Step(fused.portable),
    }.items():
        data = _train.Data(target, *_counted((X, Y)), None, 32, None)
        problem = _train.Problem(data, opt, step)
        state = _train.start(_counted(params) if name == "fused" else params, opt, xnp)
        order = np.arange(X.shape[0])
        state = state._replace(shuffle=_train.Shuffle(np.random.RandomState(7).get_state(), order))
        runs[name] = _train.run(state, problem, _train.Rules(epochs=6, tol=1e-4))
        assert data.in_one_call(step) == (name == "fused")  # 7 full batches in one call
    fused_run, portable_run = runs["fused"], runs["portable"]
    assert fused_run.epoch == portable_run.epoch == 6
    _assert_same_params(fused_run.params, _target.host_tree(portable_run.params))
    np.testing.assert_allclose(fused_run.losses, portable_run.losses, rtol=1e-5)


def test_the_fused_step_never_writes_its_inputs():
    opt = _optim.Adam(0.01)
    X, Y, sw, params = _problem(40, (3, 6, 4), "float64", weighted=True)
    slots = opt.init(xnp, params).slots
    inputs = _counted((params, slots, X, Y, sw))
    before = _tree.map(np.copy, inputs)
    fused = launch_counts.cupy_step(opt, "relu", "softmax", 0.1, True)
    fused(*inputs, 0.01)
    fused.batches(*inputs, np.arange(40).reshape(2, 20), np.full(2, 0.01))
    for a, b in zip(_leaves(inputs), _leaves(before), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)


def _leaves(tree):
    found = []
    _tree.map(lambda a: found.append(a), tree)
    return found


def test_calls_the_fused_step_cannot_serve_go_to_the_portable_step():
    opt = _optim.SGD(0.01)
    fused = launch_counts.cupy_step(opt, "tanh", "softmax", 0.01, False)
    X, Y, _, params = _problem(30, (3, 4, 2), "float64")
    want, _, _ = fused.portable(params, (), np.asfortranarray(X), Y, None, 0.01)
    for case in (
        _counted((params, (), np.asfortranarray(X), Y, None)),  # rows not contiguous
        _counted((params, (), X.astype("float32"), Y, None)),  # a dtype apart from the params'
        (params, (), X, Y, None),  # not the library's arrays
    ):
        count = launch_counts.count_cupy_stand_in(lambda c=case: fused(*c, 0.01))
        assert not any(op.startswith("kernel") for op in count.operations)
    got, _, _ = fused(*_counted((params, (), np.asfortranarray(X), Y, None)), 0.01)
    _assert_same_params(got, want)


def test_cupys_fast_path_is_the_fused_step():
    """The step factory hands CuPy the fused step, with passes and an epoch's batches (made
    without a device: nothing is compiled before the first launch)."""
    pytest.importorskip("cupy")
    target = _target.Target("cupy", xnp, None)
    step = _steps.FAST_PATHS["cupy"](target, None, _optim.Adam(0.01), "tanh", "softmax", 0.0, True)
    assert step.fast and step.batches is not None and step.passes is not None
    assert isinstance(step.function, _fused.Step)


def test_every_kernels_twin_takes_the_kernels_arguments():
    """A twin and its kernel read the same argument list (the stand-in calls the twin with
    what the kernel would get)."""
    import inspect

    for kernel in _kernels.KERNELS.values():
        twin = inspect.signature(kernel.twin).parameters
        assert len(twin) == len(kernel.parameters()), kernel.name


def test_scalars_reach_a_kernel_as_its_parameters_types():
    """CuPy passes a scalar as its own bytes, so an integer setting (beta_1=0, momentum=1)
    must reach a float parameter as a float: the launcher casts by the kernel's signature,
    and refuses what does not fit."""
    for opt in (_optim.Adam(0.01, beta_1=0, beta_2=1, epsilon=1), _optim.SGD(1, momentum=1)):
        fused = launch_counts.cupy_step(opt, "tanh", "softmax", 0, True)
        X, Y, _, params = _problem(32, (3, 4, 3), "float32")
        lr = 0.01 if opt.rule()[0] == "adam" else 0.5
        want, _, _ = fused.portable(params, opt.init(xnp, params).slots, X, Y, None, lr)
        got, _, _ = fused(*_counted((params, opt.init(xnp, params).slots, X, Y, None)), lr)
        _assert_same_params(got, want)
    launch = _kernels.Launcher(launch_counts.STAND_IN)
    z, b = np.zeros((2, 3)), np.zeros(3)
    with pytest.raises(TypeError, match="takes 4 arguments, not 3"):
        launch(_fused.ACTIVATIONS["tanh"].forward, 6, (z, b, 6), "float64")
    with pytest.raises(TypeError, match="takes an integer where it was given 6.0"):
        launch(_fused.ACTIVATIONS["tanh"].forward, 6, (z, b, 6.0, 3), "float64")
    with pytest.raises(TypeError, match="takes an array"):
        launch(_fused.ACTIVATIONS["tanh"].forward, 6, (z, 0.0, 6, 3), "float64")
