"""Fast paths: the training step of one network, with reused buffers, for NumPy and PyTorch.

The portable step (:mod:`xpnet._network` and :mod:`xpnet._optim` on any Array
API namespace) allocates a fresh array for every intermediate and updates each
weight matrix and bias on its own.  On a CPU that costs as much as the
arithmetic: on the article's tiny network each call is microseconds of
overhead, and on wide layers each temporary is a trip through memory.  This
step does the same arithmetic with three changes:

* intermediates of a batch's size are written into buffers kept between steps
  (``tanh(a, out=a)``);
* parameters, gradients and optimizer slots live in one flat vector each, so
  the L2 term and the update are a few operations on the whole vector;
* on NumPy, sums over a handful of classes are taken column by column, since
  its reductions over a short axis are slow; and under the article's rule,
  each layer's input carries a column of ones and its weights the bias as an
  extra row (the flat vector already holds ``W`` then ``b``, which is that
  matrix), so that ``[a, 1] @ [W; b]`` is the layer with its bias, and
  ``[a, 1].T @ delta`` gives both gradients in one product.  Those inputs are
  kept in column-major order, where the leading columns are one contiguous
  block and the transposed products need no copy.

The first two change no number.  The last rounds the article's bias terms
differently (sums in another order), so its results agree with the portable
step to rounding, as any two backends do; under scikit-learn's rule (mean
gradients) the step equals the portable one bit for bit on NumPy, as the
drop-ins equal scikit-learn's.  The tests hold the two together.

The caller's parameters and slots are never written: each step copies them
into a new flat vector and returns views of it, so the training state stays
plain data that can be kept as a snapshot.  Buffers are per thread, so
concurrent fits do not share them.

The step is written once against a small table of in-place kernels per
library (:class:`Kernels`); only :mod:`xpnet._backends` hands it out, and the
portable step stays the reference.

On torch, an epoch's full batches are also one call (:meth:`TorchStep.batches`):
the parameters and slots are copied once into flat vectors that persist through
it, each batch is gathered into fixed buffers, and one batch step, written with
torch's fused operations (``addmm`` with the L2 term, ``tanh_backward``, the
fused Adam), updates them in place.  It reads only those buffers and fixed 0-d
tensors (the step size), so on CUDA it is captured once as a CUDA graph and
replayed; on a CPU it runs as it is.  Its numbers are the portable step's to
rounding.  A run of the article's passes (one recorded pass, replayed) is captured
likewise on CUDA, :data:`GRAPH_PASSES` passes to a graph.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _tree
from ._network import penalty

#: Below this many classes, sums and maxima over them go column by column (same rounding).
_FEW = 8


class Kernels(NamedTuple):
    """One library's in-place operations, as the step needs them.

    A kernel function may carry ``plan(*args) -> (steps, result)``, the calls it
    makes as ``(function, arguments)``, which a recorded pass then replays directly.

    Elementwise functions take ``out``; ``reduce_last(name, z, out)`` takes
    the maximum or sum over the last axis keeping it; ``sum_rows(delta, out)``
    sums the rows of ``delta``.  ``augment`` says whether the article's rule
    runs on inputs with a column of ones (see the module's docstring).
    """

    owns: Callable[[Any], bool]
    key: Callable[[Any], tuple]  # what buffers depend on besides shapes: dtype, device
    empty: Callable[[tuple, Any], Any]  # (shape, like)
    ones_column: Callable[[int, int, Any], Any]  # (n, width, like): [empty, 1], column-major
    augment: bool
    eps: Callable[[Any], float]
    matmul: Callable
    add: Callable
    subtract: Callable
    multiply: Callable
    divide: Callable
    maximum: Callable
    one_minus: Callable  # (x, out): 1 - x
    positive: Callable  # (x, out): 1 where x > 0, else 0, in x's dtype
    tanh: Callable
    exp: Callable
    log: Callable
    sqrt: Callable
    negative: Callable
    clip: Callable  # (x, low, high, out)
    reduce_last: Callable
    sum_rows: Callable
    sum_last: Callable  # (x): the sum over the last axis, a new array
    mean_last: Callable
    total: Callable  # (x): the sum of all, a 0-d array


def _numpy_kernels() -> Kernels:
    def reduce_last(name, z, out):
        return _run(reduce_last.plan(name, z, out))

    def plan_reduce_last(name, z, out):
        # NumPy's reductions over a short last axis are slow; below 8 columns NumPy also
        # sums one column after the other, so going column by column rounds as it does.
        ufunc = np.maximum if name == "max" else np.add
        n_columns = z.shape[-1]
        if n_columns >= _FEW or n_columns < 2:
            return [(functools.partial(ufunc.reduce, axis=-1, keepdims=True, out=out), (z,))], out
        combine = functools.partial(ufunc, out=out)
        steps = [(combine, (z[:, 0:1], z[:, 1:2]))]
        steps += [(combine, (out, z[:, j : j + 1])) for j in range(2, n_columns)]
        return steps, out

    reduce_last.plan = plan_reduce_last

    def ones_column(n, width, like):
        block = np.empty((n, width + 1), like.dtype, order="F")
        block[:, width] = 1.0
        return block

    def matmul(a, b, out):
        return _run(matmul.plan(a, b, out))

    def plan_matmul(a, b, out):
        # np.dot calls BLAS with less ado than np.matmul (a microsecond on small matrices),
        # but writes only into C-ordered arrays: a column-major out is the transpose of one.
        if out.flags.c_contiguous:
            return [(np.dot, (a, b, out))], out
        if out.flags.f_contiguous:
            return [(np.dot, (b.T, a.T, out.T))], out
        return [(np.matmul, (a, b, out))], out

    matmul.plan = plan_matmul

    def one_minus(x, out):
        return np.subtract(1.0, x, out)

    one_minus.plan = lambda x, out: ([(np.subtract, (1.0, x, out))], out)

    # The ufuncs themselves, ``out`` passed by position: each call is a microsecond here.
    return Kernels(
        owns=lambda x: type(x) is np.ndarray,
        key=lambda x: (x.dtype.char,),
        empty=lambda shape, like: np.empty(shape, like.dtype),
        ones_column=ones_column,
        augment=True,
        eps=lambda dtype: float(np.finfo(dtype).eps),
        matmul=matmul,
        add=np.add,
        subtract=np.subtract,
        multiply=np.multiply,
        divide=np.divide,
        maximum=lambda x, y, out: np.maximum(x, y, out=out),
        one_minus=one_minus,
        positive=lambda x, out: np.greater(x, 0.0, out=out),
        tanh=np.tanh,
        exp=np.exp,
        log=np.log,
        sqrt=np.sqrt,
        negative=np.negative,
        clip=lambda x, low, high, out: np.clip(x, low, high, out=out),
        reduce_last=reduce_last,
        sum_rows=lambda delta, out: np.add.reduce(delta, axis=0, out=out),
        sum_last=lambda x: np.sum(x, axis=-1),
        mean_last=lambda x: np.mean(x, axis=-1),
        total=np.sum,
    )


def _run(plan: tuple[list, Any]) -> Any:
    """Carry out a kernel's plan: its steps ``(function, arguments)``, then its result."""
    steps, result = plan
    for function, args in steps:
        function(*args)
    return result


def _torch_kernels() -> Kernels:
    import torch

    def one_minus(x, out):  # -(x - 1) is 1 - x exactly; torch has no out= for 1 - x
        torch.sub(x, 1.0, out=out)
        return torch.neg(out, out=out)

    def reduce_last(name, z, out):
        if name == "max":
            return torch.amax(z, -1, keepdim=True, out=out)
        return torch.sum(z, -1, keepdim=True, out=out)

    return Kernels(
        owns=lambda x: type(x) is torch.Tensor and not x.requires_grad,
        key=lambda x: (x.dtype, x.device),
        empty=lambda shape, like: torch.empty(shape, dtype=like.dtype, device=like.device),
        ones_column=None,
        augment=False,
        eps=lambda dtype: float(torch.finfo(dtype).eps),
        matmul=lambda a, b, out: torch.matmul(a, b, out=out),
        add=lambda x, y, out: torch.add(x, y, out=out),
        subtract=lambda x, y, out: torch.sub(x, y, out=out),
        multiply=lambda x, y, out: torch.mul(x, y, out=out),
        divide=lambda x, y, out: torch.div(x, y, out=out),
        maximum=lambda x, y, out: torch.maximum(x, y, out=out),
        one_minus=one_minus,
        positive=lambda x, out: out.copy_(x > 0),
        tanh=lambda x, out: torch.tanh(x, out=out),
        exp=lambda x, out: torch.exp(x, out=out),
        log=lambda x, out: torch.log(x, out=out),
        sqrt=lambda x, out: torch.sqrt(x, out=out),
        negative=lambda x, out: torch.neg(x, out=out),
        clip=lambda x, low, high, out: torch.clamp(x, low, high, out=out),
        reduce_last=reduce_last,
        sum_rows=lambda delta, out: torch.sum(delta, 0, out=out),
        sum_last=lambda x: torch.sum(x, -1),
        mean_last=lambda x: torch.mean(x, -1),
        total=torch.sum,
    )


# -- hidden activations in place, and their slopes folded into delta -----------------------
def _tanh(k: Kernels, z: Any, scratch: Any) -> None:
    k.tanh(z, z)


def _logistic(k: Kernels, z: Any, scratch: Any) -> None:
    """``_network.logistic`` in place, bit for bit: with ``m = (z > 0)``,
    ``e = exp(-|z|)`` and ``r = 1 / (1 + e)``, ``max(m, e) * r`` is ``r`` where
    ``z > 0`` (as ``e <= 1``) and ``e * r`` elsewhere, a select without one.  Every
    step is exact but the exponential, ``1 + e``, the reciprocal and the last
    product, which round as the portable form's do."""
    e = k.negative(z, scratch)
    k.maximum(z, e, e)  # |z|
    m = k.positive(z, z)
    k.negative(e, e)
    k.exp(e, e)
    k.maximum(m, e, m)  # max(m, e)
    k.add(e, 1.0, e)
    k.divide(1.0, e, e)  # r
    k.multiply(m, e, z)


# Every array an operation reads or writes must be one of the buffers, even (z > 0):
# Step.passes replays the operations of a pass on the same arrays.
def _relu(k: Kernels, z: Any, scratch: Any) -> None:  # z * (z > 0), as _network._relu
    k.multiply(z, k.positive(z, scratch), z)


# Each slope may overwrite the activation a: backprop needs it no more.
def _tanh_slope(k: Kernels, delta: Any, a: Any, scratch: Any) -> None:
    k.multiply(a, a, a)
    k.one_minus(a, a)
    k.multiply(delta, a, delta)


def _logistic_slope(k: Kernels, delta: Any, a: Any, scratch: Any) -> None:
    k.one_minus(a, scratch)
    k.multiply(a, scratch, a)
    k.multiply(delta, a, delta)


def _relu_slope(k: Kernels, delta: Any, a: Any, scratch: Any) -> None:
    k.multiply(delta, k.positive(a, scratch), delta)


_ACTIVATIONS: dict[str, tuple[Callable | None, Callable | None]] = {
    "identity": (None, None),
    "tanh": (_tanh, _tanh_slope),
    "logistic": (_logistic, _logistic_slope),
    "relu": (_relu, _relu_slope),
}


# -- outputs in place: z becomes the output (scratch: room of its shape); losses go to scratch
def _softmax(k: Kernels, z: Any, column: Any, scratch: Any) -> None:
    k.subtract(z, k.reduce_last("max", z, column), z)
    k.exp(z, z)
    k.divide(z, k.reduce_last("sum", z, column), z)


def _logistic_output(k: Kernels, z: Any, column: Any, scratch: Any) -> None:
    _logistic(k, z, scratch)


def _clipped_log(k: Kernels, p: Any, Y: Any, out: Any) -> Any:
    """``-Y * log(clip(p))`` into ``out`` (the sign commutes with rounding)."""
    eps = k.eps(p.dtype)
    k.clip(p, eps, 1.0 - eps, out)
    k.log(out, out)
    k.multiply(Y, out, out)
    return k.negative(out, out)


def _softmax_losses(k: Kernels, p: Any, Y: Any, scratch: list) -> Any:
    return k.sum_last(_clipped_log(k, p, Y, scratch[0]))


def _logistic_losses(k: Kernels, p: Any, Y: Any, scratch: list) -> Any:
    # -Y log p - (1 - Y) log(1 - p), p clipped, as _network._clipped_log_losses
    first, second = scratch
    _clipped_log(k, p, Y, first)
    eps = k.eps(p.dtype)
    k.clip(p, eps, 1.0 - eps, second)
    k.one_minus(second, second)
    k.log(second, second)
    k.multiply(k.one_minus(Y, k.empty(Y.shape, Y)), second, second)
    k.subtract(first, second, first)
    return k.sum_last(first)


def _identity_losses(k: Kernels, z: Any, Y: Any, scratch: list) -> Any:
    difference = k.subtract(z, Y, scratch[0])
    k.multiply(difference, difference, difference)
    return 0.5 * k.mean_last(difference)


_OUTPUTS: dict[str, tuple[Callable | None, Callable]] = {
    "softmax": (_softmax, _softmax_losses),
    "logistic": (_logistic_output, _logistic_losses),
    "identity": (None, _identity_losses),
}


# -- buffers and the flat layout --------------------------------------------------------
class _Buffers(threading.local):
    """Per-thread buffers, by the shapes, dtype and device of a batch, and the layout."""

    def __init__(self) -> None:
        self.by_shape: dict[tuple, dict[str, Any]] = {}

    def get(
        self, k: Kernels, X: Any, widths: tuple[int, ...], augment: bool, scratch: bool
    ) -> dict[str, Any]:
        n = X.shape[0]
        key = (n, X.shape[1], widths, augment, scratch, *k.key(X))
        found = self.by_shape.get(key)
        if found is None and not augment:
            # A shorter batch (an epoch's last) takes the first rows of a longer one's
            # buffers, rather than a second set; augmented buffers are column-major.
            rest = key[1:]
            longer = [v for (m, *r), v in self.by_shape.items() if m > n and tuple(r) == rest]
            if longer:
                found = self.by_shape[key] = _tree.map(lambda a: a[:n], longer[0])
        if found is None:
            if len(self.by_shape) > 8:  # a few batch sizes at most are in use at once
                self.by_shape.clear()
            hidden, n_out = widths[:-1], widths[-1]
            if augment:  # column-major, each input with its column of ones
                inputs = [k.ones_column(n, w, X) for w in (X.shape[1], *hidden)]
                delta = [k.ones_column(n, w, X)[:, :w] for w in hidden]
                z = k.ones_column(n, n_out, X)[:, :n_out]
            else:
                inputs = [None, *(k.empty((n, w), X) for w in hidden)]
                delta = [k.empty((n, w), X) for w in hidden]
                z = k.empty((n, n_out), X)
            found = self.by_shape[key] = dict(
                inputs=inputs,
                # the activations themselves: without the column of ones
                hidden=[a[:, :-1] if augment else a for a in inputs[1:]],
                delta=delta,
                # only the relu and the logistic's slope need room of their own
                scratch=[k.empty((n, w), X) if scratch else None for w in hidden],
                z=z,
                column=k.empty((n, 1), X),
                out_scratch=[k.empty((n, n_out), X) for _ in range(2)],
            )
        return found


_BUFFERS = _Buffers()
_FLAT = threading.local()


class _Flat(_tree.Flat):
    """The flat layout of one network's ``(W, b)`` pairs (see :class:`xpnet._tree.Flat`), in
    one library's vectors, with the L2 strength of each entry."""

    def __init__(self, k: Kernels, shapes: tuple, like: Any, l2: float) -> None:
        super().__init__(shapes)
        self.k, self.like = k, k.empty((0,), like)  # its dtype and device, not the array
        # l2 on the weights, 0 on the biases: ``grad += l2_of * theta`` is ``dW += l2 W``
        self.l2_of = k.empty((self.size,), like)
        self.l2_of[...] = 0.0
        for begin, end in self.weights():
            self.l2_of[begin:end] = l2

    def scratch(self) -> tuple[Any, Any]:
        """Two flat vectors of this thread's own (the gradient, and room for the update)."""
        mine = _FLAT.__dict__.setdefault("by_layout", {})
        if self not in mine:
            mine.clear()  # one layout at a time per thread: a fit's
            mine[self] = (
                self.k.empty((self.size,), self.like),
                self.k.empty((self.size,), self.like),
            )
        return mine[self]

    def pairs(self, flat: Any) -> list[tuple[Any, Any]]:
        """The ``(W, b)`` views of ``flat``."""
        return self.unpack(flat, lambda a, shape: a.reshape(shape))

    def flatten(self, pairs: Any) -> Any:
        """A new flat vector holding ``pairs``."""
        return self.fill(self.k.empty((self.size,), self.like), pairs)

    def fill(self, flat: Any, pairs: Any) -> Any:
        """``flat``, ``pairs`` copied into it."""
        for pair, where in zip(pairs, self.slices, strict=True):
            for array, (begin, end, _) in zip(pair, where, strict=True):
                flat[begin:end] = array.reshape(-1)
        return flat


# -- the step ------------------------------------------------------------------------------
class _Views(NamedTuple):
    """One step's arrays: ``params`` as ``(W, b)`` pairs; ``wide`` as ``[W; b]`` matrices
    (augmented inputs) or None; ``grads`` shaped like ``wide`` or like ``params``."""

    params: list
    wide: list | None
    grads: list
    buffers: dict


class Step:
    """The fast step of one configuration; see the module's docstring.

    Calls it cannot serve (SciPy sparse batches, a stack of models, per-model
    step sizes, mixed dtypes or devices) go to the portable step.
    """

    def __init__(self, k, xp, optimizer, activation, output, l2, mean_gradients, portable):
        self.k, self.xp = k, xp
        self.optimizer, self.l2, self.mean_gradients = optimizer, l2, mean_gradients
        self.rule = optimizer.rule()[0]
        self.act, self.slope = _ACTIVATIONS[activation]
        self.output, self.losses = _OUTPUTS[output]
        self.portable = portable
        self.layouts: dict[tuple, _Flat] = {}

    def _layout(self, params: list, X: Any, Y: Any, lr: Any) -> _Flat | None:
        k = self.k
        if not (k.owns(X) and k.owns(Y)) or not isinstance(lr, float):
            return None
        shapes = tuple((tuple(W.shape), tuple(b.shape)) for W, b in params)
        key = (shapes, *k.key(X))
        layout = self.layouts.get(key)
        if layout is None:
            arrays = [a for pair in params for a in pair]
            same = all(k.owns(a) and k.key(a) == k.key(X) for a in (*arrays, Y))
            if not same or any(len(w) != 2 or len(b) != 1 for w, b in shapes):
                return None
            layout = self.layouts[key] = _Flat(k, shapes, X, self.l2)
        return layout

    def __call__(self, params, slots, X, Y, sw, lr):
        layout = self._layout(params, X, Y, lr)
        if layout is None:
            return self.portable(params, slots, X, Y, sw, lr)
        theta, moments = self._unpack(layout, params, slots)
        grad, scratch = layout.scratch()
        views = self._views(layout, theta, grad, X)
        loss = self._gradients(self.k, views, theta, grad, layout.l2_of, X, Y, sw, scratch)
        self._update(self.k, theta, grad, moments, lr, scratch)
        return views.params, self._pack(layout, moments), loss

    def passes(self, params, slots, X, Y, sw, lr, m):
        """``m`` steps as one call, each updating one private flat vector in place."""
        layout = self._layout(params, X, Y, lr)
        if layout is None or self.mean_gradients:  # steps one by one (losses are computed)
            for _ in range(m):
                params, slots, _ = self(params, slots, X, Y, sw, lr)
            return params, slots
        theta, moments = self._unpack(layout, params, slots)
        grad, scratch = layout.scratch()
        views = self._views(layout, theta, grad, X)
        # Every operation of a pass writes into the same arrays, with the same constants:
        # record the first pass's operations, then replay them without the Python between.
        program: list = []
        k = _recording(self.k, program)
        if m > 0:
            self._gradients(k, views, theta, grad, layout.l2_of, X, Y, sw, scratch)
            self._update(k, theta, grad, moments, lr, scratch)
        _replay(program, m - 1, X)
        return views.params, self._pack(layout, moments)

    def release(self) -> None:
        """Free this thread's buffers (at the end of a run: they are a few batches' worth)."""
        _BUFFERS.by_shape.clear()
        _FLAT.__dict__.pop("by_layout", None)
        _EPOCHS.__dict__.pop("by_key", None)

    def _views(self, layout: _Flat, theta: Any, grad: Any, X: Any) -> _Views:
        """The parameters and gradients as matrices, and the batch's buffers, with ``X`` in."""
        augment = self.k.augment and not self.mean_gradients
        widths = tuple(shape[1] for (_, _, shape), _ in layout.slices)
        scratch = self.act is _relu or self.slope is _logistic_slope
        buffers = _BUFFERS.get(self.k, X, widths, augment, scratch)
        if augment:
            # The input beside its column of ones, copied once while the same X comes back
            # (a full batch, pass after pass); the buffers go at the end of each run.
            held = buffers.get("holds")
            if held is None or held() is not X:
                buffers["inputs"][0][:, :-1] = X
                buffers["holds"] = weakref.ref(X)
            return _Views(layout.pairs(theta), layout.wide(theta), layout.wide(grad), buffers)
        return _Views(layout.pairs(theta), None, layout.pairs(grad), buffers)

    def _unpack(self, layout: _Flat, params: list, slots: tuple) -> tuple:
        """New flat copies of the parameters and of each moment: never the caller's arrays."""
        return layout.flatten(params), [layout.flatten(moment) for moment in slots]

    def _pack(self, layout: _Flat, moments: list) -> tuple:
        return tuple(layout.pairs(flat) for flat in moments)

    def _gradients(self, k: Kernels, views, theta, grad, l2_of, X, Y, sw, scratch) -> Any:
        """The gradient into ``grad``; the reported loss when ``mean_gradients``, else None.

        Without the loss, every array it writes is in ``views`` or ``grad``, and
        every operation is one of ``k``'s (see :meth:`passes`).
        """
        buffers, wide = views.buffers, views.wide
        hidden = buffers["hidden"]
        inputs = [X if wide is None else buffers["inputs"][0]]  # the input of each layer
        for i, (W, b) in enumerate(views.params[:-1]):
            if wide is None:
                a = k.matmul(inputs[-1], W, hidden[i])
                k.add(a, b, a)
            else:
                a = k.matmul(inputs[-1], wide[i], hidden[i])  # [a, 1] @ [W; b]
            if self.act is not None:
                self.act(k, a, buffers["scratch"][i])
            inputs.append(buffers["inputs"][i + 1])
        W, b = views.params[-1]
        if wide is None:
            z = k.matmul(inputs[-1], W, buffers["z"])
            k.add(z, b, z)
        else:
            z = k.matmul(inputs[-1], wide[-1], buffers["z"])
        if self.output is not None:  # z becomes the output; the losses' room is free till then
            self.output(k, z, buffers["column"], buffers["out_scratch"][0])
        loss = None
        if self.mean_gradients:
            losses = self.losses(k, z, Y, buffers["out_scratch"])
            if sw is not None:
                losses = losses * sw
            loss = k.sum_last(losses) + penalty(self.xp, views.params, self.l2)
        delta = k.subtract(z, Y, z)  # dLoss/dz, by the canonical output/loss pairs
        if sw is not None:
            k.multiply(delta, sw[:, None], delta)
        for layer in range(len(views.params) - 1, -1, -1):
            W, _ = views.params[layer]
            if wide is None:
                dW, db = views.grads[layer]
                k.matmul(inputs[layer].T, delta, dW)
                k.sum_rows(delta, db)  # as scikit-learn's np.mean(delta, 0), to the last bit
            else:
                k.matmul(inputs[layer].T, delta, views.grads[layer])  # [dW; db]
            if layer > 0:
                delta = k.matmul(delta, W.T, buffers["delta"][layer - 1])
                if self.slope is not None:
                    self.slope(k, delta, hidden[layer - 1], buffers["scratch"][layer - 1])
        k.add(grad, k.multiply(l2_of, theta, scratch), grad)  # dW + l2 W (and db + 0)
        if self.mean_gradients:
            total = X.shape[0] if sw is None else k.total(sw)
            grad /= total
            loss = loss / total
        return loss

    def _update(self, k: Kernels, theta, grad, moments, lr, scratch) -> None:
        """The optimizer's update of :mod:`xpnet._optim`, in place on the flat vectors."""
        _UPDATES[self.rule](k, self.optimizer, theta, grad, moments, lr, scratch)


# -- optimizer updates in place, by the optimizers' own names ------------------------------
def _sgd(k: Kernels, opt: Any, theta, grad, moments, lr, scratch) -> None:
    if not moments:
        k.multiply(grad, lr, grad)
        k.subtract(theta, grad, theta)  # p - lr g
        return
    (velocity,) = moments
    mu = opt.momentum
    k.multiply(velocity, mu, velocity)
    k.multiply(grad, lr, grad)
    k.subtract(velocity, grad, velocity)  # mu v - lr g
    move = velocity
    if opt.nesterov:
        move = k.multiply(velocity, mu, scratch)
        k.subtract(move, grad, move)  # mu v - lr g, with the new v
    k.add(theta, move, theta)


def _adam(k: Kernels, opt: Any, theta, grad, moments, lr, scratch) -> None:
    first, second = moments
    b1, b2 = opt.beta_1, opt.beta_2
    k.multiply(first, b1, first)
    k.multiply(grad, 1 - b1, scratch)
    k.add(first, scratch, first)  # b1 m + (1 - b1) g
    k.multiply(second, b2, second)
    k.multiply(grad, grad, grad)
    k.multiply(grad, 1 - b2, grad)
    k.add(second, grad, second)  # b2 v + (1 - b2) g^2
    k.sqrt(second, grad)
    k.add(grad, opt.epsilon, grad)
    k.multiply(first, -lr, scratch)
    k.divide(scratch, grad, grad)
    k.add(theta, grad, theta)  # p + (-lr m) / (sqrt(v) + eps)


#: Each optimizer's update, keyed by its rule's name (``optimizer.rule()[0]``).
_UPDATES: dict[str, Callable] = {"sgd": _sgd, "adam": _adam}


#: Passes a CUDA graph of the article's run holds: a few dozen kernels each.
GRAPH_PASSES = 50


def _replay(program: list, times: int, X: Any) -> None:
    """The recorded pass ``program`` run ``times`` more times.  On CUDA a run of passes is
    captured as a graph (after the same passes as a warm-up) and replayed, a launch for
    :data:`GRAPH_PASSES` passes; the passes left over run as they are."""

    def run(passes: int) -> None:
        for _ in range(passes):
            for operation, args in program:
                operation(*args)

    device = getattr(X, "device", None)
    per = min(GRAPH_PASSES, times // 2)  # a warm-up, then at least one replay
    if getattr(device, "type", None) != "cuda" or per < 1:
        run(times)
        return
    import torch

    with torch.cuda.device(device):
        graph = _captured(lambda: run(per), device)
        left = times - per
        for _ in range(left // per):
            graph.replay()
        run(left % per)


def _recording(k: Kernels, program: list) -> Kernels:
    """``k``, its operations also appended to ``program`` as ``(function, arguments)``."""

    def record(fn: Callable) -> Callable:
        plan = getattr(fn, "plan", None)  # a kernel that knows its steps records them

        def call(*args: Any) -> Any:
            if plan is None:
                program.append((fn, args))
                return fn(*args)
            steps, result = plan(*args)
            program.extend(steps)
            return _run((steps, result))

        return call

    operations = {
        name: record(getattr(k, name))
        for name in (
            "matmul add subtract multiply divide maximum one_minus positive tanh exp log sqrt "
            "negative "
            "clip reduce_last sum_rows"
        ).split()
    }
    return k._replace(**operations)


# -- torch: an epoch's batches on persistent buffers, a step a CUDA graph can capture -------
_EPOCHS = threading.local()


class _Epoch:
    """The buffers one batch step of a torch epoch reads and writes, and nothing else.

    The parameters, gradient and optimizer slots are flat vectors (``[W; b]`` views
    of them per layer); each layer's input carries a column of ones, so that
    ``[a, 1] @ [W; b]`` is the layer with its bias and ``[a, 1].T @ delta`` both its
    gradients; the batch's rows, targets and step size are copied into fixed
    buffers (``x``, ``Y``, ``rates``) before each step.  So every step reads the
    same memory with the same scalar arguments, and on CUDA one step captured as a
    graph (:attr:`graph`) replays as the next.  For the graph's sake the buffers
    outlive a call: a call copies the caller's parameters and slots in, and hands
    back copies (per thread, freed by :meth:`Step.release`).
    """

    def __init__(self, layout: _Flat, n: int, X: Any, Y: Any, n_slots: int, l2: float) -> None:
        import torch

        def empty(*shape: int, dtype: Any = X.dtype) -> Any:
            return torch.empty(shape, dtype=dtype, device=X.device)

        def ones_column(width: int) -> Any:
            # Row-major, the activations a strided view: BLAS writes [a, 1] @ [W; b] into it
            # and a gather copies whole rows, where column-major made both slower on CPUs.
            # Rows padded to a multiple of 16 entries start on a cache line (as BLAS likes).
            block = empty(n, -(-(width + 1) // 16) * 16)[:, : width + 1]
            block[:, width] = 1.0
            return block

        self.n, self.layout = n, layout
        widths = [shape[1] for (_, _, shape), _ in layout.slices]
        hidden, n_out = widths[:-1], widths[-1]
        self.theta, self.grad, self.scratch = (empty(layout.size) for _ in range(3))
        self.slots = [empty(layout.size) for _ in range(n_slots)]
        self.wide, self.grad_wide = layout.wide(self.theta), layout.wide(self.grad)
        self.weights = [W for W, _ in layout.pairs(self.theta)]
        # l2 / n on the weights, 0 on the biases: grad = (l2 / n) theta, then += a.T delta / n
        self.l2_over_n = layout.l2_of / n if l2 else None
        self.inputs = [ones_column(w) for w in (X.shape[1], *hidden)]
        self.x = self.inputs[0][:, :-1]
        self.hidden = [a[:, :-1] for a in self.inputs[1:]]
        self.delta = [empty(n, w) for w in hidden]
        self.act_scratch = [empty(n, w) for w in hidden]
        self.z, self.p, self.q, self.q2 = (empty(n, n_out) for _ in range(4))
        self.column = empty(n, 1)
        self.Y = empty(n, n_out)
        self.Y_raw = None if Y.dtype == X.dtype else empty(n, n_out, dtype=Y.dtype)
        self.rates = empty(2)  # this batch's step size, and Adam's eps over it
        self.lr, self.eps_over_lr = self.rates[0], self.rates[1]
        # Adam's step count for torch's fused Adam: one where its bias corrections are 1
        self.uncorrected = torch.full((), 2.0**60, dtype=torch.float32, device=X.device)
        self.total = empty(1)  # the epoch's summed loss times batch sizes
        self.graph: Any = None

    def load(self, params: list, slots: tuple) -> None:
        """Copy the caller's parameters and slots in (the one copy of a call)."""
        self.layout.fill(self.theta, params)
        for flat, moment in zip(self.slots, slots, strict=True):
            self.layout.fill(flat, moment)
        self.total.zero_()

    def gather(self, X: Any, Y: Any, rows: Any, rates: Any) -> None:
        """The batch ``rows`` of ``X`` and ``Y``, and its ``rates``, into the fixed buffers."""
        import torch

        torch.index_select(X, 0, rows, out=self.x)
        if self.Y_raw is None:
            torch.index_select(Y, 0, rows, out=self.Y)
        else:  # one-hot labels kept as booleans: cast a batch at a time
            self.Y.copy_(torch.index_select(Y, 0, rows, out=self.Y_raw))
        self.rates.copy_(rates)

    def result(self) -> tuple[list, tuple, Any]:
        """Copies of the parameters, the slots and the total, for the caller to keep."""
        layout = self.layout
        slots = tuple(layout.pairs(flat.clone()) for flat in self.slots)
        return layout.pairs(self.theta.clone()), slots, self.total.clone().reshape(())


class TorchStep(Step):
    """The torch step, with an epoch's full batches as one call (:meth:`batches`)."""

    def batches(
        self, params: list, slots: tuple, X: Any, Y: Any, sw: Any, index: Any, lrs: Any
    ) -> tuple[list, tuple, Any]:
        """The batches ``index`` (one row each) of ``X``, ``Y``, stepped with ``lrs``, as
        :class:`xpnet._steps.Step` declares; ``(params, slots, summed loss x sizes)``.

        Each batch is gathered into the fixed buffers of an :class:`_Epoch`, then
        stepped in place there (:meth:`_batch`); on CUDA that step is a graph's replay.
        """
        import torch

        layout = self._layout(params, X, X, 0.0)  # the labels apart: they may be booleans
        labels = self.k.owns(Y) and Y.device == X.device and Y.dtype in (X.dtype, torch.bool)
        if layout is None or not labels or sw is not None or index.device != X.device:
            return self._one_by_one(params, slots, X, Y, sw, index, lrs)
        e = self._epoch(layout, index.shape[1], X, Y, len(slots))
        e.load(params, slots)
        eps = getattr(self.optimizer, "epsilon", 0.0)  # Adam's; unused by SGD
        rates = torch.stack((lrs, eps / lrs), 1)  # each batch's lr and eps / lr
        cuda = X.device.type == "cuda"
        # a graph captures and replays on X's device, which need not be the current one
        with torch.cuda.device(X.device) if cuda else contextlib.nullcontext():
            for rows, rate in zip(index, rates, strict=True):
                e.gather(X, Y, rows, rate)
                if not cuda:
                    self._batch(e)
                elif e.graph is not None:
                    e.graph.replay()
                else:
                    e.graph = _captured(lambda: self._batch(e), X.device)
        return e.result()

    def _epoch(self, layout: _Flat, n: int, X: Any, Y: Any, n_slots: int) -> _Epoch:
        """This thread's buffers for these batches, made on first use."""
        mine = _EPOCHS.__dict__.setdefault("by_key", {})
        key = (self, layout, n, X.shape[1], Y.dtype, *self.k.key(X))
        if key not in mine:
            if len(mine) > 4:
                mine.clear()
            mine[key] = _Epoch(layout, n, X, Y, n_slots, self.l2)
        return mine[key]

    def _one_by_one(
        self, params: list, slots: tuple, X: Any, Y: Any, sw: Any, index: Any, lrs: Any
    ) -> tuple[list, tuple, Any]:
        """The batches through :meth:`__call__`, one at a time, as an epoch steps them
        (sample weights, or calls the fast step leaves to the portable one)."""
        total = None
        for rows, lr in zip(index, lrs.tolist(), strict=True):
            Xb, Yb = X.index_select(0, rows), Y.index_select(0, rows)
            swb = None if sw is None else sw.index_select(0, rows)
            Yb = Yb if Yb.dtype == Xb.dtype else Yb.to(Xb.dtype)
            params, slots, loss = self(params, slots, Xb, Yb, swb, lr)
            size = rows.shape[0]
            total = loss * size if total is None else total + loss * size
        return params, slots, total

    def _batch(self, e: _Epoch) -> None:
        """One step on the batch in ``e``: the loss added to ``e.total``, the parameters and
        slots updated in place.  Every operation writes into ``e``'s buffers, so that a CUDA
        graph can capture it: W2's configuration (tanh, softmax, Adam) is 20 launches."""
        import torch

        k, n = self.k, e.n
        for i, wide in enumerate(e.wide[:-1]):  # [a, 1] @ [W; b], then the activation
            a = torch.mm(e.inputs[i], wide, out=e.hidden[i])
            if self.act is _tanh:
                a.tanh_()
            elif self.act is not None:
                self.act(k, a, e.act_scratch[i])
        z = torch.mm(e.inputs[-1], e.wide[-1], out=e.z)
        if self.output is _softmax:  # the loss -sum(Y log clip(p)) as one dot product
            p = torch.ops.aten._softmax.out(z, -1, False, out=e.p)
            eps = k.eps(p.dtype)
            torch.clamp(p, eps, 1.0 - eps, out=e.q).log_()
            torch.addmv(e.total, e.q.view(1, -1), e.Y.view(-1), alpha=-1.0, out=e.total)
        else:
            if self.output is not None:
                self.output(k, z, e.column, e.q)
            p = z
            e.total.add_(k.total(self.losses(k, p, e.Y, [e.q, e.q2])))
        if self.l2:  # the L2 term's gradient over n, and the penalty l2/2 |W|^2 = n/2 theta.grad
            torch.mul(e.l2_over_n, e.theta, out=e.grad)
            torch.addmv(e.total, e.theta.view(1, -1), e.grad, alpha=0.5 * n, out=e.total)
        delta = torch.sub(p, e.Y, out=e.z)  # dLoss/dz, by the canonical output/loss pairs
        for i in range(len(e.wide) - 1, -1, -1):
            # [dW + l2 W; db] / n: the product added to the L2 term in place
            beta = 1.0 if self.l2 else 0.0
            g = e.grad_wide[i]
            torch.addmm(g, e.inputs[i].T, delta, beta=beta, alpha=1.0 / n, out=g)
            if i > 0:
                delta = torch.mm(delta, e.weights[i].T, out=e.delta[i - 1])
                a = e.hidden[i - 1]
                if self.slope is _tanh_slope:  # delta (1 - a^2), in one kernel
                    torch.ops.aten.tanh_backward.grad_input(delta, a, grad_input=delta)
                elif self.slope is not None:
                    self.slope(k, delta, a, e.act_scratch[i - 1])
        _IN_PLACE[self.rule](self.optimizer, e)


def _adam_in_place(opt: Any, e: _Epoch) -> None:
    """Adam's update on ``e``'s flat vectors: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v +
    (1 - b2) g^2``, ``theta <- theta - lr m / (sqrt(v) + eps)`` (the bias correction is
    in ``lr``), as one kernel where torch has its fused Adam, else six."""
    import torch

    m, v = e.slots
    # on CPUs too since torch 2.4; on CUDA its kernel reads a tensor step size as float32
    fused = e.theta.dtype == torch.float32 or e.theta.device.type != "cuda"
    if fused and hasattr(torch, "_fused_adam_"):
        # torch's fused Adam divides by its own bias corrections 1 - beta^t: at a step count
        # t no run reaches they are 1 exactly, and the update is the one above
        torch._fused_adam_(
            [e.theta], [e.grad], [m], [v], [], [e.uncorrected], lr=e.lr, beta1=opt.beta_1,
            beta2=opt.beta_2, weight_decay=0.0, eps=opt.epsilon, amsgrad=False, maximize=False,
        )  # fmt: skip
        return
    m.lerp_(e.grad, 1 - opt.beta_1)
    v.mul_(opt.beta_2).addcmul_(e.grad, e.grad, value=1 - opt.beta_2)
    torch.sqrt(v, out=e.scratch)
    torch.addcdiv(e.eps_over_lr, e.scratch, e.lr, out=e.scratch)  # (sqrt(v) + eps) / lr
    e.theta.addcdiv_(m, e.scratch, value=-1.0)


def _sgd_in_place(opt: Any, e: _Epoch) -> None:
    """SGD's update on ``e``'s flat vectors, with (Nesterov) momentum where it has slots."""
    if not e.slots:
        e.theta.addcmul_(e.grad, e.lr, value=-1.0)  # p - lr g
        return
    (velocity,) = e.slots
    velocity.mul_(opt.momentum).addcmul_(e.grad, e.lr, value=-1.0)  # mu v - lr g
    if opt.nesterov:
        e.theta.add_(velocity, alpha=opt.momentum).addcmul_(e.grad, e.lr, value=-1.0)
    else:
        e.theta.add_(velocity)


#: Each optimizer's update on an :class:`_Epoch`, by its rule's name.
_IN_PLACE: dict[str, Callable] = {"sgd": _sgd_in_place, "adam": _adam_in_place}


def _captured(step: Callable[[], None], device: Any) -> Any:
    """``step`` run once, then captured as a CUDA graph to replay in its place.

    The run is the warm-up torch asks for before a capture, on a side stream of
    ``device`` (it sets up cuBLAS's workspace); the capture, on that stream too,
    records the kernels without running them.  Other threads' CUDA work may go on
    meanwhile (``thread_local``): fits in threads each capture their own step.
    """
    import torch

    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
        step()
    return graph


_KERNELS: dict[str, Callable[[], Kernels]] = {"numpy": _numpy_kernels, "torch": _torch_kernels}
_MADE: dict[str, Kernels] = {}


def step(
    library: str,
    xp: Any,
    optimizer: Any,
    activation: str,
    output: str,
    l2: float,
    mean_gradients: bool,
    *,
    portable: Callable,
) -> Step | None:
    """The fast step of ``library`` for one configuration, or None where only the portable
    one applies."""
    if activation not in _ACTIVATIONS or output not in _OUTPUTS:
        return None
    if optimizer.rule()[0] not in _UPDATES:
        return None
    if library not in _MADE:
        _MADE[library] = _KERNELS[library]()
    # an epoch's batches in one call (on torch), only where each batch reports its loss
    kind = TorchStep if library == "torch" and mean_gradients else Step
    return kind(_MADE[library], xp, optimizer, activation, output, l2, mean_gradients, portable)
