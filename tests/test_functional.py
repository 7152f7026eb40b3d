import warnings

import numpy as np
import pytest

from rnnlab import functional as F

EXTREMES = np.array([-1e308, -1000.0, -745.0, -40.0, -1.0, 0.0, 1.0, 40.0, 745.0, 1000.0, 1e308])


def test_sigmoid_never_overflows_or_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = F.sigmoid(EXTREMES)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[-1] == 1.0
    assert F.sigmoid(0.0) == 0.5
    np.testing.assert_allclose(F.sigmoid(-EXTREMES), 1.0 - s, atol=1e-16)


def test_sigmoid_matches_definition_where_that_is_safe():
    z = np.linspace(-30, 30, 101)
    np.testing.assert_allclose(F.sigmoid(z), 1.0 / (1.0 + np.exp(-z)), rtol=1e-15)


def test_sigmoid_accepts_integers():
    assert F.sigmoid(np.array([0, 1000]))[1] == 1.0


def test_softplus_is_stable_and_exact():
    z = EXTREMES
    sp = F.softplus(z)
    assert np.all(np.isfinite(sp))
    assert sp[-1] == 1e308 and sp[0] == 0.0
    small = np.linspace(-20, 20, 41)
    np.testing.assert_allclose(F.softplus(small), np.log1p(np.exp(small)), rtol=1e-14)


def test_bce_with_logits_equals_log_loss_of_sigmoid_where_finite():
    z = np.linspace(-15, 15, 31)
    for y in (0.0, 1.0):
        np.testing.assert_allclose(
            F.bce_with_logits(z, y), F.log_loss(F.sigmoid(z), y), rtol=1e-10, atol=1e-14
        )


def test_bce_with_logits_is_exact_where_probabilities_saturate():
    # sigmoid(-800) underflows to 0, but the loss of predicting 0 for a 1 is exactly 800
    assert F.bce_with_logits(np.array(-800.0), 1.0) == pytest.approx(800.0, rel=1e-15)
    assert F.bce_with_logits(np.array(800.0), 1.0) == 0.0


def test_log_loss_is_clipped_never_log_of_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = F.log_loss(np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    assert np.all(np.isfinite(values)) and np.all(values > 30)


@pytest.mark.parametrize(
    ("f", "df", "of_output"),
    [
        (F.sigmoid, F.sigmoid_derivative, True),
        (F.tanh, F.tanh_derivative, True),
        (F.relu, F.relu_derivative, True),
        (F.softplus, F.softplus_derivative, False),
    ],
)
def test_derivatives_match_central_differences(f, df, of_output):
    z = np.array([-3.0, -0.7, -0.1, 0.2, 0.9, 2.5])
    eps = 1e-6
    numeric = (f(z + eps) - f(z - eps)) / (2 * eps)
    analytic = df(f(z)) if of_output else df(z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-8, atol=1e-10)


def test_loss_derivatives_match_central_differences():
    z = np.array([-3.0, -0.5, 0.4, 2.0])
    eps = 1e-6
    for y in (0.0, 1.0):
        num = (F.bce_with_logits(z + eps, y) - F.bce_with_logits(z - eps, y)) / (2 * eps)
        np.testing.assert_allclose(F.bce_with_logits_derivative(z, y), num, rtol=1e-8)
        p = F.sigmoid(z)
        num = (F.log_loss(p + eps, y) - F.log_loss(p - eps, y)) / (2 * eps)
        np.testing.assert_allclose(F.log_loss_derivative(p, y), num, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_takes_each_form_on_its_side(dtype):
    """1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) below, bit for bit, in z's dtype."""
    z = (np.random.default_rng(0).normal(size=1000) * 30).astype(dtype)
    z[:4] = [0.0, -0.0, np.inf, -np.inf]
    e = np.exp(-np.abs(z))
    expected = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    got = F.sigmoid(z)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
