"""The network's math, written once against the Array API standard.

Every function takes the namespace ``xp`` first and is pure: no in-place
writes, no fancy-index assignment, no library names.  That is what lets the
same code run on NumPy, CuPy, PyTorch, JAX and array_api_strict.

Parameters are a list of ``(W, b)`` pairs, one per layer, in one of two shapes:

* one model: ``W`` of shape ``(fan_in, fan_out)``, ``b`` of shape ``(fan_out,)``;
* a stack of K models: ``W`` of shape ``(K, fan_in, fan_out)``, ``b`` of shape
  ``(K, 1, fan_out)``, so that ``a @ W + b`` broadcasts to ``(K, n, fan_out)``
  against a shared ``X`` of shape ``(n, d)``.

Products use ``@`` and ``matrix_transpose``, bias gradients sum over the
sample axis (-2) and keep the bias's shape, and every reduction over samples
or weights keeps the model axis: :func:`sample_losses` gives ``(K, n)``,
:func:`objective` and :func:`penalty` give ``(K,)``.  The L2 strength may be a
float, an array of shape ``(K, 1, 1)`` (one per model), or a list with one
array per layer that broadcasts against its ``W`` (models side by side scale
each column by its model's value).  K stacked models give the numbers of K
separate ones.

Two layouts of several models of different widths use a :class:`Wiring`:
narrower models *padded* to a common width, whose extra units are held at
zero by ``unit_masks``; or models laid *side by side* in one wide network
whose weight matrices are block diagonal (``blocks`` says which weights
exist).  Side by side, one model's non-finite values could reach another's
through ``0 * nan`` in a product, so the inputs of those products are guarded.

The output layer pairs each output function with its canonical loss, so that
the gradient of the loss with respect to the output layer's pre-activation
``z`` is always ``output(z) - Y``:

========  ==========================  ==================================
output    output(z)                   per-sample loss
========  ==========================  ==================================
softmax   exp(z) / sum exp(z)         cross-entropy  -sum Y log p
logistic  1 / (1 + exp(-z))           binary cross-entropy, per column
identity  z                           squared error  sum (z - Y)^2 / 2
exp       exp(z)                      Poisson deviance / 2, up to a constant
========  ==========================  ==================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

Array = Any
Params = Sequence[tuple[Array, Array]]


# -- hidden activations: each function beside its slope ----------------------------------
def logistic(xp: Any, z: Array) -> Array:
    """The logistic sigmoid ``1 / (1 + exp(-z))``, accurate for every ``z``.

    With ``e = exp(-|z|)``, which lies in (0, 1] and so cannot overflow,
    ``logistic(|z|) = 1 / (1 + e)`` and ``logistic(-|z|) = e / (1 + e)``: the
    small values keep their relative precision down to ``exp(z)``'s own
    underflow (z = -745 in float64), where ``0.5 * (1 + tanh(z / 2))`` would
    round to 0 below z = -37.  For ``z > 0`` it is scipy's float64 ``expit``
    (scikit-learn's logistic) bit for bit; within 2 ulps of the exact value
    wherever that is a normal number.
    """
    e = xp.exp(-xp.abs(z))
    r = 1.0 / (1.0 + e)
    return xp.where(z > 0, r, e * r)


def _relu(xp: Any, z: Array) -> Array:
    return z * xp.astype(z > 0, z.dtype)


class Activation(NamedTuple):
    """A hidden activation and its derivative, written in terms of its output ``a``.

    ``slope`` is None for the identity, whose derivative is 1.
    """

    function: Callable[[Any, Array], Array]
    slope: Callable[[Any, Array], Array] | None


ACTIVATION_TABLE: dict[str, Activation] = {
    "identity": Activation(lambda xp, z: z, None),
    "logistic": Activation(logistic, lambda xp, a: a * (1.0 - a)),
    "tanh": Activation(lambda xp, z: xp.tanh(z), lambda xp, a: 1.0 - a * a),
    "relu": Activation(_relu, lambda xp, a: xp.astype(a > 0, a.dtype)),
}
ACTIVATIONS = tuple(ACTIVATION_TABLE)


# -- output layers: each function beside its canonical loss ------------------------------
# Each takes the axis of the classes (or outputs), the last by default.
def log_softmax(xp: Any, z: Array, axis: int = -1) -> Array:
    """``log(softmax(z))`` along ``axis``, shifted by the maximum."""
    shifted = z - xp.max(z, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax(xp: Any, z: Array, axis: int = -1) -> Array:
    """``exp(z) / sum(exp(z))`` along ``axis``, shifted by the maximum so it cannot overflow."""
    e = xp.exp(z - xp.max(z, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _softplus(xp: Any, z: Array) -> Array:
    """``log(1 + exp(z))`` without overflow."""
    return xp.maximum(z, xp.zeros_like(z)) + xp.log1p(xp.exp(-xp.abs(z)))


def _clipped_log_losses(xp: Any, p: Array, Y: Array, binary: bool, axis: int) -> Array:
    eps = xp.finfo(p.dtype).eps
    # clip(p, eps, 1 - eps) as one elementwise operation each way: NaN stays NaN, as with
    # np.clip, and no library syncs with the host (array-api-compat's generic clip does)
    p = xp.minimum(xp.maximum(p, eps), 1.0 - eps)
    per_entry = -Y * xp.log(p)
    if binary:
        per_entry = per_entry - (1.0 - Y) * xp.log(1.0 - p)
    return xp.sum(per_entry, axis=axis)


def _poisson_deviance(xp: Any, z: Array, mu: Array, Y: Array, axis: int = -1) -> Array:
    """``y log(y / mu) - y + mu`` summed, with ``mu = exp(z)``."""
    positive = Y > 0
    safe_Y = xp.where(positive, Y, xp.ones_like(Y))
    y_log_y = xp.where(positive, Y * xp.log(safe_Y), xp.zeros_like(Y))
    return xp.sum(y_log_y - Y * z - Y + mu, axis=axis)


class Output(NamedTuple):
    """An output layer: its function of ``z`` and its per-sample losses.

    ``loss`` is the canonical loss, whose gradient with respect to ``z`` is
    ``function(z) - Y``.  ``reported`` is the same loss with scikit-learn's
    conventions: probabilities clipped to ``[eps, 1 - eps]`` before the log,
    the squared error averaged (not summed) over outputs, and the full Poisson
    half deviance ``y log(y / mu) - y + mu``.  Its gradient is still
    ``function(z) - Y`` (up to the clipping and that 1/n_outputs, which
    scikit-learn's gradient leaves out too).  Each takes ``axis``, the axis of
    the outputs (the last by default), and the losses sum over it.
    """

    function: Callable[..., Array]
    loss: Callable[..., Array]
    reported: Callable[..., Array]


OUTPUT_TABLE: dict[str, Output] = {
    "softmax": Output(
        softmax,
        lambda xp, z, Y, axis=-1: xp.sum(-Y * log_softmax(xp, z, axis), axis=axis),
        lambda xp, z, p, Y, axis=-1: _clipped_log_losses(xp, p, Y, False, axis),
    ),
    "logistic": Output(  # -y log p - (1-y) log(1-p), with p = logistic(z)
        lambda xp, z, axis=-1: logistic(xp, z),
        lambda xp, z, Y, axis=-1: xp.sum(_softplus(xp, z) - Y * z, axis=axis),
        lambda xp, z, p, Y, axis=-1: _clipped_log_losses(xp, p, Y, True, axis),
    ),
    "identity": Output(
        lambda xp, z, axis=-1: z,
        lambda xp, z, Y, axis=-1: xp.sum(0.5 * (z - Y) ** 2, axis=axis),
        lambda xp, z, out, Y, axis=-1: 0.5 * xp.mean((z - Y) ** 2, axis=axis),
    ),
    "exp": Output(  # Poisson: exp(z) - y z, dropping the term in y alone
        lambda xp, z, axis=-1: xp.exp(z),
        lambda xp, z, Y, axis=-1: xp.sum(xp.exp(z) - Y * z, axis=axis),
        lambda xp, z, mu, Y, axis=-1: _poisson_deviance(xp, z, mu, Y, axis),
    ),
}
OUTPUTS = tuple(OUTPUT_TABLE)


def _activation(name: str) -> Activation:
    try:
        return ACTIVATION_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}") from None


def _output(name: str) -> Output:
    try:
        return OUTPUT_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown output {name!r}; choose one of {OUTPUTS}") from None


def activate(xp: Any, name: str, z: Array) -> Array:
    """Apply the hidden activation ``name`` to the pre-activation ``z``."""
    return _activation(name).function(xp, z)


def out_activation(xp: Any, name: str, z: Array, axis: int = -1) -> Array:
    """The output layer's function of its pre-activation ``z`` (outputs along ``axis``)."""
    return _output(name).function(xp, z, axis)


def sample_losses(xp: Any, name: str, z: Array, Y: Array, axis: int = -1) -> Array:
    """Each sample's canonical loss (shape ``(n,)``, or ``(K, n)`` for a stack)."""
    return _output(name).loss(xp, z, Y, axis)


def reported_losses(xp: Any, name: str, z: Array, Y: Array, out: Array | None = None) -> Array:
    """Each sample's loss as scikit-learn's MLPs report it (see :class:`Output`); ``out``,
    when given, is the output layer's ``function(z)``, computed once by the caller."""
    layer = _output(name)
    return layer.reported(xp, z, layer.function(xp, z) if out is None else out, Y)


# -- layouts of several models -------------------------------------------------------------
class Wiring(NamedTuple):
    """How the models of a stack are laid out beyond plain dense layers.

    Attributes
    ----------
    unit_masks : list of arrays, optional
        One per hidden layer, shape ``(K, 1, width)``: 1 for a model's own
        units, 0 for padding.  A padded unit's activation is held at 0 (for
        every activation, the logistic's 0.5 included), so it never reaches
        the outputs and its weights never move from 0.
    blocks : list of bool arrays or None, optional
        One per layer, shaped like its ``W``: True where a weight belongs to a
        model, False between models laid side by side (None: a dense layer,
        such as the first, whose input all models share).  Gradients off the
        blocks are zero, and the inputs of products across blocks have their
        non-finite entries zeroed, so a diverging model cannot reach another
        through ``0 * nan``.
    """

    unit_masks: list | None = None
    blocks: list | None = None


def _guard(xp: Any, a: Array, wiring: Wiring | None) -> Array:
    """``a`` with non-finite entries zeroed, where models share a product."""
    if wiring is None or wiring.blocks is None:
        return a
    return xp.where(xp.isfinite(a), a, 0.0)


def _per_layer(value: Any, n_layers: int) -> list:
    """A per-model (or plain) scalar for each layer: lists are already per layer."""
    return value if isinstance(value, list) else [value] * n_layers


# -- the network ---------------------------------------------------------------------------
def forward(
    xp: Any, params: Params, X: Array, activation: str, wiring: Wiring | None = None
) -> tuple[list[Array], Array]:
    """Run the network.

    Returns
    -------
    inputs : list of arrays
        The input of each layer: ``X``, then each hidden layer's activation.
    z : array
        The output layer's pre-activation (the logits for softmax).
    """
    act = _activation(activation).function
    if wiring is None:
        inputs = [X]
        for W, b in params[:-1]:
            inputs.append(act(xp, inputs[-1] @ W + b))
        W, b = params[-1]
        return inputs, inputs[-1] @ W + b
    inputs = [X]
    for layer, (W, b) in enumerate(params[:-1]):
        a_in = inputs[-1] if layer == 0 else _guard(xp, inputs[-1], wiring)
        a = act(xp, a_in @ W + b)
        if wiring.unit_masks is not None:
            a = a * wiring.unit_masks[layer]
        inputs.append(a)
    W, b = params[-1]
    a_in = inputs[-1] if len(params) == 1 else _guard(xp, inputs[-1], wiring)
    return inputs, a_in @ W + b


def penalty(xp: Any, params: Params, l2: Any) -> Array:
    """The L2 penalty ``l2 / 2 * sum |W|^2`` over the weight matrices (not biases).

    A 0-d array for one model, shape ``(K,)`` for a stack.
    """
    l2s = _per_layer(l2, len(params))
    return 0.5 * sum(
        xp.sum(c * (W * W), axis=(-2, -1)) for (W, _), c in zip(params, l2s, strict=True)
    )


def objective(
    xp: Any,
    params: Params,
    X: Array,
    Y: Array,
    *,
    activation: str,
    output: str,
    l2: Any,
    sample_weight: Array | None = None,
    wiring: Wiring | None = None,
) -> Array:
    """The summed objective ``sum_i w_i loss_i + l2/2 * sum |W|^2``, per model.

    A 0-d array for one model, shape ``(K,)`` for a stack.  Divide by the
    number of samples for the article's mean loss.
    """
    _, z = forward(xp, params, X, activation, wiring)
    losses = sample_losses(xp, output, z, Y)
    if sample_weight is not None:
        losses = losses * sample_weight
    return xp.sum(losses, axis=-1) + penalty(xp, params, l2)


def mean_loss(xp: Any, params: Params, X: Array, Y: Array, **terms: Any) -> Array:
    """The article's mean loss, ``(sum_i loss_i + l2/2 * sum |W|^2) / n``, per model;
    ``terms`` as for :func:`objective`."""
    return objective(xp, params, X, Y, **terms) / X.shape[0]


def backprop(
    xp: Any,
    params: Params,
    inputs: list[Array],
    delta: Array,
    activation: str,
    l2: Any,
    wiring: Wiring | None = None,
) -> list[tuple[Array, Array]]:
    """Gradients for each ``(W, b)`` given the output layer's error ``delta``.

    ``delta`` is the gradient of the summed loss with respect to ``z``; the
    weights' gradients include ``l2 * W``.
    """
    slope = _activation(activation).slope
    l2s = _per_layer(l2, len(params))
    blocks = wiring.blocks if wiring is not None else None
    grads = []
    for layer in range(len(params) - 1, -1, -1):
        W, b = params[layer]
        a = inputs[layer]
        dW = xp.matrix_transpose(a) @ delta + l2s[layer] * W
        if blocks is not None and blocks[layer] is not None:
            dW = xp.where(blocks[layer], dW, 0.0)
        db = xp.sum(delta, axis=-2)
        grads.append((dW, db if db.ndim == b.ndim else xp.reshape(db, b.shape)))
        if layer > 0:
            delta = _guard(xp, delta, wiring) @ xp.matrix_transpose(W)
            if slope is not None:
                delta = delta * slope(xp, a)
    return grads[::-1]


def gradients(
    xp: Any,
    params: Params,
    X: Array,
    Y: Array,
    *,
    activation: str,
    output: str,
    l2: Any,
    sample_weight: Array | None = None,
    wiring: Wiring | None = None,
) -> list[tuple[Array, Array]]:
    """Backpropagation: the gradient of :func:`objective` for each ``(W, b)``.

    The gradients are sums over the samples, plus ``l2 * W`` on the weights,
    exactly as in the article; callers that want means divide by ``n``.
    """
    inputs, z = forward(xp, params, X, activation, wiring)
    # The canonical output/loss pairs make dLoss/dz = output(z) - Y.
    delta = out_activation(xp, output, z) - Y
    if sample_weight is not None:
        delta = delta * sample_weight[..., None]
    return backprop(xp, params, inputs, delta, activation, l2, wiring)


def loss_and_gradients(
    xp: Any,
    params: Params,
    X: Array,
    Y: Array,
    *,
    activation: str,
    output: str,
    l2: Any,
    sample_weight: Array | None = None,
) -> tuple[Array, list[tuple[Array, Array]]]:
    """One forward pass giving the summed reported loss and :func:`gradients`.

    The loss is ``sum_i w_i reported_loss_i + l2/2 * sum |W|^2`` per model,
    with :func:`reported_losses`; the gradients are those of
    :func:`gradients`, summed over samples.
    """
    inputs, z = forward(xp, params, X, activation)
    out = out_activation(xp, output, z)  # once: for the loss and for the error
    losses = reported_losses(xp, output, z, Y, out)
    delta = out - Y
    if sample_weight is not None:
        losses = losses * sample_weight
        delta = delta * sample_weight[..., None]
    loss = xp.sum(losses, axis=-1) + penalty(xp, params, l2)
    return loss, backprop(xp, params, inputs, delta, activation, l2)
