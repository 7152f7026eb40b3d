"""One-layer Elman networks, full BPTT: one fused compiled pass with the batch in lanes.

The most used configuration (the notebook's network, and every small Elman model)
gets a kernel of its own. The batch runs in blocks of up to ``LANES`` sequences, and
inside a block every array keeps the sequence index last — ``h (T + 1, H, n)`` — so
every innermost loop runs over the sequences of the block: contiguous, independent,
branch-free, and compiled to SIMD instructions (4 float64 or 8 float32 at a time),
activations and loss included (:mod:`rnnlab.kernels._numba_math`). At ``H = 2`` a
loop over units would have had nothing to vectorize.

Weight gradients are summed per lane (``gW_hh (H, H, n)``: no reduction inside the
time loop, which would serialize on one accumulator) and over the lanes once at the
end. Blocks are independent: with ``parallel`` the blocks are split over threads,
each with its own lane accumulators.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from rnnlab.kernels._numba_cells import (
    BCE,
    MSE,
    SIGMOID,
    TANH,
    activate,
    activate_derivative,
    row_loss,
)
from rnnlab.kernels._numba_loops import B_X, H0, W_HH, W_XH, _loss_scale
from rnnlab.kernels._numba_math import exp_nonpositive, inline, kernel, sigmoid, tanh
from rnnlab.kernels._numba_optim import step as optimizer_step

#: sequences per block (the SIMD lanes of the innermost loops)
LANES = 32


@inline
def _activate_lanes(act, a, out, n):
    """out[j, :n] = act(a[j, :n]) for every unit j; a, out (H, LANES)."""
    for j in range(a.shape[0]):
        if act == SIGMOID:
            for b in range(n):
                out[j, b] = sigmoid(a[j, b])
        elif act == TANH:
            for b in range(n):
                out[j, b] = tanh(a[j, b])
        else:
            for b in range(n):
                out[j, b] = max(a[j, b], 0.0)


@inline
def _derivative_lanes(act, h, d, n):
    """d[j, :n] *= act'(.) written from the output h (H, LANES)."""
    for j in range(h.shape[0]):
        if act == SIGMOID:
            for b in range(n):
                d[j, b] *= h[j, b] * (1.0 - h[j, b])
        elif act == TANH:
            for b in range(n):
                d[j, b] *= 1.0 - h[j, b] * h[j, b]
        else:
            for b in range(n):
                d[j, b] = d[j, b] if h[j, b] > 0.0 else 0.0


@inline
def _loss_lanes(loss, z, y, w, scale, dz, tmp, n):
    """Loss of one step over a block: z, y, dz (O, LANES), weights w (LANES,).

    Returns ``sum_b w_b loss_b``; writes ``dz = w scale dloss/dz`` (0 where w = 0).
    ``tmp (3, LANES)`` is scratch.
    """
    O = z.shape[0]
    value = 0.0
    if loss == BCE:  # softplus(z) - y z, from e = exp(-|z|)
        for o in range(O):
            for b in range(n):
                zo = z[o, b]
                e = exp_nonpositive(-abs(zo))
                p = (1.0 if zo >= 0.0 else e) / (1.0 + e)
                dz[o, b] = (p - y[o, b]) * (w[b] * scale) if w[b] != 0.0 else 0.0
                tmp[0, b] = e
            for b in range(n):  # log1p is a library call: its own (scalar) loop
                if w[b] != 0.0:
                    zo = z[o, b]
                    value += (max(zo, 0.0) + math.log1p(tmp[0, b]) - y[o, b] * zo) * w[b]
    elif loss == MSE:
        for o in range(O):
            for b in range(n):
                d = z[o, b] - y[o, b]
                dz[o, b] = 2.0 * d * (w[b] * scale) if w[b] != 0.0 else 0.0
            for b in range(n):
                if w[b] != 0.0:
                    d = z[o, b] - y[o, b]
                    value += d * d * w[b]
    else:  # softmax cross-entropy: logsumexp(z) - y.z
        zmax, total, yz = tmp[0], tmp[1], tmp[2]
        for b in range(n):
            zmax[b] = z[0, b]
            total[b] = 0.0
            yz[b] = 0.0
        for o in range(1, O):
            for b in range(n):
                zmax[b] = max(zmax[b], z[o, b])
        for o in range(O):
            for b in range(n):
                total[b] += exp_nonpositive(z[o, b] - zmax[b])
                yz[b] += y[o, b] * z[o, b]
        for o in range(O):
            for b in range(n):
                p = exp_nonpositive(z[o, b] - zmax[b]) / total[b]
                dz[o, b] = (p - y[o, b]) * (w[b] * scale) if w[b] != 0.0 else 0.0
        for b in range(n):
            if w[b] != 0.0:
                value += (zmax[b] + math.log(total[b]) - yz[b]) * w[b]
    return value


@inline
def _multiply_add(W, v, out, n):
    """out[j, :n] += sum_k W[j, k] v[k, :n]; W (J, K), v (K, LANES), out (J, LANES)."""
    for j in range(W.shape[0]):
        for k in range(W.shape[1]):
            w = W[j, k]
            for b in range(n):
                out[j, b] += w * v[k, b]


@inline
def _multiply_add_transposed(W, v, out, n):
    """out[k, :n] += sum_j W[j, k] v[j, :n]; W (J, K), v (J, LANES), out (K, LANES)."""
    for j in range(W.shape[0]):
        for k in range(W.shape[1]):
            w = W[j, k]
            for b in range(n):
                out[k, b] += w * v[j, b]


@inline
def _outer_add(u, v, out, n):
    """out[j, k, :n] += u[j, :n] v[k, :n], lane by lane; u (J, LANES), v (K, LANES)."""
    for j in range(u.shape[0]):
        for k in range(v.shape[0]):
            for b in range(n):
                out[j, k, b] += u[j, b] * v[k, b]


@inline
def _head_lanes(W_hy, b_y, h, z, loss, y, w, scale, dz, tmp, n):
    """Logits ``z = W_hy h + b_y`` (O, LANES) of one step and their loss (see
    :func:`_loss_lanes`, which writes ``dz``); returns the weighted loss sum."""
    for o in range(z.shape[0]):
        for b in range(n):
            z[o, b] = b_y[o]
    _multiply_add(W_hy, h, z, n)
    return _loss_lanes(loss, z, y, w, scale, dz, tmp, n)


@inline
def _head_lanes_back(W_hy, dz, h, dh, gW_hy, gb_y, n):
    """One step of the output layer back: dh += W_hy^T dz; dW_hy += dz h^T; db_y += dz."""
    _multiply_add_transposed(W_hy, dz, dh, n)
    _outer_add(dz, h, gW_hy, n)
    for o in range(dz.shape[0]):
        for b in range(n):
            gb_y[o, b] += dz[o, b]


@kernel
def _block_in(x, y, mask, start, n, xs, ys, ws):
    """Sequences ``start .. start + n`` of the batch, sequence index last:
    xs (T, I, LANES), ys (T, O, LANES), ws (T, LANES)."""
    T, I, O = x.shape[0], x.shape[2], y.shape[2]
    for t in range(T):
        for b in range(n):
            ws[t, b] = mask[t, start + b]
            for k in range(I):
                xs[t, k, b] = x[t, start + b, k]
            for o in range(O):
                ys[t, o, b] = y[t, start + b, o]


@kernel
def _sum_blocks(values, grads, scale):
    """(sum of the blocks' loss sums times ``scale``, the blocks' gradients summed)."""
    grad = np.zeros(grads.shape[1], grads.dtype)
    value = 0.0
    for block in range(grads.shape[0]):
        value += values[block]
        for i in range(grads.shape[1]):
            grad[i] += grads[block, i]
    return value * scale, grad


@kernel
def _block_pass(x, y, mask, start, n, params, act, loss, scale, acc, work):
    """Forward, loss and BPTT of sequences ``start .. start + n`` of the batch.

    x (T, B, I), y (T, B, O), mask (T, B); params = (W_xh (H, I), W_hh (H, H),
    b_h (H,), h0 (H,), W_hy (O, H), b_y (O,)). Adds to the lane accumulators
    ``acc`` = (gW_xh (H, I, LANES), gW_hh (H, H, LANES), gb_h (H, LANES),
    gh0 (H, LANES), gW_hy (O, H, LANES), gb_y (O, LANES)). Returns the block's
    weighted loss sum.
    """
    W_xh, W_hh, b_h, h0, W_hy, b_y = params
    gW_xh, gW_hh, gb_h, gh0, gW_hy, gb_y = acc
    xs, ys, ws, hs, zs, dzs, a, dh, tmp = work
    T = x.shape[0]
    H = W_hh.shape[0]
    _block_in(x, y, mask, start, n, xs, ys, ws)
    for j in range(H):
        for b in range(n):
            hs[0, j, b] = h0[j]
    value = 0.0
    # forward: h_t = act(W_xh x_t + W_hh h_{t-1} + b_h); z_t = W_hy h_t + b_y
    for t in range(T):
        for j in range(H):
            for b in range(n):
                a[j, b] = b_h[j]
        _multiply_add(W_xh, xs[t], a, n)
        _multiply_add(W_hh, hs[t], a, n)
        _activate_lanes(act, a, hs[t + 1], n)
        value += _head_lanes(W_hy, b_y, hs[t + 1], zs, loss, ys[t], ws[t], scale, dzs[t], tmp, n)
    # backward, the loss entering at every step: dh carries W_hh^T da from step s + 1
    for j in range(H):
        for b in range(n):
            dh[j, b] = 0.0
    for s in range(T - 1, -1, -1):
        _head_lanes_back(W_hy, dzs[s], hs[s + 1], dh, gW_hy, gb_y, n)  # dh_s += W_hy^T dz_s
        _derivative_lanes(act, hs[s + 1], dh, n)  # dh is now da_s, the pre-activation's
        _outer_add(dh, xs[s], gW_xh, n)  # dW_xh += da_s x_s^T
        _outer_add(dh, hs[s], gW_hh, n)  # dW_hh += da_s h_{s-1}^T
        for j in range(H):
            for b in range(n):
                gb_h[j, b] += dh[j, b]
                a[j, b] = dh[j, b]
                dh[j, b] = 0.0
        _multiply_add_transposed(W_hh, a, dh, n)  # dh_{s-1} = W_hh^T da_s
    for j in range(H):  # what is left at step 0 reaches h0
        for b in range(n):
            gh0[j, b] += dh[j, b]
    return value


@inline
def _carve(buffer, at, shape):
    """The next ``prod(shape)`` numbers of ``buffer`` from ``at``, as an array of ``shape``."""
    size = 1
    for d in shape:
        size *= d
    return buffer[at : at + size].reshape(shape), at + size


@kernel
def _block_buffers(T, I, H, O, lanes, dt):
    """Work arrays of one block (see :func:`_block_pass`) and zeroed lane accumulators.

    Two allocations in all (a small pass pays ~0.1 us per allocation), carved into views.
    """
    L = lanes
    work = np.empty(T * (I + 2 * O + 1) * L + (T + 1) * H * L + O * L + 2 * H * L + 3 * L, dt)
    xs, at = _carve(work, 0, (T, I, L))
    ys, at = _carve(work, at, (T, O, L))
    ws, at = _carve(work, at, (T, L))
    hs, at = _carve(work, at, (T + 1, H, L))
    zs, at = _carve(work, at, (O, L))
    dzs, at = _carve(work, at, (T, O, L))
    a, at = _carve(work, at, (H, L))
    dh, at = _carve(work, at, (H, L))
    tmp, at = _carve(work, at, (3, L))
    sums = np.zeros((H * I + H * H + 2 * H + O * H + O) * L, dt)
    gW_xh, at = _carve(sums, 0, (H, I, L))
    gW_hh, at = _carve(sums, at, (H, H, L))
    gb_h, at = _carve(sums, at, (H, L))
    gh0, at = _carve(sums, at, (H, L))
    gW_hy, at = _carve(sums, at, (O, H, L))
    gb_y, at = _carve(sums, at, (O, L))
    return (xs, ys, ws, hs, zs, dzs, a, dh, tmp), (gW_xh, gW_hh, gb_h, gh0, gW_hy, gb_y)


@kernel
def _unpack(theta, lay, head, I, H, O):
    """Named views of one contiguous copy of the parameters (see :func:`_block_pass`)."""
    own = theta.copy()
    o_xh, o_hh, o_b, o_h0 = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, H0]
    return (
        own[o_xh : o_xh + H * I].reshape((H, I)),
        own[o_hh : o_hh + H * H].reshape((H, H)),
        own[o_b : o_b + H],
        own[o_h0 : o_h0 + H],
        own[head[0] : head[0] + O * H].reshape((O, H)),
        own[head[1] : head[1] + O],
    )


@kernel
def head_lanes_sum(gW_hy, gb_y, grad, head):
    """Add the output layer's lane accumulators gW_hy (O, H, L), gb_y (O, L) into ``grad``."""
    O, H, L = gW_hy.shape
    for o in range(O):
        for b in range(L):
            grad[head[1] + o] += gb_y[o, b]
        for k in range(H):
            for b in range(L):
                grad[head[0] + o * H + k] += gW_hy[o, k, b]


@kernel
def _sum_lanes(acc, grad, lay, head):
    """Add the lane accumulators ``acc`` into the flat gradient vector."""
    gW_xh, gW_hh, gb_h, gh0, gW_hy, gb_y = acc
    H, I = gW_xh.shape[0], gW_xh.shape[1]
    o_xh, o_hh, o_b, o_h0 = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, H0]
    L = gb_h.shape[1]
    for j in range(H):
        for b in range(L):
            grad[o_b + j] += gb_h[j, b]
            grad[o_h0 + j] += gh0[j, b]
        for k in range(I):
            for b in range(L):
                grad[o_xh + j * I + k] += gW_xh[j, k, b]
        for k in range(H):
            for b in range(L):
                grad[o_hh + j * H + k] += gW_hh[j, k, b]
    head_lanes_sum(gW_hy, gb_y, grad, head)


@kernel
def elman_loss_and_grad(x, y, mask, theta, lay, head, act, H, loss, mean):
    """Forward, loss and full BPTT of a one-layer Elman network.

    x (T, B, I), y (T, B, O), mask (T, B); theta / the returned gradient are flat
    vectors laid out by ``lay (1, 6)`` and ``head (2,)``. Returns (loss value, gradient).
    """
    T, B, I = x.shape
    O = y.shape[2]
    scale = _loss_scale(mask, O, loss, mean)
    params = _unpack(theta, lay, head, I, H, O)
    work, acc = _block_buffers(T, I, H, O, min(B, LANES), theta.dtype)
    value = 0.0
    for start in range(0, B, LANES):
        n = min(LANES, B - start)
        value += _block_pass(x, y, mask, start, n, params, act, loss, scale, acc, work)
    grad = np.zeros_like(theta)
    _sum_lanes(acc, grad, lay, head)
    return value * scale, grad


@kernel(parallel=True)
def elman_loss_and_grad_parallel(x, y, mask, theta, lay, head, act, H, loss, mean):
    """:func:`elman_loss_and_grad` with the blocks split over threads."""
    T, B, I = x.shape
    O = y.shape[2]
    scale = _loss_scale(mask, O, loss, mean)
    params = _unpack(theta, lay, head, I, H, O)
    blocks = (B + LANES - 1) // LANES
    grads = np.zeros((blocks, theta.shape[0]), theta.dtype)
    values = np.zeros(blocks, theta.dtype)
    for block in prange(blocks):
        work, acc = _block_buffers(T, I, H, O, min(B, LANES), theta.dtype)
        start = block * LANES
        n = min(LANES, B - start)
        values[block] = _block_pass(x, y, mask, start, n, params, act, loss, scale, acc, work)
        _sum_lanes(acc, grads[block], lay, head)
    return _sum_blocks(values, grads, scale)


# -- small batches: units innermost ----------------------------------------------------
#
# With one or two sequences the lanes above would run loops of length 1 (and pay each
# loop's vectorization checks); this variant runs every loop as a plain index
# loop over (b, t, j, k) on whole arrays, with no views, no slices and no calls that
# return arrays inside the loops (each of those costs a reference-count round trip,
# which at H = 2 is more than the arithmetic of a step). Scratch is allocated once per
# call. The weight gradients are accumulated step by step instead of through recorded
# pre-activation gradients and one large product, so nothing of size (T, B, H) is kept
# beyond the hidden states of the current element.


@kernel
def elman_loss_and_grad_units(x, y, mask, theta, lay, head, act, H, loss, mean):
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
    # Scratch is one allocation (a small pass pays ~0.1 us per allocation), carved into
    # named views here, outside the loops.
    # Parameters: the forward products run over j (the unit) innermost, so they use
    # transposed copies: H independent accumulators, each still summing over k in
    # order (the same rounding as one dot product per unit). Gradients are summed over
    # the whole batch in the same layout.
    scratch = np.zeros(3 * H * H + 2 * I * H + 2 * O * H + O + 6 * H + 2 * (T + 1) * H
                       + 2 * T * B * O + T * B, dt)  # fmt: skip
    mat, at = _carve(scratch, 0, (3, H, H))
    W_hh_T, W_hh, gW_hh = mat[0], mat[1], mat[2]  # (H, H) each; W_hh_T = W_hh^T
    inp, at = _carve(scratch, at, (2, I, H))
    W_xh_T, gW_xh_T = inp[0], inp[1]  # (I, H) each: W_xh^T and its gradient
    out, at = _carve(scratch, at, (2, O, H))
    W_hy, gW_hy = out[0], out[1]  # (O, H) each
    gb_y, at = _carve(scratch, at, (O,))
    vec, at = _carve(scratch, at, (6, H))
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
    seq, at = _carve(scratch, at, (2, T + 1, H))
    hseq = seq[0]  # (T + 1, H) row 0: h0, row t + 1: h_t of the current element
    dtop = seq[1]  # (T(+1), H) loss gradient reaching h_t (W_hy^T dz_t)
    for k in range(H):
        hseq[0, k] = theta[o_h0 + k]
    zs, at = _carve(scratch, at, (2, T, B, O))
    logits, dlogits = zs[0], zs[1]  # (T, B, O) each
    losses, at = _carve(scratch, at, (T, B))
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


@kernel
def units_train_step(x, y, mask, theta, lay, head, act, H, loss, mean, rule, step, state_a,
                     state_b, lr, beta1, beta2, eps, weight_decay, momentum, nesterov,
                     max_norm):  # fmt: skip
    """:func:`elman_loss_and_grad_units`, then clipping and the optimizer step, in one call.

    For the smallest models a pass takes a couple of microseconds, as much as calling
    into compiled code twice more from Python, so the update happens here. ``rule``,
    ``step``, the states and the hyperparameters as in
    :func:`rnnlab.kernels._numba_optim.step`. Returns (loss, norm of the gradient
    before clipping); when either is not finite ``theta`` is unchanged.
    """
    value, grad = elman_loss_and_grad_units(x, y, mask, theta, lay, head, act, H, loss, mean)
    if not math.isfinite(value):
        return value, math.sqrt(np.sum(grad * grad))
    norm = optimizer_step(rule, theta, grad, state_a, state_b, step, lr, beta1, beta2, eps,
                          weight_decay, momentum, nesterov, max_norm)  # fmt: skip
    return value, norm


# -- larger hidden sizes: the whole batch per step, products through BLAS -----------------


@kernel
def head_loss(h_all, y, mask, W_hy, b_y, loss, scale):
    """Logits, loss and the gradient back to the top hidden states, for all rows at once.

    h_all (N, H) with N = T B rows; y (T, B, O); mask (T, B). Returns the weighted loss
    sum, ``dz (O, N)`` (the logits' gradient, rows last so the loss loops vectorize) and
    ``d_top = dz^T W_hy`` (N, H).
    """
    N = h_all.shape[0]
    O = W_hy.shape[0]
    z = np.dot(W_hy, h_all.T)  # (O, N)
    for o in range(O):
        for n in range(N):
            z[o, n] += b_y[o]
    y_t = y.reshape((N, O)).T.copy()  # (O, N)
    dz = np.empty((O, N), h_all.dtype)
    tmp = np.empty((3, N), h_all.dtype)
    value = _loss_lanes(loss, z, y_t, mask.reshape(N), scale, dz, tmp, N)
    return value, dz, np.dot(dz.T, W_hy)


@kernel
def head_grads(dz, h_all, grad, head):
    """grad's W_hy (O, H) += dz (O, N) h_all (N, H) and b_y (O,) += row sums of dz."""
    O, H = dz.shape[0], h_all.shape[1]
    grad[head[0] : head[0] + O * H] += np.dot(dz, h_all).reshape(O * H)
    for o in range(O):
        for n in range(dz.shape[1]):
            grad[head[1] + o] += dz[o, n]


@kernel
def column_sums(A, out):
    """out (P,) += A (N, P) summed over its rows."""
    for n in range(A.shape[0]):
        for p in range(A.shape[1]):
            out[p] += A[n, p]


@kernel
def elman_loss_and_grad_blas(x, y, mask, theta, lay, head, act, H, loss, mean):
    """:func:`elman_loss_and_grad` for larger ``H``: the batch advances one step at a time.

    Per step one product ``h_{t-1} W_hh^T`` forward and one ``da_t W_hh`` back, and one
    flat loop over the ``B H`` activations each way; everything without a time
    dependence (input projections, logits, loss, every weight gradient) is one large
    product over all ``T B`` rows.
    """
    T, B, I = x.shape
    O = y.shape[2]
    N = T * B
    dt = theta.dtype
    scale = _loss_scale(mask, O, loss, mean)
    W_xh, W_hh, b_h, h0, W_hy, b_y = _unpack(theta, lay, head, I, H, O)
    W_hh_T = W_hh.T.copy()  # (H, H)
    hs = np.empty((T + 1, B, H), dt)  # hs[0] = h0 for every sequence, hs[t + 1] = h_t
    for b in range(B):
        hs[0, b] = h0
    pre = np.dot(x.reshape((N, I)), W_xh.T).reshape((T, B, H))  # W_xh x_t, all steps
    recurrent = np.empty((B, H), dt)
    for t in range(T):
        np.dot(hs[t], W_hh_T, recurrent)  # (B, H) W_hh h_{t-1}
        a = pre[t]
        for b in range(B):
            for j in range(H):
                a[b, j] += recurrent[b, j] + b_h[j]
        _activate_lanes(act, a.reshape((1, B * H)), hs[t + 1].reshape((1, B * H)), B * H)
    h_all = hs[1:].reshape((N, H))
    value, dz, d_top = head_loss(h_all, y, mask, W_hy, b_y, loss, scale)
    d_top = d_top.reshape((T, B, H))
    # back through time: da_s = (dh_s + W_hy^T dz_s) act'(h_s); dh_{s-1} = W_hh^T da_s
    da = np.empty((T, B, H), dt)
    dh = np.zeros((B, H), dt)
    for s in range(T - 1, -1, -1):
        d = da[s]
        for b in range(B):
            for j in range(H):
                d[b, j] = dh[b, j] + d_top[s, b, j]
        _derivative_lanes(act, hs[s + 1].reshape((1, B * H)), d.reshape((1, B * H)), B * H)
        np.dot(d, W_hh, dh)
    da_all = da.reshape((N, H))
    grad = np.zeros_like(theta)
    o_xh, o_hh, o_b, o_h0 = lay[0, W_XH], lay[0, W_HH], lay[0, B_X], lay[0, H0]
    grad[o_xh : o_xh + H * I] = np.dot(da_all.T, x.reshape((N, I))).reshape(H * I)
    grad[o_hh : o_hh + H * H] = np.dot(da_all.T, hs[:T].reshape((N, H))).reshape(H * H)
    column_sums(da_all, grad[o_b : o_b + H])
    column_sums(dh, grad[o_h0 : o_h0 + H])
    head_grads(dz, h_all, grad, head)
    return value * scale, grad
