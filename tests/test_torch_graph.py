"""Torch's epoch in one call: a batch step a CUDA graph can capture, equal to the portable one.

:meth:`xpnet._native.TorchStep.batches` steps an epoch's full batches on persistent
buffers.  A CUDA graph replays a step's kernels on the memory and with the scalars they
had when captured, so two consecutive steps must dispatch the same operations on the same
data pointers with the same scalar arguments, and never wait for the device; that is
checked here on the CPU, where the step runs eagerly.  The numbers are the portable
step's to rounding (the products' sums and the update are ordered differently).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xpnet  # noqa: E402
from xpnet import _init, _optim, _steps, _target, _train  # noqa: E402

TARGET = _target.target_for("torch", "cpu")
OPTIMIZERS = {
    "adam": _optim.Adam(0.01),
    "sgd": _optim.SGD(0.05),
    "momentum": _optim.SGD(0.05, momentum=0.9),
    "nesterov": _optim.SGD(0.05, momentum=0.9, nesterov=True),
}
#: Relative to each array's scale, after a few batches (float32 at 1e-6 here).
RTOL = {"float32": 1e-5, "float64": 1e-10}
#: A host sync: the host waits for a value of the device (launch_counts.SYNCS, and item).
SYNCS = {"_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal", "masked_select"}


def _problem(dtype, output="softmax", batches=5, n=64, sizes=(4, 7, 6, 3), booleans=False):
    """Data of ``batches`` full batches and some rows more, the network's parameters, and
    the batches' rows and step sizes as an epoch hands them over."""
    rs = np.random.RandomState(0)
    rows = batches * n + 11
    X = TARGET.asarray(rs.randn(rows, sizes[0]).astype(dtype))
    if output == "softmax":
        Y = np.eye(sizes[-1])[rs.randint(0, sizes[-1], rows)]
    elif output == "logistic":
        Y = rs.randint(0, 2, (rows, sizes[-1])).astype(float)
    else:
        Y = rs.randn(rows, sizes[-1])
    Y = TARGET.asarray(Y.astype(bool) if booleans else Y.astype(dtype))
    params = _target.moved(TARGET, _init.init_normal(sizes, 0), getattr(torch, dtype))
    index = torch.as_tensor(rs.permutation(rows)[: batches * n].reshape(batches, n))
    lrs = torch.as_tensor(np.linspace(0.01, 0.02, batches).astype(dtype))
    return X, Y, params, index, lrs


def _flat(tree):
    return np.concatenate([np.asarray(a).ravel() for pair in tree for a in pair])


def _step(optimizer, activation="tanh", output="softmax", l2=0.01):
    step = _steps.step_for(TARGET, optimizer, activation, output, l2, True)
    assert step.fast and step.batches is not None
    return step


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic", "identity"])
@pytest.mark.parametrize("output", ["softmax", "logistic", "identity"])
def test_batches_equal_the_portable_step_batch_by_batch(dtype, optimizer, activation, output):
    _assert_batches_equal_portable(OPTIMIZERS[optimizer], activation, output, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_without_torchs_fused_kernel_is_the_same_update(monkeypatch, dtype):
    monkeypatch.delattr(torch, "_fused_adam_")  # as a torch without it would step
    _assert_batches_equal_portable(OPTIMIZERS["adam"], "tanh", "softmax", dtype)


W2 = dict(sizes=(64, 256, 256, 10), batches=3, n=128)
W2_L2 = 1e-4


def test_w2s_batches_equal_the_portable_step_in_float64():
    """W2's shapes (64-256-256-10, tanh, softmax, Adam, L2 1e-4), three batches of 128."""
    _assert_batches_equal_portable(OPTIMIZERS["adam"], "tanh", "softmax", "float64", l2=W2_L2, **W2)


def test_w2s_batches_in_float32_agree_with_the_portable_step_as_two_backends_do():
    """In float32 Adam amplifies rounding: its step is about ``lr * sign(g)`` wherever a
    gradient is as small as its own rounding (a sum that cancels), so any other order of
    the sums moves such weights by a fraction of ``lr``.  The portable step on NumPy and on
    torch differ so (3.5e-3 at most after three batches here); the fast batches must be no
    further from torch's portable step than that."""
    import array_api_compat.numpy as xnp

    opt = OPTIMIZERS["adam"]
    X, Y, params, index, lrs = _problem("float32", booleans=True, **W2)
    Y = Y.to(X.dtype)
    step = _step(opt, "tanh", "softmax", W2_L2)
    slots = opt.init(torch, params).slots
    fast = step.batches(params, slots, X, Y, None, index, lrs)[0]
    on_numpy = _steps.portable_step(xnp, opt, "tanh", "softmax", W2_L2, True)
    portable = (params, slots)
    host = [(W.numpy(), b.numpy()) for W, b in params]
    numpy = (host, opt.init(xnp, host).slots)
    for rows, lr in zip(index, lrs.tolist(), strict=True):
        *portable, _ = step.function.portable(*portable, X[rows], Y[rows], None, lr)
        *numpy, _ = on_numpy(*numpy, X[rows].numpy(), Y[rows].numpy(), None, lr)
    fast, portable, numpy = _flat(fast), _flat(portable[0]), _flat(numpy[0])
    between_backends = np.abs(portable - numpy).max()
    assert 0 < np.abs(fast - portable).max() <= between_backends


def _assert_batches_equal_portable(opt, activation, output, dtype, l2=0.01, **problem):
    step = _step(opt, activation, output, l2)
    X, Y, params, index, lrs = _problem(dtype, output, booleans=output == "softmax", **problem)
    slots = opt.init(torch, params).slots
    got_params, got_slots, got_total = step.batches(params, slots, X, Y, None, index, lrs)
    want_params, want_slots, want_total = params, slots, 0.0
    for rows, lr in zip(index, lrs.tolist(), strict=True):
        Xb, Yb = X[rows], Y[rows].to(X.dtype)
        want_params, want_slots, loss = step.function.portable(
            want_params, want_slots, Xb, Yb, None, lr
        )
        want_total = want_total + loss * rows.shape[0]
    assert got_total.shape == () and got_total.dtype == X.dtype
    assert float(got_total) == pytest.approx(float(want_total), rel=RTOL[dtype])
    assert len(got_slots) == len(want_slots)
    for got, want in [(got_params, want_params), *zip(got_slots, want_slots, strict=True)]:
        got, want = _flat(got), _flat(want)
        np.testing.assert_allclose(got, want, rtol=0, atol=RTOL[dtype] * np.abs(want).max())


def test_batches_never_write_their_inputs_and_hand_back_arrays_of_their_own():
    opt = OPTIMIZERS["adam"]
    step = _step(opt)
    X, Y, params, index, lrs = _problem("float64", booleans=True)
    slots = opt.init(torch, params).slots
    inputs = [_flat(params), *(_flat(m) for m in slots), X.clone(), Y.clone()]
    first = step.batches(params, slots, X, Y, None, index, lrs)
    kept = [_flat(first[0]), *(_flat(m) for m in first[1])]
    kept_total = float(first[2])
    second = step.batches(*first[:2], X, Y, None, index, lrs)  # the same buffers again
    third = step.batches(params, slots, X, Y, None, index, lrs)
    for was, now in zip(inputs[:3], [_flat(params), *(_flat(m) for m in slots)], strict=True):
        np.testing.assert_array_equal(now, was)
    assert torch.equal(X, inputs[3]) and torch.equal(Y, inputs[4])
    for was, now in zip(kept, [_flat(first[0]), *(_flat(m) for m in first[1])], strict=True):
        np.testing.assert_array_equal(was, now)
    assert float(first[2]) == kept_total
    np.testing.assert_array_equal(_flat(third[0]), kept[0])  # the same start, the same end
    assert not np.array_equal(_flat(second[0]), kept[0])


def _recorded(work):
    """The operations ``work`` dispatches: name, then each argument as a data pointer
    and layout (a tensor) or its value (anything else)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    def described(a):
        if isinstance(a, torch.Tensor):
            return ("tensor", a.data_ptr(), tuple(a.shape), a.stride(), a.dtype)
        if isinstance(a, (list, tuple)):
            return tuple(described(b) for b in a)
        return a

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            seen.append(
                (func.overloadpacket.__name__, described(args), described(sorted(kwargs.items())))
            )
            return func(*args, **kwargs)

    with Recorder():
        work()
    return seen


@pytest.mark.parametrize("fused", [True, False])
def test_a_batch_step_can_be_captured_as_a_cuda_graph(monkeypatch, fused):
    # W2's configuration at a small size: two consecutive batch steps must be the same
    # operations on the same memory with the same scalars; only the gather differs.
    if not fused:
        monkeypatch.delattr(torch, "_fused_adam_")
    opt = _optim.Adam(0.001)
    step = _step(opt, l2=1e-4)
    X, Y, params, index, lrs = _problem("float32", batches=3, booleans=True)
    slots = opt.init(torch, params).slots
    step.batches(params, slots, X, Y, None, index, lrs)  # buffers made
    operations = _recorded(lambda: step.batches(params, slots, X, Y, None, index, lrs))
    assert not {name for name, *_ in operations} & SYNCS
    # each batch starts with the gather of its rows of X
    X_rows = ("tensor", X.data_ptr(), tuple(X.shape), X.stride(), X.dtype)
    starts = [
        i
        for i, (name, args, _) in enumerate(operations)
        if name == "index_select" and args[0] == X_rows
    ]
    assert len(starts) == 3
    first, second = operations[starts[0] : starts[1]], operations[starts[1] : starts[2]]
    assert len(first) == len(second) > 20
    differ = [a[0] for a, b in zip(first, second, strict=True) if a != b]
    # the rows of X and of the labels (their index), the step sizes (their row of the table)
    assert differ == ["index_select", "index_select", "copy_"]


def test_a_run_of_the_articles_passes_can_be_captured_as_a_cuda_graph():
    """The article's passes (plain gradient descent, full batch) replay one recorded pass:
    every pass after the copy-in is the same operations on the same memory with the same
    scalars, and none waits for the device."""
    from sklearn.datasets import make_moons

    X, y = make_moons(200, noise=0.20, random_state=0)
    X, Y = TARGET.asarray(X), TARGET.asarray(np.eye(2)[y])
    params = _target.moved(TARGET, _init.init_normal((2, 3, 2), 0), torch.float64)
    step = _steps.step_for(TARGET, _optim.SGD(0.01), "tanh", "softmax", 0.01, False)
    step.passes(params, (), X, Y, None, 0.01, 1)  # buffers made
    operations = _recorded(lambda: step.passes(params, (), X, Y, None, 0.01, 3))
    assert not {name for name, *_ in operations} & SYNCS
    # each pass starts with the product of X and the first layer's weights
    X_rows = ("tensor", X.data_ptr(), tuple(X.shape), X.stride(), X.dtype)
    starts = [
        i for i, (name, args, _) in enumerate(operations) if name == "mm" and args[0] == X_rows
    ]
    assert len(starts) == 3
    passes = [operations[a:b] for a, b in zip(starts, [*starts[1:], len(operations)])]
    # the first pass is recorded as it runs, and takes its views (X.T, W.T) on the way; the
    # passes replayed, which a graph captures, are its kernels alone, alike
    kernels = [op for op in passes[0] if op[0] not in {"permute", "view", "t", "slice"}]
    assert len(passes[1]) > 10 and kernels == passes[1] == passes[2]


@pytest.mark.parametrize("times", [0, 1, 2, 3, 50, 99, 100, 101, 999])
def test_a_graph_of_passes_replays_every_pass_once(monkeypatch, times):
    """On CUDA a run of passes is a warm-up, a graph replayed, and the passes left over:
    as many as asked, counted here with a stand-in for the graph."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from xpnet import _native

    class Graph:
        def __init__(self, run):
            self.replay = run

    def captured(run, device):
        run()  # the warm-up runs; the capture records without running
        return Graph(run)

    monkeypatch.setattr(_native, "_captured", captured)
    monkeypatch.setattr(torch.cuda, "device", lambda device: nullcontext())
    done = []
    X = SimpleNamespace(device=SimpleNamespace(type="cuda"))
    _native._replay([(done.append, (1,))], times, X)
    assert len(done) == times


def test_an_epoch_without_sample_weights_is_one_call_to_the_fast_batches(monkeypatch):
    calls = []
    real = _train._epoch_in_one_call
    monkeypatch.setattr(_train, "_epoch_in_one_call", lambda *a: calls.append(1) or real(*a))
    X, y = np.random.RandomState(0).randn(200, 4), np.arange(200) % 3
    _fit(X, y, "float64", torch=True, max_iter=2)
    assert len(calls) == 2


def _fit(X, y, dtype, *, torch, **kw):
    settings = dict(hidden_layer_sizes=(16, 16), solver="adam", batch_size=32, random_state=0)
    model = xpnet.MLPClassifier(**{**settings, **kw})
    data = TARGET.asarray(X.astype(dtype)) if torch else X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning
        return model.fit(data, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [320, 333])  # a multiple of the batch size, and not
def test_an_estimator_fit_on_torch_equals_the_fit_on_numpy(dtype, rows):
    rs = np.random.RandomState(0)
    X, y = rs.randn(rows, 6), rs.randint(0, 4, rows)
    here = _fit(X, y, dtype, torch=True, max_iter=5)
    ref = _fit(X, y, dtype, torch=False, max_iter=5)
    np.testing.assert_allclose(here.loss_curve_, ref.loss_curve_, rtol=RTOL[dtype])
    for a, b in zip(here.coefs_ + here.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=RTOL[dtype] * np.abs(b).max())


@pytest.mark.parametrize("early_stopping", [False, True])
def test_stopping_rules_behave_as_on_numpy(early_stopping):
    rs = np.random.RandomState(1)
    X, y = rs.randn(333, 6), rs.randint(0, 3, 333)
    kw = dict(max_iter=60, n_iter_no_change=3, tol=1e-2, early_stopping=early_stopping)
    here = _fit(X, y, "float64", torch=True, **kw)
    ref = _fit(X, y, "float64", torch=False, **kw)
    assert here.n_iter_ == ref.n_iter_ < 60  # stopped by the rule, in the same epoch
    np.testing.assert_allclose(here.loss_curve_, ref.loss_curve_, rtol=RTOL["float64"])
    if early_stopping:
        assert here.validation_scores_ == ref.validation_scores_
        assert here.best_validation_score_ == ref.best_validation_score_
