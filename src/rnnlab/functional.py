"""Numerically stable primitives and their derivatives.

Every function takes and returns float ndarrays (or numpy scalars) and never
overflows, warns or takes ``log(0)`` for any finite float64 input.
Derivatives of activations are written in terms of the activation's *output*
where that is cheaper (``sigmoid' = s (1 - s)``, ``tanh' = 1 - t^2``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LOG_LOSS_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] before the log


def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))`` without overflow.

    ``exp`` only ever sees non-positive arguments: for ``z < 0`` the
    equivalent form ``exp(z) / (1 + exp(z))`` is used.
    """
    z = _as_float(z)
    e = np.exp(-np.abs(z))  # in (0, 1]
    out = np.where(z >= 0, 1.0, e)  # the numerator of either form, over the same 1 + e
    out /= 1.0 + e
    return out


def sigmoid_derivative(s):
    """d sigmoid / dz, given the output ``s = sigmoid(z)``."""
    return s * (1.0 - s)


def tanh(z):
    """Hyperbolic tangent (numpy's is already stable)."""
    return np.tanh(z)


def tanh_derivative(t):
    """d tanh / dz, given the output ``t = tanh(z)``."""
    return 1.0 - t * t


def relu(z):
    """``max(z, 0)``."""
    return np.maximum(z, 0.0)


def relu_derivative(r):
    """d relu / dz, given the output ``r = relu(z)`` (0 at the kink)."""
    return (r > 0.0).astype(np.result_type(r, np.float32))


def softplus(z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def softplus_derivative(z):
    """d softplus / dz = sigmoid(z), given the *input* ``z``."""
    return sigmoid(z)


def bce_with_logits(z, y):
    """Binary cross-entropy of ``sigmoid(z)`` against ``y``, from the logits.

    ``-y log s - (1 - y) log(1 - s) = softplus(z) - y z``: exact for any
    finite ``z``, even where ``sigmoid(z)`` rounds to 0 or 1.
    """
    return softplus(z) - y * z


def bce_with_logits_derivative(z, y):
    """d bce_with_logits / dz = ``sigmoid(z) - y``."""
    return sigmoid(z) - y


def log_loss(p, y):
    """Binary cross-entropy on probabilities ``p``, clipped so ``log(0)`` never happens."""
    p = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))


def log_loss_derivative(p, y):
    """d log_loss / dp on the clipped probabilities."""
    p = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return (p - y) / (p * (1.0 - p))


def _as_float(z) -> np.ndarray:
    z = np.asarray(z)
    return z.astype(np.float64) if z.dtype.kind in "biu" else z


Activation = Callable[[np.ndarray], np.ndarray]

#: activation name -> function of the pre-activation
ACTIVATIONS: dict[str, Activation] = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}
#: activation name -> derivative as a function of the activation's output
DERIVATIVES: dict[str, Activation] = {
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
}
