"""The test matrix: the same suite once per backend, plus lint.

`nox` runs every session; on a machine without a CUDA device `tests-cupy` skips
itself before installing anything, so a plain `nox` passes on a laptop.
"""

from __future__ import annotations

import ctypes
import tempfile
from pathlib import Path

import nox

nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

TORCH = "torch==2.13.0"  # the CPU build; an unpinned torch pulls a multi-GB CUDA build


def _pytest(session: nox.Session, backend: str, *paths: str) -> None:
    # SCIPY_ARRAY_API=1: scikit-learn's array-API checks and dispatch (tests/test_array_api.py).
    env = {"XPNET_TEST_BACKEND": backend, "SCIPY_ARRAY_API": "1"}
    session.run("pytest", *paths, *session.posargs, env=env)


@nox.session(name="tests-numpy")
def tests_numpy(session: nox.Session) -> None:
    """NumPy, with CuPy installed: on a CPU-only machine this exercises the GPU fallback.
    CUDA's runtime compiler (nvrtc) compiles the fused kernels' sources, which needs no
    device (tests/test_fused.py)."""
    session.install(".[test]", "cupy-cuda12x", "nvidia-cuda-nvrtc-cu12")
    _pytest(session, "numpy")


@nox.session(name="tests-array_api_strict")
def tests_array_api_strict(session: nox.Session) -> None:
    """array_api_strict on a non-default device: the portability referee."""
    session.install(".[test]")
    _pytest(session, "array_api_strict")


@nox.session(name="tests-torch")
def tests_torch(session: nox.Session) -> None:
    """PyTorch, on CUDA when the machine has it, else on the CPU."""
    session.install(TORCH)
    session.install(".[test,torch]")
    _pytest(session, "torch")


@nox.session(name="tests-jax")
def tests_jax(session: nox.Session) -> None:
    """JAX (float64 enabled by the test suite)."""
    session.install(".[test,jax]")
    _pytest(session, "jax")


@nox.session(name="tests-dask")
def tests_dask(session: nox.Session) -> None:
    """The Dask backend's tests (tests/test_dask.py, which skips itself where dask or
    distributed is missing): chunked training and lazy predictions on dask's local
    schedulers and on a two-process dask.distributed cluster, NumPy chunks (and a torch X
    brought to them).  The user guide's pages run here too, its dask and torch blocks
    included (tests/test_guide.py)."""
    session.install(TORCH)
    session.install(".[test,dask,torch]")
    _pytest(session, "numpy", "tests/test_dask.py", "tests/test_guide.py")


def _cuda_driver_version() -> int | None:
    """The CUDA driver version (e.g. 13000), or None when no device is usable."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return None
    if count.value == 0 or cuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value


@nox.session(name="tests-cupy")
def tests_cupy(session: nox.Session) -> None:
    """CuPy on the GPU; skipped, before installing anything, without a CUDA device."""
    version = _cuda_driver_version()
    if version is None:
        session.skip("no CUDA device: the CuPy tests need a GPU")
    session.install(f".[test,{'cuda13' if version >= 13000 else 'cuda12'}]")
    _pytest(session, "cupy")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, tests, examples, benchmarks and this file; and the layers.

    import-linter checks the layers of pyproject.toml's ``[tool.importlinter]``: a module
    of xpnet imports only from the modules below it, function-level imports included, so
    an import circle fails here.
    """
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports", env={"PYTHONPATH": "."})  # reads the sources; imports nothing


@nox.session(name="examples")
def examples(session: nox.Session) -> None:
    """Run every script in examples/ headless; figures go to a temporary folder.

    The out-of-core example runs on 400,000 rows here (20,000,000 by default: minutes).
    """
    session.install(".[plot,dask]")
    scripts = sorted(Path("examples").glob("*.py"))
    if not scripts:
        session.error("no scripts found in examples/")
    out = Path(tempfile.mkdtemp(prefix="xpnet-examples-"))
    small = {"out_of_core": ["--rows", "400000", "--holdout", "100000"]}
    for script in scripts:
        args = [str(script), str(out / script.stem), *small.get(script.stem, [])]
        session.run("python", *args, env={"MPLBACKEND": "Agg"})
    for script in scripts:
        if not list((out / script.stem).glob("*.png")):
            session.error(f"{script} wrote no figure")
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    session.log(f"figures written under {out}: {', '.join(written)}")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation into docs/_build/html, warnings as errors.

    The user guide, the API reference and the examples gallery (every script in
    examples/ runs, the out-of-core one on 400,000 rows).
    """
    session.install(".[docs]")
    session.run(
        "sphinx-build", "-b", "html", "-W", "--keep-going", "-n", "docs", "docs/_build/html",
        env={"MPLBACKEND": "Agg"},
    )  # fmt: skip


# -- issue 4: scikit-learn drop-in (branch sklearn) -------------------------------------


@nox.session(name="benchmark-sklearn", default=False)  # minutes long: run it by name
def benchmark_sklearn(session: nox.Session) -> None:
    """xpnet's MLPs against scikit-learn's: held-out scores and fit-time ratios, side by side.

    Pass ``-- --quick`` for max_iter=50 and three random_states.
    """
    session.install(".")
    session.run("python", "benchmarks/sklearn_side_by_side.py", *session.posargs)


# -- issue 8: performance ------------------------------------------------------------------


@nox.session(name="benchmark", default=False)  # about 10 minutes: run it by name
def benchmark(session: nox.Session) -> None:
    """The performance report: ``python -m benchmarks`` on every backend installed here.

    W1 (the article) on each backend, W2 in float32 and float64 against scikit-learn and
    against its matrix products alone, peak memory, fit_many's sweep and import times, each
    as a ratio to a reference timed in the same run; GPU rows when a CUDA device is usable.
    Pass options after ``--``: ``nox -s benchmark -- --quick``, ``-- --only w2``,
    ``-- --markdown report.md``.
    """
    session.install(TORCH)
    session.install(".[test,torch,jax]")
    session.run("python", "-m", "benchmarks", *session.posargs)
