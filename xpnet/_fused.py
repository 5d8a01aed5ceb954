"""CuPy's fused step: a mini-batch in 19 launches, no host sync.

The portable step on CuPy launches a kernel for every operation of
:mod:`xpnet._network` and :mod:`xpnet._optim` (134 a W2 batch), and a launch
costs more host time than a small batch's arithmetic.  This step does the same
arithmetic in few launches:

* the parameters, their gradients and the optimizer's moments each live in one
  flat vector (:class:`xpnet._tree.Flat`) for a whole call, so the update is one
  elementwise kernel over the network, with the L2 term and the mean's ``1/n``
  folded in;
* each hidden layer is a product, then one kernel adding the bias and applying
  the activation; backpropagation multiplies by the activation's slope in one;
* the output layer (bias, softmax, clipped log-loss, ``output - Y``, sample
  weights) is one kernel, a thread a row, summing over classes in NumPy's own
  order; one more kernel sums the batch's loss and penalty in a fixed order
  and adds it to the epoch's total on the device;
* an epoch's batches (:meth:`Step.batches`) are gathered on the device from the
  epoch's permutation, a kernel a batch, and the loss is read once an epoch.

A W2 batch (three layers, Adam) is the gather, three products forward, two
bias-activations, the output, the loss, three weight products, three bias sums,
two products back, two slopes and the update: 19 launches.

Each kernel has a NumPy twin (:mod:`xpnet._kernels`) with the same arithmetic.
Run on a stand-in ``cupy`` whose kernels are the twins, this step equals the
portable one bit for bit in its parameters (the reported loss, summed in
another order, to rounding); on a device, the CUDA math library's ``tanh``,
``exp`` and ``log`` round their last bit their own way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _kernels, _tiny, _tree
from ._kernels import Kernel, declare
from ._network import logistic

# -- the kernels ----------------------------------------------------------------------------
_INDEX = "long long i = blockDim.x * (long long)blockIdx.x + threadIdx.x;"

_GATHER = declare(
    "xpnet_gather",
    f"""
extern "C" __global__ void xpnet_gather(
    const T* X, const L* Y, const T* sw, const long long* index, T* Xb, T* Yb, T* swb,
    long long n, long long d, long long c, long long weighted) {{
    {_INDEX}
    if (i < n * d) {{ long long r = i / d; Xb[i] = X[index[r] * d + (i - r * d)]; return; }}
    i -= n * d;
    if (i < n * c) {{ long long r = i / c; Yb[i] = (T)Y[index[r] * c + (i - r * c)]; return; }}
    i -= n * c;
    if (weighted && i < n) swb[i] = sw[index[i]];
}}
""",
    lambda X, Y, sw, index, Xb, Yb, swb, n, d, c, weighted: _gather(
        X, Y, sw, index, Xb, Yb, swb, weighted
    ),
)


def _gather(X, Y, sw, index, Xb, Yb, swb, weighted) -> None:
    Xb[...] = X[index]
    Yb[...] = Y[index]  # a cast, as (T) is
    if weighted:
        swb[...] = sw[index]


class _Activation(NamedTuple):
    """A hidden activation's two kernels: bias and activation, and its slope (or None)."""

    forward: Kernel
    slope: Kernel | None


def _elementwise(name: str, args: str, body: str, twin: Callable) -> Kernel:
    source = f"""
extern "C" __global__ void {name}({args}, long long size, long long width) {{
    {_INDEX}
    if (i >= size) return;
    {body}
}}
"""
    return declare(name, source, twin)


def _biased(twin: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """The twin of a bias-and-activation kernel: ``z <- f(z + b)``, in place."""

    def run(z, b, size, width):
        np.add(z, b, out=z)
        z[...] = twin(z)

    return run


def _sloped(twin: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
    """The twin of a slope kernel: ``delta <- delta * slope(a)``, in place."""

    def run(delta, a, size, width):
        np.multiply(delta, twin(a, delta.dtype), out=delta)

    return run


def _logistic(x: np.ndarray) -> np.ndarray:
    return logistic(np, x)  # _network's arithmetic, which the kernels' C below follows


_LOGISTIC_C = "T e = exp(-fabs(x)); T r = T(1) / (T(1) + e); z[i] = x > T(0) ? r : e * r;"
_FORWARD_ARGS, _SLOPE_ARGS = "T* z, const T* b", "T* delta, const T* a"
_X = "T x = z[i] + b[i % width];"

ACTIVATIONS: dict[str, _Activation] = {
    "identity": _Activation(
        _elementwise("xpnet_bias_identity", _FORWARD_ARGS, f"{_X} z[i] = x;", _biased(lambda x: x)),
        None,
    ),
    "tanh": _Activation(
        _elementwise("xpnet_bias_tanh", _FORWARD_ARGS, f"{_X} z[i] = tanh(x);", _biased(np.tanh)),
        _elementwise(
            "xpnet_slope_tanh", _SLOPE_ARGS, "delta[i] = delta[i] * (T(1) - a[i] * a[i]);",
            _sloped(lambda a, dtype: 1.0 - a * a),
        ),
    ),
    "logistic": _Activation(
        _elementwise(
            "xpnet_bias_logistic", _FORWARD_ARGS, f"{_X} {_LOGISTIC_C}", _biased(_logistic)
        ),
        _elementwise(
            "xpnet_slope_logistic", _SLOPE_ARGS, "delta[i] = delta[i] * (a[i] * (T(1) - a[i]));",
            _sloped(lambda a, dtype: a * (1.0 - a)),
        ),
    ),
    "relu": _Activation(
        _elementwise(
            "xpnet_bias_relu", _FORWARD_ARGS, f"{_X} z[i] = x * (T)(x > T(0));",
            _biased(lambda x: x * (x > 0).astype(x.dtype)),
        ),
        _elementwise(
            "xpnet_slope_relu", _SLOPE_ARGS, "delta[i] = delta[i] * (T)(a[i] > T(0));",
            _sloped(lambda a, dtype: (a > 0).astype(dtype)),
        ),
    ),
}  # fmt: skip


# -- the output layer: a thread a row --------------------------------------------------------
_OUTPUT_ARGS = (
    "T* z, const T* b, const T* Y, const T* sw, T* losses, long long n, long long c, "
    "long long weighted, long long want_loss, T eps"
)


def _output_kernel(name: str, body: str, loss: str, twin: Callable) -> Kernel:
    """A row's output kernel: ``body`` turns ``x`` (the row's ``z + b``) into the output in
    place, ``loss`` is the row's reported loss (before its sample weight)."""
    source = f"""
{_kernels.ROW_SUM}
extern "C" __global__ void {name}({_OUTPUT_ARGS}) {{
    long long r = blockDim.x * (long long)blockIdx.x + threadIdx.x;
    if (r >= n) return;
    T* x = z + r * c;
    const T* y = Y + r * c;
    const T hi = T(1) - eps;
    for (long long j = 0; j < c; j++) x[j] = x[j] + b[j];
    {body}
    if (want_loss) {{
        T loss = {loss};
        losses[r] = weighted ? loss * sw[r] : loss;
    }}
    for (long long j = 0; j < c; j++) {{
        T d = x[j] - y[j];
        x[j] = weighted ? d * sw[r] : d;
    }}
}}
"""
    return declare(name, source, twin)


def _clip(p: np.ndarray, eps: Any) -> np.ndarray:
    """``minimum(maximum(p, eps), 1 - eps)``, as ``_network`` clips (NaN stays NaN)."""
    return np.minimum(np.maximum(p, eps), 1.0 - eps)


_CLIP_C = "T q = p < eps ? eps : p; q = q > hi ? hi : q;"


def _output_twin(function: Callable, loss: Callable) -> Callable:
    def run(z, b, Y, sw, losses, n, c, weighted, want_loss, eps):
        np.add(z, b, out=z)
        z[...] = function(z)
        if want_loss:
            losses[...] = loss(z, Y, eps) * sw if weighted else loss(z, Y, eps)
        np.subtract(z, Y, out=z)
        if weighted:
            np.multiply(z, sw[:, None], out=z)

    return run


OUTPUTS: dict[str, Kernel] = {
    "softmax": _output_kernel(
        "xpnet_out_softmax",
        """
    T m = x[0];
    for (long long j = 1; j < c; j++) m = x[j] > m ? x[j] : m;
    for (long long j = 0; j < c; j++) x[j] = exp(x[j] - m);
    const T s = row_sum([&](long long j) { return x[j]; }, 0, c);
    for (long long j = 0; j < c; j++) x[j] = x[j] / s;
""",
        "row_sum([&](long long j) { T p = x[j]; " + _CLIP_C + " return -y[j] * log(q); }, 0, c)",
        _output_twin(
            _kernels.softmax_rows, lambda p, Y, eps: _kernels.row_sum(-Y * np.log(_clip(p, eps)))
        ),
    ),
    "logistic": _output_kernel(
        "xpnet_out_logistic",
        """
    for (long long j = 0; j < c; j++) { T x_ = x[j]; T e = exp(-fabs(x_)); T r = T(1) / (T(1) + e);
        x[j] = x_ > T(0) ? r : e * r; }
""",
        "row_sum([&](long long j) { T p = x[j]; "
        + _CLIP_C
        + " return -y[j] * log(q) - (T(1) - y[j]) * log(T(1) - q); }, 0, c)",
        _output_twin(
            _logistic,
            lambda p, Y, eps: _kernels.row_sum(
                -Y * np.log(_clip(p, eps)) - (1.0 - Y) * np.log(1.0 - _clip(p, eps))
            ),
        ),
    ),
    "identity": _output_kernel(
        "xpnet_out_identity",
        "",
        "T(0.5) * (row_sum([&](long long j) { T d = x[j] - y[j]; return d * d; }, 0, c) / T(c))",
        _output_twin(
            lambda z: z, lambda z, Y, eps: 0.5 * (_kernels.row_sum((z - Y) ** 2) / Y.shape[-1])
        ),
    ),
}


# -- the batch's loss, and the update --------------------------------------------------------
_BLOCK = 256  # the loss kernel's one block; a power of two (see _kernels.block_sum)

_LOSS = declare(
    "xpnet_loss",
    _kernels.BLOCK_SUM
    + f"""
extern "C" __global__ void xpnet_loss(
    const T* losses, long long n, const T* theta, const T* l2_of, long long size,
    const T* weight, long long rows, T* batch_loss, T* epoch_total) {{
    __shared__ T summed[{_BLOCK}];
    __shared__ T squares[{_BLOCK}];
    T a = 0, s = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) a = a + losses[i];
    for (long long i = threadIdx.x; i < size; i += blockDim.x)
        s = s + l2_of[i] * (theta[i] * theta[i]);
    summed[threadIdx.x] = a;
    squares[threadIdx.x] = s;
    block_sum(summed);
    block_sum(squares);
    if (threadIdx.x == 0) {{
        T loss = (summed[0] + T(0.5) * squares[0]) / weight[0];
        batch_loss[0] = loss;
        epoch_total[0] = epoch_total[0] + loss * T(rows);
    }}
}}
""",
    lambda losses, n, theta, l2_of, size, weight, rows, batch_loss, epoch_total: _loss(
        losses, theta, l2_of, weight, rows, batch_loss, epoch_total
    ),
)


def _loss(losses, theta, l2_of, weight, rows, batch_loss, epoch_total) -> None:
    summed = _kernels.block_sum(losses, _BLOCK)
    squares = _kernels.block_sum(l2_of * (theta * theta), _BLOCK)
    loss = (summed + losses.dtype.type(0.5) * squares) / weight[0]
    batch_loss[...] = loss
    epoch_total[...] = epoch_total[0] + loss * losses.dtype.type(rows)


_GRADIENT = """
    T g = grad[i] + l2_of[i] * theta[i];
    if (mean) g = g / weight[0];
    const T r = from_array ? lrs[0] : lr;
"""
_UPDATE_ARGS = (
    "T* theta, const T* grad, const T* l2_of, const T* weight, const T* lrs, T lr, "
    "long long from_array, long long mean"
)


def _gradient(theta, grad, l2_of, weight, lrs, lr, from_array, mean) -> tuple:
    g = grad + l2_of * theta
    if mean:
        g = g / weight[0]
    return g, (lrs[0] if from_array else lr)


_ADAM = declare(
    "xpnet_adam",
    f"""
extern "C" __global__ void xpnet_adam({_UPDATE_ARGS}, T* m, T* v, T b1, T one_minus_b1,
    T b2, T one_minus_b2, T eps, long long size) {{
    {_INDEX}
    if (i >= size) return;
    {_GRADIENT}
    const T first = b1 * m[i] + one_minus_b1 * g;
    const T second = b2 * v[i] + one_minus_b2 * (g * g);
    m[i] = first;
    v[i] = second;
    theta[i] = theta[i] + ((-r) * first) / (sqrt(second) + eps);
}}
""",
    lambda theta, grad, l2_of, weight, lrs, lr, from_array, mean, m, v, b1, c1, b2, c2, eps,
    size: _adam(theta, _gradient(theta, grad, l2_of, weight, lrs, lr, from_array, mean),
                m, v, b1, c1, b2, c2, eps),
)  # fmt: skip


def _adam(theta, gradient, m, v, b1, one_minus_b1, b2, one_minus_b2, eps) -> None:
    g, r = gradient
    m[...] = b1 * m + one_minus_b1 * g
    v[...] = b2 * v + one_minus_b2 * (g * g)
    theta[...] = theta + ((-r) * m) / (np.sqrt(v) + eps)


_SGD = declare(
    "xpnet_sgd",
    f"""
extern "C" __global__ void xpnet_sgd({_UPDATE_ARGS}, T* velocity, T mu, long long momentum,
    long long nesterov, long long size) {{
    {_INDEX}
    if (i >= size) return;
    {_GRADIENT}
    if (!momentum) {{ theta[i] = theta[i] - r * g; return; }}
    const T kept = mu * velocity[i] - r * g;
    velocity[i] = kept;
    theta[i] = theta[i] + (nesterov ? mu * kept - r * g : kept);
}}
""",
    lambda theta, grad, l2_of, weight, lrs, lr, from_array, mean, velocity, mu, momentum,
    nesterov, size: _sgd(theta, _gradient(theta, grad, l2_of, weight, lrs, lr, from_array, mean),
                         velocity, mu, momentum, nesterov),
)  # fmt: skip


def _sgd(theta, gradient, velocity, mu, momentum, nesterov) -> None:
    g, r = gradient
    if not momentum:
        theta[...] = theta - r * g
        return
    velocity[...] = mu * velocity - r * g
    theta[...] = theta + (mu * velocity - r * g if nesterov else velocity)


# -- the step --------------------------------------------------------------------------------
class _Batch(threading.local):
    """Per thread, one batch size's buffers: each hidden layer's activation and error, the
    output's rows and their losses, and a gathered batch."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, dict[str, Any]] = {}

    def get(self, cp: Any, n: int, d: int, widths: tuple, dtype: Any) -> dict[str, Any]:
        key = (n, d, widths, np.dtype(dtype).str, _device_id(cp))
        found = self.by_key.get(key)
        if found is None:
            if len(self.by_key) > 8:  # a few batch sizes at most are in use at once
                self.by_key.clear()
            hidden, c = widths[:-1], widths[-1]
            found = self.by_key[key] = dict(
                hidden=[cp.empty((n, w), dtype) for w in hidden],
                delta=[cp.empty((n, w), dtype) for w in hidden],
                z=cp.empty((n, c), dtype),
                losses=cp.empty((n,), dtype),
                X=cp.empty((n, d), dtype),
                Y=cp.empty((n, c), dtype),
                sw=cp.empty((n,), dtype),
            )
        return found


_BATCH = _Batch()


def _device_id(cp: Any) -> int | None:
    """The current device (the arrays' own, see :func:`xpnet._kernels.on_device_of`): its
    buffers are its own.  A stand-in has none."""
    cuda = getattr(cp, "cuda", None)
    return None if cuda is None else cuda.Device().id


class _Run(NamedTuple):
    """One call's flat vectors, fresh for each call (the caller keeps what a call returns):
    the parameters, their gradient, and the optimizer's moments, with their views."""

    layout: _tree.Flat
    theta: Any
    grad: Any
    moments: list
    params: list  # (W, b) views of theta
    grads: list  # (dW, db) views of grad
    l2_of: Any


class Step:
    """CuPy's fused step of one configuration (see the module's docstring); a drop-in for
    the portable step, with ``passes`` and ``batches`` as :class:`xpnet._steps.Step`
    declares them.  ``cp`` is the ``cupy`` module, or a stand-in of it; ``tiny`` is whether a
    small network's run of passes is one kernel (:mod:`xpnet._tiny`).

    Calls it cannot serve (parameters, rows or labels of other dtypes, non-contiguous rows,
    per-model step sizes, stacks of models) go to the portable step.
    """

    def __init__(self, cp, optimizer, activation, output, l2, mean_gradients, portable, tiny=True):
        self.cp, self.launch, self.tiny = cp, _kernels.Launcher(cp), tiny
        self.optimizer, self.l2, self.mean_gradients = optimizer, float(l2), mean_gradients
        self.rule = optimizer.rule()[0]
        self.names = (activation, output)
        self.activation, self.output = ACTIVATIONS[activation], OUTPUTS[output]
        self.portable = portable
        self._l2_of: dict[tuple, Any] = {}

    # -- what it serves
    def _dtype(self, params: list, X: Any, sw: Any, lr: Any, Y: Any = None) -> str | None:
        """The float dtype's name where this step serves the call (labels ``Y`` too, when
        given), else None."""
        cp = self.cp
        if not isinstance(lr, float) or not (isinstance(X, cp.ndarray) and X.ndim == 2):
            return None
        dtype = X.dtype
        if dtype.name not in ("float32", "float64") or not X.flags.c_contiguous:
            return None
        arrays = [a for pair in params for a in pair]
        if any(not isinstance(a, cp.ndarray) or a.dtype != dtype for a in arrays):
            return None
        if any(W.ndim != 2 or b.ndim != 1 or not W.flags.c_contiguous for W, b in params):
            return None
        if Y is not None and not (isinstance(Y, cp.ndarray) and Y.ndim == 2 and Y.dtype == dtype):
            return None
        if sw is not None and not (
            isinstance(sw, cp.ndarray) and sw.dtype == dtype and sw.ndim == 1
            and sw.flags.c_contiguous
        ):  # fmt: skip
            return None
        return dtype.name

    # -- the three ways in
    def __call__(self, params, slots, X, Y, sw, lr):
        dtype = self._dtype(params, X, sw, lr, Y)
        if dtype is None:
            return self.portable(params, slots, X, Y, sw, lr)
        with _kernels.on_device_of(X):
            run = self._run(params, slots, X)
            weight = self._weight(X, sw, dtype)
            loss = self.cp.empty((), X.dtype) if self.mean_gradients else None
            total = self.cp.zeros((1,), X.dtype) if self.mean_gradients else None
            self._step(run, X, Y, sw, weight, (None, lr), dtype, loss, total)
        return run.params, self._slots(run), loss

    def passes(self, params, slots, X, Y, sw, lr, m):
        """``m`` steps as one call: for a small network under the article's rule, one kernel
        (:mod:`xpnet._tiny`); else each step updating the call's flat vectors in place."""
        plain = self.optimizer.rule() == ("sgd", 0.0, False) and not self.mean_gradients
        if plain and sw is None and self.tiny:
            activation, output = self.names
            ran = _tiny.passes(
                self.cp, self.launch, params, X, Y, lr, m,
                activation=activation, output=output, l2=self.l2,
            )  # fmt: skip
            if ran is not None:
                return ran, slots
        dtype = self._dtype(params, X, sw, lr, Y)
        if dtype is None or self.mean_gradients:  # one by one (their losses are computed)
            for _ in range(m):
                params, slots, _ = self(params, slots, X, Y, sw, lr)
            return params, slots
        with _kernels.on_device_of(X):
            run = self._run(params, slots, X)
            weight = self._weight(X, sw, dtype)
            for _ in range(m):
                self._step(run, X, Y, sw, weight, (None, lr), dtype, None, None)
        return run.params, self._slots(run)

    def batches(self, params, slots, X, Y, sw, index, lrs):
        """An epoch's full batches: row ``k`` of ``index`` gathers batch ``k``, stepped with
        step size ``lrs[k]``; the parameters, slots and the batches' summed loss times their
        sizes (a 0-d array on the device, read once an epoch)."""
        cp = self.cp
        labels = Y.dtype.name
        dtype = self._dtype(params, X, sw, 0.0)
        served = (
            labels in ("bool", dtype) and Y.flags.c_contiguous and lrs.dtype == X.dtype
            and index.dtype == np.int64 and index.flags.c_contiguous
        )  # fmt: skip
        if dtype is None or not served:
            return self._batch_by_batch(params, slots, X, Y, sw, index, lrs)
        n_batches, size = index.shape
        with _kernels.on_device_of(X):
            run = self._run(params, slots, X)
            widths = tuple(W.shape[1] for W, _ in params)
            batch = _BATCH.get(cp, size, X.shape[1], widths, X.dtype)
            Xb, Yb = batch["X"], batch["Y"]
            swb = None if sw is None else batch["sw"]
            # the rows' weight: the batch size, or each batch's sum of weights (below)
            weight = self._weight(Xb, None, dtype) if swb is None else cp.empty((1,), X.dtype)
            loss, total = cp.empty((), X.dtype), cp.zeros((1,), X.dtype)
            d, c = X.shape[1], Y.shape[1]
            for k in range(n_batches):
                weighted = swb is not None
                gather_args = (X, Y, X if sw is None else sw, index[k], Xb, Yb, Xb if swb is None
                               else swb, size, d, c, weighted)  # fmt: skip
                self.launch(_GATHER, size * (d + c + 1), gather_args, dtype, labels=labels)
                if weighted:
                    cp.sum(swb, out=weight.reshape(()))
                self._step(run, Xb, Yb, swb, weight, (lrs[k : k + 1], 0.0), dtype, loss, total)
        return run.params, self._slots(run), total.reshape(())

    def release(self) -> None:
        """Free this thread's batch buffers (at the end of a run)."""
        _BATCH.by_key.clear()

    # -- the parts
    def _batch_by_batch(self, params, slots, X, Y, sw, index, lrs):
        """:meth:`batches` through the step, a batch at a time (calls it cannot serve)."""
        xp = self.cp
        total = None
        for k in range(index.shape[0]):
            rows = index[k]
            Xb, Yb = X[rows], Y[rows]
            if Yb.dtype != Xb.dtype:
                Yb = Yb.astype(Xb.dtype)
            swb = None if sw is None else sw[rows]
            params, slots, loss = self(params, slots, Xb, Yb, swb, float(lrs[k]))
            total = loss * rows.shape[0] if total is None else total + loss * rows.shape[0]
        return params, slots, xp.asarray(total).reshape(())

    def _run(self, params: list, slots: tuple, like: Any) -> _Run:
        """New flat vectors holding ``params`` and each moment (never the caller's arrays)."""
        cp = self.cp
        layout = _tree.Flat([(W.shape, b.shape) for W, b in params])

        def flat(pairs):
            vector = cp.empty((layout.size,), like.dtype)
            return cp.concatenate([a.reshape(-1) for pair in pairs for a in pair], out=vector)

        theta = flat(params)
        grad = cp.empty((layout.size,), like.dtype)
        views = lambda v: layout.unpack(v, lambda a, shape: a.reshape(shape))  # noqa: E731
        return _Run(
            layout, theta, grad, [flat(moment) for moment in slots], views(theta), views(grad),
            self._l2_per_entry(layout, like.dtype),
        )  # fmt: skip

    def _l2_per_entry(self, layout: _tree.Flat, dtype: Any) -> Any:
        """``l2`` on each weight and 0 on each bias, in one flat vector; kept per layout."""
        key = (tuple(layout.slices), np.dtype(dtype).str, _device_id(self.cp))
        if key not in self._l2_of:
            host = np.zeros(layout.size, dtype)
            for begin, end in layout.weights():
                host[begin:end] = self.l2
            self._l2_of[key] = self.cp.asarray(host)
        return self._l2_of[key]

    def _weight(self, X: Any, sw: Any, dtype: str) -> Any:
        """The batch's total weight on the device: its rows, or the sum of its weights."""
        if sw is None:
            return self.cp.full((1,), X.shape[0], X.dtype)
        weight = self.cp.empty((1,), X.dtype)
        self.cp.sum(sw, out=weight.reshape(()))
        return weight

    def _slots(self, run: _Run) -> tuple:
        return tuple(run.layout.unpack(m, lambda a, shape: a.reshape(shape)) for m in run.moments)

    def _step(self, run: _Run, X, Y, sw, weight, lr, dtype, loss, total) -> None:
        """One step on ``run``'s vectors in place: forward, the output and its loss (into
        ``loss`` and ``total``, when given), backward, the update.  ``lr`` is ``(lrs, None)``,
        a one-element device array, or ``(None, a float)``."""
        cp, launch = self.cp, self.launch
        n = X.shape[0]
        widths = tuple(W.shape[1] for W, _ in run.params)
        buffers = _BATCH.get(cp, n, X.shape[1], widths, X.dtype)
        inputs = [X]
        for i, (W, b) in enumerate(run.params[:-1]):
            h = cp.matmul(inputs[-1], W, out=buffers["hidden"][i])
            launch(self.activation.forward, h.size, (h, b, h.size, b.shape[0]), dtype)
            inputs.append(h)
        W, b = run.params[-1]
        z = cp.matmul(inputs[-1], W, out=buffers["z"])
        want_loss = loss is not None
        eps = float(np.finfo(X.dtype).eps)
        weighted = sw is not None
        out_args = (z, b, Y, sw if weighted else z, buffers["losses"], n, z.shape[1], weighted,
                    want_loss, eps)  # fmt: skip
        launch(self.output, n, out_args, dtype)
        if want_loss:
            loss_args = (buffers["losses"], n, run.theta, run.l2_of, run.layout.size, weight, n,
                         loss.reshape(1), total)  # fmt: skip
            launch(_LOSS, _BLOCK, loss_args, dtype, block=_BLOCK)
        delta = z  # the output kernel left dLoss/dz in z
        for layer in range(len(run.params) - 1, -1, -1):
            dW, db = run.grads[layer]
            cp.matmul(inputs[layer].T, delta, out=dW)
            cp.sum(delta, axis=0, out=db)
            if layer > 0:
                delta = cp.matmul(delta, run.params[layer][0].T, out=buffers["delta"][layer - 1])
                if self.activation.slope is not None:
                    a = inputs[layer]
                    launch(self.activation.slope, delta.size, (delta, a, delta.size, 0), dtype)
        self._update(run, weight, lr, dtype)

    def _update(self, run: _Run, weight: Any, lr: tuple, dtype: str) -> None:
        lrs, rate = lr
        from_array = lrs is not None
        lrs = run.l2_of if lrs is None else lrs  # unread without from_array
        head = (run.theta, run.grad, run.l2_of, weight, lrs, rate, from_array, self.mean_gradients)
        size = run.layout.size
        opt = self.optimizer
        if self.rule == "adam":
            m, v = run.moments
            b1, b2 = opt.beta_1, opt.beta_2
            args = (*head, m, v, b1, 1 - b1, b2, 1 - b2, opt.epsilon, size)
            self.launch(_ADAM, size, args, dtype)
            return
        momentum = bool(run.moments)
        velocity = run.moments[0] if momentum else run.grad
        nesterov = bool(opt.nesterov) and momentum
        self.launch(_SGD, size, (*head, velocity, opt.momentum, momentum, nesterov, size), dtype)


def step(
    cp, optimizer, activation, output, l2, mean_gradients, *, portable, tiny=True
) -> Step | None:
    """The fused step of one configuration on ``cp`` (CuPy or a stand-in), or None where
    only the portable one applies.  ``tiny=False`` leaves small networks' runs of passes to
    the fused step, a few launches a pass, rather than one kernel a run (for comparisons)."""
    if activation not in ACTIVATIONS or output not in OUTPUTS:
        return None
    if optimizer.rule()[0] not in ("adam", "sgd"):
        return None
    return Step(cp, optimizer, activation, output, l2, mean_gradients, portable, tiny)
