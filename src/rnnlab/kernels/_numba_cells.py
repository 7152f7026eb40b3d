"""Compiled pieces for one row (one batch element, one step): cells, activations, losses.

These are the numba twins of :mod:`rnnlab.kernels.elman`, :mod:`~rnnlab.kernels.gru`,
:mod:`~rnnlab.kernels.lstm` and :mod:`rnnlab.losses`, written for a single row so the
time loops in :mod:`rnnlab.kernels._numba_loops` can call them anywhere. The matrix
products are *not* here: the caller hands each cell its two pre-activations

    ax = W_xh x_t + b_x        (G H,)   input side, bias included
    ah = W_hh h_{t-1} (+ b_hh) (G H,)   recurrent side (GRU only has a bias here)

and, going back, takes the pre-activation gradients ``dax``, ``dah`` (``G H`` each)
and pushes them through the weights itself.

What a cell keeps for its backward step (``gates``, ``S`` numbers per row):

=======  ====  ==========================================
cell     S     gates row
=======  ====  ==========================================
elman    0     nothing (the derivative comes from ``h``)
gru      4H    ``r, z, n, hn`` with ``hn = W_hn h_{t-1} + b_hn``
lstm     5H    ``i, f, g, o, tanh(c)``
=======  ====  ==========================================
"""

from __future__ import annotations

import math

from rnnlab.kernels._numba_math import inline_always
from rnnlab.kernels._numba_math import sigmoid_scalar as sigmoid
from rnnlab.kernels._numba_math import tanh_scalar as tanh

# Codes the compiled functions branch on (the branch is per row, well predicted).
ELMAN, GRU, LSTM = 0, 1, 2
CELL_CODES = {"elman": ELMAN, "gru": GRU, "lstm": LSTM}
GATES = {"elman": 1, "gru": 3, "lstm": 4}  # G: row blocks of W_xh / W_hh
TAPE = {"elman": 0, "gru": 4, "lstm": 5}  # S / H: numbers kept per row for the backward step

SIGMOID, TANH, RELU = 0, 1, 2
ACTIVATION_CODES = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}

BCE, SOFTMAX, MSE = 0, 1, 2
LOSS_CODES = {"bce": BCE, "softmax": SOFTMAX, "mse": MSE}


# -- activations -----------------------------------------------------------------------


@inline_always
def activate(act, z):
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        return tanh(z)
    return max(z, 0.0)


@inline_always
def activate_derivative(act, a):
    """The activation's derivative from its output ``a``."""
    if act == SIGMOID:
        return a * (1.0 - a)
    if act == TANH:
        return 1.0 - a * a
    return 1.0 if a > 0.0 else 0.0


# -- cells: one row forward ------------------------------------------------------------
#
# Rows are addressed by index rather than passed as views: building a view costs a
# reference-count round trip, which at H = 2 is more than the arithmetic of a step.


@inline_always
def _prev(hs, theta, offset, layer, t, b, j):
    """h_{t-1}[j] (or c_{t-1}[j]) of row b: the stored state, or the initial one at t = 0."""
    if t == 0:
        return theta[offset + j]
    return hs[layer, t - 1, b, j]


@inline_always
def cell_forward(cell, act, ax, ah, i, theta, o_h0, o_c0, hs, cs, gs, layer, t, b):
    """One row of one step: pre-activations -> new carry and the kept gates.

    ax, ah : (N, G H), row ``i`` ; writes hs[layer, t, b] (H,), cs[...] (LSTM) and
    gs[layer, t, b] (S,). ``h_{t-1}`` comes from hs, or ``theta[o_h0:]`` at t = 0.
    """
    H = hs.shape[3]
    if cell == ELMAN:
        for j in range(H):
            hs[layer, t, b, j] = activate(act, ax[i, j] + ah[i, j])
    elif cell == GRU:
        for j in range(H):
            r = sigmoid(ax[i, j] + ah[i, j])
            z = sigmoid(ax[i, H + j] + ah[i, H + j])
            hn = ah[i, 2 * H + j]  # W_hn h_prev + b_hn, gated by r
            n = tanh(ax[i, 2 * H + j] + r * hn)
            h_prev = _prev(hs, theta, o_h0, layer, t, b, j)
            hs[layer, t, b, j] = (1.0 - z) * n + z * h_prev
            gs[layer, t, b, j] = r
            gs[layer, t, b, H + j] = z
            gs[layer, t, b, 2 * H + j] = n
            gs[layer, t, b, 3 * H + j] = hn
    else:  # LSTM, gate blocks i, f, g, o
        for j in range(H):
            i_ = sigmoid(ax[i, j] + ah[i, j])
            f = sigmoid(ax[i, H + j] + ah[i, H + j])
            g = tanh(ax[i, 2 * H + j] + ah[i, 2 * H + j])
            o = sigmoid(ax[i, 3 * H + j] + ah[i, 3 * H + j])
            c = f * _prev(cs, theta, o_c0, layer, t, b, j) + i_ * g
            tc = tanh(c)
            cs[layer, t, b, j] = c
            hs[layer, t, b, j] = o * tc
            gs[layer, t, b, j] = i_
            gs[layer, t, b, H + j] = f
            gs[layer, t, b, 2 * H + j] = g
            gs[layer, t, b, 3 * H + j] = o
            gs[layer, t, b, 4 * H + j] = tc


# -- cells: one row back ---------------------------------------------------------------


@inline_always
def cell_backward(cell, act, theta, o_h0, o_c0, hs, cs, gs, layer, s, b, dh, dc, i, dax, dah,
                  direct, dc_prev):  # fmt: skip
    """One row of one step back, given the carry gradient at step ``s`` of row ``b``.

    dh : (N, H) and dc : (L, N, H), row ``i`` — the gradient at ``h_s`` and ``c_s``.
    Writes row ``i`` of ``dax`` / ``dah`` (N, G H) — the gradients at the input-side
    and recurrent-side pre-activations (the same array for Elman and LSTM, whose
    two sides are summed) — of ``direct`` (N, H), the part of ``dh_{s-1}`` that
    bypasses ``W_hh`` (GRU's ``dh z``), and of ``dc_prev`` (N, H) (LSTM).
    The caller adds ``W_hh^T dah`` to get ``dh_{s-1}``.
    """
    H = hs.shape[3]
    if cell == ELMAN:
        for j in range(H):
            dax[i, j] = dh[i, j] * activate_derivative(act, hs[layer, s, b, j])
            direct[i, j] = 0.0
    elif cell == GRU:
        for j in range(H):
            r, z = gs[layer, s, b, j], gs[layer, s, b, H + j]
            n, hn = gs[layer, s, b, 2 * H + j], gs[layer, s, b, 3 * H + j]
            h_prev = _prev(hs, theta, o_h0, layer, s, b, j)
            da_n = dh[i, j] * (1.0 - z) * (1.0 - n * n)
            da_z = dh[i, j] * (h_prev - n) * (z * (1.0 - z))
            da_r = da_n * hn * (r * (1.0 - r))
            dax[i, j], dax[i, H + j], dax[i, 2 * H + j] = da_r, da_z, da_n
            dah[i, j], dah[i, H + j], dah[i, 2 * H + j] = da_r, da_z, da_n * r
            direct[i, j] = dh[i, j] * z
    else:  # LSTM
        for j in range(H):
            i_, f = gs[layer, s, b, j], gs[layer, s, b, H + j]
            g, o = gs[layer, s, b, 2 * H + j], gs[layer, s, b, 3 * H + j]
            tc = gs[layer, s, b, 4 * H + j]
            dc_total = dc[layer, i, j] + dh[i, j] * o * (1.0 - tc * tc)
            c_prev = _prev(cs, theta, o_c0, layer, s, b, j)
            dax[i, j] = dc_total * g * (i_ * (1.0 - i_))
            dax[i, H + j] = dc_total * c_prev * (f * (1.0 - f))
            dax[i, 2 * H + j] = dc_total * i_ * (1.0 - g * g)
            dax[i, 3 * H + j] = dh[i, j] * tc * (o * (1.0 - o))
            direct[i, j] = 0.0
            dc_prev[i, j] = dc_total * f


# -- losses: one row -------------------------------------------------------------------


@inline_always
def row_loss(loss, z, y, weight, dz, t, b):
    """Loss of row (t, b) of logits ``z (T, B, O)`` against ``y (T, B, O)``, unweighted;
    writes ``dz[t, b] = weight * dloss/dz`` (O,)."""
    O = z.shape[2]
    value = 0.0
    if loss == BCE:
        for o in range(O):
            zo = z[t, b, o]
            e = math.exp(-abs(zo))  # shared by the loss and the sigmoid
            value += max(zo, 0.0) + math.log1p(e) - y[t, b, o] * zo
            p = (1.0 if zo >= 0.0 else e) / (1.0 + e)
            dz[t, b, o] = (p - y[t, b, o]) * weight
    elif loss == SOFTMAX:
        zmax = z[t, b, 0]
        for o in range(1, O):
            zmax = max(zmax, z[t, b, o])
        total = 0.0
        yz = 0.0
        for o in range(O):
            total += math.exp(z[t, b, o] - zmax)
            yz += y[t, b, o] * z[t, b, o]
        value = zmax + math.log(total) - yz
        for o in range(O):
            dz[t, b, o] = (math.exp(z[t, b, o] - zmax) / total - y[t, b, o]) * weight
    else:  # MSE
        for o in range(O):
            d = z[t, b, o] - y[t, b, o]
            value += d * d
            dz[t, b, o] = 2.0 * d * weight
    return value
