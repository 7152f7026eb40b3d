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
from rnnlab.optim.rules import ADAM, SGD


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
def apply(update, theta, grad):
    """Clip ``grad`` and apply ``update`` (an :class:`~rnnlab.optim.rules.Update`) to
    ``theta (P,)`` in place; returns the norm before clipping (non-finite: no change)."""
    u = update
    norm = clip(grad, u.max_norm)
    if not math.isfinite(norm):
        return norm
    if u.rule == ADAM:
        # float powers: C's pow, as Python's ``beta1 ** float(step)``
        step_size = u.lr / (1.0 - u.beta1 ** float(u.step))
        root_correction = math.sqrt(1.0 - u.beta2 ** float(u.step))
        m, v = u.first, u.second
        for i in range(theta.shape[0]):
            g = grad[i] + u.weight_decay * theta[i] if u.weight_decay != 0.0 else grad[i]
            m[i] += (1.0 - u.beta1) * (g - m[i])
            v[i] = v[i] * u.beta2 + (1.0 - u.beta2) * g * g
            theta[i] -= step_size * (m[i] / (math.sqrt(v[i]) / root_correction + u.eps))
    elif u.rule == SGD:
        buf = u.first
        for i in range(theta.shape[0]):
            g = grad[i] + u.weight_decay * theta[i] if u.weight_decay != 0.0 else grad[i]
            if u.momentum != 0.0:
                buf[i] = buf[i] * u.momentum + g
                g = g + u.momentum * buf[i] if u.nesterov else buf[i]
            theta[i] -= u.lr * g
    else:
        raise ValueError("unknown update rule")
    return norm
