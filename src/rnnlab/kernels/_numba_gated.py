"""One-layer GRU and LSTM networks, full BPTT: the whole batch advances one step at a time.

The same plan as :func:`rnnlab.kernels._numba_elman.elman_loss_and_grad_blas`: per step
one product ``h_{t-1} W_hh^T`` forward and one ``da_t W_hh`` back, the gate arithmetic
as plain loops over the batch and the units (vectorized activations from
:mod:`rnnlab.kernels._numba_math`), and every input projection, the logits, the loss
and every weight gradient as one large product over all ``T B`` rows. The equations
are :mod:`rnnlab.kernels.gru` and :mod:`rnnlab.kernels.lstm` (PyTorch's).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rnnlab.kernels._numba_cells import LSTM
from rnnlab.kernels._numba_elman import (
    LANES,
    _block_in,
    _carve,
    _head_lanes,
    _head_lanes_back,
    _multiply_add,
    _multiply_add_transposed,
    _outer_add,
    _sum_blocks,
    column_sums,
    head_grads,
    head_lanes_sum,
    head_loss,
)
from rnnlab.kernels._numba_loops import (
    B_H,
    B_X,
    C0,
    H0,
    W_HH,
    W_XH,
    _loss_scale,
    head_params,
    layer_params,
)
from rnnlab.kernels._numba_math import kernel, sigmoid, tanh


@kernel
def lstm_loss_and_grad(x, y, mask, theta, lay, head, cell, H, loss, mean):
    """Forward, loss and full BPTT of a one-layer LSTM (gates i, f, g, o; one bias b_h).

    x (T, B, I), y (T, B, O), mask (T, B); theta / the returned gradient are flat
    vectors laid out by ``lay (1, 6)`` and ``head (2,)``; ``cell`` is the cell's code
    (the same signature for every gated kernel). Returns (loss value, gradient).
    """
    T, B, I = x.shape
    O = y.shape[2]
    N, GH = T * B, 4 * H
    dt = theta.dtype
    scale = _loss_scale(mask, O, loss, mean)
    W_xh, W_hh, b, _, h0, c0 = layer_params(theta, lay, 0, 4, H, I)
    W_hy, b_y = head_params(theta, head, O, H)
    W_hh_T = W_hh.T.copy()  # (H, 4H)
    hs = np.empty((T + 1, B, H), dt)  # hs[0] = h0, hs[t + 1] = h_t
    cs = np.empty((T + 1, B, H), dt)  # the same for the cell state
    for k in range(B):
        hs[0, k] = h0
        cs[0, k] = c0
    gates = np.dot(x.reshape((N, I)), W_xh.T).reshape((T, B, GH))  # then i, f, g, o
    tcs = np.empty((T, B, H), dt)  # tanh(c_t)
    recurrent = np.empty((B, GH), dt)
    for t in range(T):
        np.dot(hs[t], W_hh_T, recurrent)  # (B, 4H)
        a = gates[t]
        for k in range(B):
            for q in range(GH):
                a[k, q] += recurrent[k, q] + b[q]
            for q in range(2 * H):  # i, f
                a[k, q] = sigmoid(a[k, q])
            for q in range(2 * H, 3 * H):  # g
                a[k, q] = tanh(a[k, q])
            for q in range(3 * H, GH):  # o
                a[k, q] = sigmoid(a[k, q])
            for j in range(H):  # c_t = f c_{t-1} + i g
                cs[t + 1, k, j] = a[k, H + j] * cs[t, k, j] + a[k, j] * a[k, 2 * H + j]
            for j in range(H):  # h_t = o tanh(c_t)
                tc = tanh(cs[t + 1, k, j])
                tcs[t, k, j] = tc
                hs[t + 1, k, j] = a[k, 3 * H + j] * tc
    h_all = hs[1:].reshape((N, H))
    value, dz, d_top = head_loss(h_all, y, mask, W_hy, b_y, loss, scale)
    d_top = d_top.reshape((T, B, H))
    # back through time, carrying dh (through W_hh) and dc (through the forget gate)
    da = np.empty((T, B, GH), dt)
    dh = np.zeros((B, H), dt)
    dc = np.zeros((B, H), dt)
    dh_s = np.empty((B, H), dt)
    # (one loop per array written: loops that write one array and read a few vectorize)
    for s in range(T - 1, -1, -1):
        g_, d = gates[s], da[s]  # (B, 4H) each: i, f, g, o and their pre-activation gradients
        for k in range(B):
            for j in range(H):
                dh_s[k, j] = dh[k, j] + d_top[s, k, j]
            for j in range(H):  # dc_s = dc_{s+1} f_{s+1} + dh_s o (1 - tanh^2 c_s)
                tc = tcs[s, k, j]
                dc[k, j] += dh_s[k, j] * g_[k, 3 * H + j] * (1.0 - tc * tc)
            for j in range(H):
                d[k, j] = dc[k, j] * g_[k, 2 * H + j] * (g_[k, j] * (1.0 - g_[k, j]))
            for j in range(H):
                f = g_[k, H + j]
                d[k, H + j] = dc[k, j] * cs[s, k, j] * (f * (1.0 - f))
            for j in range(H):
                g = g_[k, 2 * H + j]
                d[k, 2 * H + j] = dc[k, j] * g_[k, j] * (1.0 - g * g)
            for j in range(H):
                o = g_[k, 3 * H + j]
                d[k, 3 * H + j] = dh_s[k, j] * tcs[s, k, j] * (o * (1.0 - o))
            for j in range(H):
                dc[k, j] *= g_[k, H + j]
        np.dot(da[s], W_hh, dh)  # (B, H) W_hh^T da_s
    da_all = da.reshape((N, GH))
    grad = np.zeros_like(theta)
    o_xh, o_hh, o_b, o_h0, o_c0 = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, H0], lay[0, C0]
    grad[o_xh : o_xh + GH * I] = np.dot(da_all.T, x.reshape((N, I))).reshape(GH * I)
    grad[o_hh : o_hh + GH * H] = np.dot(da_all.T, hs[:T].reshape((N, H))).reshape(GH * H)
    column_sums(da_all, grad[o_b : o_b + GH])
    column_sums(dh, grad[o_h0 : o_h0 + H])
    column_sums(dc, grad[o_c0 : o_c0 + H])
    head_grads(dz, h_all, grad, head)
    return value * scale, grad


@kernel
def gru_loss_and_grad(x, y, mask, theta, lay, head, cell, H, loss, mean):
    """Forward, loss and full BPTT of a one-layer GRU (gates r, z, n; biases b_xh, b_hh).

    Arguments and result as :func:`lstm_loss_and_grad`.
    """
    T, B, I = x.shape
    O = y.shape[2]
    N, GH = T * B, 3 * H
    dt = theta.dtype
    scale = _loss_scale(mask, O, loss, mean)
    W_xh, W_hh, b_x, b_h, h0, _ = layer_params(theta, lay, 0, 3, H, I)
    W_hy, b_y = head_params(theta, head, O, H)
    W_hh_T = W_hh.T.copy()  # (H, 3H)
    hs = np.empty((T + 1, B, H), dt)
    for k in range(B):
        hs[0, k] = h0
    inputs = np.dot(x.reshape((N, I)), W_xh.T).reshape((T, B, GH))  # W_xh x_t (+ b_xh below)
    rs = np.empty((T, B, H), dt)  # the gates r, z and the candidate n
    zs = np.empty((T, B, H), dt)
    ns = np.empty((T, B, H), dt)
    hns = np.empty((T, B, H), dt)  # W_hn h_{t-1} + b_hn, which r gates
    recurrent = np.empty((B, GH), dt)
    # (one loop per array written: loops that write one array and read a few vectorize)
    for t in range(T):
        np.dot(hs[t], W_hh_T, recurrent)  # (B, 3H)
        for k in range(B):
            for j in range(H):
                rs[t, k, j] = sigmoid(inputs[t, k, j] + b_x[j] + recurrent[k, j] + b_h[j])
            for j in range(H):
                zs[t, k, j] = sigmoid(inputs[t, k, H + j] + b_x[H + j] + recurrent[k, H + j]
                                      + b_h[H + j])  # fmt: skip
            for j in range(H):
                hns[t, k, j] = recurrent[k, 2 * H + j] + b_h[2 * H + j]
            for j in range(H):
                ns[t, k, j] = tanh(inputs[t, k, 2 * H + j] + b_x[2 * H + j]
                                   + rs[t, k, j] * hns[t, k, j])  # fmt: skip
            for j in range(H):
                z = zs[t, k, j]
                hs[t + 1, k, j] = (1.0 - z) * ns[t, k, j] + z * hs[t, k, j]
    h_all = hs[1:].reshape((N, H))
    value, dz, d_top = head_loss(h_all, y, mask, W_hy, b_y, loss, scale)
    d_top = d_top.reshape((T, B, H))
    # back through time: dh_{s-1} = dh_s z + W_hh^T dah_s
    dax = np.empty((T, B, GH), dt)  # gradients at the input-side pre-activations
    dah = np.empty((T, B, GH), dt)  # ... and at the recurrent side (n's is gated by r)
    dh = np.zeros((B, H), dt)
    dh_s = np.empty((B, H), dt)
    da_n = np.empty((B, H), dt)
    for s in range(T - 1, -1, -1):
        r, z, n, hn, ax, ah = rs[s], zs[s], ns[s], hns[s], dax[s], dah[s]
        for k in range(B):
            for j in range(H):
                dh_s[k, j] = dh[k, j] + d_top[s, k, j]
            for j in range(H):
                da_n[k, j] = dh_s[k, j] * (1.0 - z[k, j]) * (1.0 - n[k, j] * n[k, j])
            for j in range(H):  # r
                ax[k, j] = da_n[k, j] * hn[k, j] * (r[k, j] * (1.0 - r[k, j]))
            for j in range(H):  # z
                ax[k, H + j] = dh_s[k, j] * (hs[s, k, j] - n[k, j]) * (z[k, j] * (1.0 - z[k, j]))
            for j in range(H):  # n
                ax[k, 2 * H + j] = da_n[k, j]
            for q in range(2 * H):  # r and z: the same on the recurrent side
                ah[k, q] = ax[k, q]
            for j in range(H):
                ah[k, 2 * H + j] = da_n[k, j] * r[k, j]
        np.dot(ah, W_hh, dh)  # W_hh^T dah_s
        for k in range(B):
            for j in range(H):
                dh[k, j] += dh_s[k, j] * z[k, j]  # the path through z
    dax_all, dah_all = dax.reshape((N, GH)), dah.reshape((N, GH))
    grad = np.zeros_like(theta)
    o_xh, o_hh, o_bx, o_bh, o_h0 = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, B_H], lay[0, H0]
    grad[o_xh : o_xh + GH * I] = np.dot(dax_all.T, x.reshape((N, I))).reshape(GH * I)
    grad[o_hh : o_hh + GH * H] = np.dot(dah_all.T, hs[:T].reshape((N, H))).reshape(GH * H)
    column_sums(dax_all, grad[o_bx : o_bx + GH])
    column_sums(dah_all, grad[o_bh : o_bh + GH])
    column_sums(dh, grad[o_h0 : o_h0 + H])
    head_grads(dz, h_all, grad, head)
    return value * scale, grad


# -- small hidden sizes: the batch in SIMD lanes (as _numba_elman.elman_loss_and_grad) ----


@kernel
def _lanes_buffers(T, I, H, O, G, lanes, dt):
    """Work arrays of one block and zeroed lane accumulators (see :func:`_lanes_pass`)."""
    L, GH = lanes, G * H
    work = np.empty(T * (I + O + 1 + GH + H) * L + 2 * (T + 1) * H * L + T * O * L
                    + (O + 4 * GH + 3 * H + 3) * L, dt)  # fmt: skip
    xs, at = _carve(work, 0, (T, I, L))
    ys, at = _carve(work, at, (T, O, L))
    ws, at = _carve(work, at, (T, L))
    gates, at = _carve(work, at, (T, GH, L))  # activated gates, per step
    extra, at = _carve(work, at, (T, H, L))  # LSTM: tanh(c_t); GRU: W_hn h_{t-1} + b_hn
    hs, at = _carve(work, at, (T + 1, H, L))
    cs, at = _carve(work, at, (T + 1, H, L))  # LSTM cell states
    dzs, at = _carve(work, at, (T, O, L))
    zs, at = _carve(work, at, (O, L))
    pre, at = _carve(work, at, (GH, L))
    rec, at = _carve(work, at, (GH, L))
    dax, at = _carve(work, at, (GH, L))
    dah, at = _carve(work, at, (GH, L))
    dh, at = _carve(work, at, (H, L))
    dc, at = _carve(work, at, (H, L))
    direct, at = _carve(work, at, (H, L))
    tmp, at = _carve(work, at, (3, L))
    sums = np.zeros((GH * I + GH * H + 2 * GH + 2 * H + O * H + O) * L, dt)
    gW_xh, at = _carve(sums, 0, (GH, I, L))
    gW_hh, at = _carve(sums, at, (GH, H, L))
    gb_x, at = _carve(sums, at, (GH, L))
    gb_h, at = _carve(sums, at, (GH, L))
    gh0, at = _carve(sums, at, (H, L))
    gc0, at = _carve(sums, at, (H, L))
    gW_hy, at = _carve(sums, at, (O, H, L))
    gb_y, at = _carve(sums, at, (O, L))
    return (
        (xs, ys, ws, gates, extra, hs, cs, dzs, zs, pre, rec, dax, dah, dh, dc, direct, tmp),
        (gW_xh, gW_hh, gb_x, gb_h, gh0, gc0, gW_hy, gb_y),
    )


@kernel
def _lanes_pass(x, y, mask, start, n, cell, params, loss, scale, acc, work):
    """Forward, loss and BPTT of sequences ``start .. start + n`` of the batch, for a GRU
    (``cell`` 1) or an LSTM (2); adds to the lane accumulators ``acc``. Returns the
    block's weighted loss sum. ``params`` = (W_xh, W_hh, b_x, b_h, h0, c0, W_hy, b_y)."""
    W_xh, W_hh, b_x, b_h, h0, c0, W_hy, b_y = params
    gW_xh, gW_hh, gb_x, gb_h, gh0, gc0, gW_hy, gb_y = acc
    xs, ys, ws, gates, extra, hs, cs, dzs, zs, pre, rec, dax, dah, dh, dc, direct, tmp = work
    T = x.shape[0]
    H = h0.shape[0]
    GH = W_hh.shape[0]
    lstm = cell == LSTM
    _block_in(x, y, mask, start, n, xs, ys, ws)
    for j in range(H):
        for b in range(n):
            hs[0, j, b] = h0[j]
            cs[0, j, b] = c0[j] if lstm else 0.0
    value = 0.0
    for t in range(T):
        for q in range(GH):
            for b in range(n):
                pre[q, b] = b_x[q]
                rec[q, b] = b_h[q] if b_h.shape[0] > 0 else 0.0
        _multiply_add(W_xh, xs[t], pre, n)
        _multiply_add(W_hh, hs[t], rec, n)
        g = gates[t]
        if lstm:  # gates i, f, g, o
            for q in range(GH):
                if 2 * H <= q < 3 * H:
                    for b in range(n):
                        g[q, b] = tanh(pre[q, b] + rec[q, b])
                else:
                    for b in range(n):
                        g[q, b] = sigmoid(pre[q, b] + rec[q, b])
            for j in range(H):
                for b in range(n):
                    cs[t + 1, j, b] = g[H + j, b] * cs[t, j, b] + g[j, b] * g[2 * H + j, b]
                for b in range(n):
                    tc = tanh(cs[t + 1, j, b])
                    extra[t, j, b] = tc
                    hs[t + 1, j, b] = g[3 * H + j, b] * tc
        else:  # gates r, z, n; n sees r * (W_hn h + b_hn)
            for q in range(2 * H):
                for b in range(n):
                    g[q, b] = sigmoid(pre[q, b] + rec[q, b])
            for j in range(H):
                for b in range(n):
                    extra[t, j, b] = rec[2 * H + j, b]
                for b in range(n):
                    g[2 * H + j, b] = tanh(pre[2 * H + j, b] + g[j, b] * extra[t, j, b])
                for b in range(n):
                    z = g[H + j, b]
                    hs[t + 1, j, b] = (1.0 - z) * g[2 * H + j, b] + z * hs[t, j, b]
        value += _head_lanes(W_hy, b_y, hs[t + 1], zs, loss, ys[t], ws[t], scale, dzs[t], tmp, n)
    for j in range(H):
        for b in range(n):
            dh[j, b] = 0.0
            dc[j, b] = 0.0
    for s in range(T - 1, -1, -1):
        _head_lanes_back(W_hy, dzs[s], hs[s + 1], dh, gW_hy, gb_y, n)  # dh_s += W_hy^T dz_s
        g = gates[s]
        if lstm:
            for j in range(H):
                for b in range(n):
                    tc = extra[s, j, b]
                    dc[j, b] += dh[j, b] * g[3 * H + j, b] * (1.0 - tc * tc)
                for b in range(n):
                    i_ = g[j, b]
                    dax[j, b] = dc[j, b] * g[2 * H + j, b] * (i_ * (1.0 - i_))
                for b in range(n):
                    f = g[H + j, b]
                    dax[H + j, b] = dc[j, b] * cs[s, j, b] * (f * (1.0 - f))
                for b in range(n):
                    gg = g[2 * H + j, b]
                    dax[2 * H + j, b] = dc[j, b] * g[j, b] * (1.0 - gg * gg)
                for b in range(n):
                    o_ = g[3 * H + j, b]
                    dax[3 * H + j, b] = dh[j, b] * extra[s, j, b] * (o_ * (1.0 - o_))
                for b in range(n):
                    dc[j, b] *= g[H + j, b]
                    direct[j, b] = 0.0
            for q in range(GH):
                for b in range(n):
                    dah[q, b] = dax[q, b]
        else:
            for j in range(H):
                for b in range(n):
                    r, z, nn = g[j, b], g[H + j, b], g[2 * H + j, b]
                    d_n = dh[j, b] * (1.0 - z) * (1.0 - nn * nn)
                    dax[j, b] = d_n * extra[s, j, b] * (r * (1.0 - r))
                    dax[H + j, b] = dh[j, b] * (hs[s, j, b] - nn) * (z * (1.0 - z))
                    dax[2 * H + j, b] = d_n
                    dah[j, b] = dax[j, b]
                    dah[H + j, b] = dax[H + j, b]
                    dah[2 * H + j, b] = d_n * r
                    direct[j, b] = dh[j, b] * z
        _outer_add(dax, xs[s], gW_xh, n)
        _outer_add(dah, hs[s], gW_hh, n)
        for q in range(GH):
            for b in range(n):
                gb_x[q, b] += dax[q, b]
                gb_h[q, b] += dah[q, b]
        for j in range(H):
            for b in range(n):
                dh[j, b] = direct[j, b]
        _multiply_add_transposed(W_hh, dah, dh, n)  # dh_{s-1} = direct + W_hh^T dah_s
    for j in range(H):
        for b in range(n):
            gh0[j, b] += dh[j, b]
            gc0[j, b] += dc[j, b]
    return value


@kernel
def _lanes_sum(acc, grad, lay, head, lstm):
    """Add the lane accumulators ``acc`` into the flat gradient vector."""
    gW_xh, gW_hh, gb_x, gb_h, gh0, gc0, gW_hy, gb_y = acc
    GH, I, L = gW_xh.shape
    H = gh0.shape[0]
    o_xh, o_hh, o_bx, o_bh = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, B_H]
    o_h0, o_c0 = lay[0, H0], lay[0, C0]
    for q in range(GH):
        for b in range(L):
            grad[o_bx + q] += gb_x[q, b]
            if not lstm:
                grad[o_bh + q] += gb_h[q, b]
        for k in range(I):
            for b in range(L):
                grad[o_xh + q * I + k] += gW_xh[q, k, b]
        for k in range(H):
            for b in range(L):
                grad[o_hh + q * H + k] += gW_hh[q, k, b]
    for j in range(H):
        for b in range(L):
            grad[o_h0 + j] += gh0[j, b]
            if lstm:
                grad[o_c0 + j] += gc0[j, b]
    head_lanes_sum(gW_hy, gb_y, grad, head)


@kernel
def gated_loss_and_grad_lanes(x, y, mask, theta, lay, head, cell, H, loss, mean):
    """A one-layer GRU (``cell`` 1) or LSTM (2) with the batch in SIMD lanes, in blocks.

    Arguments and result as :func:`lstm_loss_and_grad`.
    """
    T, B, I = x.shape
    O = y.shape[2]
    G = 4 if cell == LSTM else 3
    scale = _loss_scale(mask, O, loss, mean)
    own = theta.copy()  # contiguous parameter views for the products
    W_xh, W_hh, b_x, b_h, h0, c0 = layer_params(own, lay, 0, G, H, I)
    W_hy, b_y = head_params(own, head, O, H)
    params = (W_xh, W_hh, b_x, b_h, h0, c0, W_hy, b_y)
    work, acc = _lanes_buffers(T, I, H, O, G, min(B, LANES), theta.dtype)
    value = 0.0
    for start in range(0, B, LANES):
        n = min(LANES, B - start)
        value += _lanes_pass(x, y, mask, start, n, cell, params, loss, scale, acc, work)
    grad = np.zeros_like(theta)
    _lanes_sum(acc, grad, lay, head, cell == LSTM)
    return value * scale, grad


@kernel(parallel=True)
def gated_loss_and_grad_lanes_parallel(x, y, mask, theta, lay, head, cell, H, loss, mean):
    """:func:`gated_loss_and_grad_lanes` with the blocks split over threads."""
    T, B, I = x.shape
    O = y.shape[2]
    G = 4 if cell == LSTM else 3
    scale = _loss_scale(mask, O, loss, mean)
    own = theta.copy()
    W_xh, W_hh, b_x, b_h, h0, c0 = layer_params(own, lay, 0, G, H, I)
    W_hy, b_y = head_params(own, head, O, H)
    params = (W_xh, W_hh, b_x, b_h, h0, c0, W_hy, b_y)
    blocks = (B + LANES - 1) // LANES
    grads = np.zeros((blocks, theta.shape[0]), theta.dtype)
    values = np.zeros(blocks, theta.dtype)
    for block in prange(blocks):
        work, acc = _lanes_buffers(T, I, H, O, G, LANES, theta.dtype)
        start = block * LANES
        n = min(LANES, B - start)
        values[block] = _lanes_pass(x, y, mask, start, n, cell, params, loss, scale, acc, work)
        _lanes_sum(acc, grads[block], lay, head, cell == LSTM)
    return _sum_blocks(values, grads, scale)
