"""Each cell's compiled math, written once: one step forward and one step back.

A cell's math is a few scalar, branch-free functions of one unit of one
sequence, the compiled twins of the numpy steps in :mod:`rnnlab.kernels.reference`:
forward, one function per nonlinearity it applies (a loop that evaluates two
exponentials in one body did not vectorize here, and ran 5-30x slower per
value: each stage gets a loop of its own), and one backward function. The
driver (:mod:`.driver`) calls them through :func:`forward_block` and
:func:`backward_block`, which run them over a block of sequences laid out
*lanes last*: every array is ``(rows, n)`` with the sequence index innermost,
so the loops over ``b`` vectorize (4 float64 or 8 float32 at a time, exp and
tanh included: :mod:`.math`).

What the driver hands a cell at step ``t`` (``G`` gate blocks of ``H`` rows;
arrays are addressed by step, ``hs[t]``, so a time loop builds no views):

* ``ax (G H, n)``: ``W_xh x_t + b_x``, plus ``W_hh h_{t-1}`` (and its bias)
  unless the cell is *split* (registry: it has a ``recurrent_bias``);
* ``ah (G H, n)``: for split cells, ``W_hh h_{t-1} + b_hh`` (GRU: the
  reset gate multiplies its candidate block); for cells that apply their bias
  themselves (registry ``bias_inside``: expRNN's modReLU), the bias, which
  ``ax`` then leaves out;
* ``hp, cp (H, n)``: ``h_{t-1}`` and, for cells with a cell state, ``c_{t-1}``.

A cell writes ``h`` (and ``c``) and what its backward step needs, ``tape
(tape H, n)`` (registry ``tape``). Going back it receives ``dh``, the gradient
at ``h_s``, and ``dc`` at ``c_s``; it writes the gradients at its
pre-activations ``dax`` (and ``dah`` when split; otherwise the driver uses
``dax`` for both sides; a ``bias_inside`` cell writes its bias's gradient to
``dah``), replaces ``dh`` by the part of the gradient at
``h_{s-1}`` that does not go through ``W_hh`` (zero for most cells) and ``dc``
by the gradient at ``c_{s-1}``. The driver adds ``W_hh^T dah`` to ``dh``.

Cell codes are :data:`rnnlab.kernels.registry.CELLS`'s; the driver refuses an unknown
code at its entry points (a ``raise`` here would cost every step: :func:`.math.hold`).
"""

from __future__ import annotations

from rnnlab.kernels.compiled.functions import (
    RELU,
    SIGMOID,
    TANH,
    activate,
    activation_derivative,
)
from rnnlab.kernels.compiled.math import hold, inline, inline_always, one, sigmoid, tanh, zero
from rnnlab.kernels.registry import CELLS

ELMAN, GRU, LSTM, EXPRNN = (CELLS[name].code for name in ("elman", "gru", "lstm", "exprnn"))


# -- Elman: h = f(a) ----------------------------------------------------------------------


@inline
def elman_forward(act, a):
    return activate(act, a)


@inline
def elman_backward(act, dh, h):
    """-> da, from the output ``h`` (every activation's derivative is a function of it)."""
    return dh * activation_derivative(act, h)


# -- GRU (PyTorch's): gates r, z, candidate n -------------------------------------------------


@inline
def gru_gate(ax, ah):
    """r or z = sigmoid(input side + recurrent side)."""
    return sigmoid(ax + ah)


@inline
def gru_candidate(ax_n, r, ah_n):
    """n = tanh(W_in x + b_in + r (W_hn h_{t-1} + b_hn))."""
    return tanh(ax_n + r * ah_n)


@inline
def gru_hidden(z, n, h_prev):
    """h = (1 - z) n + z h_{t-1}."""
    return (one(z) - z) * n + z * h_prev


@inline
def gru_backward(dh, h_prev, r, z, n, ah_n):
    """-> (da_r, da_z, dax_n, dah_n, dh_prev_direct); the recurrent side of r and z
    equals the input side."""
    dax_n = dh * (one(z) - z) * (one(n) - n * n)
    da_z = dh * (h_prev - n) * (z * (one(z) - z))
    da_r = dax_n * ah_n * (r * (one(r) - r))
    return da_r, da_z, dax_n, dax_n * r, dh * z


# -- LSTM (PyTorch's): gates i, f, g, o -------------------------------------------------------


#: the LSTM's gate nonlinearities, by gate block (i, f, g, o): g = tanh, the rest sigmoid
LSTM_TANH_GATE = 2


@inline
def lstm_cell(i, f, g, c_prev):
    """c = f c_{t-1} + i g."""
    return f * c_prev + i * g


@inline
def lstm_hidden(o, c):
    """-> (h, tanh(c)), h = o tanh(c)."""
    tc = tanh(c)
    return o * tc, tc


@inline
def lstm_backward(dh, dc, c_prev, i, f, g, o, tc):
    """-> (da_i, da_f, da_g, da_o, dc_prev); ``dc`` comes from step s + 1."""
    dc_total = dc + dh * o * (one(tc) - tc * tc)
    return (
        dc_total * g * (i * (one(i) - i)),
        dc_total * c_prev * (f * (one(f) - f)),
        dc_total * i * (one(g) - g * g),
        dh * tc * (o * (one(o) - o)),
        dc_total * f,
    )


# -- expRNN: h = modReLU(z, b) = sign(z) relu(|z| + b), z = W_xh x + W_hh h_{t-1} ---------


@inline
def exprnn_forward(z, b):
    magnitude = max(abs(z) + b, zero(z))
    return magnitude if z > zero(z) else (-magnitude if z < zero(z) else zero(z))


@inline
def exprnn_backward(dh, h):
    """-> (dz, db), from the output ``h``: active where ``h != 0``, with ``z``'s sign."""
    active = dh if h != zero(h) else zero(h)
    return active, (active if h > zero(h) else -active)


# -- over a block of sequences -----------------------------------------------------------------


@inline_always
def forward_block(cell, act, ax, ah, hs, cs, tape, t, tt, n):
    """Step ``t`` of one layer for lanes ``:n``: from ``hs[t]`` / ``cs[t]`` (the
    previous states, (H, m)) and ``ax[0]``, ``ah[0]`` (G H, m), writes ``hs[t + 1]``,
    ``cs[t + 1]`` and ``tape[tt]``."""
    H = hs.shape[1]
    if cell == ELMAN:  # one loop per activation: the code is a constant in each
        for j in range(H):
            if act == SIGMOID:
                for b in range(n):
                    hs[t + 1, j, b] = elman_forward(SIGMOID, ax[0, j, b])
            elif act == TANH:
                for b in range(n):
                    hs[t + 1, j, b] = elman_forward(TANH, ax[0, j, b])
            else:
                for b in range(n):
                    hs[t + 1, j, b] = elman_forward(RELU, ax[0, j, b])
    elif cell == GRU:  # tape r, z, n, ah_n
        for q in range(2 * H):  # r, z
            for b in range(n):
                tape[tt, q, b] = gru_gate(ax[0, q, b], ah[0, q, b])
        for j in range(H):  # then a unit's candidate and state in one pass
            for b in range(n):
                ah_n = ah[0, 2 * H + j, b]
                candidate = gru_candidate(ax[0, 2 * H + j, b], tape[tt, j, b], ah_n)
                hs[t + 1, j, b] = gru_hidden(tape[tt, H + j, b], candidate, hs[t, j, b])
                tape[tt, 2 * H + j, b], tape[tt, 3 * H + j, b] = candidate, ah_n
    elif cell == LSTM:  # tape i, f, g, o, tanh(c)
        for q in range(4 * H):
            if q // H == LSTM_TANH_GATE:
                for b in range(n):
                    tape[tt, q, b] = tanh(ax[0, q, b])
            else:
                for b in range(n):
                    tape[tt, q, b] = sigmoid(ax[0, q, b])
        for j in range(H):  # then a unit's cell state and output in one pass
            for b in range(n):
                c = lstm_cell(tape[tt, j, b], tape[tt, H + j, b], tape[tt, 2 * H + j, b],
                              cs[t, j, b])  # fmt: skip
                cs[t + 1, j, b] = c
                hs[t + 1, j, b], tape[tt, 4 * H + j, b] = lstm_hidden(tape[tt, 3 * H + j, b], c)
    elif cell == EXPRNN:  # the bias in ah
        for j in range(H):
            for b in range(n):
                hs[t + 1, j, b] = exprnn_forward(ax[0, j, b], ah[0, j, b])
    hold(ax, ah, hs, cs, tape)  # (an unknown code was refused at the entry)


@inline_always
def backward_block(cell, act, dh, dc, hs, cs, tape, s, dax, dah, n):
    """Step ``s`` of one layer back for lanes ``:n``. ``dh[0]``, ``dc[0]`` (H, m): in,
    the gradient at ``h_s`` / ``c_s``; out, the direct part of the one at ``h_{s-1}``
    and the one at ``c_{s-1}``. Writes ``dax[0]`` (and ``dah[0]`` if split)."""
    H = dh.shape[1]
    if cell == ELMAN:
        for j in range(H):
            if act == SIGMOID:
                for b in range(n):
                    dax[0, j, b] = elman_backward(SIGMOID, dh[0, j, b], hs[s + 1, j, b])
            elif act == TANH:
                for b in range(n):
                    dax[0, j, b] = elman_backward(TANH, dh[0, j, b], hs[s + 1, j, b])
            else:
                for b in range(n):
                    dax[0, j, b] = elman_backward(RELU, dh[0, j, b], hs[s + 1, j, b])
            for b in range(n):
                dh[0, j, b] = 0.0
    elif cell == GRU:
        for j in range(H):
            for b in range(n):
                da_r, da_z, dax_n, dah_n, direct = gru_backward(
                    dh[0, j, b], hs[s, j, b], tape[s, j, b], tape[s, H + j, b],
                    tape[s, 2 * H + j, b], tape[s, 3 * H + j, b],
                )  # fmt: skip
                dax[0, j, b], dax[0, H + j, b], dax[0, 2 * H + j, b] = da_r, da_z, dax_n
                dah[0, j, b], dah[0, H + j, b], dah[0, 2 * H + j, b] = da_r, da_z, dah_n
                dh[0, j, b] = direct
    elif cell == LSTM:
        for j in range(H):
            for b in range(n):
                da_i, da_f, da_g, da_o, dc_prev = lstm_backward(
                    dh[0, j, b], dc[0, j, b], cs[s, j, b], tape[s, j, b], tape[s, H + j, b],
                    tape[s, 2 * H + j, b], tape[s, 3 * H + j, b], tape[s, 4 * H + j, b],
                )  # fmt: skip
                dax[0, j, b], dax[0, H + j, b] = da_i, da_f
                dax[0, 2 * H + j, b], dax[0, 3 * H + j, b] = da_g, da_o
                dc[0, j, b] = dc_prev
                dh[0, j, b] = 0.0
    elif cell == EXPRNN:  # the bias's gradient in dah
        for j in range(H):
            for b in range(n):
                dax[0, j, b], dah[0, j, b] = exprnn_backward(dh[0, j, b], hs[s + 1, j, b])
            for b in range(n):
                dh[0, j, b] = 0.0
    hold(dh, dc, hs, cs, tape, dax, dah)
