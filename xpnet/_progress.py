"""Progress: a tqdm bar over the passes, and the observer that moves it and calls back."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._train import Observer, TrainState

#: ``callback(pass, loss)``, as :func:`xpnet.fit` takes it.
Callback = Callable[[int, float], Any]


def progress_observer(total: int, callback: Callback | None, bar: Any | None) -> Observer:
    """An observer that hands each recorded ``(pass, loss)`` to ``callback`` and moves ``bar``.

    The bar advances in about 200 ticks rather than per pass: smooth to the
    eye, and tqdm's per-call cost stays negligible next to a pass.  One
    observer may follow several runs (the groups of a grid): it counts passes.
    The first recorded loss is drawn at once (tqdm otherwise redraws at most
    every 0.1 s, which a short run may never reach); the last is on the line
    the bar leaves when it closes.
    """
    tick = max(1, total // 200)
    seen = shown = 0
    drawn = False

    def observe(event: str, state: TrainState, loss: Any) -> None:
        nonlocal seen, shown, drawn
        if event != "epoch":
            return
        seen += 1
        if bar is not None and (loss is not None or seen % tick == 0):
            if loss is not None:
                bar.set_postfix(loss=_describe(loss), refresh=False)
            bar.update(seen - shown)
            shown = seen
            if loss is not None and not drawn:
                bar.refresh()
                drawn = True
        if loss is not None and callback is not None:
            callback(state.history[-1][0], loss)

    return observe


def _describe(loss: Any) -> str:
    if np.ndim(loss) == 0:
        return f"{float(loss):.6f}"
    finite = np.asarray(loss)[np.isfinite(loss)]
    return f"{finite.min():.6f}..{finite.max():.6f}" if finite.size else "nan"


def progress_bar(total: int) -> Any:
    """A tqdm bar of ``total`` passes on stderr, silent unless stderr is a terminal.

    ``disable=None`` is tqdm's switch for that: a bar redraws itself with
    carriage returns, which would litter a redirected log.  (In a notebook
    ``tqdm.auto`` draws a widget, shown whatever stderr is.)  ``leave=True``
    keeps the bar's last frame when it closes: one line with the passes done
    and the last recorded loss.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="pass", file=sys.stderr, dynamic_ncols=True, leave=True, disable=None
    )
