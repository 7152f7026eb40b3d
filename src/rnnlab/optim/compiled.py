"""The compiled twin of :func:`rnnlab.optim.rules.apply`: clip and update in one loop.

At ``H = 2`` a whole training pass takes a few microseconds, so an update made of
a dozen numpy calls would cost more than the pass; this one is a single compiled
call, and the compiled backend calls it from inside its own pass (one call per
training step). It imports nothing of rnnlab but the kernel decorator, so the
backends below the optimizers can use it.
"""

from __future__ import annotations

import math

from rnnlab.kernels.compiled.math import kernel
from rnnlab.optim.rules import (
    ADAM,
    BETA1,
    BETA2,
    EPS,
    LR,
    MAX_NORM,
    MOMENTUM,
    NESTEROV,
    RULE,
    SGD,
    STEP,
    WEIGHT_DECAY,
)


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
def apply(numbers, first, second, theta, grad):
    """Clip ``grad`` and apply the update of an :class:`~rnnlab.optim.rules.Update`
    (``numbers``, ``first``, ``second``) to ``theta (P,)`` in place; returns the norm
    before clipping (non-finite: no change)."""
    norm = clip(grad, numbers[MAX_NORM])
    if not math.isfinite(norm):
        return norm
    rule, step, lr, weight_decay = numbers[RULE], numbers[STEP], numbers[LR], numbers[WEIGHT_DECAY]
    if rule == ADAM:
        beta1, beta2, eps = numbers[BETA1], numbers[BETA2], numbers[EPS]
        # float powers: C's pow, as Python's ``beta1 ** float(step)``
        step_size = lr / (1.0 - beta1**step)
        root_correction = math.sqrt(1.0 - beta2**step)
        m, v = first, second
        for i in range(theta.shape[0]):
            g = grad[i] + weight_decay * theta[i] if weight_decay != 0.0 else grad[i]
            m[i] += (1.0 - beta1) * (g - m[i])
            v[i] = v[i] * beta2 + (1.0 - beta2) * g * g
            theta[i] -= step_size * (m[i] / (math.sqrt(v[i]) / root_correction + eps))
    elif rule == SGD:
        momentum, nesterov = numbers[MOMENTUM], numbers[NESTEROV] != 0.0
        buf = first
        for i in range(theta.shape[0]):
            g = grad[i] + weight_decay * theta[i] if weight_decay != 0.0 else grad[i]
            if momentum != 0.0:
                buf[i] = buf[i] * momentum + g
                g = g + momentum * buf[i] if nesterov else buf[i]
            theta[i] -= lr * g
    else:
        raise ValueError("unknown update rule")
    return norm
