"""python -m benchmarks: xpnet's performance report, each figure a ratio to a reference
timed side by side with it in this run.

Sections (all by default; pick some with --only):

  w1      the article (200 moons, hidden 3, 20000 passes, float64) on every installed
          backend with a CPU device, against the tutorial's plain-NumPy loop and a
          jax.lax.fori_loop of the same step
  w2      one Adam epoch over 200,000 x 64 (64-256-256-10 tanh, batch 1024), float32 and
          float64: xpnet.MLPClassifier (NumPy, torch CPU) against scikit-learn's and
          against the epoch's matrix products alone
  memory  W2's peak memory during fit, xpnet against scikit-learn, fresh interpreters
  sweep   fit_many over the article's hidden sizes against sequential fits
  import  import xpnet, xpnet --help, xpnet info against import numpy, array_api_compat
  gpu     W1 on CuPy / torch-CUDA / JAX-GPU against NumPy; W2 with 2,000,000 rows against
          a cuBLAS peak (one line saying they were skipped without a CUDA device)
  dask    a full-batch pass (xpnet.fit, hidden 16) over 2,000,000 x 64 rows in chunks, on
          dask's threaded scheduler and on a LocalCluster of two workers, against NumPy in
          memory (one line saying it was skipped without dask and distributed)

  launches  launches and host syncs per W1 pass and per W2 batch on the GPU paths,
          counted on the CPU (torch's, under a TorchDispatchMode)
  paths   the GPU paths checked and side by side: every fused CuPy kernel against its
          NumPy twin, launches measured by torch.profiler and host against device time by
          cupyx.profiler, W1 and W2 on the fused, torch's fast and the portable steps (without
          a device: the kernels through a stand-in, the paths on the CPU, marked so)

Run from the repository root.  Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

SECTIONS = ("w1", "w2", "memory", "sweep", "import", "gpu", "dask", "launches", "paths")
ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of about a minute: fewer passes, rows and repeats (ratios are rough)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        metavar="LIST",
        help=f"comma-separated sections among {', '.join(SECTIONS)}, run in that order "
        "(default: all)",
    )
    parser.add_argument("--rounds", type=int, help="timed rounds of w1, w2, sweep and gpu")
    parser.add_argument("--import-rounds", type=int, help="fresh interpreters per import row")
    parser.add_argument("--w1-epochs", type=int, help="passes of W1 (default 20000)")
    parser.add_argument("--w2-rows", type=int, help="rows of W2 on the CPU (default 200,000)")
    parser.add_argument("--gpu-rows", type=int, help="rows of W2 on a GPU (default 2,000,000)")
    parser.add_argument("--sweep-epochs", type=int, help="passes of the sweep (default 20000)")
    parser.add_argument("--dask-rows", type=int, help="rows of dask's pass (default 2,000,000)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw numbers here")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    chosen = ["import" if s == "imports" else s for s in chosen]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose among {', '.join(SECTIONS)}")
    args.sections = list(dict.fromkeys(chosen))  # in the order asked: the first come first
    quick = args.quick
    defaults = dict(
        rounds=1 if quick else 3,
        import_rounds=1 if quick else 7,
        w1_epochs=2000 if quick else 20000,
        w2_rows=20_000 if quick else 200_000,
        gpu_rows=200_000 if quick else 2_000_000,
        sweep_epochs=1000 if quick else 20000,
        dask_rows=200_000 if quick else 2_000_000,
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def environment() -> dict:
    """What the figures were measured on."""
    import numpy as np

    env = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "numpy": np.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        env["blas"] = ", ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        )
    except ImportError:
        pass
    import sklearn

    import xpnet

    env["scikit-learn"] = sklearn.__version__
    env["xpnet"] = xpnet.__version__
    for name, info in xpnet.available_backends().items():
        if name != "numpy" and info.installed:
            env[name] = f"{info.version} ({', '.join(info.devices) or info.reason})"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        if commit:
            env["commit"] = commit + " (plus any uncommitted changes)"
    except OSError:
        pass
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share a GPU with CuPy
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # W1 is float64 on every backend
    except ImportError:
        pass
    import xpnet

    warnings.simplefilter("ignore", xpnet.BackendFallbackWarning)
    from . import dask_rows, gpu, gpu_paths, imports, launches, sweep, w1, w2
    from ._report import Contention

    started = time.perf_counter()
    env = environment()
    mode = "quick (smoke run: rough ratios)" if args.quick else "full"
    print(f"xpnet benchmarks, {mode}: {', '.join(args.sections)}")
    for key, value in env.items():
        print(f"  {key}: {value}")
    sys.stdout.flush()

    tables = []
    contention = Contention()

    def show(table) -> None:
        nonlocal contention
        busy = contention.note()
        if busy:
            table.note(busy)
        table.show()
        tables.append(table)
        contention = Contention()

    made: dict[str, tuple] = {}

    def w2_data() -> tuple:  # made once, for w2 and memory both
        if "w2" not in made:
            made["w2"] = w2.make_data(args.w2_rows)
        return made["w2"]

    # each section's tables, made as they are shown (generators) or all at once (lists)
    sections = {
        "w1": lambda: [w1.run(args.w1_epochs, args.rounds)],
        "w2": lambda: (
            w2.run_times(*w2_data(), dtype, args.rounds) for dtype in ("float32", "float64")
        ),
        "memory": lambda: [
            w2.run_memory(
                *w2_data(),
                ["float32"] if args.quick else ["float32", "float64"],
                ["tracemalloc", "rss"],
            )
        ],  # fmt: skip
        "sweep": lambda: [sweep.run(args.sweep_epochs, args.rounds)],
        "import": lambda: [imports.run(args.import_rounds)],
        "gpu": lambda: gpu.run(args.w1_epochs, args.gpu_rows, args.rounds),
        "dask": lambda: [dask_rows.run(args.dask_rows)],
        "launches": lambda: [launches.run()],
        "paths": lambda: gpu_paths.run(min(args.w1_epochs, 2000), args.gpu_rows, args.rounds),
    }
    for section in args.sections:
        for table in sections[section]():
            show(table)
    elapsed = time.perf_counter() - started
    print(f"\n(total {elapsed:.0f} s)")

    if args.markdown:
        lines = [f"## xpnet benchmarks ({mode})", ""]
        lines += [f"- {key}: {value}" for key, value in env.items()]
        lines += ["", "Command: `python -m benchmarks " + " ".join(argv or sys.argv[1:]) + "`", ""]
        lines += [t.markdown() for t in tables]
        lines.append(f"Total {elapsed:.0f} s.")
        args.markdown.write_text("\n".join(lines) + "\n")
        print(f"markdown report: {args.markdown}")
    if args.json:
        report = {
            "mode": mode,
            "environment": env,
            "seconds": elapsed,
            "sections": {t.key: t.as_json() for t in tables},
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"JSON report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
