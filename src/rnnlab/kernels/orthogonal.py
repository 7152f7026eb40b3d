"""The orthogonal recurrence of the ``exprnn`` cell (Lezcano-Casado & Martinez-Rubio, 2019).

The cell's recurrent matrix is not a parameter but the exponential of a
skew-symmetric one,

.. math::

    W_{hh} = \\exp(A - A^\\top), \\qquad A = \\mathrm{triu}(A_{hh}, 1),

so it is orthogonal whatever the optimizer does to ``A_hh`` (only its strict upper
triangle counts; the rest gets no gradient). The kernels never see ``A_hh``: an
:class:`Orthogonal` backend wraps any backend of the protocol (:mod:`rnnlab.kernels`),
writes ``W_hh`` into ``A_hh``'s place of a copy of ``theta`` before each call, and
pulls the gradient at ``W_hh`` back to ``A_hh`` after it:

.. math::

    \\frac{\\partial L}{\\partial K} = \\mathrm{L}_{\\exp}(K^\\top, G), \\qquad
    \\frac{\\partial L}{\\partial A_{hh}} = \\mathrm{triu}\\Big(\\frac{\\partial L}{\\partial K}
    - \\frac{\\partial L}{\\partial K}^\\top, 1\\Big),

with ``K = A - A^T``, ``G`` the gradient at ``W_hh`` and ``L_exp(K, E)`` the Fréchet
derivative of the matrix exponential at ``K`` in the direction ``E`` (its adjoint is
the derivative at ``K^T``). The exponential and its derivative are scipy's
(``expm``, ``expm_frechet``: Al-Mohy & Higham's scaling and squaring), in float64.
"""

from __future__ import annotations

import numpy as np

from rnnlab.kernels import Reparametrized
from rnnlab.kernels.layout import W_HH


def skew(A: np.ndarray) -> np.ndarray:
    """``K = triu(A, 1) - triu(A, 1)^T`` (H, H), in float64."""
    upper = np.triu(np.asarray(A, dtype=np.float64), 1)
    return upper - upper.T


def recurrent_matrix(A: np.ndarray) -> np.ndarray:
    """``W_hh = expm(K)`` (H, H), orthogonal, float64, from ``A_hh (H, H)``."""
    from scipy.linalg import expm  # (here: scipy.linalg takes 0.3 s to import)

    return expm(skew(A))


def pull_back(A: np.ndarray, dW: np.ndarray) -> np.ndarray:
    """The gradient at ``A_hh (H, H)`` from the one at ``W_hh = expm(K)``, ``dW (H, H)``."""
    from scipy.linalg import expm_frechet

    K = skew(A)
    dK = expm_frechet(K.T, np.asarray(dW, dtype=np.float64), compute_expm=False)
    return np.triu(dK - dK.T, 1)


def _recurrent_slots(net, flat: np.ndarray):
    """Each layer's ``(H, H)`` recurrent block of a flat vector (views)."""
    H = net.hidden_size
    for layer in range(net.num_layers):
        start = int(net.offsets[layer, W_HH])
        yield flat[start : start + H * H].reshape(H, H)


class Orthogonal(Reparametrized):
    """A backend (the protocol of :mod:`rnnlab.kernels`) for networks whose cell is
    ``orthogonal`` in the registry, made from one that computes with ``W_hh`` itself."""

    @staticmethod
    def kernel_theta(net, theta: np.ndarray) -> np.ndarray:
        """A copy of ``theta (P,)`` with every layer's ``A_hh`` replaced by its ``W_hh``."""
        inner = theta.copy()
        for A, W in zip(_recurrent_slots(net, theta), _recurrent_slots(net, inner), strict=True):
            W[...] = recurrent_matrix(A)
        return inner

    def forward(self, net, theta, x, *, states=False, initial=None, **path):
        return self.backend.forward(net, self.kernel_theta(net, theta), x, states=states,
                                    initial=initial, **path)  # fmt: skip

    def loss_and_grad(self, net, theta, x, y, mask, *, loss, reduction="mean", truncate=None,
                      initial=None, final=None, **path):  # fmt: skip
        value, grad = self.backend.loss_and_grad(net, self.kernel_theta(net, theta), x, y, mask,
                                                 loss=loss, reduction=reduction,
                                                 truncate=truncate, initial=initial, final=final,
                                                 **path)  # fmt: skip
        for A, dW in zip(_recurrent_slots(net, theta), _recurrent_slots(net, grad), strict=True):
            dW[...] = pull_back(A, dW)
        return value, grad
