"""Matrix products over a block of sequences laid out lanes last.

Operands are addressed as ``v[t]`` of a 3-D array ``v (T, rows, m)`` (index
``tv``), so the time loops pass whole arrays and build no views per step (at
``H = 2`` a view costs as much as a step's arithmetic). Two ways: blocks of
lanes (small ``H``) run plain loops with the sequence index innermost, which
vectorize (or, for fewer than ``FEW`` sequences, units innermost); a whole
batch at larger ``H`` calls BLAS (the ``blas_`` functions: :func:`.gemm.gemm`, which
adds its product into the output). The driver picks one at each call: a function holding both
would put a call into every step of the loops' way, and with it the reference
counting of all its arrays (:func:`.math.hold`).

Weight gradients are summed in an accumulator ``acc (P, m)`` laid out as the flat
parameter vector: per lane (``m = n``: no reduction inside the time loop, which
would serialize on one accumulator) for loops, or ``m = 1`` for BLAS, where the
steps of a sweep of fewer than :data:`THIN` sequences are gathered
(:func:`gather_step`) into products of about :data:`GATHER` columns.
"""

from __future__ import annotations

from rnnlab.kernels.compiled.gemm import gemm
from rnnlab.kernels.compiled.math import hold, inline, summing, zero
from rnnlab.kernels.compiled.views import view

#: columns (steps x sequences) a BLAS sweep gathers before one weight-gradient product
GATHER = 256
#: ... when a step has fewer columns (sequences) than this; from here on a product per
#: step, added into the accumulator by BLAS itself, costs less than gathering
THIN = 16

#: inputs (outputs) below which a BLAS block's input (output-layer) products run as loops
NARROW = 8

#: below this many lanes the loops run sequence by sequence, units innermost (a loop
#: over 1-3 lanes costs more in loop control than in arithmetic)
FEW = 4


@inline
def product_add(W, v, tv, out, to, n):
    """out[to, :, :n] += W (J, K) @ v[tv, :, :n] (K, n)."""
    J, K = W.shape
    if n < FEW:
        for b in range(n):
            for k in range(K):
                vk = v[tv, k, b]
                for j in range(J):
                    out[to, j, b] += W[j, k] * vk
    else:
        for j in range(J):
            for k in range(K):
                w = W[j, k]
                for b in range(n):
                    out[to, j, b] += w * v[tv, k, b]
    hold(W, v, out)


@inline
def product_set(W, v, tv, bias, biased, out, n):
    """out[0, :, :n] = (bias (J,) if ``biased`` else 0) + W (J, K) @ v[tv, :, :n] (K, n):
    the bias filled in and :func:`product_add` in one pass over ``out`` (a step's
    narrow input product), in the same order, so to the same bits."""
    J, K = W.shape
    if n < FEW or K == 0:
        for j in range(J):
            for b in range(n):
                out[0, j, b] = bias[j] if biased else zero(bias[j])
        product_add(W, v, tv, out, 0, n)
    else:
        for j in range(J):
            start, w = bias[j] if biased else zero(bias[j]), W[j, 0]
            for b in range(n):
                out[0, j, b] = start + w * v[tv, 0, b]
            for k in range(1, K):
                w = W[j, k]
                for b in range(n):
                    out[0, j, b] += w * v[tv, k, b]
    hold(W, v, bias, out)


@inline
def product_t_add(W, v, tv, out, to, n):
    """out[to, :, :n] += W (J, K)^T @ v[tv, :, :n] (J, n)."""
    J, K = W.shape
    if n < FEW:
        for b in range(n):
            for j in range(J):
                vj = v[tv, j, b]
                for k in range(K):
                    out[to, k, b] += W[j, k] * vj
    else:
        for j in range(J):
            for k in range(K):
                w = W[j, k]
                for b in range(n):
                    out[to, k, b] += w * v[tv, j, b]
    hold(W, v, out)


@inline
def blas_product_add(A, V, out, to):
    """out[to] (J, m) += A (J, K) @ V (K, m) through BLAS (a BLAS block is the whole
    batch: all ``m`` lanes are in use)."""
    gemm(A, V, out[to], 1.0)


@summing
def outer_accumulate(u, tu, v, tv, acc, offset, n, summed):
    """The gradient of a (J, K) weight at ``offset`` += u[tu] (J, n) v[tv] (K, n)^T: per
    lane (``acc (P, m)``), or ``summed`` over lanes into column 0 (BLAS blocks)."""
    J, K = u.shape[1], v.shape[1]
    if summed:
        for j in range(J):
            for k in range(K):
                total = 0.0
                for b in range(n):
                    total += u[tu, j, b] * v[tv, k, b]
                acc[offset + j * K + k, 0] += total
    elif n < FEW:
        for b in range(n):
            for j in range(J):
                uj = u[tu, j, b]
                row = offset + j * K
                for k in range(K):
                    acc[row + k, b] += uj * v[tv, k, b]
    else:
        for j in range(J):
            for k in range(K):
                row = offset + j * K + k
                for b in range(n):
                    acc[row, b] += u[tu, j, b] * v[tv, k, b]
    hold(u, v, acc)


@inline
def blas_outer_accumulate(U, V, acc, offset):
    """acc[offset:, 0] += U (J, n) V (K, n)^T, laid out row by row, through BLAS."""
    gemm(U, V.T, view(acc, offset, (U.shape[0], V.shape[0])), 1.0)


@inline
def gather_step(src, dst, g, n):
    """dst (J, k n)[:, g n : (g + 1) n] = src (J, m)[:, :n]: step ``g`` of a gathered product."""
    for j in range(src.shape[0]):
        for b in range(n):
            dst[j, g * n + b] = src[j, b]


@summing
def rows_accumulate(u, tu, acc, offset, n, summed):
    """The gradient of a (J,) vector at ``offset`` += u[tu] (J, n): per lane, or
    ``summed`` over lanes into column 0 (BLAS blocks)."""
    if summed:
        for j in range(u.shape[1]):
            total = 0.0
            for b in range(n):
                total += u[tu, j, b]
            acc[offset + j, 0] += total
    else:
        for j in range(u.shape[1]):
            for b in range(n):
                acc[offset + j, b] += u[tu, j, b]
    hold(u, acc)


@inline
def add_columns(W, ids, t, out, n):
    """out[0] (J, m) += W (J, K)[:, ids[t, b]] in lanes ``b < n``: the product with one-hot
    rows (index -1: a zero row, nothing added)."""
    for j in range(W.shape[0]):
        for b in range(n):
            k = int(ids[t, b])
            if k >= 0:
                out[0, j, b] += W[j, k]
    hold(W, ids, out)


@inline
def scatter_columns(u, tu, ids, t, acc, offset, K, n, summed):
    """The gradient of a (J, K) weight at ``offset`` += u[tu] (J, n) times one-hot rows
    ``ids[t]`` (:func:`outer_accumulate` with them): column ``ids[t, b]`` of row ``j``
    gets ``u[tu, j, b]``, per lane (``acc (P, m)``) or ``summed`` into column 0."""
    for j in range(u.shape[1]):
        for b in range(n):
            k = int(ids[t, b])
            if k >= 0:
                acc[offset + j * K + k, 0 if summed else b] += u[tu, j, b]
    hold(u, ids, acc)
