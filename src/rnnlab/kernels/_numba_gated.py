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

from rnnlab.kernels._numba_elman import column_sums, head_grads, head_loss
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
def lstm_loss_and_grad(x, y, mask, theta, lay, head, H, loss, mean):
    """Forward, loss and full BPTT of a one-layer LSTM (gates i, f, g, o; one bias b_h).

    x (T, B, I), y (T, B, O), mask (T, B); theta / the returned gradient are flat
    vectors laid out by ``lay (1, 6)`` and ``head (2,)``. Returns (loss value, gradient).
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
def gru_loss_and_grad(x, y, mask, theta, lay, head, H, loss, mean):
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
