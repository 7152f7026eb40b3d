"""What every cell and the output layer share: activations, the output layer, the losses.

The compiled twins of :mod:`rnnlab.functional` and :mod:`rnnlab.losses`, for
blocks of sequences laid out lanes last (``(rows, n)``, the sequence innermost;
see :mod:`.cells`). Codes are :data:`rnnlab.kernels.registry.ACTIVATION_CODES`
and :data:`~rnnlab.kernels.registry.LOSS_CODES`.
"""

from __future__ import annotations

import math

from rnnlab.kernels.compiled.math import (
    exp_nonpositive,
    hold,
    inline,
    inline_always,
    one,
    sigmoid,
    tanh,
    unliteral,
    zero,
)
from rnnlab.kernels.compiled.products import blas_product_add, product_add
from rnnlab.kernels.registry import ACTIVATION_CODES, LOSS_CODES

SIGMOID, TANH, RELU = (ACTIVATION_CODES[name] for name in ("sigmoid", "tanh", "relu"))
BCE, SOFTMAX, MSE = (LOSS_CODES[name] for name in ("bce", "softmax", "mse"))


@inline
def activate(act, z):
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        return tanh(z)
    return max(z, zero(z))


@inline
def activation_derivative(act, a):
    """The activation's derivative, from its output ``a``."""
    if act == SIGMOID:
        return a * (one(a) - a)
    if act == TANH:
        return one(a) - a * a
    return one(a) if a > zero(a) else zero(a)


# -- the losses -------------------------------------------------------------------------------


@inline_always
def loss_block(loss, z, y, w, t, scale, dz, tmp, n):
    """Step ``t``'s loss over lanes ``:n``: logits ``z[0]``, targets ``y[t]``, weights
    ``w[t]`` (z (1, O, m), y (T, O, m), w (T, m)).

    Returns ``sum_b w_b loss_b``; writes ``dz[t] = w scale dloss/dz`` (0 where w = 0).
    ``tmp (3, n)`` is scratch.
    """
    O = z.shape[1]
    value = 0.0
    if loss == BCE:  # softplus(z) - y z, from e = exp(-|z|)
        for o in range(O):
            for b in range(n):
                zo = z[0, o, b]
                e = exp_nonpositive(-abs(zo))
                p = (1.0 if zo >= 0.0 else e) / (1.0 + e)
                dz[t, o, b] = (p - y[t, o, b]) * (w[t, b] * scale) if w[t, b] != 0.0 else 0.0
                tmp[0, b] = e
            for b in range(n):  # log1p is a library call: its own (scalar) loop
                if w[t, b] != 0.0:
                    zo = z[0, o, b]
                    value += (max(zo, 0.0) + math.log1p(tmp[0, b]) - y[t, o, b] * zo) * w[t, b]
    elif loss == MSE:
        for o in range(O):
            for b in range(n):
                d = z[0, o, b] - y[t, o, b]
                dz[t, o, b] = 2.0 * d * (w[t, b] * scale) if w[t, b] != 0.0 else 0.0
            for b in range(n):
                if w[t, b] != 0.0:
                    d = z[0, o, b] - y[t, o, b]
                    value += d * d * w[t, b]
    elif loss == SOFTMAX:  # logsumexp(z) - y.z
        zmax, total, yz = tmp[0], tmp[1], tmp[2]
        for b in range(n):
            zmax[b] = z[0, 0, b]
            total[b] = 0.0
            yz[b] = 0.0
        for o in range(1, O):
            for b in range(n):
                zmax[b] = max(zmax[b], z[0, o, b])
        for o in range(O):  # (each exponential kept in dz until the sum is known)
            for b in range(n):
                e = exp_nonpositive(z[0, o, b] - zmax[b])
                dz[t, o, b] = e
                total[b] += e
                yz[b] += y[t, o, b] * z[0, o, b]
        for o in range(O):
            for b in range(n):
                p = dz[t, o, b] / total[b]
                dz[t, o, b] = (p - y[t, o, b]) * (w[t, b] * scale) if w[t, b] != 0.0 else 0.0
        for b in range(n):
            if w[t, b] != 0.0:
                value += (zmax[b] + math.log(total[b]) - yz[b]) * w[t, b]
    hold(z, y, w, dz, tmp)  # (an unknown code was refused at the entry)
    return value


@inline
def loss_scale(mask, outputs, loss, mean):
    """1 for ``reduction="sum"``; for ``"mean"`` one over the number of scored terms
    (scored steps, times ``outputs`` for the element-wise losses)."""
    if not mean:
        return 1.0
    count = 0.0
    for t in range(mask.shape[0]):
        for b in range(mask.shape[1]):
            count += mask[t, b]
    if loss != SOFTMAX:
        count *= outputs
    return 1.0 / max(count, 1.0)


# -- the output layer: z = W_hy h + b_y --------------------------------------------------------


@inline
def head_forward(W_hy, b_y, hs, t, z, n):
    """Logits ``z[0] (O, n) = W_hy hs[t] + b_y``; hs (T + 1, H, m)."""
    _head_bias(b_y, z, n)
    product_add(W_hy, hs, t, z, 0, n)


@inline
def blas_head_forward(W_hy, b_y, h, z, n):
    """The same through BLAS, from ``h = hs[t]`` (H, m)."""
    _head_bias(b_y, z, n)
    blas_product_add(W_hy, h, z, unliteral(0))


@inline
def _head_bias(b_y, z, n):
    for o in range(z.shape[1]):
        for b in range(n):
            z[0, o, b] = b_y[o]
