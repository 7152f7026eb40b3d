"""Losses on the output layer's logits, with their exact gradients.

Each loss maps logits ``z (T, B, O)``, targets ``y (T, B, O)`` and a loss mask
``(T, B)`` to a scalar and ``dloss/dz (T, B, O)``. Masked steps contribute
nothing to either.

=========  =============================  =====================  ==============
name       per-step loss                  dloss/dz               outputs
=========  =============================  =====================  ==============
bce        sum_o softplus(z) - y z        sigmoid(z) - y         sigmoid(z)
softmax    logsumexp(z) - sum_o y z       softmax(z) - y         softmax(z)
mse        sum_o (z - y)^2                2 (z - y)              z
=========  =============================  =====================  ==============

``reduction="mean"`` (the default everywhere in rnnlab) divides the sum by the
number of scored terms: scored steps times ``O`` for the element-wise losses
(``bce``, ``mse``, as PyTorch does), scored steps for ``softmax``; ``"sum"``
adds every scored term (the notebook's choice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnlab.functional import bce_with_logits, sigmoid

REDUCTIONS = ("sum", "mean")


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the max so ``exp`` never overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


@dataclass(frozen=True)
class Loss:
    """A loss on logits: per-step values, gradient and the model's output transform."""

    name: str
    step_loss: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (T,B,O),(T,B,O) -> (T,B)
    dlogits: Callable[[np.ndarray, np.ndarray], np.ndarray]  # -> (T,B,O)
    output: Callable[[np.ndarray], np.ndarray]  # logits -> probabilities / values
    elementwise: bool  # True: "mean" counts O terms per step


LOSSES: dict[str, Loss] = {
    "bce": Loss(
        "bce",
        lambda z, y: bce_with_logits(z, y).sum(axis=-1),
        lambda z, y: sigmoid(z) - y,
        sigmoid,
        elementwise=True,
    ),
    "softmax": Loss(
        "softmax",
        lambda z, y: _logsumexp(z) - (y * z).sum(axis=-1),
        lambda z, y: softmax(z) - y,
        softmax,
        elementwise=False,
    ),
    "mse": Loss(
        "mse",
        lambda z, y: ((z - y) ** 2).sum(axis=-1),
        lambda z, y: 2.0 * (z - y),
        lambda z: z,
        elementwise=True,
    ),
}


def get_loss(name: str) -> Loss:
    """The loss called ``name``; a clear ``ValueError`` for unknown names."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):  # (TypeError: an unhashable name, e.g. a list)
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose 'sum' or 'mean'")


def loss_value(
    name: str, z: np.ndarray, y: np.ndarray, mask: np.ndarray, reduction: str = "mean"
) -> float:
    """The masked, reduced loss alone: :func:`loss_and_dlogits`' value (the same bits),
    without the gradient (what an evaluation needs)."""
    loss, scale = _loss_and_scale(name, z, mask, reduction)
    return _value(loss, z, y, mask, scale)


def loss_and_dlogits(
    name: str, z: np.ndarray, y: np.ndarray, mask: np.ndarray, reduction: str = "mean"
) -> tuple[float, np.ndarray]:
    """Masked, reduced loss and its gradient with respect to the logits.

    Parameters
    ----------
    z : ndarray of shape (T, B, O)
        Logits.
    y : ndarray of shape (T, B, O)
        Targets (one-hot rows for ``softmax``).
    mask : ndarray of shape (T, B)
        Weight of each step's loss: 1 scored, 0 ignored (padding or unscored).
    """
    loss, scale = _loss_and_scale(name, z, mask, reduction)
    dz = loss.dlogits(z, y) * (mask[..., None] * scale)  # (T, B, O)
    return _value(loss, z, y, mask, scale), dz


def _loss_and_scale(name: str, z: np.ndarray, mask: np.ndarray, reduction: str):
    """The :class:`Loss` called ``name`` and the factor ``reduction`` scales its sum by (1,
    or one over the number of scored terms)."""
    loss = get_loss(name)
    check_reduction(reduction)
    scale = 1.0
    if reduction == "mean":
        count = mask.sum() * (z.shape[-1] if loss.elementwise else 1)
        scale = 1.0 / max(float(count), 1.0)
    return loss, scale


def _value(loss: Loss, z: np.ndarray, y: np.ndarray, mask: np.ndarray, scale: float) -> float:
    """The masked loss sum of logits ``z (T, B, O)``, times ``scale``: one expression for
    both callers, so an evaluation's loss has the bits of a training pass's."""
    return float((loss.step_loss(z, y) * mask).sum()) * scale
