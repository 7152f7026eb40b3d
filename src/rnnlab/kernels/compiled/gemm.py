"""``C = A B + beta C`` in place, through the BLAS numba's ``np.dot`` calls.

``np.dot(A, B, out)`` can only overwrite ``out``; a product that adds into an array
(a step's recurrent term into the gates, a weight gradient into the accumulator)
then went through a scratch matrix and a loop that added it in: as many additions
as the product has outputs, at every step. :func:`gemm` hands BLAS its ``beta``
instead, through the same C helper ``np.dot`` uses (``numba_xxgemm``, which calls
scipy's ``sgemm``/``dgemm``), so it caches like any kernel.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

from rnnlab.kernels.compiled.math import inline

_CHAR, _INTP, _POINTER = ir.IntType(8), cgutils.intp_t, ir.IntType(8).as_pointer()
#: numba_xxgemm(kind, transa, transb, m, n, k, alpha*, a*, lda, b*, ldb, beta*, c*, ldc),
#: column-major as BLAS
_XXGEMM = ir.FunctionType(ir.IntType(32), [_CHAR, _CHAR, _CHAR, _INTP, _INTP, _INTP, _POINTER,
                                            _POINTER, _INTP, _POINTER, _INTP, _POINTER,
                                            _POINTER, _INTP])  # fmt: skip


def _operand(array_type) -> bool:
    return (
        isinstance(array_type, types.Array) and array_type.ndim == 2 and array_type.layout in "CF"
    )


@intrinsic
def _gemm(typingctx, a, b, c, beta):
    """c (m, n) = a (m, k) b (k, n) + beta c; see :func:`gemm`."""
    if not (_operand(a) and _operand(b) and _operand(c) and c.layout == "C"):
        return None
    if not (a.dtype == b.dtype == c.dtype and c.dtype in (types.float32, types.float64)):
        return None
    ensure_blas()

    def codegen(context, builder, signature, args):
        a_type, b_type, c_type, beta_type = signature.args
        A, B, C = (make_array(t)(context, builder, v)
                   for t, v in zip(signature.args[:3], args[:3], strict=True))  # fmt: skip
        m, k = cgutils.unpack_tuple(builder, A.shape, 2)
        n = cgutils.unpack_tuple(builder, B.shape, 2)[1]
        dtype = c_type.dtype
        alpha = cgutils.alloca_once_value(builder, context.get_constant(dtype, 1.0))
        scale = cgutils.alloca_once_value(builder, context.cast(builder, args[3], beta_type, dtype))

        def operand(array_type, array):
            # row-major C = A B is column-major C^T = B^T A^T: a C-contiguous operand is
            # its own transpose in BLAS's eyes ("n"), an F-contiguous one (a .T) is not
            rows, cols = cgutils.unpack_tuple(builder, array.shape, 2)
            if array_type.layout == "C":
                return ir.Constant(_CHAR, ord("n")), cols, array.data
            return ir.Constant(_CHAR, ord("t")), rows, array.data

        trans_b, ld_b, data_b = operand(b_type, B)
        trans_a, ld_a, data_a = operand(a_type, A)
        kind = ir.Constant(_CHAR, ord(get_blas_kind(dtype)))
        fn = cgutils.get_or_insert_function(builder.module, _XXGEMM, "numba_xxgemm")
        pointer = lambda value: builder.bitcast(value, _POINTER)  # noqa: E731
        result = builder.call(fn, (kind, trans_b, trans_a, n, m, k, pointer(alpha),
                                   pointer(data_b), ld_b, pointer(data_a), ld_a,
                                   pointer(scale), pointer(C.data), n))  # fmt: skip
        check_blas_return(context, builder, result)
        return context.get_dummy_value()

    return types.none(a, b, c, beta), codegen


@inline
def gemm(A, B, C, beta):
    """``C (m, n) = A (m, k) @ B (k, n) + beta C`` in place (``beta`` 1: add the product
    to ``C``). ``C`` C-contiguous; ``A``, ``B`` C-contiguous or transposes of such
    (``W.T``). An empty product leaves ``beta C``."""
    m, k = A.shape
    n = B.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                C[i, j] *= beta
        return
    _gemm(A, B, C, beta)
