"""Checking analytic gradients against finite differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np


def numerical_grad(
    loss_fn, params: dict[str, np.ndarray], *, eps: float = 1e-3
) -> dict[str, np.ndarray]:
    """Fourth-order central differences of ``loss_fn()`` for every parameter entry.

    ``(-f(x+2e) + 8 f(x+e) - 8 f(x-e) + f(x-2e)) / 12e`` has truncation error
    ``O(e^4)``; with ``e = 1e-3`` both it and round-off stay near 1e-12 for
    losses of order one. ``params`` are perturbed in place and restored.
    """
    grads = {}
    for name, p in params.items():
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            values = []
            for step in (2.0, 1.0, -1.0, -2.0):
                p[i] = old + step * eps
                values.append(loss_fn())
            p[i] = old
            f2, f1, m1, m2 = values
            g[i] = (-f2 + 8.0 * f1 - 8.0 * m1 + m2) / (12.0 * eps)
        grads[name] = g
    return grads


def relative_error(analytic: np.ndarray, numeric: np.ndarray, *, floor: float) -> float:
    """Worst ``|a - n| / max(|a|, |n|, floor)`` over entries."""
    a, n = np.asarray(analytic), np.asarray(numeric)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)))


def gradcheck(
    model,
    X,
    Y=None,
    *,
    lengths=None,
    mask=None,
    truncate: int | None = None,
    reduction: str = "mean",
    eps: float = 1e-3,
    names=None,
) -> float:
    """The worst relative error of ``model.loss_and_grad`` against finite differences.

    Every entry of every parameter (or of ``names``) is compared; entries
    smaller than 1e-7 of the largest gradient entry are compared on that
    scale instead of their own, so round-off in a gradient that is zero does
    not read as an error. Runs in float64 whatever the model's dtype.

    ``truncate`` is not differentiable as written, so it must be ``None``.
    """
    if truncate is not None:
        raise ValueError("gradcheck compares full BPTT; truncated gradients are not derivatives")
    if (
        isinstance(eps, bool)
        or not isinstance(eps, int | float | np.number)
        or not (np.isfinite(eps) and eps > 0)
    ):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if model.config.dtype != "float64":  # the differences need float64's digits
        model = type(model).from_params(replace(model.config, dtype="float64"),
                                        dict(model.params), backend=model.backend)  # fmt: skip
    batch = model.batch(X, Y, lengths=lengths, mask=mask)
    _, analytic = model.loss_and_grad(batch, reduction=reduction)
    names = list(model.params) if names is None else list(names)
    params = {name: model.params[name] for name in names}

    def loss_fn() -> float:
        return model.loss(batch, reduction=reduction)

    numeric = numerical_grad(loss_fn, params, eps=eps)
    scale = max((float(np.max(np.abs(analytic[n]), initial=0.0)) for n in names), default=0.0)
    floor = max(1e-7 * scale, 1e-300)
    return max(relative_error(analytic[n], numeric[n], floor=floor) for n in names)
