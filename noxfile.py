"""nox sessions.  (The lead's sessions live on main; this block is the plot branch's.)"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nox


# --- examples (plot branch) ---------------------------------------------------
@nox.session(name="examples")
def examples(session: nox.Session) -> None:
    """Run every script in examples/ headless; figures go to a temporary folder."""
    session.install(".[plot]")
    scripts = sorted(Path("examples").glob("*.py"))
    if not scripts:
        session.error("no scripts found in examples/")
    out = Path(tempfile.mkdtemp(prefix="xpnet-examples-"))
    for script in scripts:
        session.run("python", str(script), str(out / script.stem), env={"MPLBACKEND": "Agg"})
    for script in scripts:
        if not list((out / script.stem).glob("*.png")):
            session.error(f"{script} wrote no figure")
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    session.log(f"figures written under {out}: {', '.join(written)}")
