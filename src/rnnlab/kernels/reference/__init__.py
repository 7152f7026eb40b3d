"""The reference backend: forward pass and backpropagation through time in numpy.

This is the specification every compiled kernel must match. The time loop is
written once, for any cell with ``step`` / ``step_back`` (one module per cell
here) and any number of stacked layers (a layer's hidden sequence is the next
layer's input). It implements the backend protocol of :mod:`rnnlab.kernels`.

Truncation: with ``truncate=k`` the loss at step ``t`` flows back through
steps ``t, t-1, ..., t-k+1`` only (in every layer); parameters used at those
steps, and the initial states (``h0``, ``c0``) when step 1 lies inside the
window, receive its gradient. ``truncate=None`` (or ``k >= T``) is exact BPTT.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from rnnlab.kernels import Trainer, check_plain
from rnnlab.kernels.layout import Network
from rnnlab.kernels.reference.elman import ElmanCell
from rnnlab.kernels.reference.exprnn import ExpRNNCell
from rnnlab.kernels.reference.gru import GRUCell
from rnnlab.kernels.reference.lstm import LSTMCell
from rnnlab.losses import loss_and_dlogits
from rnnlab.optim import rules

name = "numpy"

#: each cell's numpy step, by registry name: ``make(activation) -> step object``
STEPS = {
    "elman": ElmanCell,
    "gru": lambda activation: GRUCell(),
    "lstm": lambda activation: LSTMCell(),
    "exprnn": lambda activation: ExpRNNCell(),
}


def _step_of(net: Network):
    check_plain(net)
    if net.cell not in STEPS:
        raise ValueError(f"the numpy backend has no step for cell {net.cell!r}")
    return STEPS[net.cell](net.activation)


def _initial_carry(net: Network, p: dict, B: int) -> tuple[np.ndarray, ...]:
    """``(h0,)`` or ``(h0, c0)`` for every sequence, each (B, H)."""
    H = net.hidden_size
    if net.spec.cell_state:
        return (np.broadcast_to(p["h0"], (B, H)), np.broadcast_to(p["c0"], (B, H)))
    return (np.broadcast_to(p["h0"], (B, H)),)


def _initial_carry_back(net: Network, dcarry: tuple, grads: dict) -> None:
    grads["h0"] += dcarry[0].sum(axis=0)  # (H,)
    if net.spec.cell_state:
        grads["c0"] += dcarry[1].sum(axis=0)  # (H,)


def _run(net: Network, params: dict, x: np.ndarray, initial: tuple | None = None):
    """logits (T, B, O) and the tape: per layer (h (T, B, H), c (T, B, H) | None, caches).
    ``initial``: (h (L, B, H), c (L, B, H) or None) to start from instead of h0 (c0)."""
    impl = _step_of(net)
    T, B, _ = x.shape
    layer_input = x  # (T, B, I) then (T, B, H)
    tape = []
    for layer in range(net.num_layers):
        p = net.layer(params, layer)
        carry = _initial_carry(net, p, B)
        if initial is not None:
            h, c = initial
            carry = (h[layer], c[layer]) if net.spec.cell_state else (h[layer],)
        hs = np.empty((T, B, net.hidden_size), dtype=x.dtype)  # (T, B, H)
        cs = np.empty_like(hs) if net.spec.cell_state else None
        caches = []
        for t in range(T):
            carry, cache = impl.step(p, carry, layer_input[t])
            hs[t] = carry[0]
            if cs is not None:
                cs[t] = carry[1]
            caches.append(cache)
        tape.append((hs, cs, caches))
        layer_input = hs
    logits = layer_input @ params["W_hy"].T + params["b_y"]  # (T, B, O)
    return logits, tape


def forward(net: Network, theta: np.ndarray, x: np.ndarray, *, states: bool = False,
            initial: tuple | None = None):  # fmt: skip
    """The network over a batch, no gradient.

    Parameters
    ----------
    theta : (P,) flat parameters laid out by ``net``
    x : (T, B, I)
    initial : (h (L, B, H), c (L, B, H) or None), optional
        The states to start from (default: the network's own ``h0``, ``c0``).

    Returns
    -------
    logits : (T, B, O)
    h, c : (L, T, B, H) every layer's hidden (and cell) states when ``states``
        (``c`` None for cells without one); None otherwise
    """
    logits, tape = _run(net, net.unpack(theta), x, _checked(net, initial, x))
    if not states:
        return logits, None, None
    h = np.stack([hs for hs, _, _ in tape])
    c = np.stack([cs for _, cs, _ in tape]) if net.spec.cell_state else None
    return logits, h, c


def _checked(net: Network, initial, x: np.ndarray):
    """``initial`` (h, c) checked and cast to ``x``'s dtype (None stays None)."""
    if initial is None:
        return None
    shape = (net.num_layers, x.shape[1], net.hidden_size)
    h, c = initial
    if np.shape(h) != shape or (net.spec.cell_state and np.shape(c) != shape):
        raise ValueError(f"initial states must be {shape} (h{', c' * net.spec.cell_state})")
    return np.asarray(h, x.dtype), None if c is None else np.asarray(c, x.dtype)


def loss_and_grad(net: Network, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                  mask: np.ndarray, *, loss: str, reduction: str = "mean",
                  truncate: int | None = None, initial: tuple | None = None,
                  final: np.ndarray | None = None) -> tuple[float, np.ndarray]:  # fmt: skip
    """The loss and its exact gradient, a flat vector laid out as ``theta``.

    Parameters
    ----------
    x : (T, B, I); y : (T, B, O)
    mask : (T, B), the loss weight of each step (0 on padding and unscored steps)
    initial : (h (L, B, H), c (L, B, H) or None), optional
        The states to start from; they are data, so ``h0`` and ``c0`` then get no
        gradient (default: the network's own ``h0``, ``c0``, which do).
    final : (2, L, B, H), optional
        Receives the states after the last step (h, then c; zeros for cells without c).
    """
    impl = _step_of(net)
    params = net.unpack(theta)
    own_start = initial is None
    logits, tape = _run(net, params, x, _checked(net, initial, x))
    if final is not None:
        final[...] = 0.0
        for layer, (hs, cs, _) in enumerate(tape):
            final[0, layer] = hs[-1]
            if cs is not None:
                final[1, layer] = cs[-1]
    value, dlogits = loss_and_dlogits(loss, logits, y, mask, reduction)  # dlogits (T, B, O)

    grad = np.zeros_like(theta)
    grads = net.unpack(grad)
    top = tape[-1][0]  # (T, B, H)
    grads["W_hy"] += np.einsum("tbo,tbh->oh", dlogits, top)  # (O, H)
    grads["b_y"] += dlogits.sum(axis=(0, 1))  # (O,)
    dtop = dlogits @ params["W_hy"]  # (T, B, H) loss gradient reaching each top hidden state

    layers = [net.layer(params, layer) for layer in range(net.num_layers)]
    layer_grads = [net.layer(grads, layer) for layer in range(net.num_layers)]
    caches = [cache for _, _, cache in tape]
    T = x.shape[0]
    if truncate is None or truncate >= T:
        _backward_full(net, impl, layers, layer_grads, caches, dtop, own_start)
    else:
        _backward_truncated(net, impl, layers, layer_grads, caches, dtop, truncate, own_start)
    return value, grad


def train_step(net: Network, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
               mask: np.ndarray, *, loss: str, reduction: str = "mean",
               truncate: int | None = None, update: rules.Update,
               initial: tuple | None = None,
               final: np.ndarray | None = None) -> tuple[float, float]:  # fmt: skip
    """One training update in place: :func:`loss_and_grad`, then ``update``.

    Returns the loss and the gradient's norm before clipping; when either is not
    finite ``theta`` is left as it was.
    """
    value, grad = loss_and_grad(net, theta, x, y, mask, loss=loss, reduction=reduction,
                                truncate=truncate, initial=initial, final=final)  # fmt: skip
    if not math.isfinite(value):
        return value, float(np.linalg.norm(grad))
    return value, rules.apply(update, theta, grad)


def trainer(net: Network, *, loss: str, reduction: str = "mean",
            truncate: int | None = None) -> Trainer:  # fmt: skip
    """:func:`loss_and_grad` and :func:`train_step` with the options fixed."""
    return Trainer(sys.modules[__name__], net, loss=loss, reduction=reduction,
                   truncate=truncate)  # fmt: skip


def _backward_full(net, impl, layers, layer_grads, caches, dtop, own_start) -> None:
    """Exact BPTT, top layer first; each layer hands its input gradients down."""
    carry_size = 2 if net.spec.cell_state else 1
    dout = dtop  # (T, B, H) gradient arriving at this layer's outputs
    for layer in reversed(range(len(layers))):
        dcarry = None
        din = None
        for t in reversed(range(len(caches[layer]))):
            dcarry = _add_to_h(dcarry, dout[t], carry_size)
            dcarry, dx = impl.step_back(layers[layer], caches[layer][t], dcarry,
                                        layer_grads[layer])  # fmt: skip
            if din is None:
                din = np.empty((len(caches[layer]), *dx.shape), dtype=dx.dtype)  # (T, B, I_l)
            din[t] = dx
        if own_start:
            _initial_carry_back(net, dcarry, layer_grads[layer])
        dout = din


def _backward_truncated(net, impl, layers, layer_grads, caches, dtop, k: int,
                        own_start: bool) -> None:  # fmt: skip
    """Each step's loss flows back through at most ``k`` steps, in every layer."""
    carry_size = 2 if net.spec.cell_state else 1
    T = len(caches[0])
    top = len(layers) - 1
    for origin in range(T):
        dcarry = [None] * len(layers)  # per layer, the carry gradient from step s + 1
        first = max(origin - k + 1, 0)
        for s in range(origin, first - 1, -1):
            dx = dtop[origin] if s == origin else None  # (B, H) injected at the top
            for layer in range(top, -1, -1):
                d = dcarry[layer] if dx is None else _add_to_h(dcarry[layer], dx, carry_size)
                dcarry[layer], dx = impl.step_back(layers[layer], caches[layer][s], d,
                                                   layer_grads[layer])  # fmt: skip
        if first == 0 and own_start:
            for layer in range(len(layers)):
                if dcarry[layer] is not None:
                    _initial_carry_back(net, dcarry[layer], layer_grads[layer])


def _add_to_h(dcarry, dh: np.ndarray, carry_size: int) -> tuple:
    """Add ``dh (B, H)`` to the hidden-state part of a carry gradient (None: zero)."""
    if dcarry is None:
        return (dh, *(np.zeros_like(dh) for _ in range(carry_size - 1)))
    return (dcarry[0] + dh, *dcarry[1:])
