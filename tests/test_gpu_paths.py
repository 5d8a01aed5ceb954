"""The GPU script's kernel check (benchmarks/gpu_paths.py), run through the CPU stand-in.

On a device the checking launcher sets each compiled kernel against its NumPy twin; here the
stand-in's kernels are the twins, so it must find no difference, see every launch of a W2
batch, and still catch a kernel that is off by an ulp.  No timings.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import array_api_compat.numpy as xnp
import numpy as np

from xpnet import _fused, _init, _kernels, _optim

ROOT = Path(__file__).parents[1]
if "benchmarks" not in sys.modules:  # the benchmarks are not installed: load them by path
    _spec = importlib.util.spec_from_file_location(
        "benchmarks", ROOT / "benchmarks" / "__init__.py",
        submodule_search_locations=[str(ROOT / "benchmarks")],
    )  # fmt: skip
    sys.modules["benchmarks"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["benchmarks"])
gpu_paths = importlib.import_module("benchmarks.gpu_paths")
launch_counts = importlib.import_module("benchmarks.launch_counts")
STAND_IN = launch_counts.STAND_IN

#: A W2 batch's kernels (float32, boolean labels, unweighted): the rest of its 19 launches
#: are CuPy's matrix products and bias sums.
W2_BATCH_KERNELS = {
    "xpnet_gather_float32_bool": 1,
    "xpnet_bias_tanh_float32": 2,
    "xpnet_out_softmax_float32": 1,
    "xpnet_loss_float32": 1,
    "xpnet_slope_tanh_float32": 2,
    "xpnet_adam_float32": 1,
}


def test_every_kernel_equals_its_twin_on_the_stand_in():
    checks = gpu_paths.check_kernels(STAND_IN, xnp)
    assert {c.kernel.name for c in checks.values()} == set(_kernels.KERNELS)
    for name, check in checks.items():
        assert check.launches > 0 and check.entries > 0, name
        assert (check.differ, check.max_ulps) == (0, 0.0), name
    table = gpu_paths.kernel_table(checks, "stand-in (no device)")
    assert len(table.rows) == len(checks)
    assert any("stand-in (no device)" in note for note in table.notes)


def test_the_checking_launcher_sees_every_kernel_of_a_w2_batch():
    rng = np.random.RandomState(0)
    sizes, batch, batches = (64, 256, 256, 10), 1024, 2
    params = [(STAND_IN.asarray(W.astype(np.float32)), STAND_IN.asarray(b.astype(np.float32)))
              for W, b in _init.init_normal(sizes, 0)]  # fmt: skip
    X = STAND_IN.asarray(rng.randn(batches * batch, sizes[0]).astype(np.float32))
    Y = STAND_IN.asarray(np.eye(sizes[-1], dtype=bool)[rng.randint(0, 10, batches * batch)])
    index = STAND_IN.asarray(np.arange(batches * batch).reshape(batches, batch))
    lrs = STAND_IN.asarray(np.full(batches, 0.001, np.float32))
    adam = _optim.Adam(0.001)
    slots = adam.init(xnp, params).slots
    step = _fused.step(STAND_IN, adam, "tanh", "softmax", 1e-4, True,
                       portable=gpu_paths._no_fallback)  # fmt: skip
    checks: dict = {}
    step.launch = gpu_paths.CheckingLauncher(STAND_IN, checks)
    counted = launch_counts.count_cupy_stand_in(
        lambda: step.batches(params, slots, X, Y, None, index, lrs)
    )
    assert {name: c.launches for name, c in checks.items()} == {
        name: n * batches for name, n in W2_BATCH_KERNELS.items()
    }
    # the stand-in's own count of the launches that reached its RawKernel agrees
    kernels = {op[len("kernel ") :]: n for op, n in counted.operations.items()
               if op.startswith("kernel ")}  # fmt: skip
    assert kernels == {name: c.launches for name, c in checks.items()}
    assert all(c.differ == 0 for c in checks.values())


class _OffByAnUlp(launch_counts._RawKernel):
    """A kernel that runs its twin, then moves its first argument up by one ulp."""

    def __call__(self, grid, block, args, shared_mem=0):
        super().__call__(grid, block, args, shared_mem)
        first = args[0].view(np.ndarray)
        first[...] = np.nextafter(first, np.inf)


class _OffCupy(launch_counts.StandInCupy):
    RawKernel = _OffByAnUlp


def test_the_checking_launcher_catches_a_kernel_off_by_an_ulp():
    cp = _OffCupy()
    z = cp.asarray(np.linspace(0.1, 0.9, 12, dtype=np.float32).reshape(3, 4))
    b = cp.asarray(np.zeros(4, np.float32))
    checks: dict = {}
    launcher = gpu_paths.CheckingLauncher(cp, checks)
    launcher(_fused.ACTIVATIONS["tanh"].forward, z.size, (z, b, z.size, 4), "float32")
    check = checks["xpnet_bias_tanh_float32"]
    assert (check.launches, check.entries, check.differ, check.max_ulps) == (1, 16, 12, 1.0)


def test_compare_counts_entries_and_ulps():
    want = np.array([1.0, 2.0, np.nan, 0.5], np.float32)
    got = want.copy()
    assert gpu_paths.compare(got, want) == (0, 0.0)  # NaN equals NaN
    got[1] = np.nextafter(got[1], np.float32(3))
    got[3] = np.nextafter(np.nextafter(got[3], np.float32(0)), np.float32(0))
    # one ulp at 2.0; two steps below 0.5, where steps are half as large: one ulp of 0.5
    assert gpu_paths.compare(got, want) == (2, 1.0)
    assert gpu_paths.compare(np.array([True, False]), np.array([True, True]))[0] == 1


def test_portable_only_takes_the_fast_step_away_and_puts_it_back():
    from xpnet import _steps

    fast = _steps.FAST_PATHS["numpy"]
    with gpu_paths.portable_only("numpy"):
        assert "numpy" not in _steps.FAST_PATHS
    assert _steps.FAST_PATHS["numpy"] is fast
