"""The compiled time loops: forward, loss and BPTT fused into one call per pass.

One driver serves every cell: the cell-specific arithmetic is one row of one step
(:mod:`rnnlab.kernels._numba_cells`); the products with the weights are here. There
are two ways to run a pass, picked by size from Python:

* **rows** (small ``H``): each batch element runs its whole sequence — forward,
  loss and backward — as plain loops, one element at a time; the elements are
  independent, so the batch can be split over threads (``prange``).
* **blas** (larger ``H``): the whole batch advances one step at a time, with one
  matrix product per step for ``W_hh`` (and one per step for the input gradient
  of stacked layers); the input projections are one product per layer.

Either way the backward pass only records, per step, the gradients at the
pre-activations (``dax``, ``dah``); every weight gradient is then one large
product over all steps and the batch (``dW_hh = sum_t dah_t^T h_{t-1}``).

Parameters travel as one flat vector ``theta`` with an offset table ``lay (L, 6)``
(columns ``W_xh, W_hh, b_x, b_h, h0, c0``; ``-1``: the cell has no such array)
and ``head (2,)`` (``W_hy, b_y``); gradients come back in the same layout.

Truncation (as :mod:`rnnlab.kernels.numpy_ref`): with ``truncate=k`` the loss at
step ``t`` flows back through steps ``t .. t-k+1`` only. Both ways run the same
backward *sweep* over a window of steps; full BPTT is one sweep over all steps
with the loss injected at every step, truncation one sweep per scored step.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rnnlab.kernels._numba_cells import (
    BCE,
    GRU,
    LSTM,
    MSE,
    cell_backward,
    cell_forward,
    row_loss,
)
from rnnlab.kernels._numba_math import inline_always, kernel

W_XH, W_HH, B_X, B_H, H0, C0 = range(6)  # columns of the offset table ``lay``


# -- parameter views -------------------------------------------------------------------


@kernel
def _block(theta, offset, size):
    """``theta[offset : offset + size]``, or an empty view when the array is absent."""
    if offset < 0:
        return theta[0:0]
    return theta[offset : offset + size]


@kernel
def layer_params(theta, lay, layer, G, H, I):
    """Views of one layer: W_xh (GH, I), W_hh (GH, H), b_x (GH,), b_h (GH,|0), h0, c0 (H,|0)."""
    GH = G * H
    W_xh = theta[lay[layer, W_XH] : lay[layer, W_XH] + GH * I].reshape((GH, I))
    W_hh = theta[lay[layer, W_HH] : lay[layer, W_HH] + GH * H].reshape((GH, H))
    b_x = theta[lay[layer, B_X] : lay[layer, B_X] + GH]
    b_h = _block(theta, lay[layer, B_H], GH)
    h0 = theta[lay[layer, H0] : lay[layer, H0] + H]
    c0 = _block(theta, lay[layer, C0], H)
    return W_xh, W_hh, b_x, b_h, h0, c0


@kernel
def head_params(theta, head, O, H):
    """Views of the output layer: W_hy (O, H), b_y (O,)."""
    W_hy = theta[head[0] : head[0] + O * H].reshape((O, H))
    b_y = theta[head[1] : head[1] + O]
    return W_hy, b_y


# -- small products as loops -----------------------------------------------------------


@kernel
def _gram_add(A, B, out, use_blas):
    """out (P, Q) += A (N, P)^T @ B (N, Q): the one large product per weight gradient."""
    if A.shape[0] == 0:
        return
    if use_blas:
        out += np.dot(A.T, B)
        return
    for n in range(A.shape[0]):
        for p in range(A.shape[1]):
            a = A[n, p]
            if a != 0.0:
                for q in range(B.shape[1]):
                    out[p, q] += a * B[n, q]


@kernel
def _column_sums_add(A, out):
    """out (P,) += A (N, P) summed over rows."""
    for n in range(A.shape[0]):
        for p in range(A.shape[1]):
            out[p] += A[n, p]


# -- the output layer and the loss, one (t, b) row --------------------------------------


@inline_always
def _head_row(t, b, theta, head, hs, logits):
    """logits[t, b] (O,) = W_hy h_top + b_y."""
    top, H = hs.shape[0] - 1, hs.shape[3]
    o_W, o_b = head[0], head[1]
    for o in range(logits.shape[2]):
        acc = theta[o_b + o]
        for k in range(H):
            acc += theta[o_W + o * H + k] * hs[top, t, b, k]
        logits[t, b, o] = acc


@inline_always
def _loss_row(t, b, theta, head, hs, y, mask, loss, scale, logits, dlogits, dtop, losses):
    """Logits, loss and the gradient reaching the top hidden state, for row (t, b)."""
    _head_row(t, b, theta, head, hs, logits)
    H, O = hs.shape[3], logits.shape[2]
    w = mask[t, b]
    if w != 0.0:
        losses[t, b] = row_loss(loss, logits, y, w * scale, dlogits, t, b) * w
    else:
        dlogits[t, b] = 0.0
        losses[t, b] = 0.0
    o_W = head[0]
    for k in range(H):
        dtop[t, b, k] = 0.0
    for o in range(O):
        d = dlogits[t, b, o]
        for k in range(H):
            dtop[t, b, k] += d * theta[o_W + o * H + k]  # W_hy^T dz


# -- "rows": one batch element's whole sequence ----------------------------------------


@kernel
def _sequence_forward(b, x, theta, lay, cell, act, G, hs, cs, gs):
    """Forward pass of batch element ``b`` through every layer; fills hs, cs, gs [:, :, b]."""
    T, I = x.shape[0], x.shape[2]
    L, H = hs.shape[0], hs.shape[3]
    GH = G * H
    ax = np.empty((1, GH), dtype=hs.dtype)  # input side
    ah = np.empty((1, GH), dtype=hs.dtype)  # recurrent side
    for layer in range(L):
        I_l = I if layer == 0 else H
        o_xh, o_hh, o_bx, o_bh = (
            lay[layer, W_XH],
            lay[layer, W_HH],
            lay[layer, B_X],
            lay[layer, B_H],
        )
        o_h0, o_c0 = lay[layer, H0], lay[layer, C0]
        for t in range(T):
            for g in range(GH):
                acc = theta[o_bx + g]
                if layer == 0:
                    for k in range(I_l):
                        acc += theta[o_xh + g * I_l + k] * x[t, b, k]
                else:
                    for k in range(I_l):
                        acc += theta[o_xh + g * I_l + k] * hs[layer - 1, t, b, k]
                ax[0, g] = acc
                acc = theta[o_bh + g] if o_bh >= 0 else 0.0
                if t == 0:
                    for k in range(H):
                        acc += theta[o_hh + g * H + k] * theta[o_h0 + k]
                else:
                    for k in range(H):
                        acc += theta[o_hh + g * H + k] * hs[layer, t - 1, b, k]
                ah[0, g] = acc
            cell_forward(cell, act, ax, ah, 0, theta, o_h0, o_c0, hs, cs, gs, layer, t, b)


@kernel
def _sequence_sweep(b, end, first, inject_all, x, theta, lay, cell, act, G, hs, cs, gs, dtop,
                    dax_all, dah_all, dinit_h, dinit_c, work):  # fmt: skip
    """Back from step ``end`` to ``first`` for batch element ``b``, every layer.

    The loss gradient ``dtop`` enters the top layer at every step (``inject_all``) or
    at ``end`` only. Pre-activation gradients are added to ``dax_all`` / ``dah_all``
    (L, T, B, GH); the carry gradient left at step 0 to ``dinit_h`` / ``dinit_c`` (L, B, H).
    Work arrays have a batch axis of 1 (row 0), as the cell functions expect.
    """
    dh_c, dc_c, dh, dx_down, dax, dah_sep, direct, dc_prev = work  # (L,1,H) x2, then (1, .)
    L, H = hs.shape[0], hs.shape[3]
    GH = G * H
    separate = cell == GRU  # GRU's input and recurrent sides differ
    dah = dah_sep if separate else dax
    dh_c[:] = 0.0  # carry gradient from step s + 1, per layer
    dc_c[:] = 0.0
    for s in range(end, first - 1, -1):
        for layer in range(L - 1, -1, -1):
            I_l = x.shape[2] if layer == 0 else H
            o_xh, o_hh, o_h0, o_c0 = (
                lay[layer, W_XH],
                lay[layer, W_HH],
                lay[layer, H0],
                lay[layer, C0],
            )
            for j in range(H):  # the gradient reaching h[layer, s]
                if layer < L - 1:
                    dh[0, j] = dh_c[layer, 0, j] + dx_down[0, j]
                elif inject_all or s == end:
                    dh[0, j] = dh_c[layer, 0, j] + dtop[s, b, j]
                else:
                    dh[0, j] = dh_c[layer, 0, j]
            cell_backward(cell, act, theta, o_h0, o_c0, hs, cs, gs, layer, s, b, dh, dc_c, 0,
                          dax, dah, direct, dc_prev)  # fmt: skip
            for g in range(GH):
                dax_all[layer, s, b, g] += dax[0, g]
            if separate:
                for g in range(GH):
                    dah_all[layer, s, b, g] += dah[0, g]
            for k in range(H):
                dh_c[layer, 0, k] = direct[0, k]
                if cell == LSTM:
                    dc_c[layer, 0, k] = dc_prev[0, k]
            for g in range(GH):  # dh_{s-1} += W_hh^T dah
                d = dah[0, g]
                for k in range(H):
                    dh_c[layer, 0, k] += d * theta[o_hh + g * H + k]
            if layer > 0:  # into the layer below: W_xh^T dax
                for k in range(I_l):
                    dx_down[0, k] = 0.0
                for g in range(GH):
                    d = dax[0, g]
                    for k in range(I_l):
                        dx_down[0, k] += d * theta[o_xh + g * I_l + k]
    if first == 0:
        for layer in range(L):
            for k in range(H):
                dinit_h[layer, b, k] += dh_c[layer, 0, k]
                dinit_c[layer, b, k] += dc_c[layer, 0, k]


@kernel
def _sequence_pass(b, x, y, mask, theta, lay, head, cell, act, G, loss, scale, truncate,
                   hs, cs, gs, logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h,
                   dinit_c):  # fmt: skip
    """Forward, loss and backward for batch element ``b``."""
    T = x.shape[0]
    L, H = hs.shape[0], hs.shape[3]
    GH = G * H
    dt = hs.dtype
    _sequence_forward(b, x, theta, lay, cell, act, G, hs, cs, gs)
    for t in range(T):
        _loss_row(t, b, theta, head, hs, y, mask, loss, scale, logits, dlogits, dtop, losses)
    work = (
        np.empty((L, 1, H), dt), np.empty((L, 1, H), dt), np.empty((1, H), dt),
        np.empty((1, H), dt), np.empty((1, GH), dt), np.empty((1, GH), dt),
        np.empty((1, H), dt), np.zeros((1, H), dt),
    )  # fmt: skip
    if truncate == 0:
        _sequence_sweep(b, T - 1, 0, True, x, theta, lay, cell, act, G, hs, cs, gs, dtop,
                        dax_all, dah_all, dinit_h, dinit_c, work)  # fmt: skip
    else:
        for origin in range(T):
            if mask[origin, b] == 0.0:
                continue  # nothing to send back from this step
            first = max(origin - truncate + 1, 0)
            _sequence_sweep(b, origin, first, False, x, theta, lay, cell, act, G, hs, cs, gs,
                            dtop, dax_all, dah_all, dinit_h, dinit_c, work)  # fmt: skip


# -- "blas": the whole batch, one step at a time ----------------------------------------


@kernel
def _batch_forward(x, theta, lay, cell, act, G, hs, cs, gs):
    """Forward pass of the whole batch, one product per step for ``W_hh``."""
    T, B, I = x.shape
    L, H = hs.shape[0], hs.shape[3]
    GH = G * H
    ax = np.empty((T, B, GH), dtype=hs.dtype)  # input projections of a layer, all steps
    ah = np.empty((B, GH), dtype=hs.dtype)
    h_init = np.empty((B, H), dtype=hs.dtype)  # h0 for every element
    for layer in range(L):
        I_l = I if layer == 0 else H
        W_xh, W_hh, b_x, b_h, h0, _ = layer_params(theta, lay, layer, G, H, I_l)
        inp = x.reshape((T * B, I)) if layer == 0 else hs[layer - 1].reshape((T * B, H))
        ax2 = ax.reshape((T * B, GH))
        np.dot(inp, W_xh.T, ax2)  # (TB, GH), one product for all steps
        for n in range(T * B):
            ax2[n] += b_x
        for bb in range(B):
            h_init[bb] = h0
        for t in range(T):
            h_prev = h_init if t == 0 else hs[layer, t - 1]  # (B, H)
            np.dot(h_prev, W_hh.T, ah)  # (B, GH)
            if b_h.shape[0] > 0:
                for bb in range(B):
                    ah[bb] += b_h
            for bb in range(B):
                cell_forward(cell, act, ax[t], ah, bb, theta, lay[layer, H0], lay[layer, C0], hs,
                             cs, gs, layer, t, bb)  # fmt: skip


@kernel
def _batch_sweep(end, first, inject_all, x, theta, lay, cell, act, G, hs, cs, gs, dtop,
                 dax_all, dah_all, dinit_h, dinit_c, work):  # fmt: skip
    """:func:`_sequence_sweep` for the whole batch at once (products through BLAS)."""
    dh_c, dc_c, dh, dx_down, dax, dah_sep, direct, dc_prev = work  # (L,B,H) x2, then (B, .)
    B = x.shape[1]
    L, H = hs.shape[0], hs.shape[3]
    separate = cell == GRU
    dah = dah_sep if separate else dax
    dh_c[:] = 0.0
    dc_c[:] = 0.0
    for s in range(end, first - 1, -1):
        for layer in range(L - 1, -1, -1):
            I_l = x.shape[2] if layer == 0 else H
            W_xh, W_hh, _, _, _, _ = layer_params(theta, lay, layer, G, H, I_l)
            if layer < L - 1:
                dh[:] = dh_c[layer] + dx_down
            elif inject_all or s == end:
                dh[:] = dh_c[layer] + dtop[s]
            else:
                dh[:] = dh_c[layer]
            for bb in range(B):
                cell_backward(cell, act, theta, lay[layer, H0], lay[layer, C0], hs, cs, gs,
                              layer, s, bb, dh, dc_c, bb, dax, dah, direct, dc_prev)  # fmt: skip
            dax_all[layer, s] += dax
            if separate:
                dah_all[layer, s] += dah
            np.dot(dah, W_hh, dh_c[layer])  # (B, H), one product per step
            dh_c[layer] += direct
            if cell == LSTM:
                dc_c[layer] = dc_prev
            if layer > 0:
                np.dot(dax, W_xh, dx_down)  # (B, H) into the layer below
    if first == 0:
        dinit_h += dh_c
        dinit_c += dc_c


# -- whole passes ----------------------------------------------------------------------


@kernel
def _allocate(x, L, H, G, S, cell):
    T, B = x.shape[0], x.shape[1]
    dt = x.dtype
    hs = np.empty((L, T, B, H), dt)  # every layer's hidden sequence
    cs = np.empty((L, T, B, H if cell == LSTM else 0), dt)  # LSTM cell states
    gs = np.empty((L, T, B, S), dt)  # what each cell keeps for its backward step
    return hs, cs, gs


@kernel
def _forward_rows(x, theta, lay, head, cell, act, G, H, O, S, L):
    T, B = x.shape[0], x.shape[1]
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    logits = np.empty((T, B, O), x.dtype)
    for b in range(B):
        _sequence_forward(b, x, theta, lay, cell, act, G, hs, cs, gs)
        for t in range(T):
            _head_row(t, b, theta, head, hs, logits)
    return logits, hs


@kernel
def _forward_blas(x, theta, lay, head, cell, act, G, H, O, S, L):
    T, B = x.shape[0], x.shape[1]
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    _batch_forward(x, theta, lay, cell, act, G, hs, cs, gs)
    logits = np.empty((T, B, O), x.dtype)
    for t in range(T):
        for b in range(B):
            _head_row(t, b, theta, head, hs, logits)
    return logits, hs


@kernel(parallel=True)
def _forward_rows_parallel(x, theta, lay, head, cell, act, G, H, O, S, L):
    """:func:`_forward_rows` with the batch split over threads."""
    T, B = x.shape[0], x.shape[1]
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    logits = np.empty((T, B, O), x.dtype)
    for b in prange(B):
        _sequence_forward(b, x, theta, lay, cell, act, G, hs, cs, gs)
        for t in range(T):
            _head_row(t, b, theta, head, hs, logits)
    return logits, hs


def forward(x, theta, lay, head, cell, act, G, H, O, S, L, use_blas, parallel):
    """logits (T, B, O) and hidden sequences hs (L, T, B, H)."""
    if use_blas:
        return _forward_blas(x, theta, lay, head, cell, act, G, H, O, S, L)
    if parallel:
        return _forward_rows_parallel(x, theta, lay, head, cell, act, G, H, O, S, L)
    return _forward_rows(x, theta, lay, head, cell, act, G, H, O, S, L)


@kernel
def _loss_scale(mask, O, loss, mean):
    if not mean:
        return 1.0
    count = 0.0
    for t in range(mask.shape[0]):
        for b in range(mask.shape[1]):
            count += mask[t, b]
    if loss == BCE or loss == MSE:
        count *= O  # element-wise losses count every output
    return 1.0 / max(count, 1.0)


@kernel
def _weight_grads(x, grad, lay, head, cell, G, hs, dax_all, dah_all, dinit_h, dinit_c,
                  dlogits, theta, use_blas):  # fmt: skip
    """Every parameter gradient from the recorded pre-activation gradients."""
    T, B, I = x.shape
    L, H = hs.shape[0], hs.shape[3]
    GH = G * H
    O = dlogits.shape[2]
    for layer in range(L):
        I_l = I if layer == 0 else H
        gW_xh, gW_hh, gb_x, gb_h, gh0, gc0 = layer_params(grad, lay, layer, G, H, I_l)
        _, _, _, _, h0, _ = layer_params(theta, lay, layer, G, H, I_l)
        inp = x.reshape((T * B, I)) if layer == 0 else hs[layer - 1].reshape((T * B, H))
        dax = dax_all[layer].reshape((T * B, GH))  # (TB, GH)
        dah = dah_all[layer].reshape((T * B, GH)) if cell == GRU else dax
        h_seq = hs[layer].reshape((T * B, H))
        _gram_add(dax, inp, gW_xh, use_blas)  # (GH, I_l)
        _gram_add(dah[B:], h_seq[: (T - 1) * B], gW_hh, use_blas)  # steps 1.. see h_{t-1}
        for b in range(B):  # step 0 sees h0
            for g in range(GH):
                d = dah[b, g]
                for k in range(H):
                    gW_hh[g, k] += d * h0[k]
        _column_sums_add(dax, gb_x)
        if gb_h.shape[0] > 0:
            _column_sums_add(dah, gb_h)
        _column_sums_add(dinit_h[layer], gh0)
        if gc0.shape[0] > 0:
            _column_sums_add(dinit_c[layer], gc0)
    gW_hy, gb_y = head_params(grad, head, O, H)
    dlog = dlogits.reshape((T * B, O))
    _gram_add(dlog, hs[L - 1].reshape((T * B, H)), gW_hy, use_blas)
    _column_sums_add(dlog, gb_y)


@kernel
def _grad_buffers(x, L, H, G, cell, O):
    T, B = x.shape[0], x.shape[1]
    dt = x.dtype
    logits = np.empty((T, B, O), dt)
    dlogits = np.empty((T, B, O), dt)
    dtop = np.empty((T, B, H), dt)  # loss gradient at the top hidden state
    losses = np.empty((T, B), dt)
    dax_all = np.zeros((L, T, B, G * H), dt)
    dah_all = np.zeros((L, T, B, G * H) if cell == GRU else (0, 0, 0, 0), dt)
    dinit_h = np.zeros((L, B, H), dt)
    dinit_c = np.zeros((L, B, H), dt)
    return logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h, dinit_c


@kernel
def _loss_and_grad_blas(x, y, mask, theta, lay, head, cell, act, G, H, S, L, loss, mean,
                        truncate):  # fmt: skip
    T, B = x.shape[0], x.shape[1]
    O = y.shape[2]
    dt = x.dtype
    scale = _loss_scale(mask, O, loss, mean)
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h, dinit_c = _grad_buffers(
        x, L, H, G, cell, O
    )
    _batch_forward(x, theta, lay, cell, act, G, hs, cs, gs)
    value = 0.0
    for t in range(T):
        for b in range(B):
            _loss_row(t, b, theta, head, hs, y, mask, loss, scale, logits, dlogits, dtop, losses)
            value += losses[t, b]
    work = (
        np.empty((L, B, H), dt), np.empty((L, B, H), dt), np.empty((B, H), dt),
        np.empty((B, H), dt), np.empty((B, G * H), dt), np.empty((B, G * H), dt),
        np.empty((B, H), dt), np.zeros((B, H), dt),
    )  # fmt: skip
    if truncate == 0:
        _batch_sweep(T - 1, 0, True, x, theta, lay, cell, act, G, hs, cs, gs, dtop, dax_all,
                     dah_all, dinit_h, dinit_c, work)  # fmt: skip
    else:
        for origin in range(T):
            first = max(origin - truncate + 1, 0)
            _batch_sweep(origin, first, False, x, theta, lay, cell, act, G, hs, cs, gs, dtop,
                         dax_all, dah_all, dinit_h, dinit_c, work)  # fmt: skip
    grad = np.zeros_like(theta)
    _weight_grads(x, grad, lay, head, cell, G, hs, dax_all, dah_all, dinit_h, dinit_c, dlogits,
                  theta, True)  # fmt: skip
    return value * scale, grad


@kernel
def _finish_rows(x, theta, lay, head, cell, G, hs, losses, dlogits, dax_all, dah_all, dinit_h,
                 dinit_c, scale, gram_blas):  # fmt: skip
    value = 0.0
    for t in range(x.shape[0]):
        for b in range(x.shape[1]):
            value += losses[t, b]
    grad = np.zeros_like(theta)
    _weight_grads(x, grad, lay, head, cell, G, hs, dax_all, dah_all, dinit_h, dinit_c, dlogits,
                  theta, gram_blas)  # fmt: skip
    return value * scale, grad


@kernel
def _loss_and_grad_rows(x, y, mask, theta, lay, head, cell, act, G, H, S, L, loss, mean,
                        truncate, gram_blas):  # fmt: skip
    O = y.shape[2]
    scale = _loss_scale(mask, O, loss, mean)
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h, dinit_c = _grad_buffers(
        x, L, H, G, cell, O
    )
    for b in range(x.shape[1]):
        _sequence_pass(b, x, y, mask, theta, lay, head, cell, act, G, loss, scale, truncate, hs,
                       cs, gs, logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h,
                       dinit_c)  # fmt: skip
    return _finish_rows(x, theta, lay, head, cell, G, hs, losses, dlogits, dax_all, dah_all,
                        dinit_h, dinit_c, scale, gram_blas)  # fmt: skip


@kernel(parallel=True)
def _loss_and_grad_rows_parallel(x, y, mask, theta, lay, head, cell, act, G, H, S, L, loss,
                                 mean, truncate, gram_blas):  # fmt: skip
    """:func:`_loss_and_grad_rows` with the batch split over threads."""
    O = y.shape[2]
    scale = _loss_scale(mask, O, loss, mean)
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h, dinit_c = _grad_buffers(
        x, L, H, G, cell, O
    )
    for b in prange(x.shape[1]):
        _sequence_pass(b, x, y, mask, theta, lay, head, cell, act, G, loss, scale, truncate, hs,
                       cs, gs, logits, dlogits, dtop, losses, dax_all, dah_all, dinit_h,
                       dinit_c)  # fmt: skip
    return _finish_rows(x, theta, lay, head, cell, G, hs, losses, dlogits, dax_all, dah_all,
                        dinit_h, dinit_c, scale, gram_blas)  # fmt: skip
