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
from numba import njit, prange

from rnnlab.kernels._numba_cells import (
    BCE,
    GRU,
    LSTM,
    MSE,
    activate,
    activate_derivative,
    cell_backward,
    cell_forward,
    row_loss,
)

W_XH, W_HH, B_X, B_H, H0, C0 = range(6)  # columns of the offset table ``lay``


# -- parameter views -------------------------------------------------------------------


@njit(cache=True)
def _block(theta, offset, size):
    """``theta[offset : offset + size]``, or an empty view when the array is absent."""
    if offset < 0:
        return theta[0:0]
    return theta[offset : offset + size]


@njit(cache=True)
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


@njit(cache=True)
def head_params(theta, head, O, H):
    """Views of the output layer: W_hy (O, H), b_y (O,)."""
    W_hy = theta[head[0] : head[0] + O * H].reshape((O, H))
    b_y = theta[head[1] : head[1] + O]
    return W_hy, b_y


# -- small products as loops -----------------------------------------------------------


@njit(cache=True)
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


@njit(cache=True)
def _column_sums_add(A, out):
    """out (P,) += A (N, P) summed over rows."""
    for n in range(A.shape[0]):
        for p in range(A.shape[1]):
            out[p] += A[n, p]


# -- the output layer and the loss, one (t, b) row --------------------------------------


@njit(cache=True, inline="always")
def _head_row(t, b, theta, head, hs, logits):
    """logits[t, b] (O,) = W_hy h_top + b_y."""
    top, H = hs.shape[0] - 1, hs.shape[3]
    o_W, o_b = head[0], head[1]
    for o in range(logits.shape[2]):
        acc = theta[o_b + o]
        for k in range(H):
            acc += theta[o_W + o * H + k] * hs[top, t, b, k]
        logits[t, b, o] = acc


@njit(cache=True, inline="always")
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _allocate(x, L, H, G, S, cell):
    T, B = x.shape[0], x.shape[1]
    dt = x.dtype
    hs = np.empty((L, T, B, H), dt)  # every layer's hidden sequence
    cs = np.empty((L, T, B, H if cell == LSTM else 0), dt)  # LSTM cell states
    gs = np.empty((L, T, B, S), dt)  # what each cell keeps for its backward step
    return hs, cs, gs


@njit(cache=True)
def _forward_rows(x, theta, lay, head, cell, act, G, H, O, S, L):
    T, B = x.shape[0], x.shape[1]
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    logits = np.empty((T, B, O), x.dtype)
    for b in range(B):
        _sequence_forward(b, x, theta, lay, cell, act, G, hs, cs, gs)
        for t in range(T):
            _head_row(t, b, theta, head, hs, logits)
    return logits, hs


@njit(cache=True)
def _forward_blas(x, theta, lay, head, cell, act, G, H, O, S, L):
    T, B = x.shape[0], x.shape[1]
    hs, cs, gs = _allocate(x, L, H, G, S, cell)
    _batch_forward(x, theta, lay, cell, act, G, hs, cs, gs)
    logits = np.empty((T, B, O), x.dtype)
    for t in range(T):
        for b in range(B):
            _head_row(t, b, theta, head, hs, logits)
    return logits, hs


@njit(cache=True, parallel=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True, parallel=True)
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


# -- Elman, one layer, full BPTT: one fused pass ----------------------------------------
#
# The most used configuration gets a kernel of its own: every loop is a plain index
# loop over (b, t, j, k) on whole arrays, with no views, no slices and no calls that
# return arrays inside the loops (each of those costs a reference-count round trip,
# which at H = 2 is more than the arithmetic of a step). Scratch is allocated once per
# call. The weight gradients are accumulated step by step instead of through recorded
# pre-activation gradients and one large product, so nothing of size (T, B, H) is kept
# beyond the hidden states of the current element.


@njit(cache=True)
def _elman_loss_and_grad(x, y, mask, theta, lay, head, act, H, loss, mean):
    """Forward, loss and full BPTT of a one-layer Elman network, batch element by element.

    x (T, B, I), y (T, B, O), mask (T, B); theta / the returned gradient are flat
    vectors laid out by ``lay (1, 6)`` and ``head (2,)``. Returns (loss value, gradient).

    The parameters are first copied into small 2-D arrays (and the gradients summed in
    such arrays, then written out once): indexing those with loop counters only lets
    the compiler drop the negative-index checks and vectorize the loops over units,
    which indexing the flat vector at ``offset + j * H + k`` does not.
    """
    T, B, I = x.shape
    O = y.shape[2]
    o_xh, o_hh, o_b, o_h0 = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, H0]
    o_hy, o_by = head[0], head[1]
    dt = theta.dtype
    scale = _loss_scale(mask, O, loss, mean)
    # Scratch comes in a few blocks (a small pass pays ~50 ns per allocation), each
    # split into named views here, outside the loops.
    # Parameters: the forward products run over j (the unit) innermost, so they use
    # transposed copies: H independent accumulators, each still summing over k in
    # order (the same rounding as one dot product per unit). Gradients are summed over
    # the whole batch in the same blocks.
    mat = np.zeros((3, H, H), dt)
    W_hh_T, W_hh, gW_hh = mat[0], mat[1], mat[2]  # (H, H) each; W_hh_T = W_hh^T
    inp = np.zeros((2, I, H), dt)
    W_xh_T, gW_xh_T = inp[0], inp[1]  # (I, H) each: W_xh^T and its gradient
    out = np.zeros((2, O, H), dt)
    W_hy, gW_hy = out[0], out[1]  # (O, H) each
    gb_y = np.zeros(O, dt)
    vec = np.zeros((6, H), dt)
    ax, ah = vec[0], vec[1]  # (H,) input side W_xh x_t + b_h, recurrent side W_hh h_{t-1}
    da, dh_c = vec[2], vec[3]  # (H,) gradient at the pre-activation; carry W_hh^T da
    gb_h, gh0 = vec[4], vec[5]  # (H,) gradients of b_h and h0
    for j in range(H):
        for k in range(I):
            W_xh_T[k, j] = theta[o_xh + j * I + k]
        for k in range(H):
            W_hh_T[k, j] = theta[o_hh + j * H + k]
            W_hh[j, k] = theta[o_hh + j * H + k]
    for o in range(O):
        for k in range(H):
            W_hy[o, k] = theta[o_hy + o * H + k]
    # per element / per step
    seq = np.empty((2, T + 1, H), dt)
    hseq = seq[0]  # (T + 1, H) row 0: h0, row t + 1: h_t of the current element
    dtop = seq[1]  # (T(+1), H) loss gradient reaching h_t (W_hy^T dz_t)
    for k in range(H):
        hseq[0, k] = theta[o_h0 + k]
    zs = np.empty((2, T, B, O), dt)
    logits, dlogits = zs[0], zs[1]  # (T, B, O) each
    losses = np.empty((T, B), dt)
    for b in range(B):
        # forward: h_t = act(W_xh x_t + b_h + W_hh h_{t-1}), then the head and the loss
        for t in range(T):
            for j in range(H):
                ax[j] = theta[o_b + j]
                ah[j] = 0.0
            for k in range(I):
                xk = x[t, b, k]
                for j in range(H):
                    ax[j] += W_xh_T[k, j] * xk
            for k in range(H):
                hk = hseq[t, k]  # h_{t-1}
                for j in range(H):
                    ah[j] += W_hh_T[k, j] * hk
            for j in range(H):
                hseq[t + 1, j] = activate(act, ax[j] + ah[j])
            for o in range(O):  # logits[t, b] = W_hy h_t + b_y
                acc = theta[o_by + o]
                for k in range(H):
                    acc += W_hy[o, k] * hseq[t + 1, k]
                logits[t, b, o] = acc
            w = mask[t, b]
            if w != 0.0:
                losses[t, b] = row_loss(loss, logits, y, w * scale, dlogits, t, b) * w
            else:
                for o in range(O):
                    dlogits[t, b, o] = 0.0
                losses[t, b] = 0.0
            for k in range(H):
                dtop[t, k] = 0.0
            for o in range(O):  # dtop_t = W_hy^T dz_t; dW_hy += dz_t h_t^T; db_y += dz_t
                d = dlogits[t, b, o]
                gb_y[o] += d
                for k in range(H):
                    dtop[t, k] += d * W_hy[o, k]
                    gW_hy[o, k] += d * hseq[t + 1, k]
        # backward through time, the loss entering at every step
        for k in range(H):
            dh_c[k] = 0.0
        for s in range(T - 1, -1, -1):
            for j in range(H):
                da[j] = (dh_c[j] + dtop[s, j]) * activate_derivative(act, hseq[s + 1, j])
                gb_h[j] += da[j]
            for j in range(H):
                d = da[j]
                for k in range(I):  # dW_xh += da x_s^T
                    gW_xh_T[k, j] += d * x[s, b, k]
                for k in range(H):  # dW_hh += da h_{s-1}^T
                    gW_hh[j, k] += d * hseq[s, k]
            for k in range(H):  # dh_{s-1} = W_hh^T da
                dh_c[k] = 0.0
            for j in range(H):
                d = da[j]
                for k in range(H):
                    dh_c[k] += d * W_hh[j, k]
        for k in range(H):  # what is left at step 0 reaches h0
            gh0[k] += dh_c[k]
    grad = np.zeros_like(theta)
    for j in range(H):
        grad[o_b + j] = gb_h[j]
        grad[o_h0 + j] = gh0[j]
        for k in range(I):
            grad[o_xh + j * I + k] = gW_xh_T[k, j]
        for k in range(H):
            grad[o_hh + j * H + k] = gW_hh[j, k]
    for o in range(O):
        grad[o_by + o] = gb_y[o]
        for k in range(H):
            grad[o_hy + o * H + k] = gW_hy[o, k]
    value = 0.0
    for t in range(T):
        for b in range(B):
            value += losses[t, b]
    return value * scale, grad
