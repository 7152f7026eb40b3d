"""One optimizer update on a flat parameter vector, as data: :class:`Update`.

An optimizer hands its rule, hyperparameters and state arrays to a backend's
``train_step`` as an :class:`Update`; the backend applies it after its pass
(the compiled one inside the same compiled call, through
:func:`rnnlab.optim.compiled.apply`; the reference through :func:`apply`). The
rules are ``torch.optim``'s, entry by entry (see :mod:`rnnlab.optim`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

#: rules an :class:`Update` can name
ADAM, SGD = 0, 1


#: the numbers of an :class:`Update`, by index
RULE, STEP, LR, BETA1, BETA2, EPS, WEIGHT_DECAY, MOMENTUM, NESTEROV, MAX_NORM = range(10)


def _number(index: int, kind: type, doc: str) -> property:
    return property(lambda update: kind(update.numbers[index]), doc=doc)


class Update(NamedTuple):
    """Everything one flat step needs: ``theta -= rule(clip(grad))`` at step ``step``.

    ``numbers (10,)`` float64 holds the rule and its hyperparameters (indices
    ``RULE, STEP, LR, BETA1, BETA2, EPS, WEIGHT_DECAY, MOMENTUM, NESTEROV, MAX_NORM``;
    read them by name: ``update.lr``); ``first`` / ``second`` are the optimizer's state
    arrays, the shape of ``theta``, updated in place: Adam's ``exp_avg`` / ``exp_avg_sq``;
    SGD's momentum buffer as ``first`` (``second`` unused; both empty without momentum).
    Three arrays, so a compiled step takes it as three arguments (at ``H = 2`` each of
    ten scalars cost a compiled call as much as an array).
    """

    numbers: np.ndarray
    first: np.ndarray
    second: np.ndarray

    @classmethod
    def make(cls, rule: int, step: int, lr: float, *, beta1: float = 0.0, beta2: float = 0.0,
             eps: float = 0.0, weight_decay: float = 0.0, momentum: float = 0.0,
             nesterov: bool = False, max_norm: float = 0.0, first: np.ndarray,
             second: np.ndarray) -> Update:  # fmt: skip
        """An Update from its fields by name (``max_norm`` 0: no clipping)."""
        numbers = np.array([rule, step, lr, beta1, beta2, eps, weight_decay, momentum,
                            nesterov, max_norm], np.float64)  # fmt: skip
        return cls(numbers, first, second)

    rule = _number(RULE, int, "ADAM or SGD")
    step = _number(STEP, int, "the update this is, counted from 1")
    lr = _number(LR, float, "the learning rate")
    beta1 = _number(BETA1, float, "Adam's first-moment decay")
    beta2 = _number(BETA2, float, "Adam's second-moment decay")
    eps = _number(EPS, float, "Adam's epsilon")
    weight_decay = _number(WEIGHT_DECAY, float, "L2 penalty added to the gradient")
    momentum = _number(MOMENTUM, float, "SGD's momentum (0: none)")
    nesterov = _number(NESTEROV, bool, "SGD's Nesterov momentum")
    max_norm = _number(MAX_NORM, float, "clip the gradient's global L2 norm to this; 0: never")


def clip(grad: np.ndarray, max_norm: float) -> float:
    """Scale ``grad`` in place to norm at most ``max_norm`` (0: never), as
    ``torch.nn.utils.clip_grad_norm_``; returns the norm before clipping."""
    norm = float(np.linalg.norm(grad))
    if max_norm > 0.0 and math.isfinite(norm) and max_norm / (norm + 1e-6) < 1.0:
        grad *= max_norm / (norm + 1e-6)
    return norm


def apply(update: Update, theta: np.ndarray, grad: np.ndarray) -> float:
    """Clip ``grad`` and update ``theta`` in place (numpy); returns the norm before
    clipping. A non-finite norm changes nothing."""
    u = update
    norm = clip(grad, u.max_norm)
    if not math.isfinite(norm):
        return norm
    g = grad + u.weight_decay * theta if u.weight_decay else grad
    if u.rule == ADAM:
        m, v = u.first, u.second
        m += (1.0 - u.beta1) * (g - m)  # torch's lerp
        v *= u.beta2
        v += (1.0 - u.beta2) * g * g
        step_size = u.lr / (1.0 - u.beta1 ** float(u.step))
        denom = np.sqrt(v) / math.sqrt(1.0 - u.beta2 ** float(u.step)) + u.eps
        theta -= step_size * (m / denom)
    elif u.rule == SGD:
        if u.momentum:
            buf = u.first
            buf *= u.momentum
            buf += g  # b = mu b + g (b = g on the first step)
            g = g + u.momentum * buf if u.nesterov else buf
        theta -= u.lr * g
    else:
        raise ValueError(f"unknown update rule {u.rule!r}")
    return norm
