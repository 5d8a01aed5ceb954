"""Import and start-up times: fresh interpreters, interleaved, median of ``rounds``.

The reference is ``python -c "import numpy, array_api_compat"``, what any
xpnet process must load; ``python -c pass`` is shown for the interpreter alone.
Each command runs from the repository root, so it imports this checkout.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ._report import Table, best, fmt_s, fmt_x, median, progress, target

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "import numpy, array_api_compat"
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    f'python -c "{REFERENCE}"': ["-c", REFERENCE],
    'python -c "import xpnet"': ["-c", "import xpnet"],
    "python -m xpnet --help": ["-m", "xpnet", "--help"],
    "python -m xpnet info": ["-m", "xpnet", "info"],
}
#: The libraries ``xpnet info`` may import to probe them (those installed are imported).
BACKEND_MODULES = ("cupy", "torch", "jax", "array_api_strict")
#: The issue's targets, as ratios to the reference.
TARGETS = {'python -c "import xpnet"': 2.0}


def _env() -> dict:
    """This environment, with bytecode caching on (as for any user) and warnings off."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONWARNINGS": "ignore"}


def _time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(), check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def heaviest_imports(statement: str = "import xpnet", top: int = 6) -> list[tuple[str, float]]:
    """The packages whose modules ``-X importtime`` charges most self time to, for ``statement``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT, env=_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+\d+\s+\|\s*(\S+)", line)
        if m:
            name = m.group(2).split(".")[0]
            totals[name] = totals.get(name, 0.0) + int(m.group(1)) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def backends_statement() -> str:
    """``import numpy, array_api_compat, torch, ...``: what info may load at most."""
    installed = [m for m in BACKEND_MODULES if importlib.util.find_spec(m) is not None]
    return "import " + ", ".join(["numpy", "array_api_compat", *installed])


def run(rounds: int) -> Table:
    table = Table(
        "import",
        f"Import and start-up, fresh interpreters (median of {rounds}, interleaved)",
        ["command", "median", "best", "x reference", "target"],
    )
    backends = backends_statement()
    commands = {**COMMANDS, f'python -c "{backends}"': ["-c", backends]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, args in commands.items():
        if "info" not in name and name != f'python -c "{backends}"':  # the slow ones
            _time(args)  # warm the file-system cache and write the bytecode
    names = list(commands)
    for r in range(rounds):
        progress(f"imports: round {r + 1} of {rounds}")
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_time(commands[name]))
    base = median(times[f'python -c "{REFERENCE}"'])
    for name, ts in times.items():
        ratio = median(ts) / base
        goal = target(ratio, TARGETS[name]) if name in TARGETS else ""
        table.add(
            [name, fmt_s(median(ts)), fmt_s(best(ts)), fmt_x(ratio), goal],
            seconds=ts, ratio=ratio,
        )  # fmt: skip
    table.note(
        "bytecode caching on (PYTHONDONTWRITEBYTECODE unset for these commands); "
        "one untimed run of each first (but info)"
    )
    info = median(times["python -m xpnet info"]) / median(times[f'python -c "{backends}"'])
    table.note(f"xpnet info over importing the backends it probes (the last row): {info:.2f}x")
    heavy = ", ".join(f"{n} {s:.2f} s" for n, s in heaviest_imports())
    table.note(f"`import xpnet`, self time by package (-X importtime, one run): {heavy}")
    table.note(
        "target from the issue: import xpnet at most 2x the reference; --help and info "
        "equally light (info may import the backends it reports on, not scikit-learn)"
    )
    return table
