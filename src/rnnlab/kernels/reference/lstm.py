"""The LSTM cell, one time step forward and back (numpy reference), in PyTorch's form.

.. math::

    a_t &= W_{xh} x_t + W_{hh} h_{t-1} + b_h
          \\quad (\\text{blocks } a_i, a_f, a_g, a_o) \\\\
    i_t &= \\sigma(a_i), \\quad f_t = \\sigma(a_f), \\quad
    g_t = \\tanh(a_g), \\quad o_t = \\sigma(a_o) \\\\
    c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
    h_t &= o_t \\odot \\tanh(c_t)

These are ``torch.nn.LSTM``'s equations (without ``proj_size``).

Carry: ``(h, c)`` — hidden state first, cell state second, always. Only ``h``
is the layer's output (what the next layer and the head see).

Parameters (base names, per layer), gate blocks stacked in PyTorch's order
``i, f, g, o`` (rows ``0:H``, ``H:2H``, ``2H:3H``, ``3H:4H``):
``W_xh (4H, I)`` (torch ``weight_ih``), ``W_hh (4H, H)`` (``weight_hh``),
``b_h (4H,)`` (torch ``bias_ih + bias_hh``: the two only ever appear summed),
``h0 (H,)`` and ``c0 (H,)`` (learnable initial states).
Its nonlinearities are fixed (sigmoid gates, tanh candidate and output): the
model's ``activation`` setting belongs to the Elman cell only.
"""

from __future__ import annotations

import numpy as np

from rnnlab.functional import sigmoid, sigmoid_derivative, tanh, tanh_derivative


class LSTMCell:
    """``step(p, carry, x) -> (carry, cache)`` and ``step_back(p, cache, dcarry, grads)``."""

    @staticmethod
    def step(p: dict, carry: tuple, x: np.ndarray):
        """x (B, I), carry (h_prev (B, H), c_prev (B, H)) -> ((h, c), cache)."""
        h_prev, c_prev = carry
        H = h_prev.shape[1]
        a = x @ p["W_xh"].T + h_prev @ p["W_hh"].T + p["b_h"]  # (B, 4H)
        i = sigmoid(a[:, :H])  # (B, H) input gate
        f = sigmoid(a[:, H : 2 * H])  # (B, H) forget gate
        g = tanh(a[:, 2 * H : 3 * H])  # (B, H) candidate
        o = sigmoid(a[:, 3 * H :])  # (B, H) output gate
        c = f * c_prev + i * g  # (B, H)
        tc = tanh(c)  # (B, H)
        h = o * tc  # (B, H)
        return (h, c), (x, h_prev, c_prev, i, f, g, o, tc)

    @staticmethod
    def step_back(p: dict, cache, dcarry: tuple, grads: dict):
        """dcarry (dh, dc), each (B, H) -> (dcarry_prev, dx (B, I)); adds parameter gradients.

        ``do = dh tanh(c)``; the cell state's total gradient is
        ``dc_t = dc + dh o (1 - tanh(c)^2)``; then ``di = dc_t g``, ``dg = dc_t i``,
        ``df = dc_t c_prev`` and ``dc_prev = dc_t f``. Each gate's derivative is
        taken through its own nonlinearity to ``da (B, 4H)``, which flows to
        ``W_xh``, ``W_hh``, ``b_h``, ``x`` and ``h_prev`` alike.
        """
        x, h_prev, c_prev, i, f, g, o, tc = cache
        dh, dc = dcarry
        dc_total = dc + dh * o * tanh_derivative(tc)  # (B, H)
        da = np.concatenate(
            [
                dc_total * g * sigmoid_derivative(i),  # (B, H) input gate
                dc_total * c_prev * sigmoid_derivative(f),  # (B, H) forget gate
                dc_total * i * tanh_derivative(g),  # (B, H) candidate
                dh * tc * sigmoid_derivative(o),  # (B, H) output gate
            ],
            axis=1,
        )  # (B, 4H)
        grads["W_xh"] += da.T @ x  # (4H, I)
        grads["W_hh"] += da.T @ h_prev  # (4H, H)
        grads["b_h"] += da.sum(axis=0)  # (4H,)
        dh_prev = da @ p["W_hh"]  # (B, H)
        dc_prev = dc_total * f  # (B, H)
        return (dh_prev, dc_prev), da @ p["W_xh"]
