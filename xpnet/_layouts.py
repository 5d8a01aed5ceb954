"""Many models of one depth as one set of arrays: the layouts of a stack.

Three layouts hold K models (see :mod:`xpnet._network`, whose math takes them
all):

* ``stacked``: models of equal widths, on a leading model axis;
* ``padded``: narrower models padded to the widest, their extra units held at 0;
* ``side_by_side``: one wide network with block-diagonal weights, no padding.

Each packs the models' host parameters into its arrays, scales per-model
settings to broadcast against them, computes the stack's gradients and each
model's mean loss, and unpacks the models again.  Pure math, as the network's.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _target
from ._network import Wiring, backprop, forward, mean_loss, out_activation, sample_losses


class Layout(ABC):
    """K models of one depth as one set of arrays: packing, math and unpacking."""

    #: The axis of the classes in the output pre-activations.
    class_axis = -1

    def __init__(self, sizes: list[tuple[int, ...]], target: _target.Target, dtype: Any) -> None:
        self.sizes, self.target, self.dtype = sizes, target, dtype
        self.K, self.depth = len(sizes), len(sizes[0]) - 1
        self.wiring: Wiring | None = None

    @abstractmethod
    def pack(self, models: list[list[tuple[np.ndarray, np.ndarray]]]) -> list:
        """Each model's host ``(W, b)`` pairs as the stack's parameters, on the target."""

    @abstractmethod
    def per_model(self, values: Sequence[float]) -> Any:
        """One value per model, shaped to scale each layer's ``W`` and ``b``."""

    @abstractmethod
    def _model_arrays(self, params: list, k: int) -> list[tuple[Any, Any]]:
        """Model ``k``'s ``(W, b)`` pairs as views into the stack."""

    def unpack(self, params: list) -> list[list]:
        """Each model's ``(W, b)`` pairs, copied out of the stack on the target."""
        xp = self.target.xp
        return [
            [
                tuple(xp.asarray(a, copy=True) for a in pair)
                for pair in self._model_arrays(params, k)
            ]
            for k in range(self.K)
        ]

    def logits(self, params: list, X: Any, activation: str) -> tuple[list, Any]:
        """The layers' inputs, and the output pre-activations with a model axis."""
        return forward(self.target.xp, params, X, activation, self.wiring)

    def targets(self, Y: Any) -> Any:
        """The one-hot labels, shaped to broadcast against :meth:`logits`."""
        return Y

    def gradients(self, params: list, X: Any, Y: Any, activation: str, l2: Any) -> list:
        xp = self.target.xp
        inputs, z = self.logits(params, X, activation)
        delta = out_activation(xp, "softmax", z, self.class_axis) - self.targets(Y)
        return backprop(xp, params, inputs, self.output_layer(delta), activation, l2, self.wiring)

    def output_layer(self, delta: Any) -> Any:
        """Errors shaped like :meth:`logits`, back in the output layer's shape."""
        return delta

    @abstractmethod
    def mean_losses(self, params: list, X: Any, Y: Any, activation: str, l2: Any) -> Any:
        """Each model's mean loss (K,); NaN for a model with non-finite parameters."""


class Stacked(Layout):
    """Models on a leading axis, narrower ones padded to the widest (``padded``)."""

    def __init__(self, sizes: list[tuple[int, ...]], target: _target.Target, dtype: Any) -> None:
        super().__init__(sizes, target, dtype)
        self.widest = [max(s[layer] for s in sizes) for layer in range(self.depth + 1)]
        if len(set(sizes)) > 1:  # 1 for each model's own units, 0 for its padding
            masks = []
            for layer in range(1, self.depth):
                own = np.array([s[layer] for s in sizes])[:, None]
                mask = np.arange(self.widest[layer])[None, :] < own
                masks.append(target.asarray(mask.astype(float)[:, None, :], dtype))
            self.wiring = Wiring(unit_masks=masks)

    def pack(self, models):
        layers = []
        for layer in range(self.depth):
            W = np.zeros((self.K, self.widest[layer], self.widest[layer + 1]))
            b = np.zeros((self.K, 1, self.widest[layer + 1]))
            for k, params in enumerate(models):
                fan_in, fan_out = params[layer][0].shape
                W[k, :fan_in, :fan_out] = params[layer][0]
                b[k, 0, :fan_out] = params[layer][1]
            layers.append((W, b))
        return _target.moved(self.target, layers, self.dtype)

    def per_model(self, values):
        return self.target.asarray(np.asarray(values, dtype=float)[:, None, None], self.dtype)

    def _model_arrays(self, params, k):
        sizes = self.sizes[k]
        return [
            (W[k, : sizes[layer], : sizes[layer + 1]], b[k, 0, : sizes[layer + 1]])
            for layer, (W, b) in enumerate(params)
        ]

    def mean_losses(self, params, X, Y, activation, l2):
        terms = dict(activation=activation, output="softmax", l2=l2, wiring=self.wiring)
        return mean_loss(self.target.xp, params, X, Y, **terms)


class SideBySide(Layout):
    """Models side by side in one wide network with block-diagonal weights.

    Each model's columns in each layer: a range of each hidden layer, and in the
    output layer every K-th column from k (class-major: column c*K + k is class c
    of model k), so that the outputs reshape for free to (n, classes, K) and the
    softmax reduces over a middle axis, which NumPy does far faster than over a
    last axis of two classes.
    """

    class_axis = -2

    def __init__(self, sizes: list[tuple[int, ...]], target: _target.Target, dtype: Any) -> None:
        super().__init__(sizes, target, dtype)
        self.columns = []
        for layer in range(1, self.depth):
            ends = np.cumsum([s[layer] for s in sizes])
            self.columns.append([slice(int(e) - s[layer], int(e)) for e, s in zip(ends, sizes)])
        self.columns.append([slice(k, None, self.K) for k in range(self.K)])
        self.owners = []
        for layer, columns in enumerate(self.columns, start=1):
            owner = np.empty(sum(s[layer] for s in sizes), dtype=int)
            for k, cols in enumerate(columns):
                owner[cols] = k
            self.owners.append(owner)
        # owner_onehot[l][j, k]: column j of layer l belongs to model k
        self.owner_onehot = [
            target.asarray((o[:, None] == np.arange(self.K)[None, :]).astype(float), dtype)
            for o in self.owners
        ]
        blocks = [None] + [
            target.asarray(self.owners[layer - 1][:, None] == self.owners[layer][None, :])
            for layer in range(1, self.depth)
        ]
        self.wiring = Wiring(blocks=blocks)

    def _rows(self, layer: int, k: int) -> slice:
        return self.columns[layer - 1][k] if layer else slice(None)

    def pack(self, models):
        layers = []
        for layer in range(self.depth):
            fan_in = len(self.owners[layer - 1]) if layer else self.sizes[0][0]
            W = np.zeros((fan_in, len(self.owners[layer])))
            b = np.zeros((1, len(self.owners[layer])))
            for k, params in enumerate(models):
                W[self._rows(layer, k), self.columns[layer][k]] = params[layer][0]
                b[0, self.columns[layer][k]] = params[layer][1]
            layers.append((W, b))
        return _target.moved(self.target, layers, self.dtype)

    def per_model(self, values):
        v = np.asarray(values, dtype=float)
        return [self.target.asarray(v[owners][None, :], self.dtype) for owners in self.owners]

    def _model_arrays(self, params, k):
        return [
            (W[self._rows(layer, k), self.columns[layer][k]], b[0, self.columns[layer][k]])
            for layer, (W, b) in enumerate(params)
        ]

    def logits(self, params, X, activation):
        inputs, z = super().logits(params, X, activation)
        return inputs, self.target.xp.reshape(z, (X.shape[0], self.sizes[0][-1], self.K))

    def targets(self, Y):
        return Y[:, :, None]

    def output_layer(self, delta):
        return self.target.xp.reshape(delta, (delta.shape[0], -1))

    def mean_losses(self, params, X, Y, activation, l2):
        xp = self.target.xp
        _, z = self.logits(params, X, activation)
        per_sample = sample_losses(xp, "softmax", z, self.targets(Y), self.class_axis)
        losses = xp.sum(per_sample, axis=0)
        # Per column, then per model: a model's non-finite weights must not reach the
        # others' sums through 0 * nan, so they are counted apart.
        squares, bad = 0.0, 0.0
        for (W, b), c, onehot in zip(params, l2, self.owner_onehot, strict=True):
            column = xp.sum(c * (W * W), axis=-2)
            broken = ~(xp.isfinite(column) & xp.isfinite(b[0, :]))
            squares = squares + xp.where(broken, 0.0, column) @ onehot
            bad = bad + xp.astype(broken, column.dtype) @ onehot
        total = (losses + 0.5 * squares) / X.shape[0]
        return xp.where(bad > 0, math.nan, total)


#: Each layout of a stack, by name.
BY_NAME: dict[str, type[Layout]] = {
    "stacked": Stacked,
    "padded": Stacked,
    "side_by_side": SideBySide,
}
