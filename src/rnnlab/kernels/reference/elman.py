"""The Elman cell, one time step forward and back (numpy reference).

.. math::

    h_t = f(W_{xh} x_t + W_{hh} h_{t-1} + b_h), \\qquad f \\in \\{\\sigma, \\tanh, \\mathrm{relu}\\}

Carry: ``(h,)``. Parameters (base names, per layer): ``W_xh (H, I)``,
``W_hh (H, H)``, ``b_h (H,)``, ``h0 (H,)``.
"""

from __future__ import annotations

import numpy as np

from rnnlab.functional import ACTIVATIONS, DERIVATIVES


class ElmanCell:
    """``step(p, carry, x) -> (carry, cache)`` and ``step_back(p, cache, dcarry, grads)``."""

    def __init__(self, activation: str = "sigmoid"):
        self.activation = activation
        self.f = ACTIVATIONS[activation]
        self.df = DERIVATIVES[activation]

    def step(self, p: dict, carry: tuple, x: np.ndarray):
        """x (B, I), carry (h_prev (B, H),) -> ((h (B, H),), cache)."""
        (h_prev,) = carry
        h = self.f(x @ p["W_xh"].T + h_prev @ p["W_hh"].T + p["b_h"])  # (B, H)
        return (h,), (x, h_prev, h)

    def step_back(self, p: dict, cache, dcarry: tuple, grads: dict):
        """dcarry (dh (B, H),) -> (dcarry_prev, dx (B, I)); adds parameter gradients to grads."""
        x, h_prev, h = cache
        (dh,) = dcarry
        dz = dh * self.df(h)  # (B, H) gradient at the pre-activation
        grads["W_xh"] += dz.T @ x  # (H, I)
        grads["W_hh"] += dz.T @ h_prev  # (H, H)
        grads["b_h"] += dz.sum(axis=0)  # (H,)
        return (dz @ p["W_hh"],), dz @ p["W_xh"]
