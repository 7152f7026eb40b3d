"""How many threads BLAS runs on, during a compiled call.

numba's ``np.dot`` calls the OpenBLAS that scipy ships (``scipy_openblas``). OpenBLAS
splits a matrix-vector product over its threads from about 9,000 multiply-adds, and
waking the other thread of a 2-core machine for each of a sequence's small per-step
products costs more than it saves (GRU H = 64, one sequence of 100 steps: 390 us on
two threads, 300 us on one); BLAS blocks on threads want one BLAS thread per block.
:func:`limit` sets OpenBLAS's thread count (``openblas_set_num_threads_local``,
OpenBLAS 0.3.27+), and the caller restores it when the call returns. In the pthreads
builds scipy ships that function also sets the process's count (another Python
thread's BLAS calls during the call run on one thread too); nothing outlasts the
call. Where that BLAS is not found (an MKL or Accelerate build of scipy) it does
nothing.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

#: the shared-library names scipy's wheels give OpenBLAS, per platform
_PATTERNS = ("../scipy.libs/libscipy_openblas*.so", ".dylibs/libscipy_openblas*.dylib",
             "../scipy.libs/libscipy_openblas*.dll")  # fmt: skip


def _openblas(function: str):
    """The function ``function`` of scipy's OpenBLAS as a ctypes function, or None."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for pattern in _PATTERNS:
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                try:
                    return getattr(ctypes.CDLL(path), function)
                except (OSError, AttributeError):
                    continue
    return None


def _find_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` as a ctypes function, or None."""
    setter = _openblas("openblas_set_num_threads_local")
    if setter is not None:
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
    return setter


def core_name() -> str | None:
    """The CPU kernels OpenBLAS chose here (``"Zen"``, ``"Haswell"``...), or None: with
    them, the order in which its products sum."""
    get = _openblas("scipy_openblas_get_corename") or _openblas("openblas_get_corename")
    if get is None:
        return None
    get.argtypes, get.restype = [], ctypes.c_char_p
    return get().decode()


_SETTER = None
_LOOKED = False


def _setter():
    """The setter, looked for on first use: loading OpenBLAS (its threads start) takes
    35 ms, which a process whose networks never reach BLAS should not pay at import."""
    global _SETTER, _LOOKED
    if not _LOOKED:
        _SETTER, _LOOKED = _find_setter(), True
    return _SETTER


def available() -> bool:
    """Whether :func:`limit` can change anything here."""
    return _setter() is not None


def limit(threads: int) -> int:
    """Run BLAS calls on ``threads`` threads (0: OpenBLAS's own count); returns the
    previous setting, for :func:`limit` to restore."""
    setter = _setter()
    return setter(threads) if setter is not None else 0
