"""The GPU paths' launches and host syncs, counted on the CPU, stay within their budgets.

A launch costs 10-20 us of host time on a GPU, more than a small step's work: a change that
adds a launch or a host sync to a hot path slows every GPU run, and shows here first.  The
budgets are today's counts (benchmarks/launch_counts.py explains the counting): lowering a
count here is how a change proves it; raising one needs a reason.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "launch_counts", Path(__file__).parents[1] / "benchmarks" / "launch_counts.py"
)
launch_counts = sys.modules["launch_counts"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch_counts)

#: (launches, host syncs) at most, per W1 pass and per W2 batch.
BUDGETS = {
    "cupy_w1_run": (1, 0),  # 1000 passes of the article: one kernel (xpnet/_tiny.py)
    "cupy_w1_pass": (11, 0),  # a pass of the fused step a step at a time; portable: 31
    "cupy_w2_batch": (19, 0),  # the fused step's batch, its gather included
    "cupy_portable_w2_batch": (134, 0),  # 159 and 4 syncs before the loss's clip was replaced
    "torch_w1_pass": (24, 0),
    "torch_w2_batch": (20, 0),  # the step, its gather apart (4: two index_select, two copy_)
}


@pytest.mark.parametrize("path", sorted(BUDGETS))
def test_gpu_paths_stay_within_their_launch_and_sync_budgets(path):
    if path.startswith("torch"):
        pytest.importorskip("torch")
    count = getattr(launch_counts, path)()
    launches, syncs = BUDGETS[path]
    shown = ", ".join(f"{op} {n}" for op, n in count.operations.most_common())
    assert count.syncs <= syncs, f"{path} waits for the device {count.syncs} times: {shown}"
    assert count.launches <= launches, f"{path} launches {count.launches} kernels: {shown}"


def test_the_cupy_stand_in_sees_launches_and_syncs():
    x = np.ones(4).view(launch_counts._Counted)
    count = launch_counts.count_cupy_stand_in(lambda: bool((x * 2 + 1)[1:].sum() > 0))
    # multiply, add, sum, greater launch; the slice is a view; bool() waits for the device
    assert (count.launches, count.syncs) == (4, 1)
    mask = launch_counts.count_cupy_stand_in(lambda: x[x > 1])
    assert mask.syncs == 1  # a boolean mask sizes its result on the host


def test_the_counter_sees_launches_and_syncs():
    torch = pytest.importorskip("torch")

    x = torch.ones(4)
    count = launch_counts.count_torch(lambda: float((x * 2 + 1)[1:].sum()))
    # mul, add, sum and the copy of the value to the host launch; the slice is a view;
    # float() waits for the device
    assert (count.launches, count.syncs) == (4, 1)
