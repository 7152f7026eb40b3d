"""How many threads BLAS runs on, for the calling thread only.

numba's ``np.dot`` calls the OpenBLAS that scipy ships (``scipy_openblas``). OpenBLAS
splits a matrix-vector product over its threads from about 9,000 multiply-adds, and
waking the other thread of a 2-core machine for each of a sequence's small per-step
products costs more than it saves (GRU H = 64, one sequence of 100 steps: 390 us on
two threads, 300 us on one). :func:`limit` sets OpenBLAS's thread count for the
calling thread alone (``openblas_set_num_threads_local``, OpenBLAS 0.3.27+), so no
other thread and no process-wide setting changes; where that BLAS is not found (an
MKL or Accelerate build of scipy) it does nothing.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from rnnlab.kernels.compiled.math import inline

#: the shared-library names scipy's wheels give OpenBLAS, per platform
_PATTERNS = ("../scipy.libs/libscipy_openblas*.so", ".dylibs/libscipy_openblas*.dylib",
             "../scipy.libs/libscipy_openblas*.dll")  # fmt: skip


def _find_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` as a ctypes function, or None."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for pattern in _PATTERNS:
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                try:
                    setter = ctypes.CDLL(path).openblas_set_num_threads_local
                except (OSError, AttributeError):
                    continue
                setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
                return setter
    return None


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
    """Run this thread's BLAS calls on ``threads`` threads (0: OpenBLAS's own count);
    returns the previous setting, for :func:`limit` to restore."""
    setter = _setter()
    return setter(threads) if setter is not None else 0


def setter_address() -> int:
    """The address of OpenBLAS's ``openblas_set_num_threads_local`` (0 where it is not
    found), for compiled code on worker threads: :func:`limit_here`."""
    setter = _setter()
    return 0 if setter is None else ctypes.cast(setter, ctypes.c_void_p).value


@intrinsic
def _call_setter(typingctx, address, threads):
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        function = builder.inttoptr(args[0], ir.FunctionType(i32, [i32]).as_pointer())
        return builder.sext(builder.call(function, [builder.trunc(args[1], i32)]),
                            ir.IntType(64))  # fmt: skip

    return types.int64(types.int64, types.int64), codegen


@inline
def limit_here(address, threads):
    """Compiled code's :func:`limit` on the thread that runs it, through the setter at
    ``address`` (:func:`setter_address`; 0: does nothing and returns 0). The address is
    an argument, not a constant, so the functions that call it stay cacheable."""
    return _call_setter(address, threads) if address != 0 else 0
