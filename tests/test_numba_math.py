"""The compiled backend's own exp, expm1, sigmoid and tanh against numpy, to a few ulp."""

from __future__ import annotations

import numpy as np
import pytest

compiled_math = pytest.importorskip("rnnlab.kernels.compiled.math")
from numba import njit  # noqa: E402


def _elementwise(fn, dtype=np.float64):
    @njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    def call(x):
        out = np.empty(x.shape, dtype)
        apply(np.ascontiguousarray(x, dtype), out)
        return out

    return call


def _sigmoid_reference(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


SPECIAL = np.array([0.0, -0.0, -5e-324, -1e-300, -1e-17, -1e-8, -0.3465, -0.3466, -0.5, -1.0,
                    -20.0, -700.0, -708.4, -709.0, -740.0, -745.0, -745.2, -746.0, -1e4,
                    -np.inf])  # fmt: skip


def _nonpositive(rng):
    return np.concatenate([SPECIAL, -rng.exponential(2.0, 20_000), -rng.uniform(0, 745, 20_000)])


def _any_sign(rng):
    magnitudes = np.concatenate([SPECIAL, -rng.exponential(2.0, 20_000)])
    return np.concatenate([magnitudes, -magnitudes, [np.inf]])


def _ulps(a, b):
    """|a - b| in units of the last place of b (exact matches, zeros included, are 0)."""
    diff = np.abs(a - b)
    return np.where(diff == 0, 0.0, diff / np.spacing(np.abs(b)))


@pytest.mark.parametrize(
    ("name", "reference", "inputs", "max_ulps"),
    [
        ("exp_nonpositive", np.exp, _nonpositive, 2),
        ("expm1_nonpositive", np.expm1, _nonpositive, 2),
        ("sigmoid", _sigmoid_reference, _any_sign, 3),
        ("tanh", np.tanh, _any_sign, 3),
    ],
)
def test_matches_numpy_to_a_few_ulps(rng, name, reference, inputs, max_ulps):
    x = inputs(rng)
    got, want = _elementwise(getattr(compiled_math, name))(x), reference(x)
    normal = np.abs(want) >= np.finfo(np.float64).tiny
    assert _ulps(got[normal], want[normal]).max() <= max_ulps
    # below the normal range only the absolute error is meaningful
    assert np.abs(got[~normal] - want[~normal]).max(initial=0.0) <= 1e-320
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))


@pytest.mark.parametrize("name", ["exp_nonpositive", "expm1_nonpositive", "sigmoid", "tanh"])
def test_nan_stays_nan(name):
    assert np.isnan(_elementwise(getattr(compiled_math, name))(np.array([np.nan]))).all()


def test_saturation_is_exact():
    x = np.array([-800.0, -np.inf])
    assert (_elementwise(compiled_math.exp_nonpositive)(x) == 0.0).all()
    assert (_elementwise(compiled_math.expm1_nonpositive)(x) == -1.0).all()
    assert (_elementwise(compiled_math.tanh)(np.array([40.0, -40.0])) == [1.0, -1.0]).all()


FUNCTIONS = [
    ("exp_nonpositive", np.exp, _nonpositive),
    ("expm1_nonpositive", np.expm1, _nonpositive),
    ("sigmoid", _sigmoid_reference, _any_sign),
    ("tanh", np.tanh, _any_sign),
]


@pytest.mark.parametrize(("name", "reference", "inputs"), FUNCTIONS)
def test_float32_in_float32_to_a_few_ulps(rng, name, reference, inputs):
    """float32 arguments take float32 code (and return float32), accurate to its own ulps."""
    x = inputs(rng).astype(np.float32)
    got = _elementwise(getattr(compiled_math, name), np.float32)(x)
    want = reference(x.astype(np.float64))  # exact for the float32 inputs, then rounded
    normal = np.abs(want) >= np.finfo(np.float32).tiny
    spacing = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
    assert (np.abs(got[normal] - want[normal]) / spacing).max() <= 3
    assert (
        np.abs(got[~normal] - want[~normal]).max(initial=0.0)
        <= 2 * np.finfo(np.float32).smallest_subnormal
    )
    assert np.isnan(
        _elementwise(getattr(compiled_math, name), np.float32)(np.array([np.nan]))
    ).all()


def test_float32_code_promotes_nothing():
    from numba import types

    @njit(error_model="numpy")
    def results(x):
        return compiled_math.sigmoid(x), compiled_math.tanh(x), compiled_math.exp_nonpositive(-x)

    results(np.float32(0.3))
    results(0.3)
    returned = {sig.args[0]: sig.return_type for sig in results.nopython_signatures}
    assert returned[types.float32] == types.UniTuple(types.float32, 3)
    assert returned[types.float64] == types.UniTuple(types.float64, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [0, 1, 5])
def test_gemm_adds_its_product_in_place(dtype, k):
    """gemm: C = A B + beta C, for C-contiguous operands and transposed ones (``W.T``)."""
    from rnnlab.kernels.compiled.gemm import gemm

    @njit
    def plain(A, B, C, beta):
        gemm(A, B, C, beta)

    @njit
    def transposed(At, Bt, C, beta):
        gemm(At.T, Bt.T, C, beta)

    rng = np.random.default_rng(k)
    A, B = rng.normal(size=(4, k)).astype(dtype), rng.normal(size=(k, 3)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for beta in (1.0, 0.5, 0.0):
        for run, a, b in ((plain, A, B), (transposed, A.T.copy(), B.T.copy())):
            C = rng.normal(size=(4, 3)).astype(dtype)
            expected = A.astype(np.float64) @ B + beta * C
            run(a, b, C, beta)
            np.testing.assert_allclose(C, expected, rtol=tol, atol=tol)


def _helper():
    @njit
    def helper(index, flag):
        return index + 10 if flag else index - 10

    return helper


def test_unliteral_constants_compile_a_helper_once():
    """A constant argument is a type of its own to numba (``Literal[int](0)``): a helper
    called with constants and with variables compiles twice, and once when the
    constants are wrapped in ``unliteral``, which passes the values unchanged."""
    unliteral = compiled_math.unliteral
    literal, wrapped = _helper(), _helper()

    @njit
    def with_literals(x):
        return literal(0, True), literal(x, x > 0)

    @njit
    def with_unliteral(x):
        return wrapped(unliteral(0), unliteral(True)), wrapped(x, x > 0)

    assert with_literals(3) == with_unliteral(3) == (10, 13)
    assert len(literal.signatures) == 2
    assert len(wrapped.signatures) == 1


def test_fma_rounds_once():
    """(1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: the float32 product drops the last term, the
    fused multiply-add keeps it (in float32, and in float64 at its own scale)."""
    fma = compiled_math.fma

    @njit
    def fused(a, b, c):
        return fma(a, b, c)

    @njit
    def unfused(a, b, c):
        return a * b + c

    for dtype, bits in ((np.float32, 12), (np.float64, 27)):
        a, c = dtype(1 + 2.0**-bits), dtype(-(1 + 2.0 ** (1 - bits)))
        assert fused(a, a, c) == 2.0 ** (-2 * bits)
        assert unfused(a, a, c) == 0.0
    assert [str(s.return_type) for s in fused.nopython_signatures] == ["float32", "float64"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("K", "n"), [(1, 4), (1, 32), (2, 4), (3, 5), (5, 32), (0, 8), (1, 2)])
@pytest.mark.parametrize("biased", [True, False])
def test_product_set_gives_the_bits_of_a_bias_then_the_product_added(dtype, K, n, biased):
    """Its one pass from ``FEW`` (4) lanes on; no inputs or fewer lanes take the fill and
    :func:`product_add` themselves (checked here for the untouched lanes and the values)."""
    from rnnlab.kernels.compiled.products import product_add, product_set

    @njit(error_model="numpy")
    def in_one_pass(W, v, bias, biased, out, n):
        product_set(W, v, 1, bias, biased, out, n)

    @njit(error_model="numpy")
    def in_two(W, v, bias, biased, out, n):
        for j in range(W.shape[0]):
            for b in range(n):
                out[0, j, b] = bias[j] if biased else 0.0
        product_add(W, v, 1, out, 0, n)

    rng = np.random.default_rng(K * 100 + n)
    W, bias = rng.normal(size=(6, K)).astype(dtype), rng.normal(size=6).astype(dtype)
    v = rng.normal(size=(3, K, 32)).astype(dtype)
    one, two = (np.full((1, 6, 32), 7.0, dtype) for _ in range(2))
    in_one_pass(W, v, bias, biased, one, n)
    in_two(W, v, bias, biased, two, n)
    assert np.array_equal(one, two)
    assert (one[..., n:] == 7.0).all()  # lanes past n untouched
    expected = (bias if biased else 0 * bias)[:, None] + W.astype(np.float64) @ v[1, :, :n]
    np.testing.assert_allclose(one[0, :, :n], expected, rtol=1e-5, atol=1e-5)
