"""A learned input embedding: inputs pass through a table ``E (I, D)`` before the first
layer, ``e_t = E^T x_t (D,)`` (for one-hot tokens, ``E``'s row of the token).

The first layer's input side is linear, so the table folds into its input weights:

.. math::

    W_{xh} e_t = W_{xh} E^\\top x_t = M x_t, \\qquad M = W_{xh} E^\\top \\quad (G H, I),

and every kernel runs unchanged on the network that reads ``x`` with ``M`` as its
input weights (one small product per call, ``G H D I`` multiply-adds; a one-hot input
costs the kernels nothing more than a dense one of ``I`` numbers). The gradient at
``M``, ``dM = sum_t dax_t x_t^T``, gives both factors' by the chain rule:

.. math::

    \\frac{\\partial L}{\\partial W_{xh}} = dM\\, E, \\qquad
    \\frac{\\partial L}{\\partial E} = dM^\\top W_{xh}.

An :class:`Embedded` backend wraps any backend of the protocol (:mod:`rnnlab.kernels`)
and does that mapping before and after each call; the kernels never see ``E``.
"""

from __future__ import annotations

import numpy as np

from rnnlab.kernels import Reparametrized
from rnnlab.kernels.layout import Network, aligned_empty, network


def kernel_network(net: Network) -> Network:
    """The network the kernels run for ``net``: the same without the table, reading ``I``
    inputs."""
    return network(net.cell, net.activation, net.num_layers, net.input_size, net.hidden_size,
                   net.output_size)  # fmt: skip


class Embedded(Reparametrized):
    """A backend (the protocol of :mod:`rnnlab.kernels`) for networks with an
    ``embedding``, made from one that runs the network without it."""

    @staticmethod
    def kernel_theta(net: Network, theta: np.ndarray) -> tuple[Network, np.ndarray]:
        """The kernels' network and flat vector: ``theta``'s parameters with ``W_xh``
        replaced by ``M = W_xh E^T (G H, I)``."""
        inner = kernel_network(net)
        flat = aligned_empty(inner.size, theta.dtype)
        ours = net.unpack(theta)
        for name, view in inner.unpack(flat).items():
            view[...] = ours[name] if name != "W_xh" else ours["W_xh"] @ ours["E"].T
        return inner, flat

    def forward(self, net, theta, x, *, states=False, initial=None, **path):
        inner, flat = self.kernel_theta(net, theta)
        return self.backend.forward(inner, flat, x, states=states, initial=initial, **path)

    def loss_and_grad(self, net, theta, x, y, mask, *, loss, reduction="mean", truncate=None,
                      initial=None, final=None, **path):  # fmt: skip
        inner, flat = self.kernel_theta(net, theta)
        value, inner_grad = self.backend.loss_and_grad(inner, flat, x, y, mask, loss=loss,
                                                       reduction=reduction, truncate=truncate,
                                                       initial=initial, final=final,
                                                       **path)  # fmt: skip
        grad = np.empty_like(theta)
        ours, d_ours, d_theirs = net.unpack(theta), net.unpack(grad), inner.unpack(inner_grad)
        for name, view in d_theirs.items():
            if name != "W_xh":
                d_ours[name][...] = view
        dM = d_theirs["W_xh"]  # (G H, I)
        d_ours["W_xh"][...] = dM @ ours["E"]  # (G H, D)
        d_ours["E"][...] = dM.T @ ours["W_xh"]  # (I, D)
        return value, grad
