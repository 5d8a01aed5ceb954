"""Shared pieces of ``python -m benchmarks``: interleaved timing and the report's tables."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, warmup: bool = True
) -> dict[str, list[float]]:
    """Seconds of each function, ``rounds`` times, the functions taking turns.

    One warm-up call of each first (imports, compilation, caches), then each
    round calls every function once, in an order that rotates from round to
    round, so that a drift in the machine's speed hits every row alike.
    Functions that start work on a GPU must wait for it themselves.
    """
    if warmup:
        for fn in fns.values():
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def best(times: list[float]) -> float:
    return min(times)


def median(times: list[float]) -> float:
    return statistics.median(times)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def fmt_x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_mb(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


def target(ratio: float | None, bound: float, at_most: bool = True) -> str:
    """``"<= 0.50: yes"``: a ratio against the issue's target for it."""
    if ratio is None:
        return f"{'<=' if at_most else '>='} {bound:.2f}"
    met = ratio <= bound if at_most else ratio >= bound
    return f"{'<=' if at_most else '>='} {bound:.2f}: {'yes' if met else 'no'}"


@dataclass
class Table:
    """One section of the report: a title, a table, notes, and the raw numbers."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: list[dict] = field(default_factory=list)

    def add(self, cells: list[Any], **raw: Any) -> None:
        self.rows.append([str(c) for c in cells])
        self.raw.append({"row": str(cells[0]), **raw})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def text(self) -> str:
        lines = [f"\n== {self.title}"]
        if self.rows:
            widths = [
                max(len(self.columns[i]), *(len(r[i]) for r in self.rows))
                for i in range(len(self.columns))
            ]

            def line(cells: list[str]) -> str:
                first = cells[0].ljust(widths[0])
                rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:]))
                return "  " + "  ".join([first, *rest]).rstrip()

            lines.append(line(self.columns))
            lines.append("  " + "  ".join("-" * w for w in widths))
            lines.extend(line(r) for r in self.rows)
        lines.extend(f"  * {n}" for n in self.notes)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
            lines.extend("| " + " | ".join(r) + " |" for r in self.rows)
            lines.append("")
        lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict:
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
            "raw": self.raw,
        }

    def show(self) -> None:
        print(self.text(), flush=True)


class Contention:
    """How much CPU other processes took while a section ran: the noise warning.

    Reads the machine's busy time from /proc/stat and subtracts this process's and its
    finished children's CPU time; on a machine without /proc/stat it reports nothing.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # not idle, iowait
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own

    def note(self) -> str | None:
        """``"other processes used 0.9 of 2 CPUs ..."``, or None where unknown."""
        end = self._sample()
        if self.start is None or end is None or end[0] - self.start[0] < 1:
            return None
        wall = end[0] - self.start[0]
        others = max(0.0, (end[1] - self.start[1]) - (end[2] - self.start[2])) / wall
        cpus = os.cpu_count() or 1
        text = f"other processes used {others:.2f} of {cpus} CPUs on average during this section"
        if others > 0.25:
            text += ": a busy machine, so these timings are noisy (ratios less so)"
        return text


def progress(message: str) -> None:
    """A line on stderr while a section runs (the report itself goes to stdout)."""
    print(f"  ... {message}", file=sys.stderr, flush=True)
