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

import ctypes
import importlib.util
import os
import sys

if importlib.util.find_spec("scipy") is None:  # not imported: numba does when np.dot runs
    raise ImportError("the compiled backend needs scipy: numba's np.dot calls BLAS through it")

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

#: heap memory glibc's malloc keeps (instead of returning it to the system) at the top
#: of the heap (``M_TOP_PAD``). The kernels allocate their work arrays on every call;
#: with glibc's default (128 kB) the freed arrays went back to the system and every
#: call page-faulted them in anew: an LSTM pass at H = 16, B = 32, T = 100 took 3.5 ms
#: instead of 2.4 ms. The cost: up to this much freed memory stays with the process.
#: Set the environment variable ``RNNLAB_HEAP_TOP_PAD`` (bytes; 0: glibc's default)
#: before importing rnnlab to change it. This is process-wide.
HEAP_TOP_PAD = 64 << 20
_PAD_SETTING = os.environ.get("RNNLAB_HEAP_TOP_PAD", "").strip()
if _PAD_SETTING.isdigit():
    HEAP_TOP_PAD = int(_PAD_SETTING)


def _keep_freed_heap(nbytes: int) -> None:
    """``mallopt(M_TOP_PAD, nbytes)`` where the C library is glibc (Linux); else nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(ctypes.c_int(-2), ctypes.c_int(nbytes))  # -2: M_TOP_PAD
    except (OSError, AttributeError):
        pass  # another C library: its own defaults


if HEAP_TOP_PAD > 0:
    _keep_freed_heap(HEAP_TOP_PAD)

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
