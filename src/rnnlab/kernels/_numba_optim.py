"""Compiled optimizer steps on one flat parameter vector, gradient clipping included.

At ``H = 2`` a whole forward + backward pass takes a few microseconds, so an
optimizer step made of a dozen numpy calls per parameter array would cost more
than the pass. These do the clip and the update in one call; the update rules are
exactly :mod:`rnnlab.optim`'s (which are ``torch.optim``'s), entry by entry.

Each returns the gradient's global L2 norm before clipping and leaves everything
untouched when that norm is not finite (the caller decides what to do).
"""

from __future__ import annotations

import math

from rnnlab.kernels._numba_math import inline, kernel


@kernel
def clip(grad, max_norm):
    """Scale ``grad (P,)`` to norm at most ``max_norm`` (``<= 0``: never) as
    ``torch.nn.utils.clip_grad_norm_`` does; returns the norm before clipping."""
    total = 0.0
    for i in range(grad.shape[0]):
        total += grad[i] * grad[i]
    norm = math.sqrt(total)
    if max_norm > 0.0 and math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            for i in range(grad.shape[0]):
                grad[i] *= coef
    return norm


@kernel
def adam(theta, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
         max_norm):  # fmt: skip
    """One Adam step (bias-corrected, ``eps`` after the square root) at step count ``step``."""
    norm = clip(grad, max_norm)
    if not math.isfinite(norm):
        return norm
    # float powers: C's pow, as Python's ``beta1**step`` (numba's integer power rounds
    # differently in the last bit)
    step_size = lr / (1.0 - beta1 ** float(step))
    root_correction = math.sqrt(1.0 - beta2 ** float(step))
    for i in range(theta.shape[0]):
        g = grad[i] + weight_decay * theta[i] if weight_decay != 0.0 else grad[i]
        exp_avg[i] += (1.0 - beta1) * (g - exp_avg[i])
        exp_avg_sq[i] = exp_avg_sq[i] * beta2 + (1.0 - beta2) * g * g
        denom = math.sqrt(exp_avg_sq[i]) / root_correction + eps
        theta[i] -= step_size * (exp_avg[i] / denom)
    return norm


@kernel
def sgd(theta, grad, buffer, lr, momentum, nesterov, weight_decay, max_norm):
    """One SGD step; with ``momentum > 0`` the buffer ``b = mu b + g`` (starting from 0)."""
    norm = clip(grad, max_norm)
    if not math.isfinite(norm):
        return norm
    for i in range(theta.shape[0]):
        g = grad[i] + weight_decay * theta[i] if weight_decay != 0.0 else grad[i]
        if momentum != 0.0:
            buffer[i] = buffer[i] * momentum + g
            g = g + momentum * buffer[i] if nesterov else buffer[i]
        theta[i] -= lr * g
    return norm


#: update rules a fused training step can run (see :func:`step`)
ADAM, SGD = 0, 1


@inline
def step(rule, theta, grad, state_a, state_b, count, lr, beta1, beta2, eps, weight_decay,
         momentum, nesterov, max_norm):  # fmt: skip
    """Clip + the update ``rule`` at step number ``count``: Adam's moments are
    ``state_a``, ``state_b``; SGD's momentum buffer is ``state_a``. Returns the
    gradient norm before clipping."""
    if rule == ADAM:
        return adam(theta, grad, state_a, state_b, count, lr, beta1, beta2, eps, weight_decay,
                    max_norm)  # fmt: skip
    return sgd(theta, grad, state_a, lr, momentum, nesterov, weight_decay, max_norm)
