"""The GRU cell, one time step forward and back (numpy reference), in PyTorch's form.

.. math::

    r_t &= \\sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\\\
    z_t &= \\sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\\\
    n_t &= \\tanh(W_{in} x_t + b_{in} + r_t \\odot (W_{hn} h_{t-1} + b_{hn})) \\\\
    h_t &= (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

These are ``torch.nn.GRU``'s equations: the reset gate multiplies the
recurrent term *after* its bias ``b_hn``, which is why the cell keeps separate
input and hidden biases.

Carry: ``(h,)``. Parameters (base names, per layer), gate blocks stacked in
PyTorch's order ``r, z, n`` (rows ``0:H``, ``H:2H``, ``2H:3H``):
``W_xh (3H, I)`` (torch ``weight_ih``), ``W_hh (3H, H)`` (``weight_hh``),
``b_xh (3H,)`` (``bias_ih``), ``b_hh (3H,)`` (``bias_hh``), ``h0 (H,)``.
Its nonlinearities are fixed (sigmoid gates, tanh candidate): the model's
``activation`` setting belongs to the Elman cell only.
"""

from __future__ import annotations

import numpy as np

from rnnlab.functional import sigmoid, sigmoid_derivative, tanh, tanh_derivative


class GRUCell:
    """``step(p, carry, x) -> (carry, cache)`` and ``step_back(p, cache, dcarry, grads)``."""

    @staticmethod
    def step(p: dict, carry: tuple, x: np.ndarray):
        """x (B, I), carry (h_prev (B, H),) -> ((h (B, H),), cache)."""
        (h_prev,) = carry
        H = h_prev.shape[1]
        gx = x @ p["W_xh"].T + p["b_xh"]  # (B, 3H) input side, all gates
        gh = h_prev @ p["W_hh"].T + p["b_hh"]  # (B, 3H) recurrent side, all gates
        r = sigmoid(gx[:, :H] + gh[:, :H])  # (B, H)
        z = sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])  # (B, H)
        hn = gh[:, 2 * H :]  # (B, H) W_hn h + b_hn, gated by r
        n = tanh(gx[:, 2 * H :] + r * hn)  # (B, H)
        h = (1.0 - z) * n + z * h_prev  # (B, H)
        return (h,), (x, h_prev, r, z, n, hn)

    @staticmethod
    def step_back(p: dict, cache, dcarry: tuple, grads: dict):
        """dcarry (dh (B, H),) -> (dcarry_prev, dx (B, I)); adds parameter gradients to grads.

        With ``a_*`` the pre-activations (``r = sigmoid(a_r)``, ...):
        ``dn = dh (1 - z)``, ``dz = dh (h_prev - n)``, ``da_n = dn (1 - n^2)``,
        ``dr = da_n hn``, ``da_r = dr r (1 - r)``, ``da_z = dz z (1 - z)``;
        the input side sees ``(da_r, da_z, da_n)``, the recurrent side
        ``(da_r, da_z, da_n r)``, and ``h_prev`` also gets ``dh z`` directly.
        """
        x, h_prev, r, z, n, hn = cache
        (dh,) = dcarry
        da_n = dh * (1.0 - z) * tanh_derivative(n)  # (B, H)
        da_z = dh * (h_prev - n) * sigmoid_derivative(z)  # (B, H)
        da_r = da_n * hn * sigmoid_derivative(r)  # (B, H)
        dgx = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
        grads["W_xh"] += dgx.T @ x  # (3H, I)
        grads["b_xh"] += dgx.sum(axis=0)  # (3H,)
        grads["W_hh"] += dgh.T @ h_prev  # (3H, H)
        grads["b_hh"] += dgh.sum(axis=0)  # (3H,)
        dh_prev = dh * z + dgh @ p["W_hh"]  # (B, H)
        return (dh_prev,), dgx @ p["W_xh"]
