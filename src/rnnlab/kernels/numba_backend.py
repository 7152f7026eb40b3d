"""The compiled backend: numba kernels with the reference's signatures.

``forward``, ``hidden_states`` and ``loss_and_grad`` take and return exactly what
:mod:`rnnlab.kernels.numpy_ref` does (``forward``'s tape holds the hidden
sequences only). Every cell (Elman, GRU, LSTM), activation, layer count, loss,
reduction, truncation and mask is compiled; anything else is delegated to the
reference. See :mod:`rnnlab.kernels._numba_loops` for how the passes run.

Importing this module fails (so ``backend="auto"`` falls back to numpy) when numba
is missing or cannot reach BLAS, which its ``np.dot`` needs (through scipy).
"""

from __future__ import annotations

import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls BLAS through scipy

from rnnlab.kernels._numba_dispatch import (
    FlatParams,
    Plan,
    forward,
    fused_train_step,
    get_plan,
    hidden_states,
    loss_and_grad,
    loss_and_grad_flat,
    pack,
)

__all__ = [
    "FlatParams",
    "Plan",
    "forward",
    "fused_train_step",
    "get_plan",
    "hidden_states",
    "loss_and_grad",
    "loss_and_grad_flat",
    "pack",
]  # fmt: skip
