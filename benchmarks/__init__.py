"""xpnet's benchmarks: one command for the whole performance report.

Run from the repository root::

    python -m benchmarks                      # everything, about 10 minutes on 2 cores
    python -m benchmarks --quick              # a smoke run, about a minute
    python -m benchmarks --only w1,import     # some sections
    python -m benchmarks --markdown report.md --json report.json
    nox -s benchmark -- --quick               # the same, in a fresh virtual environment

Every figure is a ratio to a reference timed in the same run, interleaved with
it, so machine speed and load cancel out.  ``python -m benchmarks --help`` lists
the sections and the options.  The older single-purpose scripts in this folder
(``bench_fit.py``, ``bench_grid.py``, ...) still run on their own.
"""
