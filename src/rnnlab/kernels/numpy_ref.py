"""Reference kernels: forward pass and backpropagation through time in numpy.

This module is the specification every fast kernel must match. The time loop
is written once, for any cell with ``step`` / ``step_back`` and any number of
stacked layers (a layer's hidden sequence is the next layer's input).

Truncation: with ``truncate=k`` the loss at step ``t`` flows back through
steps ``t, t-1, ..., t-k+1`` only (in every layer); parameters used at those
steps, and the initial states (``h0``, ``c0``) when step 1 lies inside the
window, receive its gradient.
``truncate=None`` (or ``k >= T``) is exact BPTT.
"""

from __future__ import annotations

import numpy as np

from rnnlab.kernels.layout import layer_view, make_cell
from rnnlab.losses import loss_and_dlogits


def forward(params: dict, x: np.ndarray, *, cell: str, activation: str, num_layers: int):
    """Run the network over a batch.

    Parameters
    ----------
    x : ndarray of shape (T, B, I)

    Returns
    -------
    logits : ndarray of shape (T, B, O)
    tape : list over layers of (hidden sequence (T, B, H), caches per step)
    """
    impl = make_cell(cell, activation)
    T, B, _ = x.shape
    layer_input = x  # (T, B, I) then (T, B, H)
    tape = []
    for layer in range(num_layers):
        p = layer_view(params, type(impl), layer)
        carry = impl.initial_carry(p, B)
        hs = np.empty((T, B, p["h0"].shape[0]), dtype=x.dtype)  # (T, B, H)
        caches = []
        for t in range(T):
            carry, cache = impl.step(p, carry, layer_input[t])
            hs[t] = carry[0]
            caches.append(cache)
        tape.append((hs, caches))
        layer_input = hs
    logits = layer_input @ params["W_hy"].T + params["b_y"]  # (T, B, O)
    return logits, tape


def hidden_states(params: dict, x: np.ndarray, **net) -> list[np.ndarray]:
    """The hidden sequence of every layer, each of shape (T, B, H)."""
    _, tape = forward(params, x, **net)
    return [hs for hs, _ in tape]


def loss_and_grad(
    params: dict,
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    *,
    cell: str,
    activation: str,
    num_layers: int,
    loss: str = "bce",
    truncate: int | None = None,
    reduction: str = "sum",
) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and its exact gradient for every parameter.

    Parameters
    ----------
    x : ndarray of shape (T, B, I)
    y : ndarray of shape (T, B, O)
    mask : ndarray of shape (T, B)
        Loss weight per step (0 on padding and unscored steps).
    """
    impl = make_cell(cell, activation)
    logits, tape = forward(params, x, cell=cell, activation=activation, num_layers=num_layers)
    value, dlogits = loss_and_dlogits(loss, logits, y, mask, reduction)  # dlogits (T, B, O)

    grads = {name: np.zeros_like(p) for name, p in params.items()}
    top = tape[-1][0]  # (T, B, H)
    grads["W_hy"] = np.einsum("tbo,tbh->oh", dlogits, top)  # (O, H)
    grads["b_y"] = dlogits.sum(axis=(0, 1))  # (O,)
    dtop = dlogits @ params["W_hy"]  # (T, B, H) loss gradient reaching each top hidden state

    layers = [layer_view(params, type(impl), layer) for layer in range(num_layers)]
    layer_grads = [layer_view(grads, type(impl), layer) for layer in range(num_layers)]
    T = x.shape[0]
    if truncate is None or truncate >= T:
        _backward_full(impl, layers, layer_grads, tape, dtop)
    else:
        _backward_truncated(impl, layers, layer_grads, tape, dtop, truncate)
    return value, grads


def _backward_full(impl, layers, layer_grads, tape, dtop) -> None:
    """Exact BPTT, top layer first; each layer hands its input gradients down."""
    dout = dtop  # (T, B, H) gradient arriving at this layer's outputs
    for layer in reversed(range(len(layers))):
        _, caches = tape[layer]
        dcarry = None
        din = None
        for t in reversed(range(len(caches))):
            dcarry = _add_to_h(dcarry, dout[t], impl.carry_size)
            dcarry, dx = impl.step_back(layers[layer], caches[t], dcarry, layer_grads[layer])
            if din is None:
                din = np.empty((len(caches), *dx.shape), dtype=dx.dtype)  # (T, B, I_layer)
            din[t] = dx
        impl.initial_carry_back(dcarry, layer_grads[layer])
        dout = din


def _backward_truncated(impl, layers, layer_grads, tape, dtop, k: int) -> None:
    """Each step's loss flows back through at most ``k`` steps, in every layer."""
    T = len(tape[0][1])
    top = len(layers) - 1
    for origin in range(T):
        dcarry = [None] * len(layers)  # per layer, the carry gradient from step s + 1
        first = max(origin - k + 1, 0)
        for s in range(origin, first - 1, -1):
            dx = dtop[origin] if s == origin else None  # (B, H) injected at the top
            for layer in range(top, -1, -1):
                d = dcarry[layer] if dx is None else _add_to_h(dcarry[layer], dx, impl.carry_size)
                dcarry[layer], dx = impl.step_back(
                    layers[layer], tape[layer][1][s], d, layer_grads[layer]
                )
        if first == 0:
            for layer in range(len(layers)):
                if dcarry[layer] is not None:
                    impl.initial_carry_back(dcarry[layer], layer_grads[layer])


def _add_to_h(dcarry, dh: np.ndarray, carry_size: int) -> tuple:
    """Add ``dh (B, H)`` to the hidden-state part of a carry gradient (None: zero)."""
    if dcarry is None:
        return (dh, *(np.zeros_like(dh) for _ in range(carry_size - 1)))
    return (dcarry[0] + dh, *dcarry[1:])
