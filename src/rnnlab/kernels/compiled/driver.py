"""The one compiled driver: time, layers, blocks of sequences, truncation, masks, threads.

Every cell and every size runs through here; the cell's math is :mod:`.cells`,
the output layer and losses :mod:`.functions`, the products :mod:`.products`.
The batch is cut into blocks of sequences; inside a block every array keeps the
sequence index last (``h (L, T + 1, H, n)``), so the loops over sequences
vectorize. Blocks are ``lanes`` sequences wide with products as loops (small
``H``), or the whole batch with products through BLAS (``use_blas``, larger
``H``); on threads, the blocks run on all of them (one call of a share of the
blocks per thread, from Python: the entry points release the GIL), each with its own
gradient accumulator, summed in block order, so a result depends on the block
width only. One to three sequences of a one-layer network run one at a time,
with the units in the lanes (the same cell blocks; see below).

A training pass of a block: the forward pass of every layer keeping the cells'
tapes; the loss of every step (its gradient ``dz (T, O, n)``); then backward
*sweeps*, layer by layer from the top, each from step ``end`` down to
``first``: full BPTT is one sweep per layer over all steps with the loss
entering at every step; ``truncate=k`` is one sweep per scored step ``t`` over
``t .. t-k+1`` with the loss entering at ``t`` only (as
:mod:`rnnlab.kernels.reference`). Weight gradients are summed per step into an
accumulator laid out as the flat parameter vector (see :mod:`.products`).

Parameters travel as one flat vector ``theta``; the network as one int64
``plan`` (the integers of :data:`PLAN`, then the offsets table (L, 6) of
:mod:`rnnlab.kernels.layout` row by row, then ``head (2,)``); how to run a call
as ``settings`` (:data:`SETTINGS`); scratch as ``work``. Entry points take only
arrays and numbers: a call from Python pays for each argument's type check, and
tuples cost the most.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from rnnlab.kernels.compiled.arrays import all_finite, batch_first, time_major
from rnnlab.kernels.compiled.cells import (
    ELMAN,
    EXPRNN,
    GRU,
    LSTM,
    backward_block,
    forward_block,
)
from rnnlab.kernels.compiled.functions import (
    BCE,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
    blas_head_forward,
    head_forward,
    loss_block,
    loss_scale,
)
from rnnlab.kernels.compiled.math import inline, inline_always, kernel, unliteral, zero
from rnnlab.kernels.compiled.products import (
    GATHER,
    NARROW,
    THIN,
    add_columns,
    blas_outer_accumulate,
    blas_product_add,
    gather_step,
    outer_accumulate,
    product_add,
    product_set,
    product_t_add,
    rows_accumulate,
    scatter_columns,
)
from rnnlab.kernels.compiled.views import borrow, carve, view
from rnnlab.kernels.layout import B_H, B_X, C0, H0, W_HH, W_XH
from rnnlab.optim import compiled as optimizer

#: the network's integers at the start of ``plan`` (then offsets (L, 6) and head (2,))
PLAN = ("cell", "act", "layers", "inputs", "hidden", "outputs", "gates", "tape", "split",
        "cell_state", "bias_inside")  # fmt: skip
#: how to run a call: loss code, mean (0/1), truncate (0: full BPTT), lanes, BLAS, blocks on
#: threads (0/1), the thread count when the call was planned (its workspace's shares), for
#: a padded forward call the sigmoid on the way out (0/1), and which blocks this call runs:
#: ``share, share + shares, ...`` (blocks on threads: one call per thread, from Python)
SETTINGS = ("loss", "mean", "truncate", "lanes", "use_blas", "parallel", "threads", "squash",
            "share", "shares")  # fmt: skip


class Net(NamedTuple):
    """A network as the compiled code sees it (built from ``plan``, see :data:`PLAN`)."""

    cell: int
    act: int
    layers: int
    inputs: int
    hidden: int
    outputs: int
    gates: int
    tape: int
    split: bool  # the recurrent side has its own bias and gradient (GRU)
    cell_state: bool  # the carry is (h, c) (LSTM)
    bias_inside: bool  # the cell applies its input bias itself (expRNN): given in ah
    offsets: np.ndarray  # (L, 6)
    head: np.ndarray  # (2,)


class Block(NamedTuple):
    """Work arrays of one block of ``m`` sequences (lanes last; arrays that hold one
    step keep a leading axis of 1, so every operand is addressed as ``a[t]``)."""

    xs: np.ndarray  # (T, I, m) inputs
    ys: np.ndarray  # (T, O, m) targets
    ws: np.ndarray  # (T, m) loss weights
    hs: np.ndarray  # (L, T + 1, H, m) hidden states; [:, 0] the initial ones
    cs: np.ndarray  # (L, T + 1, H or 0, m) cell states
    tape: np.ndarray  # (L, T or 1, tape H, m) what each cell step keeps
    ax: np.ndarray  # (1, G H, m) input-side pre-activations
    ah: np.ndarray  # (1, G H, m) recurrent-side pre-activations (split cells)
    zs: np.ndarray  # (1, O, m) logits of one step
    dzs: np.ndarray  # (T, O, m) their gradients
    flow: np.ndarray  # (2, T, H, m) gradients arriving at a layer's outputs, and below
    dh: np.ndarray  # (1, H, m) gradient carried at h
    dc: np.ndarray  # (1, H, m) ... at c
    dax: np.ndarray  # (1, G H, m)
    dah: np.ndarray  # (1, G H, m)
    ltmp: np.ndarray  # (3, m) loss scratch
    gather: np.ndarray  # (gathered numbers,) BLAS sweeps: see :func:`gather_steps`
    ids: np.ndarray  # (T, m) with one-hot inputs, each step's index (-1: none); xs unset
    onehot: np.ndarray  # (1,): 1 when every input row of the block is one-hot (or zero)


@inline
def make_net(plan):
    """The :class:`Net` of ``plan``; refuses codes of cells or activations it does not know
    (the steps do not check: see :func:`.math.hold`)."""
    if plan[0] != ELMAN and plan[0] != GRU and plan[0] != LSTM and plan[0] != EXPRNN:
        raise ValueError("unknown cell code")
    if plan[1] != SIGMOID and plan[1] != TANH and plan[1] != RELU:
        raise ValueError("unknown activation code")
    L, n = plan[2], len(PLAN)
    offsets = view(plan, n, (L, 6))
    head = plan[n + 6 * L : n + 6 * L + 2]
    return Net(plan[0], plan[1], L, plan[3], plan[4], plan[5], plan[6], plan[7], plan[8] != 0,
               plan[9] != 0, plan[10] != 0, offsets, head)  # fmt: skip


@inline
def gather_steps(T, m, training, use_blas):
    """Steps whose gradient products a BLAS sweep gathers into one product: enough for
    :data:`.products.GATHER` columns when a step has fewer than :data:`.products.THIN`
    (a product of so few columns runs BLAS far below its speed), else 0: a product per
    step."""
    if not (training and use_blas) or m >= THIN:
        return 0
    return min(T, GATHER // m)


@inline
def _gathered(net, T, m, training, use_blas):
    """Numbers of a block's ``gather`` (``dax``, ``dah`` and both inputs of each step)."""
    GH, H = net.gates * net.hidden, net.hidden
    return (2 * GH + max(net.inputs, H) + H) * gather_steps(T, m, training, use_blas) * m


@inline
def block_size(net, T, m, training, use_blas):
    """How many numbers :func:`make_block` carves for ``T`` steps and ``m`` lanes."""
    L, I, H, O = net.layers, net.inputs, net.hidden, net.outputs
    GH = net.gates * H
    C = H if net.cell_state else 0
    S = net.tape * H
    Tt, Td = (T, T) if training else (1, 0)
    gathered = _gathered(net, T, m, training, use_blas)
    return (T * (I + O + 1) * m + L * (T + 1) * (H + C) * m + L * Tt * S * m
            + (4 * GH + O + Td * O + 2 * Td * H + 2 * H + 3) * m + gathered + T * m + 1
            )  # fmt: skip


@inline
def make_block(net, T, m, training, use_blas, buffer):
    """A :class:`Block` for ``T`` steps and ``m`` lanes, carved from ``buffer``
    (:func:`block_size` numbers)."""
    L, I, H, O = net.layers, net.inputs, net.hidden, net.outputs
    GH = net.gates * H
    C = H if net.cell_state else 0
    S = net.tape * H
    Tt, Td = (T, T) if training else (1, 0)
    gathered = _gathered(net, T, m, training, use_blas)
    xs, at = carve(buffer, 0, (T, I, m))
    ys, at = carve(buffer, at, (T, O, m))
    ws, at = carve(buffer, at, (T, m))
    hs, at = carve(buffer, at, (L, T + 1, H, m))
    cs, at = carve(buffer, at, (L, T + 1, C, m))
    tape, at = carve(buffer, at, (L, Tt, S, m))
    ax, at = carve(buffer, at, (1, GH, m))
    ah, at = carve(buffer, at, (1, GH, m))
    zs, at = carve(buffer, at, (1, O, m))
    dzs, at = carve(buffer, at, (Td, O, m))
    flow, at = carve(buffer, at, (2, Td, H, m))
    dh, at = carve(buffer, at, (1, H, m))
    dc, at = carve(buffer, at, (1, H, m))
    dax, at = carve(buffer, at, (1, GH, m))
    dah, at = carve(buffer, at, (1, GH, m))
    ltmp, at = carve(buffer, at, (3, m))
    gather, at = carve(buffer, at, (gathered,))
    ids, at = carve(buffer, at, (T, m))
    onehot, at = carve(buffer, at, (1,))
    return Block(xs, ys, ws, hs, cs, tape, ax, ah, zs, dzs, flow, dh, dc, dax, dah, ltmp,
                 gather, ids, onehot)  # fmt: skip


@inline
def _accumulator(buffer, at, P, m):
    """A zeroed (P, m) gradient accumulator carved from ``buffer`` at ``at``."""
    acc = view(buffer, at, (P, m))
    for p in range(P):
        for b in range(m):
            acc[p, b] = 0.0
    return acc


@inline
def training_share(per_block, columns, P):
    """Numbers of ``work`` per block of a training pass: the block's scratch, its
    accumulator (``columns`` per parameter) and its gradient row."""
    return per_block + P * columns + P


@inline
def _layout(net, P, T, B, lanes, use_blas, parallel, training):
    """(block width, blocks, numbers per block, accumulator columns, total workspace)."""
    width = B if use_blas and not parallel else min(B, lanes)  # (BLAS on threads: lanes wide)
    blocks = (B + width - 1) // width
    per_block = block_size(net, T, width, training, use_blas)
    columns = 1 if use_blas else width
    if not training:  # a block per thread (``parallel``: how many), reused
        inference = min(blocks, parallel) * per_block if parallel else per_block
        return width, blocks, per_block, columns, max(inference, _sequence_size(net, P, T))
    # a block, an accumulator and a gradient row each, and the loss values
    blocked = blocks * training_share(per_block, columns, P) + blocks
    return width, blocks, per_block, columns, max(blocked, _sequence_size(net, P, T))


# -- parameter views ------------------------------------------------------------------------


@inline
def layer_weights(theta, net, layer):
    """W_xh (G H, I_l), W_hh (G H, H), b_x (G H,), b_h (G H,; empty unless split)."""
    H = net.hidden
    GH, I_l = net.gates * H, (net.inputs if layer == 0 else H)
    o = net.offsets[layer]
    W_xh = view(theta, o[W_XH], (GH, I_l))
    W_hh = view(theta, o[W_HH], (GH, H))
    b_x = theta[o[B_X] : o[B_X] + GH]
    b_h = theta[o[B_H] : o[B_H] + GH] if net.split else theta[0:0]
    return W_xh, W_hh, b_x, b_h


@inline
def head_weights(theta, net):
    """W_hy (O, H), b_y (O,)."""
    O, H = net.outputs, net.hidden
    W_hy = view(theta, net.head[0], (O, H))
    return W_hy, theta[net.head[1] : net.head[1] + O]


@inline
def layer_input(blk, layer):
    """What ``layer`` reads at step ``t``: ``below[t + shift]`` (x, or the layer below)."""
    if layer == 0:
        return blk.xs, 0
    return blk.hs[layer - 1], 1


# -- one block ------------------------------------------------------------------------------------


@inline
def copy_in(x, y, mask, start, n, blk, with_targets):
    """Sequences ``start .. start + n`` of the batch (x (T, B, I), ...) into the block."""
    T, I = x.shape[0], x.shape[2]
    # (one-hot inputs are read as their indices only: the first layer takes columns)
    blk.onehot[0] = 1.0 if I >= NARROW and _token_ids(x, start, n, blk.ids) else 0.0
    if blk.onehot[0] == 0.0:
        for t in range(T):
            for b in range(n):
                for k in range(I):
                    blk.xs[t, k, b] = x[t, start + b, k]
    if with_targets:
        O = y.shape[2]
        for t in range(T):
            for b in range(n):
                blk.ws[t, b] = mask[t, start + b]
                for o in range(O):
                    blk.ys[t, o, b] = y[t, start + b, o]


@inline
def _token_ids(x, start, n, ids):
    """Whether every row ``x[t, start + b]`` (``b < n``) is one-hot or zero; if so ``ids
    (T, m)`` holds the index of each one (-1 for a zero row). Tokens fed one-hot (text,
    ``--tokens``) then cost the first layer a column of ``W_xh`` per step and sequence,
    not a product over the vocabulary: the same sums, without the zero terms."""
    T, I = x.shape[0], x.shape[2]
    for t in range(T):
        for b in range(n):
            at = -1
            for k in range(I):
                v = x[t, start + b, k]
                if v != 0.0:
                    if v != 1.0 or at >= 0:
                        return False
                    at = k
            ids[t, b] = at
    return True


@inline
def initial_state(theta, net, blk, n, initial, start):
    """hs[l, 0] (and cs[l, 0]) of every layer in lanes ``:n``: the network's h0 (c0) or,
    when ``initial (2, L, B, H)`` is not empty, the given states of sequences ``start``
    on (``initial[0]`` h, ``initial[1]`` c)."""
    H, given = net.hidden, initial.shape[0] > 0
    for layer in range(net.layers):
        o = net.offsets[layer]
        if given:
            for j in range(H):
                for b in range(n):
                    blk.hs[layer, 0, j, b] = initial[0, layer, start + b, j]
        else:
            for j in range(H):
                for b in range(n):
                    blk.hs[layer, 0, j, b] = theta[o[H0] + j]
        if net.cell_state and given:
            for j in range(H):
                for b in range(n):
                    blk.cs[layer, 0, j, b] = initial[1, layer, start + b, j]
        elif net.cell_state:
            for j in range(H):
                for b in range(n):
                    blk.cs[layer, 0, j, b] = theta[o[C0] + j]


@inline
def no_initial(theta):
    """An empty ``initial`` (the network's own initial states)."""
    return view(theta, 0, (0, 0, 0, 0))


@kernel
def layer_forward(theta, net, blk, layer, T, n, training, use_blas):
    """``layer`` over steps ``0 .. T-1`` from the state in ``hs[layer, 0]`` (``cs``)."""
    GH = net.gates * net.hidden
    W_xh, W_hh, b_x, b_h = layer_weights(theta, net, layer)
    below, shift = layer_input(blk, layer)
    # (every array the time loop touches is named before it: a tuple field read inside
    # would take and drop a reference at every step)
    hs, cs, tape, ax, ah = blk.hs[layer], blk.cs[layer], blk.tape[layer], blk.ax, blk.ah
    cell, act, split, inside = net.cell, net.act, net.split, net.bias_inside
    side = ah if split else ax  # where W_hh h_{t-1} goes
    narrow = below.shape[1] < NARROW
    tokens, ids = layer == 0 and blk.onehot[0] != 0.0, blk.ids  # one-hot inputs: columns
    # (BLAS: a narrow product costs more in the call than the work; loops set ax at once)
    loops = not tokens and not (use_blas and not narrow)
    for t in range(T):
        if inside:  # the cell adds its bias itself: it gets it in ah
            for g in range(GH):
                for b in range(n):
                    ah[0, g, b] = b_x[g]
        if loops:
            product_set(W_xh, below, t + shift, b_x, not inside, ax, n)
        else:
            for g in range(GH):
                for b in range(n):
                    ax[0, g, b] = zero(b_x[g]) if inside else b_x[g]
            if tokens:
                add_columns(W_xh, ids, t, ax, n)
            else:
                blas_product_add(W_xh, below[t + shift], ax, unliteral(0))
        if split:
            for g in range(GH):
                for b in range(n):
                    ah[0, g, b] = b_h[g]
        if use_blas:
            blas_product_add(W_hh, hs[t], side, unliteral(0))
        else:
            product_add(W_hh, hs, t, side, 0, n)
        forward_block(cell, act, ax, ah, hs, cs, tape, t, t if training else 0, n)


@kernel
def layer_sweep(theta, net, blk, acc, layer, end, first, only_end, n, use_blas, own_start):
    """``layer`` back from step ``end`` to ``first``, adding its gradients to ``acc``
    (``own_start``: the sequences started from the network's ``h0``, ``c0``, which then
    take what reaches step 0; given states take nothing).

    The gradient arriving at its outputs is ``flow[(L - 1 - layer) % 2]`` (T, H, m) (at
    ``end`` only, with ``only_end``); what reaches its input (the layer below) goes to
    the other half of ``flow`` at the same steps.
    """
    L, H, GH = net.layers, net.hidden, net.gates * net.hidden
    W_xh, W_hh, _, _ = layer_weights(theta, net, layer)
    below, shift = layer_input(blk, layer)
    K = below.shape[1]
    o = net.offsets[layer]
    hs, cs, tape, dh, dc = blk.hs[layer], blk.cs[layer], blk.tape[layer], blk.dh, blk.dc
    arriving, leaving = blk.flow[(L - 1 - layer) % 2], blk.flow[(L - layer) % 2]
    dax = blk.dax
    dah = blk.dah if net.split else blk.dax  # at W_hh h_{s-1}
    dcell = blk.dah if net.split or net.bias_inside else blk.dax  # the cell's second output
    dbias = blk.dah if net.bias_inside else blk.dax  # at the input bias
    gather, cell, act, split = blk.gather, net.cell, net.act, net.split
    o_xh, o_hh, o_bx, o_bh = o[W_XH], o[W_HH], o[B_X], o[B_H]
    chunk = gather_steps(blk.xs.shape[0], dax.shape[2], unliteral(True), use_blas)  # 0: each step
    tokens, ids = layer == 0 and blk.onehot[0] != 0.0, blk.ids  # one-hot inputs: columns
    for j in range(H):
        for b in range(n):
            dh[0, j, b] = 0.0
            dc[0, j, b] = 0.0
    g, k = 0, 0  # steps gathered so far, of ``k`` in this product
    for s in range(end, first - 1, -1):
        if not only_end or s == end:
            for j in range(H):
                for b in range(n):
                    dh[0, j, b] += arriving[s, j, b]
        backward_block(cell, act, dh, dc, hs, cs, tape, s, dax, dcell, n)
        rows_accumulate(dbias, unliteral(0), acc, o_bx, n, use_blas)
        if split:
            rows_accumulate(dah, unliteral(0), acc, o_bh, n, use_blas)
        if layer > 0:
            for j in range(H):
                for b in range(n):
                    leaving[s, j, b] = 0.0
        if tokens:
            scatter_columns(dax, 0, ids, s, acc, o_xh, K, n, use_blas)
        if use_blas and chunk == 0:
            if not tokens:
                blas_outer_accumulate(dax[0], below[s + shift], acc, o_xh)
            blas_outer_accumulate(dah[0], hs[s], acc, o_hh)
        elif use_blas:
            # the weight gradients sum da_s v_s^T over steps: gathered, one product each
            if g == 0:
                k = min(chunk, s - first + 1)
            c = k * n
            gx = view(gather, 0, (GH, c))
            gh = view(gather, GH * c, (GH, c)) if split else gx
            vx = view(gather, 2 * GH * c, (K, c))
            vh = view(gather, (2 * GH + K) * c, (H, c))
            gather_step(dax[0], gx, g, n)
            if split:
                gather_step(dah[0], gh, g, n)
            if not tokens:
                gather_step(below[s + shift], vx, g, n)
            gather_step(hs[s], vh, g, n)
            g += 1
            if g == k:
                if not tokens:
                    blas_outer_accumulate(gx, vx, acc, o_xh)
                blas_outer_accumulate(gh, vh, acc, o_hh)
                g = 0
        else:
            if not tokens:
                outer_accumulate(dax, unliteral(0), below, s + shift, acc, o_xh, n,
                                 unliteral(False))  # fmt: skip
            outer_accumulate(dah, unliteral(0), hs, s, acc, o_hh, n, unliteral(False))
        if use_blas:
            blas_product_add(W_hh.T, dah[0], dh, unliteral(0))  # dh is now dh_{s-1}
            if layer > 0:
                blas_product_add(W_xh.T, dax[0], leaving, s)
        else:
            product_t_add(W_hh, dah, unliteral(0), dh, unliteral(0), n)
            if layer > 0:
                product_t_add(W_xh, dax, unliteral(0), leaving, s, n)
    if first == 0 and own_start:  # what is left reaches the initial states
        rows_accumulate(dh, unliteral(0), acc, o[H0], n, use_blas)
        if net.cell_state:
            rows_accumulate(dc, unliteral(0), acc, o[C0], n, use_blas)


@inline_always
def train_block(theta, net, x, y, mask, start, n, loss, scale, truncate, blk, acc, use_blas,
                initial, final):  # fmt: skip
    """Forward, loss and backward of sequences ``start .. start + n`` from ``initial``
    (see :func:`initial_state`); returns their weighted loss sum and adds their gradient
    to ``acc``. When ``final (2, L, B, H)`` is not empty, the states after the last step
    go there (h, then c)."""
    T, L, H = x.shape[0], net.layers, net.hidden
    own_start = initial.shape[0] == 0
    copy_in(x, y, mask, start, n, blk, unliteral(True))
    initial_state(theta, net, blk, n, initial, start)
    for layer in range(L):
        layer_forward(theta, net, blk, layer, T, n, unliteral(True), use_blas)
    if final.shape[0] > 0:
        for layer in range(L):
            for b in range(n):
                for j in range(H):
                    final[0, layer, start + b, j] = blk.hs[layer, T, j, b]
                    final[1, layer, start + b, j] = blk.cs[layer, T, j, b] if net.cell_state \
                        else 0.0  # fmt: skip
    W_hy, b_y = head_weights(theta, net)
    top, dtop = blk.hs[L - 1], blk.flow[0]  # the top layer reads flow[0]
    zs, ys, ws, dzs, ltmp = blk.zs, blk.ys, blk.ws, blk.dzs, blk.ltmp
    o_hy, o_by = net.head[0], net.head[1]
    blas_head = use_blas and net.outputs >= NARROW
    value = 0.0
    for t in range(T):
        if blas_head:
            blas_head_forward(W_hy, b_y, top[t + 1], zs, n)
        else:
            head_forward(W_hy, b_y, top, t + 1, zs, n)
        value += loss_block(loss, zs, ys, ws, t, scale, dzs, ltmp, n)
        for j in range(H):
            for b in range(n):
                dtop[t, j, b] = 0.0
        if blas_head:
            blas_product_add(W_hy.T, dzs[t], dtop, t)  # W_hy^T dz_t
            blas_outer_accumulate(dzs[t], top[t + 1], acc, o_hy)
        else:
            product_t_add(W_hy, dzs, t, dtop, t, n)
            outer_accumulate(dzs, t, top, t + 1, acc, o_hy, n, use_blas)
        rows_accumulate(dzs, t, acc, o_by, n, use_blas)
    # full BPTT: one sweep from the last step; truncated: one per scored step (one call
    # site: numba compiles a callee once per argument types, and constants are types)
    for sweep in range(1 if truncate == 0 else T):
        origin, first = T - 1, 0
        if truncate != 0:
            origin, first = sweep, max(sweep - truncate + 1, 0)
        scored = truncate == 0
        for b in range(n):
            scored = scored or blk.ws[origin, b] != 0.0
        if scored:
            for layer in range(L - 1, -1, -1):
                only_end = truncate != 0 and layer == L - 1  # the loss enters at origin only
                layer_sweep(theta, net, blk, acc, layer, origin, first, only_end, n, use_blas,
                            own_start)  # fmt: skip
    return value


@inline_always
def forward_block_of(theta, net, x, start, n, blk, logits, h_out, c_out, states, initial,
                     use_blas):  # fmt: skip
    """Forward pass of sequences ``start .. start + n`` into ``logits`` (T, B, O) and,
    with ``states``, ``h_out`` / ``c_out`` (L, T, B, H); from ``initial`` (see
    :func:`initial_state`)."""
    T, L, H = x.shape[0], net.layers, net.hidden
    copy_in(x, x, view(x, 0, (0, 0)), start, n, blk, unliteral(False))  # (no mask)
    initial_state(theta, net, blk, n, initial, start)
    for layer in range(L):
        layer_forward(theta, net, blk, layer, T, n, unliteral(False), use_blas)
    W_hy, b_y = head_weights(theta, net)
    top, zs = blk.hs[L - 1], blk.zs
    blas_head = use_blas and net.outputs >= NARROW
    for t in range(T):
        if blas_head:
            blas_head_forward(W_hy, b_y, top[t + 1], zs, n)
        else:
            head_forward(W_hy, b_y, top, t + 1, zs, n)
        for o in range(net.outputs):
            for b in range(n):
                logits[t, start + b, o] = zs[0, o, b]
    if states:
        for layer in range(L):
            for t in range(T):
                for b in range(n):
                    for j in range(H):
                        h_out[layer, t, start + b, j] = blk.hs[layer, t + 1, j, b]
                    if net.cell_state:
                        for j in range(H):
                            c_out[layer, t, start + b, j] = blk.cs[layer, t + 1, j, b]


# -- the batch: blocks, serial or over threads -----------------------------------------------------


@inline
def _sum_lanes(acc, grad):
    for p in range(acc.shape[0]):
        total = 0.0
        for b in range(acc.shape[1]):
            total += acc[p, b]
        grad[p] += total


@inline_always
def _train_one_block(theta, net, x, y, mask, loss, scale, truncate, width, use_blas, work,
                     per_block, columns, block, initial, final):  # fmt: skip
    """Block ``block`` of the batch in its own share of ``work``: its loss sum into the
    loss values after the shares, its gradient into the last ``P`` numbers of its share."""
    T, B, P = x.shape[0], x.shape[1], theta.shape[0]
    blocks = (B + width - 1) // width
    own = training_share(per_block, columns, P)
    mine = work[block * own : (block + 1) * own]
    blk = make_block(net, T, width, unliteral(True), use_blas, mine)
    row_at = own - P
    # one column (BLAS blocks sum over lanes as they go): the row is the accumulator
    acc = _accumulator(mine, row_at if columns == 1 else per_block, P, columns)
    start = block * width
    work[blocks * own + block] = train_block(theta, net, x, y, mask, start, min(width, B - start),
                                             loss, scale, truncate, blk, acc, use_blas,
                                             initial, final)  # fmt: skip
    if columns > 1:
        row = mine[row_at:own]
        row[:] = 0.0
        _sum_lanes(acc, row)


@inline
def _sum_blocks(work, blocks, per_block, columns, P):
    """(loss, gradient) summed over the blocks in block order: the same sum whatever ran
    where (the gradient adds into block 0's row)."""
    own = training_share(per_block, columns, P)
    value = 0.0
    grad = work[own - P : own]
    for block in range(blocks):
        value += work[blocks * own + block]
        if block > 0:
            grad += work[(block + 1) * own - P : (block + 1) * own]
    return value, grad


# -- one sequence at a time, its units in the lanes ----------------------------------------------
#
# With one to three sequences a block's loops over sequences run one to three times and
# cost more in loop control than in arithmetic. A one-layer network with full BPTT then
# runs one sequence at a time with the *units* in the lanes: the cell blocks above are
# elementwise, so they run unchanged on arrays shaped (rows 1, lanes H). The products
# are matrix-vector loops over contiguous rows of transposed weights or, from the
# cell's ``sizes.TABLE[...].sequence_blas_min_hidden`` on, BLAS calls (and the weight
# gradients one product per sequence). The time loops call only the cells' steps and helpers that
# call nothing: anything else would take and drop a reference to each of its arrays
# at every step (:func:`.math.hold`), so each way has a time loop of its own.


class Sequence(NamedTuple):
    """Work arrays of the one-sequence path (G gate blocks of H units)."""

    WxT: np.ndarray  # (I, G, H) W_xh^T
    WhT: np.ndarray  # (H, G, H) W_hh^T (loops) or (0, G, H) (BLAS)
    hs: np.ndarray  # (T + 1, 1, H) hidden states, row 0 the initial one
    cs: np.ndarray  # (T + 1, 1, H) cell states
    tape: np.ndarray  # (T or 1, tape H, H)
    ax: np.ndarray  # (1, G, H) input-side pre-activations
    ah: np.ndarray  # (1, G, H) recurrent side (split cells)
    dax: np.ndarray  # (1, G, H)
    dah: np.ndarray  # (1, G, H) (split cells; otherwise dax is used)
    dh: np.ndarray  # (1, 1, H)
    dc: np.ndarray  # (1, 1, H)
    rec: np.ndarray  # (G H,) BLAS scratch: W_hh h or W_hh^T dah
    DAX: np.ndarray  # (T, G H) BLAS: dax of every step (T = 0 for loops)
    DAH: np.ndarray  # (T, G H) ... dah
    xb: np.ndarray  # (T, I) BLAS: the sequence's inputs, contiguous
    gWh: np.ndarray  # (G H, H) BLAS: the sequence's gradient of W_hh
    gWx: np.ndarray  # (G H, I) ... of W_xh


@inline
def _sequence_size(net, P, T):
    H, I, O, GH = net.hidden, net.inputs, net.outputs, net.gates * net.hidden
    return (2 * (I + H) * GH + 2 * (T + 1) * H + T * net.tape * H + 6 * GH + 4 * H + T * H
            + T * (2 * O + 1) + O * H + 2 * O + 3 + P
            + GH + 2 * T * GH + T * I + GH * (H + I))  # fmt: skip


@inline_always
def _make_sequence(theta, net, T, training, blas, work):
    """The :class:`Sequence` carved from the start of ``work`` (weights transposed in), and
    where it ends."""
    I, H, G = net.inputs, net.hidden, net.gates
    GH, Tb = G * H, T if blas else 0
    W_xh, W_hh, _, _ = layer_weights(theta, net, unliteral(0))
    WxT, at = carve(work, 0, (I, G, H))
    WhT, at = carve(work, at, (0 if blas else H, G, H))
    for g in range(G):
        for j in range(H):
            for k in range(I):
                WxT[k, g, j] = W_xh[g * H + j, k]
    if not blas:
        for g in range(G):
            for j in range(H):
                for k in range(H):
                    WhT[k, g, j] = W_hh[g * H + j, k]
    hs, at = carve(work, at, (T + 1, 1, H))
    cs, at = carve(work, at, (T + 1, 1, H))
    tape, at = carve(work, at, (T if training else 1, net.tape, H))
    ax, at = carve(work, at, (1, G, H))
    ah, at = carve(work, at, (1, G, H))
    dax, at = carve(work, at, (1, G, H))
    dah, at = carve(work, at, (1, G, H))
    dh, at = carve(work, at, (1, 1, H))
    dc, at = carve(work, at, (1, 1, H))
    rec, at = carve(work, at, (GH,))
    DAX, at = carve(work, at, (Tb, GH))
    DAH, at = carve(work, at, (Tb, GH))
    xb, at = carve(work, at, (Tb, I))
    gWh, at = carve(work, at, (GH if blas else 0, H))
    gWx, at = carve(work, at, (GH if blas else 0, I))
    seq = Sequence(WxT, WhT, hs, cs, tape, ax, ah, dax, dah if net.split else dax, dh, dc, rec,
                   DAX, DAH, xb, gWh, gWx)  # fmt: skip
    return seq, at


@inline
def _matvec_add(WT, v, tv, out):
    """out (1, G, H) += W v[tv] (v (T, 1, K)), with WT (K, G, H) = W^T. (Indices here
    and below are loop counters: an index computed as ``offset + j`` needs a sign
    check per access, which stops the loop from vectorizing.)"""
    G, H = out.shape[1], out.shape[2]
    for k in range(WT.shape[0]):
        vk = v[tv, 0, k]
        for g in range(G):
            for j in range(H):
                out[0, g, j] += WT[k, g, j] * vk


@inline
def _input_side(x, b, t, b_x, WxT, ax):
    """ax (1, G, H) = W_xh x[t, b] + b_x."""
    G, H = ax.shape[1], ax.shape[2]
    for g in range(G):
        for j in range(H):
            ax[0, g, j] = b_x[g * H + j]
    for k in range(WxT.shape[0]):
        xk = x[t, b, k]
        for g in range(G):
            for j in range(H):
                ax[0, g, j] += WxT[k, g, j] * xk


@inline
def _fill_bias(b_h, ah):
    G, H = ah.shape[1], ah.shape[2]
    for g in range(G):
        for j in range(H):
            ah[0, g, j] = b_h[g * H + j]


@inline_always
def _sequence_forward(theta, net, x, b, seq, training, initial):
    """Sequence ``b`` forward from its initial state (``initial``: see
    :func:`initial_state`), products in loops."""
    _, _, b_x, b_h = layer_weights(theta, net, unliteral(0))
    cell, act, split, H = net.cell, net.act, net.split, net.hidden
    WxT, WhT, hs, cs, tape, ax, ah = seq.WxT, seq.WhT, seq.hs, seq.cs, seq.tape, seq.ax, seq.ah
    _sequence_start(theta, net, hs, cs, initial, b)
    for t in range(x.shape[0]):
        _input_side(x, b, t, b_x, WxT, ax)
        if split:
            _fill_bias(b_h, ah)
            _matvec_add(WhT, hs, t, ah)
        else:
            _matvec_add(WhT, hs, t, ax)
        forward_block(cell, act, ax, ah, hs, cs, tape, t, t if training else 0, H)


@inline_always
def _sequence_forward_blas(theta, net, x, b, seq, training, initial):
    """The same, ``W_hh h_{t-1}`` through BLAS."""
    _, W_hh, b_x, b_h = layer_weights(theta, net, unliteral(0))
    cell, act, split, G, H = net.cell, net.act, net.split, net.gates, net.hidden
    WxT, hs, cs, tape, ax, ah, rec = seq.WxT, seq.hs, seq.cs, seq.tape, seq.ax, seq.ah, seq.rec
    side = ah if split else ax
    _sequence_start(theta, net, hs, cs, initial, b)
    for t in range(x.shape[0]):
        _input_side(x, b, t, b_x, WxT, ax)
        if split:
            _fill_bias(b_h, ah)
        np.dot(W_hh, hs[t, 0], rec)
        for g in range(G):
            for j in range(H):
                side[0, g, j] += rec[g * H + j]
        forward_block(cell, act, ax, ah, hs, cs, tape, t, t if training else 0, H)


@inline_always
def _sequence_backward(theta, net, x, b, seq, dtop, grads):
    """Sequence ``b`` back through time from ``dtop (T, H)`` (W_hy^T dz_t), adding its
    gradients to ``grads``; products in loops."""
    gWx, gWh, gbx, gbh, gh0, gc0 = grads
    _, W_hh, _, _ = layer_weights(theta, net, unliteral(0))
    cell, act, G, H, I = net.cell, net.act, net.gates, net.hidden, net.inputs
    hs, cs, tape, dax, dah, dh, dc = seq.hs, seq.cs, seq.tape, seq.dax, seq.dah, seq.dh, seq.dc
    for j in range(H):
        dh[0, 0, j] = 0.0
        dc[0, 0, j] = 0.0
    for s in range(x.shape[0] - 1, -1, -1):
        for j in range(H):
            dh[0, 0, j] += dtop[s, j]
        backward_block(cell, act, dh, dc, hs, cs, tape, s, dax, dah, H)
        for g in range(G):
            for j in range(H):
                q = g * H + j
                d, e = dax[0, g, j], dah[0, g, j]
                gbx[q] += d
                gbh[q] += e
                for k in range(I):
                    gWx[q, k] += d * x[s, b, k]
                for k in range(H):
                    gWh[q, k] += e * hs[s, 0, k]
                for k in range(H):  # dh_{s-1} += W_hh^T dah
                    dh[0, 0, k] += W_hh[q, k] * e
    for j in range(H):
        gh0[j] += dh[0, 0, j]
        gc0[j] += dc[0, 0, j]


@inline_always
def _sequence_backward_blas(theta, net, x, b, seq, dtop, grads):
    """The same, ``W_hh^T dah`` through BLAS and the weight gradients one product each."""
    gWx, gWh, gbx, gbh, gh0, gc0 = grads
    _, W_hh, _, _ = layer_weights(theta, net, unliteral(0))
    cell, act, G, H, I = net.cell, net.act, net.gates, net.hidden, net.inputs
    T, GH = x.shape[0], net.gates * net.hidden
    hs, cs, tape, dax, dah, dh, dc = seq.hs, seq.cs, seq.tape, seq.dax, seq.dah, seq.dh, seq.dc
    DAX, DAH, rec, xb, Wh, Wx = seq.DAX, seq.DAH, seq.rec, seq.xb, seq.gWh, seq.gWx
    for j in range(H):
        dh[0, 0, j] = 0.0
        dc[0, 0, j] = 0.0
    for s in range(T - 1, -1, -1):
        for j in range(H):
            dh[0, 0, j] += dtop[s, j]
        backward_block(cell, act, dh, dc, hs, cs, tape, s, dax, dah, H)
        for g in range(G):
            for j in range(H):
                DAX[s, g * H + j] = dax[0, g, j]
                DAH[s, g * H + j] = dah[0, g, j]
        np.dot(W_hh.T, DAH[s], rec[:H])  # dh_{s-1} += W_hh^T dah
        for k in range(H):
            dh[0, 0, k] += rec[k]
    for j in range(H):
        gh0[j] += dh[0, 0, j]
        gc0[j] += dc[0, 0, j]
    for s in range(T):
        for q in range(GH):
            gbx[q] += DAX[s, q]
            gbh[q] += DAH[s, q]
        for k in range(I):
            xb[s, k] = x[s, b, k]
    np.dot(DAH.T, hs.reshape((T + 1, H))[:T], Wh)  # sum_s dah_s h_{s-1}^T
    gWh += Wh
    np.dot(DAX.T, xb, Wx)  # sum_s dax_s x_s^T
    gWx += Wx


@inline_always
def _sequence_start(theta, net, hs, cs, initial, b):
    o, H = net.offsets[0], net.hidden
    if initial.shape[0] > 0:
        for j in range(H):
            hs[0, 0, j] = initial[0, 0, b, j]
            cs[0, 0, j] = initial[1, 0, b, j] if net.cell_state else 0.0
    else:
        for j in range(H):
            hs[0, 0, j] = theta[o[H0] + j]
            cs[0, 0, j] = theta[o[C0] + j] if net.cell_state else 0.0


@kernel
def _train_sequences(theta, net, x, y, mask, loss, scale, blas, work):
    """Forward, loss and full BPTT of a one-layer network, sequence by sequence."""
    T, B, I = x.shape
    H, O, GH, P = net.hidden, net.outputs, net.gates * net.hidden, theta.shape[0]
    W_hy, b_y = head_weights(theta, net)
    seq, at = _make_sequence(theta, net, T, True, blas, work)
    hs = seq.hs
    dtop, at = carve(work, at, (T, H))
    ys, at = carve(work, at, (T, O, 1))
    dzs, at = carve(work, at, (T, O, 1))
    ws, at = carve(work, at, (T, 1))
    zs, at = carve(work, at, (1, O, 1))
    ltmp, at = carve(work, at, (3, 1))
    sums, at = carve(work, at, ((I + H + 2) * GH + 2 * H + O * H + O,))
    sums[:] = 0.0
    gWx, used = carve(sums, 0, (GH, I))  # gradients in shapes of their own, written out last
    gWh, used = carve(sums, used, (GH, H))
    gbx, used = carve(sums, used, (GH,))
    gbh, used = carve(sums, used, (GH,))
    gh0, used = carve(sums, used, (H,))
    gc0, used = carve(sums, used, (H,))
    gWy, used = carve(sums, used, (O, H))
    gby, used = carve(sums, used, (O,))
    grads = (gWx, gWh, gbx, gbh, gh0, gc0)
    value = 0.0
    for b in range(B):
        if blas:
            _sequence_forward_blas(theta, net, x, b, seq, True, no_initial(theta))
        else:
            _sequence_forward(theta, net, x, b, seq, True, no_initial(theta))
        for t in range(T):  # the loss, and W_hy^T dz_t
            ws[t, 0] = mask[t, b]
            for q in range(O):
                ys[t, q, 0] = y[t, b, q]
                z = b_y[q]
                for k in range(H):
                    z += W_hy[q, k] * hs[t + 1, 0, k]
                zs[0, q, 0] = z
            value += loss_block(loss, zs, ys, ws, t, scale, dzs, ltmp, 1)
            for k in range(H):
                dtop[t, k] = 0.0
            for q in range(O):
                d = dzs[t, q, 0]
                gby[q] += d
                for k in range(H):
                    dtop[t, k] += W_hy[q, k] * d
                for k in range(H):
                    gWy[q, k] += d * hs[t + 1, 0, k]
        if blas:
            _sequence_backward_blas(theta, net, x, b, seq, dtop, grads)
        else:
            _sequence_backward(theta, net, x, b, seq, dtop, grads)
    grad = work[at : at + P]
    grad[:] = 0.0
    o = net.offsets[0]
    _write(grad, o[W_XH], gWx.ravel())
    _write(grad, o[W_HH], gWh.ravel())
    _write(grad, o[B_X], gbx)
    if net.split:
        _write(grad, o[B_H], gbh)
    _write(grad, o[H0], gh0)
    if net.cell_state:
        _write(grad, o[C0], gc0)
    _write(grad, net.head[0], gWy.ravel())
    _write(grad, net.head[1], gby)
    return value, grad


@inline_always
def _write(grad, offset, values):
    for i in range(values.shape[0]):
        grad[offset + i] = values[i]


@kernel
def _forward_sequences(theta, net, x, logits, h_out, c_out, states, initial, blas, work):
    """The forward pass of a one-layer network, sequence by sequence (as above)."""
    T, B = x.shape[0], x.shape[1]
    H, O = net.hidden, net.outputs
    W_hy, b_y = head_weights(theta, net)
    seq, _ = _make_sequence(theta, net, T, False, blas, work)
    hs, cs = seq.hs, seq.cs
    for b in range(B):
        if blas:
            _sequence_forward_blas(theta, net, x, b, seq, False, initial)
        else:
            _sequence_forward(theta, net, x, b, seq, False, initial)
        for t in range(T):
            for q in range(O):
                z = b_y[q]
                for k in range(H):
                    z += W_hy[q, k] * hs[t + 1, 0, k]
                logits[t, b, q] = z
            if states:
                for j in range(H):
                    h_out[0, t, b, j] = hs[t + 1, 0, j]
                if net.cell_state:
                    for j in range(H):
                        c_out[0, t, b, j] = cs[t + 1, 0, j]


@inline
def _loss_code(settings):
    """The loss code of ``settings``, refused if unknown."""
    if settings[0] != BCE and settings[0] != SOFTMAX and settings[0] != MSE:
        raise ValueError("unknown loss code")
    return settings[0]


@inline_always
def _borrowed(x, y, mask, theta, plan, work):
    """The arrays an entry point was given, holding no references (see
    :func:`.views.borrow`): the calls below then pass them on at no cost."""
    return borrow(x), borrow(y), borrow(mask), borrow(theta), borrow(plan), borrow(work)


@inline_always
def _blocks_pass(x, y, mask, theta, plan, settings, work, initial, final):
    """(loss, gradient (a view into ``work``)) through blocks of sequences, from
    ``initial`` (see :func:`initial_state`); the last states into ``final`` if it is not
    empty. A call that runs a share of the blocks (``settings``' ``shares`` > 1) leaves
    each block's loss and gradient in its part of ``work`` and returns (0, nothing):
    :func:`finish_blocks` sums them once every share has run."""
    x, y, mask, theta, plan, work = _borrowed(x, y, mask, theta, plan, work)
    initial, final = borrow(initial), borrow(final)
    net = make_net(plan)
    loss, mean, truncate, lanes, use_blas = _loss_code(settings), settings[1], settings[2], \
        settings[3], settings[4] != 0  # fmt: skip
    share, shares = settings[8], settings[9]
    T, B, P = x.shape[0], x.shape[1], theta.shape[0]
    width, blocks, per_block, columns, _ = _layout(net, P, T, B, lanes, use_blas, settings[6],
                                                   unliteral(True))  # fmt: skip
    scale = loss_scale(mask, net.outputs, loss, mean != 0)
    for block in range(share, blocks, shares):
        _train_one_block(theta, net, x, y, mask, loss, scale, truncate, width, use_blas, work,
                         per_block, columns, block, initial, final)  # fmt: skip
    if shares > 1:
        return 0.0, work[:0]
    value, grad = _sum_blocks(work, blocks, per_block, columns, P)
    return value * scale, grad


@inline_always
def _sequences_pass(x, y, mask, theta, plan, settings, work):
    """(loss, gradient) one sequence at a time (one layer, full BPTT)."""
    x, y, mask, theta, plan, work = _borrowed(x, y, mask, theta, plan, work)
    net = make_net(plan)
    loss, mean = _loss_code(settings), settings[1] != 0
    scale = loss_scale(mask, net.outputs, loss, mean)
    value, grad = _train_sequences(theta, net, x, y, mask, loss, scale, settings[4] != 0, work)
    return value * scale, grad


@inline_always
def _apply(theta, value, grad, numbers, first, second):
    """The optimizer's update of ``theta`` (an ``Update``'s three arrays) after a pass."""
    if not math.isfinite(value):
        return value, math.sqrt(np.sum(grad * grad))
    return value, optimizer.apply(borrow(numbers), borrow(first), borrow(second), theta, grad)


# -- entry points (called from Python) -------------------------------------------------------------
#
# One per way of running a batch (blocks on one thread, blocks on all threads, one sequence
# at a time), chosen from Python: numba compiles everything a function may call, so a
# single entry that branched to all three compiled all three on first use (3 minutes
# cold, where one way takes under one).


@kernel
def workspace_size(plan, P, T, B, lanes, use_blas, parallel, training):
    """Numbers of workspace the entry points below need for this batch."""
    net = make_net(plan)
    return _layout(net, P, T, B, lanes, use_blas, parallel, training)[4]


@kernel
def padded_size(T, B, columns):
    """Numbers of workspace that an entry point needs before the pass's own for a padded
    batch-first batch: ``T B columns`` (its time-major copies: ``I + O + 1`` columns for
    :func:`backprop_blocks`, x, y and the mask; ``I + O`` for
    :func:`forward_blocks`, x and the logits), rounded up to cache lines."""
    return -(-T * B * columns // 16) * 16


@inline_always
def _time_major_in(x, y, mask, settings, work, lengths):
    """``(x, y, mask, work, ok)`` for the pass: as given when ``lengths`` is empty; else
    ``x (B, T, I)`` and ``y (B, T, O)`` are padded batch-first arrays with ``lengths
    (B,)``, copied time-major into the head of ``work`` (``mask``: 1 inside each
    sequence), up to the longest length, and checked (:func:`.arrays.time_major`; bce
    targets 0 or 1); ``work`` is what is left; ``ok`` is False when a check failed."""
    if lengths.shape[0] == 0:
        return x, y, mask, work, True
    B, T, I, O = x.shape[0], x.shape[1], x.shape[2], y.shape[2]
    xs, ys = view(work, 0, (T, B, I)), view(work, T * B * I, (T, B, O))
    valid = view(work, T * B * (I + O), (T, B))
    n = time_major(x, lengths, xs, valid, unliteral(False))
    if n > 0 and time_major(y, lengths, ys, valid[:0], settings[0] == BCE) != n:
        n = -1  # (y failed its check)
    ok, n = n > 0, max(n, 1)  # (the views below stay valid, unused, when not ok)
    used = padded_size(T, B, I + O + 1)
    return (view(work, 0, (n, B, I)), view(work, T * B * I, (n, B, O)),
            view(work, T * B * (I + O), (n, B)), view(work, used, (work.shape[0] - used,)),
            ok)  # fmt: skip


@inline_always
def _gradient_or_update(theta, value, grad, grad_out, numbers, first, second):
    """``(loss, 0)`` with the gradient copied into ``grad_out`` when it is not empty; else
    the optimizer's update of ``theta`` (an ``Update``'s three arrays): ``(loss,
    gradient norm before clipping)``, ``theta`` unchanged when either is not finite."""
    if grad_out.shape[0] > 0:
        for i in range(grad.shape[0]):  # (a slice assignment compiles numba's error message)
            grad_out[i] = grad[i]
        return value, 0.0
    return _apply(theta, value, grad, numbers, first, second)


@inline_always
def _batch_in(x, y, mask, settings, work, lengths, steps, k):
    """``(x, y, mask, work, ok)`` for update ``k``: with ``steps`` empty,
    :func:`_time_major_in`'s; else ``steps[k]``'s sequences of the time-major set ``x (T,
    N, I)``, ``y (T, N, O)``, ``mask (T, N)`` with ``lengths (N,)``, copied into the
    head of ``work`` up to the longest of their lengths (as ``Batch.take``)."""
    if steps.shape[0] == 0:
        return _time_major_in(x, y, mask, settings, work, lengths)
    rows = steps[k]
    T, B, I, O = x.shape[0], rows.shape[0], x.shape[2], y.shape[2]
    n = 0
    for b in range(B):
        n = max(n, lengths[rows[b]])
    xs, ys = view(work, 0, (n, B, I)), view(work, n * B * I, (n, B, O))
    ms = view(work, n * B * (I + O), (n, B))
    for t in range(n):
        for b in range(B):
            r = rows[b]
            for i in range(I):
                xs[t, b, i] = x[t, r, i]
            for o in range(O):
                ys[t, b, o] = y[t, r, o]
            ms[t, b] = mask[t, r]
    used = padded_size(T, B, I + O + 1)
    return xs, ys, ms, view(work, used, (work.shape[0] - used,)), True


@inline_always
def _after_pass(theta, value, grad, grad_out, numbers, first, second, steps, record, k):
    """The end of update ``k``: the gradient into ``grad_out``, or the optimizer's update
    (:func:`_gradient_or_update`), for ``steps`` at learning rate ``record[k, 0]``
    (:func:`_numbers_of`) and recorded (:func:`_recorded`). Returns ``(loss, norm,
    numbers, last)``; ``last``: the call returns ``(loss, norm)`` now (one update; or
    (0, 0) after an update of ``steps`` that was not finite)."""
    numbers = _numbers_of(numbers, steps, record, k)
    value, norm = _gradient_or_update(theta, value, grad, grad_out, numbers, first, second)
    if steps.shape[0] == 0:
        return value, norm, numbers, True
    if _recorded(record, k, value, norm, numbers):
        return value, norm, numbers, False
    return 0.0, 0.0, numbers, True


@inline_always
def _recorded(record, k, value, norm, numbers):
    """Update ``k``'s loss and norm into ``record[k, 1:]``; True when it was applied
    (both finite: the optimizer's step count ``numbers[STEP]`` moves on)."""
    record[k, 1], record[k, 2] = value, norm
    if not (math.isfinite(value) and math.isfinite(norm)):
        return False
    numbers[optimizer.STEP] += 1.0
    return True


@inline_always
def _numbers_of(numbers, steps, record, k):
    """The optimizer's numbers for update ``k``: ``numbers`` itself for a single update;
    for ``steps``, a copy made at ``k = 0`` (``numbers`` unchanged) with the learning rate
    ``record[k, 0]``."""
    if steps.shape[0] == 0:
        return numbers
    if k == 0:
        numbers = numbers.copy()
    numbers[optimizer.LR] = record[k, 0]
    return numbers


@kernel(nogil=True)
def backprop_blocks(x, y, mask, theta, plan, settings, work, initial, final, lengths, grad_out,
                    numbers, first, second, steps, record):  # fmt: skip
    """The loss of ``x (T, B, I)`` against ``y (T, B, O)`` weighted by ``mask (T, B)`` and
    its gradient ``(P,)``, into ``grad_out``; or, with ``grad_out`` empty, the
    optimizer's update of ``theta`` in place (the three arrays of an
    :class:`~rnnlab.optim.rules.Update`). Returns ``(loss, 0)`` or ``(loss, gradient norm
    before clipping)`` (:func:`_gradient_or_update`). ``work``: scratch of
    :func:`workspace_size` numbers; ``initial (2, L, B, H)``: the states to start from
    (none of their gradient is kept), or empty for the network's own (which take
    theirs); ``final (2, L, B, H)``, unless empty, receives the states after the last
    step. When ``lengths (B,)`` is not empty, ``x`` and ``y`` are padded batch-first
    arrays ``(B, T, I)``, ``(B, T, O)`` (``mask`` unused), converted in this call
    (:func:`padded_size` more numbers of ``work``); a norm of -1 then says they failed a
    check. (One entry point for both: each compiles the whole pass.)

    When ``steps (K, B)`` is not empty, the call makes K updates (``grad_out``,
    ``initial``, ``final`` empty): update ``k`` on sequences ``steps[k]`` of the training
    set ``x (T, N, I)``, ``y (T, N, O)``, ``mask (T, N)`` with ``lengths (N,)``
    (:func:`_batch_in`; :func:`padded_size` more numbers of ``work``), at learning rate
    ``record[k, 0]``; its loss and norm go to ``record[k, 1:]``, and the call stops
    after the first that is not finite (its update not applied), returning (0, 0)."""
    rates = numbers
    for k in range(max(steps.shape[0], 1)):
        xk, yk, mk, wk, ok = _batch_in(x, y, mask, settings, work, lengths, steps, k)
        if not ok:
            return math.nan, -1.0
        value, grad = _blocks_pass(xk, yk, mk, theta, plan, settings, wk, initial, final)
        if settings[9] > 1:
            return value, 0.0  # (a share: finish_blocks sums and updates)
        value, norm, rates, last = _after_pass(theta, value, grad, grad_out, rates, first,
                                               second, steps, record, k)  # fmt: skip
        if last:
            return value, norm
    return 0.0, 0.0


@kernel(nogil=True)
def finish_blocks(mask, theta, plan, settings, work, grad_out, numbers, first, second):
    """:func:`backprop_blocks`' result once each of its shares of the blocks has run (on
    threads, from Python): the blocks' losses and gradients summed in block order (the
    same sum however they ran), then the gradient into ``grad_out`` or the update."""
    mask, theta, plan, work = borrow(mask), borrow(theta), borrow(plan), borrow(work)
    net = make_net(plan)
    T, B, P = mask.shape[0], mask.shape[1], theta.shape[0]
    use_blas = settings[4] != 0
    _, blocks, per_block, columns, _ = _layout(net, P, T, B, settings[3], use_blas, settings[6],
                                               unliteral(True))  # fmt: skip
    value, grad = _sum_blocks(work, blocks, per_block, columns, P)
    value *= loss_scale(mask, net.outputs, _loss_code(settings), settings[1] != 0)
    return _gradient_or_update(theta, value, grad, grad_out, numbers, first, second)


@kernel
def backprop_sequences(x, y, mask, theta, plan, settings, work, initial, final, lengths,
                       grad_out, numbers, first, second, steps, record):  # fmt: skip
    """:func:`backprop_blocks` one sequence at a time (``initial`` and ``final`` empty:
    calls with states given or wanted take the blocks' way)."""
    rates = numbers
    for k in range(max(steps.shape[0], 1)):
        xk, yk, mk, wk, ok = _batch_in(x, y, mask, settings, work, lengths, steps, k)
        if not ok:
            return math.nan, -1.0
        value, grad = _sequences_pass(xk, yk, mk, theta, plan, settings, wk)
        value, norm, rates, last = _after_pass(theta, value, grad, grad_out, rates, first,
                                               second, steps, record, k)  # fmt: skip
        if last:
            return value, norm
    return 0.0, 0.0


@inline_always
def _forward_padded_in(x, theta, settings, work, logits, lengths):
    """``(x, logits, work, n)`` for a forward pass: as given (``n = T``) when ``lengths``
    is empty; else ``x (B, T, I)`` is a padded batch-first array with ``lengths (B,)``,
    copied time-major into the head of ``work`` up to the longest length ``n`` and
    checked (:func:`.arrays.time_major`; and ``theta`` all finite), the logits go to
    ``work`` after it (``logits`` is then the batch-first output, see
    :func:`_forward_padded_out`), and ``n`` is 0 when a check failed."""
    if lengths.shape[0] == 0:
        return x, logits, work, x.shape[0]
    B, T, I, O = x.shape[0], x.shape[1], x.shape[2], logits.shape[2]
    xs = view(work, 0, (T, B, I))
    n = time_major(x, lengths, xs, view(work, 0, (0, B)), unliteral(False))
    n = n if n > 0 and all_finite(theta) else 0
    m = max(n, 1)  # (the views below stay valid, unused, when a check failed)
    used = padded_size(T, B, I + O)
    return (view(work, 0, (m, B, I)), view(work, T * B * I, (m, B, O)),
            view(work, used, (work.shape[0] - used,)), n)  # fmt: skip


@inline_always
def _forward_padded_out(logits, out, settings, lengths, n):
    """For a padded call: the time-major ``logits (n, B, O)`` into the head of ``out``,
    batch-first ``(B, n, O)``, through the sigmoid where ``settings`` say ``squash``."""
    if lengths.shape[0] > 0 and n > 0:
        B, O = out.shape[0], out.shape[2]
        batch_first(logits, lengths, view(out, 0, (B, n, O)), settings[7] != 0)


@kernel(nogil=True)
def forward_blocks(x, theta, plan, settings, initial, work, logits, h_out, c_out, lengths):
    """Logits ``(T, B, O)`` of ``x (T, B, I)`` into ``logits``; when ``h_out`` is not empty,
    every layer's hidden states ``(L, T, B, H)`` into it (and cell states into ``c_out``,
    for the LSTM). No tape, no gradient. ``initial (2, L, B, H)``: the states to start
    from (h, then c), or empty for the network's own. (The outputs come in, made by the
    caller: three arrays handed back to Python cost more than the pass at ``H = 2``.)
    When ``lengths (B,)`` is not empty, ``x (B, T, I)`` is a padded batch-first array,
    converted in this call, and the logits go to ``logits`` batch-first, ``(B, n, O)``
    in its head (through the sigmoid with ``squash``), zero past each length; ``n``,
    the longest length, is returned (0: the array or ``theta`` failed a check)."""
    x, theta, plan, initial, work = borrow(x), borrow(theta), borrow(plan), borrow(initial), \
        borrow(work)  # fmt: skip
    logits, h_out, c_out = borrow(logits), borrow(h_out), borrow(c_out)
    out = logits
    x, logits, work, n = _forward_padded_in(x, theta, settings, work, logits, lengths)
    if n == 0:
        return 0
    net = make_net(plan)
    lanes, use_blas, states = settings[3], settings[4] != 0, h_out.shape[0] > 0
    width, blocks, per_block, _, _ = _layout(net, theta.shape[0], x.shape[0], x.shape[1], lanes,
                                             use_blas, settings[6], unliteral(False))  # fmt: skip
    _forward_share(theta, net, x, blocks, settings[9], settings[8], width, per_block, work,
                   logits, h_out, c_out, states, initial, use_blas)  # fmt: skip
    _forward_padded_out(logits, out, settings, lengths, n)
    return n


@inline_always
def _forward_share(theta, net, x, blocks, shares, share, width, per_block, work, logits, h_out,
                   c_out, states, initial, use_blas):  # fmt: skip
    """Blocks ``share, share + shares, ...`` of the batch's forward pass, in share
    ``share`` of ``work``."""
    T, B = x.shape[0], x.shape[1]
    blk = make_block(net, T, width, unliteral(False), use_blas,
                     work[share * per_block : (share + 1) * per_block])  # fmt: skip
    for block in range(share, blocks, shares):
        start = block * width
        forward_block_of(theta, net, x, start, min(width, B - start), blk, logits, h_out,
                         c_out, states, initial, use_blas)  # fmt: skip


@kernel
def forward_sequences(x, theta, plan, settings, initial, work, logits, h_out, c_out, lengths):
    """:func:`forward_blocks` one sequence at a time (one layer)."""
    x, theta, plan, initial, work = borrow(x), borrow(theta), borrow(plan), borrow(initial), \
        borrow(work)  # fmt: skip
    logits, h_out, c_out = borrow(logits), borrow(h_out), borrow(c_out)
    out = logits
    x, logits, work, n = _forward_padded_in(x, theta, settings, work, logits, lengths)
    if n == 0:
        return 0
    net = make_net(plan)
    _forward_sequences(theta, net, x, logits, h_out, c_out, h_out.shape[0] > 0, initial,
                       settings[4] != 0, work)  # fmt: skip
    _forward_padded_out(logits, out, settings, lengths, n)
    return n
