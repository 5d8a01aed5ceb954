"""Nested arrays: a map over them, and parameters packed into one flat vector.

Parameters are lists of ``(W, b)`` pairs and optimizer slots nest them further
(Adam's moments are a pair of such lists); buffers are dicts of lists.  Every
place that moves, copies or slices such a nesting goes through :func:`map`,
and every place that lays ``(W, b)`` pairs end to end in one vector (L-BFGS,
the fast steps' persistent buffers) through :class:`Flat`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Flat", "map"]


def map(fn: Callable[[Any], Any], tree: Any) -> Any:  # noqa: A001 - the tree's own map
    """``fn`` applied to every leaf of a nesting of lists, tuples and dicts.

    Containers keep their type (a tuple stays a tuple, named tuples aside: they
    are leaves); None stays None.
    """
    if tree is None:
        return None
    if isinstance(tree, list):
        return [map(fn, t) for t in tree]
    if isinstance(tree, tuple) and not hasattr(tree, "_fields"):
        return tuple(map(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: map(fn, v) for k, v in tree.items()}
    return fn(tree)


class Flat:
    """Where each ``(W, b)`` of a network sits in one flat vector: ``W`` then ``b``,
    layer after layer (so ``W`` and ``b`` of a layer together are the rows of
    ``[W; b]``).

    Parameters
    ----------
    shapes : sequence of (W shape, b shape)
    """

    def __init__(self, shapes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
        self.slices: list[tuple[tuple[int, int, tuple], tuple[int, int, tuple]]] = []
        start = 0
        for w_shape, b_shape in shapes:
            pair = []
            for shape in (w_shape, b_shape):
                size = math.prod(shape)
                pair.append((start, start + size, tuple(shape)))
                start += size
            self.slices.append((pair[0], pair[1]))
        self.size = start

    def unpack(self, flat: Any, reshape: Callable[[Any, tuple], Any]) -> list[tuple[Any, Any]]:
        """The ``(W, b)`` pairs of ``flat``, as ``reshape(slice, shape)`` (views where the
        library makes them)."""
        return [
            tuple(reshape(flat[begin:end], shape) for begin, end, shape in pair)
            for pair in self.slices
        ]

    def pack(self, xp: Any, pairs: Any) -> Any:
        """A new flat vector of ``pairs``, by ``xp.concat``."""
        return xp.concat([xp.reshape(a, (-1,)) for pair in pairs for a in pair])

    def wide(self, flat: Any) -> list[Any]:
        """Each layer's ``[W; b]`` of ``flat``, shape ``(fan_in + 1, fan_out)``."""
        return [
            flat[w_begin:b_end].reshape(w_shape[0] + 1, w_shape[1])
            for (w_begin, _, w_shape), (_, b_end, _) in self.slices
        ]

    def weights(self) -> list[tuple[int, int]]:
        """The ``(begin, end)`` of each layer's ``W`` (where the L2 term applies)."""
        return [(begin, end) for (begin, end, _), _ in self.slices]
