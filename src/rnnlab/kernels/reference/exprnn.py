"""The expRNN cell, one time step forward and back (numpy reference).

.. math::

    z_t = W_{xh} x_t + W_{hh} h_{t-1}, \\qquad
    h_t = \\mathrm{modReLU}(z_t, b) = \\mathrm{sign}(z_t)\\,\\mathrm{relu}(|z_t| + b_h)

(Lezcano-Casado & Martinez-Rubio, 2019), with ``W_hh`` orthogonal. Carry: ``(h,)``.
Parameters (base names, per layer): ``W_xh (H, I)``, ``A_hh (H, H)``, ``b_h (H,)``,
``h0 (H,)``. A backend sees ``W_hh = expm(A - A^T)`` in ``A_hh``'s place
(:mod:`rnnlab.kernels.orthogonal`), so the step reads ``p["A_hh"]`` as ``W_hh``.

Backward, from ``h`` alone: where ``|z| + b > 0`` the unit is active, ``h`` has
``z``'s sign and ``dh/dz = 1``, ``dh/db = sign(z)``; elsewhere (and at ``z = 0``,
where ``sign`` is 0, as in PyTorch) both are 0. So ``dz = dh [h != 0]`` and
``db = dh sign(h)``.
"""

from __future__ import annotations

import numpy as np


def modrelu(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sign(z) relu(|z| + b)``, z (B, H), b (H,)."""
    return np.sign(z) * np.maximum(np.abs(z) + b, 0.0)


class ExpRNNCell:
    """``step(p, carry, x) -> (carry, cache)`` and ``step_back(p, cache, dcarry, grads)``."""

    def step(self, p: dict, carry: tuple, x: np.ndarray):
        """x (B, I), carry (h_prev (B, H),) -> ((h (B, H),), cache)."""
        (h_prev,) = carry
        z = x @ p["W_xh"].T + h_prev @ p["A_hh"].T  # (B, H); A_hh's slot holds W_hh
        h = modrelu(z, p["b_h"])
        return (h,), (x, h_prev, h)

    def step_back(self, p: dict, cache, dcarry: tuple, grads: dict):
        """dcarry (dh (B, H),) -> (dcarry_prev, dx (B, I)); adds parameter gradients to grads
        (the gradient at W_hh goes to A_hh's slot)."""
        x, h_prev, h = cache
        (dh,) = dcarry
        dz = dh * (h != 0)  # (B, H)
        grads["W_xh"] += dz.T @ x  # (H, I)
        grads["A_hh"] += dz.T @ h_prev  # (H, H)
        grads["b_h"] += (dh * np.sign(h)).sum(axis=0)  # (H,)
        return (dz @ p["A_hh"],), dz @ p["W_xh"]
