"""``python -m benchmarks --only launches``: launches and host syncs per W1 pass and per W2
batch on the GPU paths, counted on the CPU (see ``launch_counts.py``)."""

from __future__ import annotations

from . import launch_counts
from ._report import Table


def run() -> Table:
    table = Table(
        "launches",
        "Launches and host syncs of the GPU paths, counted on the CPU",
        ["path", "launches", "host syncs", "most frequent operations"],
    )
    paths = [
        ("CuPy W1, a run of 1000 passes (fused: one kernel)", launch_counts.cupy_w1_run),
        ("CuPy W1, a pass (fused, a step at a time)", launch_counts.cupy_w1_pass),
        ("CuPy W2, a mini-batch (fused, an epoch in one call, Adam; the gather included)",
         launch_counts.cupy_w2_batch),
        ("CuPy W2, a mini-batch (the portable step, Adam; the gather apart)",
         launch_counts.cupy_portable_w2_batch),
    ]  # fmt: skip
    try:
        import torch  # noqa: F401

        paths += [
            ("torch-CUDA W1, a pass (fast step, passes as one call)", launch_counts.torch_w1_pass),
            (
                "torch-CUDA W2, a mini-batch (an epoch in one call, Adam; the gather apart)",
                launch_counts.torch_w2_batch,
            ),
        ]
    except ImportError:
        table.note("torch is not installed: its paths are not counted")
    for name, counted in paths:
        count = counted()
        common = ", ".join(f"{op} {n}" for op, n in count.operations.most_common(5))
        table.add([name, count.launches, count.syncs, common], launches=count.launches,
                  syncs=count.syncs, operations=dict(count.operations))  # fmt: skip
    table.note(
        "torch: every aten operation the step dispatches on CPU tensors, as it would on CUDA "
        "(views and allocations launch nothing; reading a value on the host is a sync); on "
        "CUDA its W2 batch step and its W1 passes (50 to a graph) replay as CUDA graphs"
    )
    table.note(
        "CuPy: NumPy arrays that count each elementwise operation, reduction, matrix product, "
        "array function and cast as a kernel, and a stand-in cupy whose RawKernel runs each "
        "fused kernel's NumPy twin and counts one launch"
    )
    table.note(
        "the GPU issue's budgets: W2 at most 25 launches a batch (torch: plus the gather), "
        "W1 on CuPy at most 1 a run of passes, 0 syncs; tests/test_launches.py pins these counts"
    )
    return table
