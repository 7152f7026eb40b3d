"""The compiled backend: one numba driver for every cell, size and path.

Implements the backend protocol of :mod:`rnnlab.kernels` with the kernels of
:mod:`.driver` (which way a batch runs: :mod:`.sizes`). Cells without compiled
math are refused. Importing this module fails (so ``backend="auto"`` falls back
to numpy) when numba is missing or cannot reach BLAS, which its ``np.dot``
needs (through scipy).
"""

from __future__ import annotations

import importlib.util

import numpy as np

if importlib.util.find_spec("scipy") is None:  # not imported: numba does when np.dot runs
    raise ImportError("the compiled backend needs scipy: numba's np.dot calls BLAS through it")

from rnnlab.kernels.compiled import driver, sizes
from rnnlab.kernels.layout import Network
from rnnlab.kernels.registry import LOSS_CODES
from rnnlab.losses import check_reduction
from rnnlab.optim.rules import Update

name = "numba"

_DIMS: dict[tuple, np.ndarray] = {}


def _dims(net: Network) -> np.ndarray:
    """The network's integers in :data:`driver.DIMS` order (made once per network)."""
    dims = _DIMS.get(net.key)
    if dims is None:
        if net.cell not in sizes.TABLE:
            raise ValueError(f"the compiled backend has no kernels for cell {net.cell!r}")
        spec = net.spec
        dims = _DIMS[net.key] = np.array(
            [spec.code, net.activation_code, net.num_layers, net.input_size, net.hidden_size,
             net.output_size, spec.gates, spec.tape, spec.recurrent_bias is not None,
             spec.cell_state], dtype=np.int64,
        )  # fmt: skip
    return dims


def forward(net: Network, theta: np.ndarray, x: np.ndarray, *, states: bool = False,
            path: sizes.Path | None = None):  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels`; ``path``: which way to run the batch
    (default :func:`.sizes.choose`'s)."""
    dims = _dims(net)
    x = np.ascontiguousarray(x, dtype=theta.dtype)
    _check(net, theta, x)
    path = path or sizes.choose(net.cell, net.hidden_size, x.shape[1])
    logits, h, c = driver.forward(x, theta, dims, net.offsets, net.head, path.lanes,
                                  path.use_blas, states)  # fmt: skip
    if not states:
        return logits, None, None
    return logits, h, (c if net.spec.cell_state else None)


def _check(net, theta, x, y=None, mask=None):
    """The kernels index by these shapes unchecked: refuse any that do not fit."""
    if theta.shape != (net.size,) or theta.dtype.kind != "f" or theta.dtype.itemsize < 4:
        raise ValueError(f"theta must be a float32/float64 vector of {net.size} numbers")
    if x.ndim != 3 or x.shape[2] != net.input_size:
        raise ValueError(f"x must be (T, B, {net.input_size}), got {x.shape}")
    T, B = x.shape[0], x.shape[1]
    if y is not None and y.shape != (T, B, net.output_size):
        raise ValueError(f"y must be {(T, B, net.output_size)}, got {y.shape}")
    if mask is not None and mask.shape != (T, B):
        raise ValueError(f"mask must be {(T, B)}, got {mask.shape}")


def _arguments(net, theta, x, y, mask, loss, reduction, truncate, path):
    dims = _dims(net)
    dtype = theta.dtype
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    mask = np.ascontiguousarray(mask, dtype=dtype)
    _check(net, theta, x, y, mask)
    if loss not in LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSS_CODES)}")
    check_reduction(reduction)
    T, B = x.shape[0], x.shape[1]
    path = path or sizes.choose(net.cell, net.hidden_size, B)
    k = 0 if truncate is None or truncate >= T else int(truncate)
    return (x, y, mask, theta, dims, net.offsets, net.head, LOSS_CODES[loss],
            reduction == "mean", k, path.lanes, path.use_blas, path.parallel)  # fmt: skip


def loss_and_grad(net: Network, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                  mask: np.ndarray, *, loss: str, reduction: str = "mean",
                  truncate: int | None = None, path: sizes.Path | None = None,
                  ) -> tuple[float, np.ndarray]:  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels` (``path`` as in :func:`forward`)."""
    value, grad = driver.loss_and_grad(
        *_arguments(net, theta, x, y, mask, loss, reduction, truncate, path)
    )
    return float(value), grad


def train_step(net: Network, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
               mask: np.ndarray, *, loss: str, reduction: str = "mean",
               truncate: int | None = None, update: Update,
               path: sizes.Path | None = None) -> tuple[float, float]:  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels`: pass and update in one compiled call."""
    value, norm = driver.train_step(
        *_arguments(net, theta, x, y, mask, loss, reduction, truncate, path), *update
    )
    return float(value), float(norm)
