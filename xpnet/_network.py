"""The network's math, written once against the Array API standard.

Every function takes the namespace ``xp`` first and is pure: no in-place
writes, no fancy-index assignment, no library names.  That is what lets the
same code run on NumPy, CuPy, PyTorch, JAX and array_api_strict.

Parameters are a list of ``(W, b)`` pairs, one per layer, with ``W`` of shape
``(fan_in, fan_out)`` and ``b`` of shape ``(fan_out,)``.  Matrix products use
``@`` and ``matrix_transpose`` and reductions run over axis -2, so a stack of
parameters of shape ``(K, fan_in, fan_out)`` would train K networks at once.

The output layer pairs each output function with its canonical loss, so that
the gradient of the loss with respect to the output layer's pre-activation
``z`` is always ``output(z) - Y``:

========  ==========================  ==================================
output    output(z)                   per-sample loss
========  ==========================  ==================================
softmax   exp(log_softmax(z))         cross-entropy  -sum Y log p
logistic  1 / (1 + exp(-z))           binary cross-entropy, per column
identity  z                           squared error  sum (z - Y)^2 / 2
exp       exp(z)                      Poisson deviance / 2, up to a constant
========  ==========================  ==================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Array = Any
Params = Sequence[tuple[Array, Array]]

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
OUTPUTS = ("softmax", "logistic", "identity", "exp")


def logistic(xp: Any, z: Array) -> Array:
    """The logistic sigmoid, written with tanh so it cannot overflow."""
    return 0.5 * (1.0 + xp.tanh(0.5 * z))


def activate(xp: Any, name: str, z: Array) -> Array:
    """Apply the hidden activation ``name`` to the pre-activation ``z``."""
    if name == "tanh":
        return xp.tanh(z)
    if name == "logistic":
        return logistic(xp, z)
    if name == "relu":
        return z * xp.astype(z > 0, z.dtype)
    if name == "identity":
        return z
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def activation_slope(xp: Any, name: str, a: Array) -> Array | None:
    """The activation's derivative, written in terms of its output ``a``.

    Returns None for the identity, whose slope is 1.
    """
    if name == "tanh":
        return 1.0 - a * a
    if name == "logistic":
        return a * (1.0 - a)
    if name == "relu":
        return xp.astype(a > 0, a.dtype)
    return None


def forward(xp: Any, params: Params, X: Array, activation: str) -> tuple[list[Array], Array]:
    """Run the network.

    Returns
    -------
    inputs : list of arrays
        The input of each layer: ``X``, then each hidden layer's activation.
    z : array
        The output layer's pre-activation (the logits for softmax).
    """
    inputs = [X]
    for W, b in params[:-1]:
        inputs.append(activate(xp, activation, inputs[-1] @ W + b))
    W, b = params[-1]
    return inputs, inputs[-1] @ W + b


def log_softmax(xp: Any, z: Array) -> Array:
    """``log(softmax(z))`` along the last axis, shifted by the row maximum."""
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def out_activation(xp: Any, name: str, z: Array) -> Array:
    """The output layer's function of its pre-activation ``z``."""
    if name == "softmax":
        return xp.exp(log_softmax(xp, z))
    if name == "logistic":
        return logistic(xp, z)
    if name == "identity":
        return z
    if name == "exp":
        return xp.exp(z)
    raise ValueError(f"unknown output {name!r}; choose one of {OUTPUTS}")


def _softplus(xp: Any, z: Array) -> Array:
    """``log(1 + exp(z))`` without overflow."""
    return xp.maximum(z, xp.zeros_like(z)) + xp.log1p(xp.exp(-xp.abs(z)))


def sample_losses(xp: Any, name: str, z: Array, Y: Array) -> Array:
    """Each sample's loss (shape ``(n,)``) for the output layer ``name``."""
    if name == "softmax":
        per_entry = -Y * log_softmax(xp, z)
    elif name == "logistic":  # -y log p - (1-y) log(1-p), with p = logistic(z)
        per_entry = _softplus(xp, z) - Y * z
    elif name == "identity":
        per_entry = 0.5 * (z - Y) ** 2
    elif name == "exp":  # Poisson: exp(z) - y z, dropping the term in y alone
        per_entry = xp.exp(z) - Y * z
    else:
        raise ValueError(f"unknown output {name!r}; choose one of {OUTPUTS}")
    return xp.sum(per_entry, axis=-1)


def penalty(xp: Any, params: Params, l2: float) -> Array:
    """The L2 penalty ``l2 / 2 * sum |W|^2`` over the weight matrices (not biases)."""
    return 0.5 * l2 * sum(xp.sum(W * W) for W, _ in params)


def objective(
    xp: Any,
    params: Params,
    X: Array,
    Y: Array,
    *,
    activation: str,
    output: str,
    l2: float,
    sample_weight: Array | None = None,
) -> Array:
    """The summed objective ``sum_i w_i loss_i + l2/2 * sum |W|^2`` (a 0-d array).

    Divide by the number of samples for the article's mean loss.
    """
    _, z = forward(xp, params, X, activation)
    losses = sample_losses(xp, output, z, Y)
    if sample_weight is not None:
        losses = losses * sample_weight
    return xp.sum(losses) + penalty(xp, params, l2)


def reported_losses(xp: Any, name: str, z: Array, Y: Array) -> Array:
    """Each sample's loss (shape ``(n,)``) as scikit-learn's MLPs report it.

    The same losses as :func:`sample_losses`, with scikit-learn's conventions:
    probabilities clipped to ``[eps, 1 - eps]`` before the log, the squared
    error averaged (not summed) over outputs, and the full Poisson half
    deviance ``y log(y / mu) - y + mu``.  Their gradients with respect to ``z``
    are still ``output(z) - Y`` (up to the clipping and that 1/n_outputs,
    which scikit-learn's gradient leaves out too).
    """
    if name in ("softmax", "logistic"):
        eps = xp.finfo(z.dtype).eps
        p = xp.clip(out_activation(xp, name, z), eps, 1.0 - eps)
        per_entry = -Y * xp.log(p)
        if name == "logistic":
            per_entry = per_entry - (1.0 - Y) * xp.log(1.0 - p)
        return xp.sum(per_entry, axis=-1)
    if name == "identity":
        return 0.5 * xp.mean((z - Y) ** 2, axis=-1)
    if name == "exp":
        positive = Y > 0
        safe_Y = xp.where(positive, Y, xp.ones_like(Y))
        y_log_y = xp.where(positive, Y * xp.log(safe_Y), xp.zeros_like(Y))
        return xp.sum(y_log_y - Y * z - Y + xp.exp(z), axis=-1)
    raise ValueError(f"unknown output {name!r}; choose one of {OUTPUTS}")


def _backprop(
    xp: Any,
    params: Params,
    inputs: list[Array],
    delta: Array,
    activation: str,
    l2: float,
) -> list[tuple[Array, Array]]:
    """Gradients for each ``(W, b)`` given the output layer's error ``delta``."""
    grads = []
    for layer in range(len(params) - 1, -1, -1):
        W, _ = params[layer]
        a = inputs[layer]
        grads.append((xp.matrix_transpose(a) @ delta + l2 * W, xp.sum(delta, axis=-2)))
        if layer > 0:
            delta = delta @ xp.matrix_transpose(W)
            slope = activation_slope(xp, activation, a)
            if slope is not None:
                delta = delta * slope
    return grads[::-1]


def gradients(
    xp: Any,
    params: Params,
    X: Array,
    Y: Array,
    *,
    activation: str,
    output: str,
    l2: float,
    sample_weight: Array | None = None,
) -> list[tuple[Array, Array]]:
    """Backpropagation: the gradient of :func:`objective` for each ``(W, b)``.

    The gradients are sums over the samples, plus ``l2 * W`` on the weights,
    exactly as in the article; callers that want means divide by ``n``.
    """
    inputs, z = forward(xp, params, X, activation)
    # The canonical output/loss pairs make dLoss/dz = output(z) - Y.
    delta = out_activation(xp, output, z) - Y
    if sample_weight is not None:
        delta = delta * sample_weight[..., None]
    return _backprop(xp, params, inputs, delta, activation, l2)


def loss_and_gradients(
    xp: Any,
    params: Params,
    X: Array,
    Y: Array,
    *,
    activation: str,
    output: str,
    l2: float,
    sample_weight: Array | None = None,
) -> tuple[Array, list[tuple[Array, Array]]]:
    """One forward pass giving the summed reported loss and :func:`gradients`.

    The loss is ``sum_i w_i reported_loss_i + l2/2 * sum |W|^2`` (a 0-d
    array) with :func:`reported_losses`; the gradients are those of
    :func:`gradients`, summed over samples.
    """
    inputs, z = forward(xp, params, X, activation)
    losses = reported_losses(xp, output, z, Y)
    delta = out_activation(xp, output, z) - Y
    if sample_weight is not None:
        losses = losses * sample_weight
        delta = delta * sample_weight[..., None]
    loss = xp.sum(losses) + penalty(xp, params, l2)
    return loss, _backprop(xp, params, inputs, delta, activation, l2)
