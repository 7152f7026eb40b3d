"""The seed notebook's own arithmetic, compiled: its 2-unit sigmoid RNN with the one-step
gradients it derived, operation for operation in its order, so every number it prints
comes out digit for digit (``1 / (1 + e**-z)`` and left-to-right products, as its
cells write them), about 6x faster than its Python (``benchmarks/notebook_cell.py``).

The weights stay in the core model's flat vector ``theta``; ``at (13,)`` holds the
index in ``theta`` of each of :data:`WEIGHTS`. Where the notebook's Python failed
(``e**-z`` overflowing, ``log(0)``) this saturates: ``sigmoid`` gives 0 and ``log(0)``
becomes ``log`` of :data:`rnnlab.functional.LOG_LOSS_EPS`.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.functional import LOG_LOSS_EPS
from rnnlab.kernels.compiled.math import kernel

#: the notebook's weights, in the order of ``at``
WEIGHTS = ("Wy_first", "Wy_second", "by", "Waa_first_1", "Waa_first_2", "ba_first",
           "Waa_second_1", "Waa_second_2", "ba_second", "Wax_first", "Wax_second",
           "a_first", "a_second")  # fmt: skip
#: the notebook's gradient tuple: the first 11 of WEIGHTS
GRADIENTS = 11


@kernel
def sigmoid(z):
    return 1 / (1 + (math.e**-z))


@kernel
def run(theta, at, x, a_first, a_second):
    """One step: ``(y_hat, a_first, a_second)`` (the notebook's ``RNN.run``)."""
    w = theta[at]
    first = sigmoid(w[3] * a_first + w[4] * a_second + w[9] * x + w[5])
    second = sigmoid(w[6] * a_first + w[7] * a_second + w[10] * x + w[8])
    y_hat = sigmoid(w[0] * first + w[1] * second + w[2])
    return y_hat, first, second


@kernel
def step_gradients(theta, at, x, y, a_first, a_second, out):
    """One step's gradients into ``out (11,)`` in the notebook's order (the previous state
    held fixed); returns ``(y_hat, a_first, a_second)`` (``RNN.forward_pass``)."""
    w = theta[at]
    y_hat, first, second = run(theta, at, x, a_first, a_second)
    out[0] = (y_hat - y) * first  # Wy_first
    out[1] = (y_hat - y) * second  # Wy_second
    out[2] = y_hat - y  # by
    d_first = (y_hat - y) * w[0] * first * (1 - first)  # ba_first
    d_second = (y_hat - y) * w[1] * second * (1 - second)  # ba_second
    out[3], out[4], out[5] = d_first * a_first, d_first * a_second, d_first
    out[6], out[7], out[8] = d_second * a_first, d_second * a_second, d_second
    out[9], out[10] = d_first * x, d_second * x  # Wax
    return y_hat, first, second


@kernel
def predict(theta, at, xs, out):
    """``out (T,)``: the output probability at each step of the sequence ``xs (T,)``."""
    a_first, a_second = theta[at[11]], theta[at[12]]
    for t in range(xs.shape[0]):
        out[t], a_first, a_second = run(theta, at, xs[t], a_first, a_second)


@kernel
def update_weights(theta, at, xs, ys, learning_rate):
    """One SGD step on one sequence with the summed one-step gradients; returns its loss,
    or -1 (and changes nothing) when an input is not finite."""
    for t in range(xs.shape[0]):
        if not math.isfinite(xs[t]):
            return -1.0
    sums = np.zeros(GRADIENTS)
    grads = np.empty(GRADIENTS)
    a_first, a_second = theta[at[11]], theta[at[12]]
    loss = 0.0
    for t in range(xs.shape[0]):
        y = ys[t]
        y_hat, a_first, a_second = step_gradients(theta, at, xs[t], y, a_first, a_second, grads)
        for k in range(GRADIENTS):
            sums[k] += grads[k]
        p = y_hat if y == 1 else 1 - y_hat
        loss += -math.log(p) if p > 0.0 else -math.log(LOG_LOSS_EPS)  # (its log(0) failed)
    for k in range(GRADIENTS):
        theta[at[k]] = theta[at[k]] - learning_rate * sums[k]
    return loss
