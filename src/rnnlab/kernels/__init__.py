"""Backends: the numpy reference (the specification) and compiled kernels.

A backend is a module with ``forward``, ``hidden_states`` and
``loss_and_grad`` of the signatures in :mod:`rnnlab.kernels.numpy_ref`.
"""

from __future__ import annotations

from types import ModuleType

BACKENDS = ("auto", "numpy", "numba")


def get_backend(name: str) -> ModuleType:
    """The kernel module for ``name``: ``"numpy"``, ``"numba"`` or ``"auto"``.

    ``"auto"`` takes the compiled kernels when numba imports and works,
    otherwise the numpy reference.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name in ("numba", "auto"):
        try:
            from rnnlab.kernels import numba_backend
        except ImportError as err:
            if name == "numba":
                raise ValueError(f"backend 'numba' is not available: {err}") from None
        else:
            return numba_backend
    from rnnlab.kernels import numpy_ref

    return numpy_ref
