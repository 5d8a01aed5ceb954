"""The command-line arguments sphinx-gallery passes to each script in examples/.

Each script writes its PNG files into the folder given as its first argument: here a
folder under docs/_build, so that building the docs leaves the examples/ folder clean.
The out-of-core example runs small (its default is 20,000,000 rows: minutes).
"""

from __future__ import annotations

from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "_build" / "gallery-output"
SMALL = {"out_of_core": ["--rows", "400000", "--holdout", "100000"]}  # as nox -s examples


def reset_argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    """The arguments after the script's name: an output folder, then any size options."""
    stem = Path(script_vars["src_file"]).stem
    return [str(OUTPUT / stem), *SMALL.get(stem, [])]
