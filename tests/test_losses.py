import numpy as np
import pytest

from rnnlab.losses import LOSSES, loss_and_dlogits, loss_value, softmax


def _targets(name, rng, shape):
    if name == "bce":
        return rng.integers(0, 2, size=shape).astype(float)
    if name == "softmax":
        return np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    return rng.normal(size=shape)


def _scored(name, rng, shape, spread, scored):
    """Logits ``z`` of ``shape`` (times ``spread``), targets, and a mask scoring about
    ``scored`` of the steps."""
    z = rng.normal(size=shape) * spread
    return z, _targets(name, rng, shape), (rng.random(shape[:2]) < scored).astype(float)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_gradient_matches_central_differences(name, reduction, rng):
    z, y, mask = _scored(name, rng, (4, 3, 3), 2, 0.7)
    _, dz = loss_and_dlogits(name, z, y, mask, reduction)
    eps = 1e-6
    numeric = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += eps
        zm[i] -= eps
        numeric[i] = (
            loss_and_dlogits(name, zp, y, mask, reduction)[0]
            - loss_and_dlogits(name, zm, y, mask, reduction)[0]
        ) / (2 * eps)
    np.testing.assert_allclose(dz, numeric, rtol=1e-6, atol=1e-8)
    assert np.all(dz[mask == 0] == 0)


def test_mean_divides_by_scored_terms(rng):
    z = rng.normal(size=(5, 2, 3))
    y = _targets("bce", rng, z.shape)
    mask = np.zeros((5, 2))
    mask[1, 0] = mask[3, 1] = 1
    total, _ = loss_and_dlogits("bce", z, y, mask, "sum")
    mean, _ = loss_and_dlogits("bce", z, y, mask, "mean")
    assert mean == pytest.approx(total / 6)
    total, _ = loss_and_dlogits("softmax", z, np.eye(3)[[[0, 1]] * 5], mask, "sum")
    mean, _ = loss_and_dlogits("softmax", z, np.eye(3)[[[0, 1]] * 5], mask, "mean")
    assert mean == pytest.approx(total / 2)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])


def test_unknown_loss_and_reduction_are_named():
    z = np.zeros((1, 1, 1))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        loss_and_dlogits("hinge", z, z, np.ones((1, 1)))
    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        loss_and_dlogits("bce", z, z, np.ones((1, 1)), "max")


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_the_loss_alone_is_the_value_of_loss_and_dlogits(name, reduction, rng):
    """What an evaluation computes (no gradient): the same bits as the training value."""
    z, y, mask = _scored(name, rng, (6, 5, 3), 3, 0.6)
    value = loss_value(name, z, y, mask, reduction)
    assert value == loss_and_dlogits(name, z, y, mask, reduction)[0] and value > 0
    with pytest.raises(ValueError, match="unknown reduction"):
        loss_value(name, z, y, mask, "max")
