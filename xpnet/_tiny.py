"""A small network's run of full-batch passes as one CUDA kernel.

Between two logged losses the article's training takes ``m`` passes of plain
gradient descent on all of its 200 rows.  On a GPU each pass of the fused step
(:mod:`xpnet._fused`) is a dozen launches, each costing more host time than the
pass's arithmetic.  When the data and the network fit in one block's shared
memory, one block can do all ``m`` passes itself, as tiny-cuda-nn's fully fused
MLPs do: :func:`passes` is a single launch.

The block copies the parameters, ``X`` and ``Y`` into shared memory, then for
each pass:

* each of its ``B`` threads takes rows ``t``, ``t + B``, ... in turn: the
  forward pass (each unit's sum over its inputs from the first, the bias added
  after, then the activation), the output (softmax as the fused output kernel
  computes it), ``delta = output - y``, and backpropagation, adding the row's
  contribution to every gradient entry to the thread's own partial sums;
* the block halves the partial sums of all entries together, level by level:
  entry by entry, the order of :func:`xpnet._kernels.block_sum`;
* each parameter takes the article's step: ``W <- W - lr * (g + l2 * W)`` and
  ``b <- b - lr * g``, with ``g`` the gradient summed over the rows (not their
  mean), as the portable step with plain SGD does.

No loss is computed.  The result goes to one new flat vector, whose views
:func:`passes` returns.  The NumPy twin does the same arithmetic, vectorized
over rows, so on the stand-in ``cupy`` module (benchmarks/launch_counts.py) the
kernel's numbers are tested on a CPU; against the portable step they agree to
rounding (its products sum in BLAS's order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels, _network, _tree

#: Dynamic shared memory a block may use without asking the device for more (every CUDA
#: GPU since compute capability 2.0 allows it).
SHARED_BUDGET = 48 * 1024
#: Layers the kernel takes (its parameters are so many pointer pairs).
MAX_LAYERS = 4
#: Threads in a block: the most, and the least (a warp) before a network is too large.
MOST_THREADS, FEWEST_THREADS = 256, 32

#: The kernel's codes for the functions it applies.
ACTIVATION_CODES = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3}
OUTPUT_CODES = {"identity": 0, "logistic": 1, "softmax": 2}

_SOURCE = (
    _kernels.ROW_SUM
    + r"""
__device__ T logistic(T x) {
    const T e = exp(-fabs(x));
    const T r = T(1) / (T(1) + e);
    return x > T(0) ? r : e * r;
}

__device__ T activate(long long f, T x) {
    if (f == 1) return logistic(x);
    if (f == 2) return tanh(x);
    if (f == 3) return x * (T)(x > T(0));
    return x;
}

// The activation's derivative from its output; the identity's (1) is never applied.
__device__ T slope(long long f, T a) {
    if (f == 1) return a * (T(1) - a);
    if (f == 2) return T(1) - a * a;
    return (T)(a > T(0));
}

extern "C" __global__ void xpnet_tiny_passes(
    const T* W0, const T* b0, const T* W1, const T* b1,
    const T* W2, const T* b2, const T* W3, const T* b3,
    const T* X, const T* Y, T* out, long long n, long long layers,
    long long w0, long long w1, long long w2, long long w3, long long w4,
    T lr, T l2, long long m, long long B, long long activation, long long output) {
    const long long t = threadIdx.x;
    const long long w[5] = {w0, w1, w2, w3, w4};
    const T* Ws[4] = {W0, W1, W2, W3};
    const T* bs[4] = {b0, b1, b2, b3};
    const long long L = layers, d = w[0], c = w[L];
    // Where each layer's W and b sit in the flat vector (as in _tree.Flat), and its output
    // among a thread's activations.
    long long wofs[4], bofs[4], aofs[4];
    long long P = 0, S = 0;
    for (long long l = 0; l < L; l++) {
        wofs[l] = P;
        bofs[l] = P + w[l] * w[l + 1];
        P = bofs[l] + w[l + 1];
        aofs[l] = S;
        S += w[l + 1];
    }

    // Shared memory: the parameters, the data, each thread's activations (a column per
    // thread: entry k of thread t at [k * B + t]) and each thread's partial sums of the
    // gradient (likewise); passes() sizes it.
    extern __shared__ T shared[];
    T* theta = shared;
    T* Xs = theta + P;
    T* Ys = Xs + n * d;
    T* act = Ys + n * c;
    T* partial = act + S * B;

    for (long long l = 0; l < L; l++) {
        for (long long e = t; e < w[l] * w[l + 1]; e += B) theta[wofs[l] + e] = Ws[l][e];
        for (long long e = t; e < w[l + 1]; e += B) theta[bofs[l] + e] = bs[l][e];
    }
    for (long long e = t; e < n * d; e += B) Xs[e] = X[e];
    for (long long e = t; e < n * c; e += B) Ys[e] = Y[e];
    __syncthreads();

    for (long long pass = 0; pass < m; pass++) {
        for (long long e = 0; e < P; e++) partial[e * B + t] = T(0);
        for (long long r = t; r < n; r += B) {
            // input k of layer l for row r: a row of X, or the previous layer's activation
            auto input = [&](long long l, long long k) -> T {
                return l == 0 ? Xs[r * d + k] : act[(aofs[l - 1] + k) * B + t];
            };
            for (long long l = 0; l < L; l++) {
                const T* W = theta + wofs[l];
                const T* b = theta + bofs[l];
                const long long fan_in = w[l], fan_out = w[l + 1];
                for (long long j = 0; j < fan_out; j++) {
                    T acc = 0;
                    for (long long k = 0; k < fan_in; k++)
                        acc = acc + input(l, k) * W[k * fan_out + j];
                    acc = acc + b[j];
                    act[(aofs[l] + j) * B + t] = l < L - 1 ? activate(activation, acc) : acc;
                }
            }
            // The output, then delta = output - y, in place of z.
            T* z = act + aofs[L - 1] * B + t;  // output j at z[j * B]
            if (output == 2) {  // softmax: xpnet_out_softmax's arithmetic
                T mx = z[0];
                for (long long j = 1; j < c; j++) mx = z[j * B] > mx ? z[j * B] : mx;
                for (long long j = 0; j < c; j++) z[j * B] = exp(z[j * B] - mx);
                const T s = row_sum([&](long long j) { return z[j * B]; }, 0, c);
                for (long long j = 0; j < c; j++) z[j * B] = z[j * B] / s;
            } else if (output == 1) {
                for (long long j = 0; j < c; j++) z[j * B] = logistic(z[j * B]);
            }
            for (long long j = 0; j < c; j++) z[j * B] = z[j * B] - Ys[r * c + j];
            // Backpropagation: the row's terms of each gradient entry join the thread's
            // partial sums; each delta of layer l - 1 replaces its activation once read.
            for (long long l = L - 1; l >= 0; l--) {
                const T* W = theta + wofs[l];
                const T* delta = act + aofs[l] * B + t;
                const long long fan_out = w[l + 1];
                for (long long j = 0; j < fan_out; j++)
                    partial[(bofs[l] + j) * B + t] = partial[(bofs[l] + j) * B + t] + delta[j * B];
                for (long long i = 0; i < w[l]; i++) {
                    const T a = input(l, i);
                    for (long long j = 0; j < fan_out; j++) {
                        T* p = partial + (wofs[l] + i * fan_out + j) * B + t;
                        *p = *p + a * delta[j * B];
                    }
                    if (l > 0) {
                        const T* row = W + i * fan_out;
                        T s = 0;
                        for (long long j = 0; j < fan_out; j++) s = s + delta[j * B] * row[j];
                        if (activation != 0) s = s * slope(activation, a);
                        act[(aofs[l - 1] + i) * B + t] = s;
                    }
                }
            }
        }
        // Every entry's B partial sums, halved level by level: _kernels.block_sum's order,
        // the pairs of all entries shared among the threads.
        for (long long half = B / 2; half > 0; half /= 2) {
            __syncthreads();
            for (long long k = t; k < P * half; k += B) {
                const long long e = k / half, i = k - e * half;
                partial[e * B + i] = partial[e * B + i] + partial[e * B + i + half];
            }
        }
        __syncthreads();
        for (long long e = t; e < P; e += B) {
            const T g = partial[e * B];
            bool weight = false;
            for (long long l = 0; l < L; l++) weight = weight || (e >= wofs[l] && e < bofs[l]);
            theta[e] = weight ? theta[e] - lr * (g + l2 * theta[e]) : theta[e] - lr * g;
        }
        __syncthreads();  // the next pass reads theta, and zeroes thread 0's sums just read
    }
    for (long long e = t; e < P; e += B) out[e] = theta[e];
}
"""
)


# -- the twin --------------------------------------------------------------------------------
def _forward(params: list, X: np.ndarray, activation: str) -> list[np.ndarray]:
    """Each layer's input, then the output layer's ``z``: each unit a sum over its inputs
    from the first, then the bias (the kernel's order, vectorized over rows)."""
    act = _network.ACTIVATION_TABLE[activation].function
    layers = [X]
    for layer, (W, b) in enumerate(params):
        acc = np.zeros((X.shape[0], W.shape[1]), X.dtype)
        for k in range(W.shape[0]):
            acc = acc + layers[-1][:, k : k + 1] * W[k]
        acc = acc + b
        layers.append(act(np, acc) if layer < len(params) - 1 else acc)
    return layers


_OUTPUTS = {
    "identity": lambda z: z,
    "logistic": lambda z: _network.logistic(np, z),
    "softmax": _kernels.softmax_rows,
}


def row_terms(
    params: list, X: np.ndarray, Y: np.ndarray, activation: str, output: str
) -> np.ndarray:
    """Each row's terms of the summed gradient (without the L2 term), shape ``(n, P)``,
    laid out as :class:`xpnet._tree.Flat` lays out the parameters: the kernel's arithmetic
    for one row, vectorized over rows."""
    slope = _network.ACTIVATION_TABLE[activation].slope
    *inputs, z = _forward(params, X, activation)
    delta = _OUTPUTS[output](z) - Y
    n = X.shape[0]
    terms: list = [None] * (2 * len(params))
    for layer in range(len(params) - 1, -1, -1):
        W, a = params[layer][0], inputs[layer]
        terms[2 * layer] = (a[:, :, None] * delta[:, None, :]).reshape(n, -1)
        terms[2 * layer + 1] = delta
        if layer > 0:
            s = np.zeros_like(a)
            for j in range(W.shape[1]):
                s = s + delta[:, j : j + 1] * W[:, j]
            delta = s if slope is None else s * slope(np, a)
    return np.concatenate(terms, axis=1)


def _passes_twin(
    W0, b0, W1, b1, W2, b2, W3, b3, X, Y, out, n, layers, w0, w1, w2, w3, w4, lr, l2, m, B,
    activation, output,
) -> None:  # fmt: skip
    """The kernel's arithmetic: ``m`` passes from the given parameters, into ``out``."""
    widths = (w0, w1, w2, w3, w4)[: int(layers) + 1]
    layout = _tree.Flat([((i, o), (o,)) for i, o in zip(widths[:-1], widths[1:], strict=True)])
    given = (W0, b0, W1, b1, W2, b2, W3, b3)[: 2 * int(layers)]
    theta = np.concatenate([a.reshape(-1) for a in given])  # a copy: the inputs stay
    weight = np.zeros(layout.size, bool)
    for begin, end in layout.weights():
        weight[begin:end] = True
    hidden = {v: k for k, v in ACTIVATION_CODES.items()}[int(activation)]
    last = {v: k for k, v in OUTPUT_CODES.items()}[int(output)]
    for _ in range(int(m)):
        params = layout.unpack(theta, lambda a, shape: a.reshape(shape))
        g = _kernels.block_sum(row_terms(params, X, Y, hidden, last), int(B))
        theta = np.where(weight, theta - lr * (g + l2 * theta), theta - lr * g)
    out[...] = theta


_PASSES = _kernels.declare("xpnet_tiny_passes", _SOURCE, _passes_twin)


# -- the call --------------------------------------------------------------------------------
def shared_bytes(n: int, widths: tuple, threads: int, itemsize: int) -> int:
    """The kernel's shared memory: the parameters, ``X`` and ``Y``, and per thread its
    activations and its partial sum of each gradient entry."""
    size = sum(i * o + o for i, o in zip(widths[:-1], widths[1:], strict=True))
    return itemsize * (size + n * (widths[0] + widths[-1]) + threads * (sum(widths[1:]) + size))


def threads_for(n: int, widths: tuple, itemsize: int) -> int | None:
    """The block's threads: a power of two, enough for a row each where the shared memory
    allows it (at most 256), else fewer down to a warp; None where even a warp's does not
    fit :data:`SHARED_BUDGET`."""
    threads = MOST_THREADS
    while threads > FEWEST_THREADS and threads // 2 >= n:
        threads //= 2
    while shared_bytes(n, widths, threads, itemsize) > SHARED_BUDGET:
        if threads == FEWEST_THREADS:
            return None
        threads //= 2
    return threads


def passes(
    cp: Any, launch: _kernels.Launcher, params: list, X: Any, Y: Any, lr: float, m: int, *,
    activation: str, output: str, l2: float,
) -> list | None:  # fmt: skip
    """``m`` passes of the article's rule in one launch, or None where it does not serve.

    Each pass is full-batch gradient descent: the gradient summed over the rows (not
    divided by their number), plus ``l2 * W`` on the weights, then ``p <- p - lr * g``;
    no momentum, no sample weights, no loss.

    Parameters
    ----------
    cp : module
        ``cupy``, or a stand-in of it.
    launch : xpnet._kernels.Launcher
        The launcher of ``cp``'s kernels.
    params : list of (W, b)
        The parameters on the device, C-contiguous, of ``X``'s dtype; never written.
    X, Y : arrays
        The rows, ``(n, d)``, and their targets (one-hot for softmax), ``(n, c)``, of one
        float dtype, C-contiguous.
    lr, l2 : float
        The step size and the L2 strength.
    m : int
        How many passes.
    activation, output : str
        The hidden layers' activation and the output layer's function.

    Returns
    -------
    list of (W, b) or None
        New parameters, views of one new flat vector; None for float types other than
        float32 and float64, more than :data:`MAX_LAYERS` layers, an activation or output
        the kernel lacks, arrays it cannot read as they are, or a network and data too
        large for one block's shared memory (:func:`threads_for`).
    """
    if activation not in ACTIVATION_CODES or output not in OUTPUT_CODES:
        return None
    if not isinstance(lr, (float, np.floating)) or not 0 < len(params) <= MAX_LAYERS:
        return None
    arrays = [X, Y, *(a for pair in params for a in pair)]
    if not all(isinstance(a, cp.ndarray) and a.flags.c_contiguous for a in arrays):
        return None
    dtype = X.dtype
    if dtype.name not in ("float32", "float64") or any(a.dtype != dtype for a in arrays):
        return None
    if X.ndim != 2 or any(W.ndim != 2 for W, _ in params):
        return None
    widths = (X.shape[1], *(W.shape[1] for W, _ in params))
    shapes = [((i, o), (o,)) for i, o in zip(widths[:-1], widths[1:], strict=True)]
    if [(W.shape, b.shape) for W, b in params] != shapes or Y.shape != (X.shape[0], widths[-1]):
        return None
    n = X.shape[0]
    threads = threads_for(n, widths, dtype.itemsize)
    if threads is None:
        return None
    layout = _tree.Flat(shapes)
    with _kernels.on_device_of(X):
        out = cp.empty((layout.size,), dtype)
        given = [a for pair in params for a in pair]
        given += [out] * (2 * MAX_LAYERS - len(given))  # pointers the kernel never reads
        padded = widths + (0,) * (MAX_LAYERS + 1 - len(widths))
        args = (*given, X, Y, out, n, len(params), *padded, float(lr), float(l2), int(m),
                threads, ACTIVATION_CODES[activation], OUTPUT_CODES[output])  # fmt: skip
        shared = shared_bytes(n, widths, threads, dtype.itemsize)
        launch(_PASSES, threads, args, dtype.name, block=threads, shared_mem=shared)
    return layout.unpack(out, lambda a, shape: a.reshape(shape))
