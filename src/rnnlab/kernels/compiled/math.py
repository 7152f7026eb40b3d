"""Elementary functions the compiled loops can vectorize: exp, expm1, sigmoid, tanh.

``math.exp`` and ``math.tanh`` compile to calls into the C library, one element at a
time (numba has no vector math library on this machine), and a loop that calls them
cannot use SIMD registers. The functions here are plain arithmetic, branch-free
(selects only), so a loop over units or over the batch runs 4 (float64) or 8
(float32) elements at once with AVX2, twice as many with AVX-512: ``tanh`` over an
array costs about 5 ns per element in float64 instead of 17 ns. They are accurate to
a few units in the last place of float64 (checked against numpy in the tests), so the
compiled backend still agrees with the numpy reference to 1e-12. float32 arguments
take float32 twins (a degree-6 polynomial, twice the lanes per instruction, no
conversions; a few float32 ulps), so float32 kernels compute their cells in float32;
lane sums (a loss, a gradient) still accumulate in float64.

Every loop that uses them must be compiled with ``error_model="numpy"``: under the
default (Python's) error model each division checks for zero and raises, and that
branch alone stops vectorization. LLVM may not fuse their multiply-adds (no
``fastmath={"contract"}``): whether it fuses ``a * b + c`` depends on what it inlined
where, so the bits can depend on how a kernel came to be compiled; with it, a
sweep's worker processes trained to other bits than the test process that ran the
same runs (``tests/test_sweeps.py``, in the whole suite only). The float32 twins fuse
where they say so instead (:func:`fma`, always one rounding, wherever inlined): a
float32 sigmoid over a (256, 32) block (an LSTM's gates at H = 64) took 0.21 ns per
value against 0.31 unfused.

The method (as in the C libraries): for ``x <= 0`` write ``x = n ln2 + r`` with an
integer ``n`` and ``|r| <= ln2 / 2``; then ``exp(x) = 2**n exp(r)``, ``exp(r) - 1`` is
a degree-13 Taylor polynomial (truncation error below 1e-17 relative, evaluated
by Estrin's scheme) and ``2**n``
is built from its bits.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

#: the decorator of every compiled loop: cached on disk, and numpy's error model (see above)
kernel = partial(njit, cache=True, error_model="numpy")
#: the same, for small helpers of the loops. LLVM inlines them where it pays (the loops
#: still vectorize).
inline = partial(njit, cache=True, error_model="numpy")
#: :data:`inline`, for sums over the lanes of a block: reassociated, so that they
#: vectorize (a sum in order is one serial chain of additions; the order changes only
#: the rounding, and the same code always sums in the same order)
summing = partial(njit, cache=True, error_model="numpy", fastmath={"reassoc"})
#: numba's own inlining, for the step functions the time loops call with arrays (the
#: cells' steps, the loss): LLVM leaves those large bodies as calls, and numba takes and
#: drops a reference to every array argument around each call. Inlined, and ending in
#: :func:`hold`, they cost nothing of the kind. Also for the thin layers between an
#: entry point and the pass: each compiled function links in and optimizes again all
#: it calls, so every layer of its own cost a first run 10-15 s per dtype. (It retypes
#: every call site, so it is kept to these few.)
inline_always = partial(njit, cache=True, error_model="numpy", inline="always")


@inline
def hold(*arrays):
    """The last use of ``arrays``, for a function that branches: put it where every
    branch ends.

    numba takes a reference to each array argument (and to each array in a tuple
    argument) on entry and drops it after the array's last use. When every last use
    is in the one block that all paths reach and no call lies between, LLVM's pass
    removes the pair; when one array's last use sits in a branch, every pair of the
    function stays: two atomic operations per array per call, which were 60% of the
    time of a step at ``H = 2`` (the time loops call these helpers once per step). So
    helpers that take arrays and branch end with ``hold(...)`` of all of them, return
    at one place, and do not raise (codes are checked at the entry points).
    """
    return 0


@intrinsic
def unliteral(typingctx, value):
    """``value`` as a value of its type, not as the constant it is, for an argument of a
    compiled helper.

    numba compiles a function once per combination of argument types, and a constant is
    a type of its own (``Literal[int](0)``, ``Literal[bool](True)``): a helper called
    with ``0`` at one call site and with a variable at another was compiled twice, and
    each copy linked and optimized again into every function above it. Call sites that
    pass a constant to a helper that other sites call with a variable wrap it in
    ``unliteral`` (named after numba's ``types.unliteral``).
    """
    value_type = types.unliteral(value)

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], signature.return_type)

    return value_type(value), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two: n * _LN2_HI is exact for |n| < 2**11
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer, kept in the low bits
_ROUND_BITS = 0x4338000000000000  # the bits of _ROUND
_EXPONENT_BIAS = 1023
_SMALLEST = -745.5  # exp of anything below rounds to 0.0


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE bits of a float64, as an int64 (no conversion)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@inline
def _expm1_parts(x):
    """For float ``x <= 0``: ``(q, s1, s2)`` with ``exp(x) = (1 + q) s1 s2`` and
    ``q = exp(r) - 1`` small; ``s1 s2 = 2**n`` (split so each factor stays normal)."""
    x = max(x, _SMALLEST)
    shifted = x * _LOG2E + _ROUND  # the rounding happens here
    n = shifted - _ROUND  # round(x / ln 2), a float
    n_int = _float_bits(shifted) - _ROUND_BITS  # the same, as an integer
    r = (x - n * _LN2_HI) - n * _LN2_LO  # |r| <= ln2 / 2
    # q = r p(r), p(r) = sum_k r^k / (k + 1)!, k = 0..12, by Estrin's scheme: pairs, then
    # pairs of pairs, so a lone call waits on 5 dependent steps instead of Horner's 13
    r2 = r * r
    r4 = r2 * r2
    pair0 = 1.0 + r * 0.5
    pair1 = 1.0 / 6.0 + r * (1.0 / 24.0)
    pair2 = 1.0 / 120.0 + r * (1.0 / 720.0)
    pair3 = 1.0 / 5040.0 + r * (1.0 / 40320.0)
    pair4 = 1.0 / 362880.0 + r * (1.0 / 3628800.0)
    pair5 = 1.0 / 39916800.0 + r * (1.0 / 479001600.0)
    low = (pair0 + pair1 * r2) + (pair2 + pair3 * r2) * r4
    high = (pair4 + pair5 * r2) + (1.0 / 6227020800.0) * r4
    q = r * (low + high * (r4 * r4))
    half = n_int >> 1
    s1 = _bits_float((half + _EXPONENT_BIAS) << 52)
    s2 = _bits_float((n_int - half + _EXPONENT_BIAS) << 52)
    return q, s1, s2


@inline
def _exp_nonpositive64(x):
    """``exp(x)`` for ``x <= 0`` (or NaN), as a float64."""
    x = float(x)
    q, s1, s2 = _expm1_parts(x)
    value = ((1.0 + q) * s1) * s2
    return value if x == x else x  # NaN stays NaN


@inline
def _expm1_nonpositive64(x):
    """``exp(x) - 1`` for ``x <= 0`` (or NaN), accurate near 0, as a float64."""
    x = float(x)
    q, s1, s2 = _expm1_parts(x)
    s = s1 * s2
    value = s * q + (s - 1.0)
    return value if x == x and x != 0.0 else x  # NaN stays NaN, -0.0 stays -0.0


@inline
def _sigmoid64(z):
    e = _exp_nonpositive64(-abs(z))
    top = 1.0 if z >= 0.0 else e
    return top / (1.0 + e)


@inline
def _tanh64(z):
    d = _expm1_nonpositive64(-2.0 * abs(z))  # e - 1, in (-1, 0]
    return math.copysign(d / (2.0 + d), z)


# -- float32: the same method in float32 arithmetic ------------------------------------------
#
# Twice the lanes of float64 per instruction, a degree-6 polynomial (Cephes' expf)
# instead of 13, and no conversions: float32 loops run these instead (see the dispatch
# below). Constants are float32 scalars, so nothing is promoted to float64.

_F = np.float32
_LOG2E_32 = _F(1.4426950408889634)
_LN2_HI_32 = _F(0.693359375)  # 9 bits: n * _LN2_HI_32 is exact for |n| < 2**15
_LN2_LO_32 = _F(-2.12194440e-4)
_ROUND_32 = _F(12582912.0)  # 1.5 * 2**23
_SMALLEST_32 = _F(-104.0)  # exp of anything below rounds to 0.0 in float32
_EXPM1_32 = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))  # fmt: skip
_ZERO_32, _ONE_32, _TWO_32 = _F(0.0), _F(1.0), _F(2.0)


@intrinsic
def _powers_of_two_32(typingctx, shifted):
    """(s1, s2), float32 with ``s1 s2 = 2**n`` where ``n`` sits in the low bits of
    ``shifted = x / ln2 + 1.5 * 2**23`` (each factor half of ``n``: both stay normal)."""
    if shifted != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        n = builder.sub(builder.bitcast(args[0], i32), i32(0x4B400000))
        half = builder.ashr(n, i32(1))
        factors = []
        for k in (half, builder.sub(n, half)):
            bits = builder.shl(builder.add(k, i32(127)), i32(23))
            factors.append(builder.bitcast(bits, ir.FloatType()))
        return context.make_tuple(builder, signature.return_type, factors)

    return types.UniTuple(types.float32, 2)(types.float32), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``fma``: the same bits wherever it is inlined;
    one instruction on CPUs with FMA3, Haswell on, elsewhere a slower C library call),
    for three floats of one type."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@inline
def _expm1_parts_32(x):
    """:func:`_expm1_parts` in float32, its multiply-adds fused."""
    x = max(x, _SMALLEST_32)
    shifted = fma(x, _LOG2E_32, _ROUND_32)
    n = shifted - _ROUND_32
    r = fma(n, -_LN2_LO_32, fma(n, -_LN2_HI_32, x))  # |r| <= ln2 / 2
    p = _EXPM1_32[0]
    for c in _EXPM1_32[1:]:
        p = fma(p, r, c)
    q = fma(r * r, p, r)
    s1, s2 = _powers_of_two_32(shifted)
    return q, s1, s2


@inline
def _exp_nonpositive32(x):
    q, s1, s2 = _expm1_parts_32(x)
    value = ((_ONE_32 + q) * s1) * s2
    return value if x == x else x


@inline
def _expm1_nonpositive32(x):
    q, s1, s2 = _expm1_parts_32(x)
    s = s1 * s2
    value = fma(s, q, s - _ONE_32)
    return value if x == x and x != _ZERO_32 else x


@inline
def _sigmoid32(z):
    e = _exp_nonpositive32(-abs(z))
    top = _ONE_32 if z >= _ZERO_32 else e
    return top / (_ONE_32 + e)


@inline
def _tanh32(z):
    d = _expm1_nonpositive32(-_TWO_32 * abs(z))
    return math.copysign(d / (_TWO_32 + d), z)


# -- by type: float32 arguments take the float32 code, anything else float64's ------------


def _by_type(float32, float64, doc):
    """A function for compiled code only: ``float32(x)`` for a float32 ``x``, else
    ``float64(x)`` (plain functions of ``x``, compiled where they are called)."""

    def function(x):
        raise TypeError("compiled code only")

    function.__doc__ = doc

    @overload(function, jit_options={"error_model": "numpy"})
    def _typed(x):
        return float32 if x == types.float32 else float64

    return function


one = _by_type(
    lambda x: _ONE_32,
    lambda x: 1.0,
    "1 in ``x``'s precision (a literal 1.0 makes float32 math float64).",
)
zero = _by_type(lambda x: _ZERO_32, lambda x: 0.0, "0 in ``x``'s precision.")
exp_nonpositive = _by_type(
    lambda x: _exp_nonpositive32(x),
    lambda x: _exp_nonpositive64(x),
    "``exp(x)`` for ``x <= 0`` (or NaN).",
)
expm1_nonpositive = _by_type(
    lambda x: _expm1_nonpositive32(x),
    lambda x: _expm1_nonpositive64(x),
    "``exp(x) - 1`` for ``x <= 0`` (or NaN), accurate near 0.",
)
sigmoid = _by_type(
    lambda x: _sigmoid32(x),
    lambda x: _sigmoid64(x),
    "``1 / (1 + exp(-z))`` without overflow: exp only sees ``-|z|``.",
)
tanh = _by_type(
    lambda x: _tanh32(x),
    lambda x: _tanh64(x),
    "``sign(z) (1 - e) / (1 + e)``, ``e = exp(-2|z|)``, through expm1.",
)


# -- for loops that do not vectorize ---------------------------------------------------
#
# One value at a time (a row of a generic cell, a step of a single sequence) the C
# library's exp is faster than the polynomial above (about 12 ns against 18 ns per
# dependent call here), so those loops use these.


@inline
def sigmoid_scalar(z):
    """:func:`sigmoid` through the C library's ``exp``."""
    e = math.exp(-abs(z))
    top = 1.0 if z >= 0.0 else e
    return top / (1.0 + e)


@inline
def tanh_scalar(z):
    """:func:`tanh` through the C library's ``expm1`` (faster than its ``tanh`` here)."""
    d = math.expm1(-2.0 * abs(z))
    return math.copysign(d / (2.0 + d), z)
