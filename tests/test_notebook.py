"""The seed notebook's cells, run unchanged against rnnlab.notebook, print its numbers:
the same digits (its outputs are compared exactly, as printed)."""

import math

import numpy as np
import pytest

from rnnlab import notebook
from rnnlab.kernels.layout import FlatParams
from rnnlab.notebook import RNN, InvalidInputError, binarize, log_loss, sigmoid

REL = 1e-12


def test_initial_prediction_matches_the_notebook():
    model = RNN()
    assert model.predict([0, 1]) == [0.007152809912960745, 0.9928144512645394]
    assert model.ba_first == 5  # the slip, kept as written


def test_first_update_prints_the_notebook_loss_and_changes_predictions(capsys):
    model = RNN()
    model.update_weights([1, 1], [0, 1], learning_rate=1, print_loss=True)
    assert capsys.readouterr().out == "logistic loss 0.014357029257883496\n"
    assert model.ba_first == 5.0  # one-step gradient of ba_first is 0: Wy_first == 0
    expected = [
        0.007153145366154462,
        0.992864501270733,
        0.9928970229907063,
        0.9928970229906062,
        0.992864502850085,
    ]
    assert model.predict([0, 1, 1, 0, 0]) == expected


def test_training_loop_prints_the_notebook_losses(capsys):
    model = RNN()
    model.update_weights([1, 1], [0, 1], learning_rate=1, print_loss=True)
    # In [45], with 3,001 iterations instead of 1,000,000
    for i in range(3001):
        print_loss = False
        if i % 1000 == 0:
            print_loss = True

        model.update_weights(
            [0, 1, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 0, 1, 1, 1, 1],
            learning_rate=0.01,
            print_loss=print_loss,
        )
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    expected = [9.928166952466437, 4.088919006446303, 2.9160551440223093, 2.8897309059567107]
    assert lines == [f"logistic loss {loss!r}" for loss in expected]


def test_attributes_read_and_write_the_core_parameters():
    model = RNN()
    assert model.core.params["b_h"][0] == 5.0
    model.ba_first = -5  # the fix the notebook's comment asks for
    assert model.core.params["b_h"][0] == -5.0
    model.core.params["W_hh"][1, 0] = 3.0
    assert model.Waa_second_1 == 3.0


def test_fixed_notebook_weights_shift_long_strings():
    model = RNN()
    model.ba_first = -5
    bits = list(np.random.default_rng(0).integers(0, 2, 1000))
    assert binarize(model.predict(bits)) == [0, *bits[:-1]]


def test_run_and_forward_pass_are_one_step_of_the_notebook():
    model = RNN()
    model.ba_first = -1.3
    model.Wy_first = 0.7
    a1, a2, x, y = 0.3, 0.6, 1, 0
    y_hat, n1, n2 = model.run(x, a1, a2)
    # the notebook's own formulas, in plain Python
    e1 = 1 / (1 + math.exp(-(0 * a1 + 0 * a2 + 10 * x - 1.3)))
    e2 = 1 / (1 + math.exp(-(10 * a1 + 0 * a2 + 0 * x - 5)))
    ey = 1 / (1 + math.exp(-(0.7 * e1 + 10 * e2 - 5)))
    assert (y_hat, n1, n2) == pytest.approx((ey, e1, e2), rel=1e-14)
    gradients, g1, g2, gy = model.forward_pass(x, y, a1, a2)
    expected = (
        notebook.Wy_derivative(ey, y, e1),
        notebook.Wy_derivative(ey, y, e2),
        notebook.by_derivative(ey, y),
        notebook.Waa_derivative(ey, y, 0.7, e1, a1),
        notebook.Waa_derivative(ey, y, 0.7, e1, a2),
        notebook.ba_derivative(ey, y, 0.7, e1),
        notebook.Waa_derivative(ey, y, 10, e2, a1),
        notebook.Waa_derivative(ey, y, 10, e2, a2),
        notebook.ba_derivative(ey, y, 10, e2),
        notebook.Wax_derivative(ey, y, 0.7, e1, x),
        notebook.Wax_derivative(ey, y, 10, e2, x),
    )
    assert gradients == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert (gy, g1, g2) == pytest.approx((ey, e1, e2), rel=1e-14)


def test_where_the_notebook_crashed_rnnlab_does_what_was_meant():
    assert sigmoid(-1000) == 0.0  # math.e**1000 overflowed
    assert sigmoid(1000) == 1.0
    assert issubclass(InvalidInputError, ValueError)
    with pytest.raises(InvalidInputError):
        log_loss(0.5, 2)  # InvalidInputError was undefined: a NameError
    with pytest.raises(InvalidInputError):
        RNN().update_weights([0, 1], [0, 0.5])
    assert math.isfinite(log_loss(1.0, 0)) and math.isfinite(log_loss(0.0, 1))


def test_log_loss_matches_the_notebook_definition():
    assert log_loss(0.8, 1) == pytest.approx(-math.log(0.8), rel=1e-15)
    assert log_loss(0.8, 0) == pytest.approx(-math.log(0.2), rel=1e-14)


def test_make_shift_data_is_the_notebooks_data():
    X, y = notebook.make_shift_data(n=200, rng=np.random.default_rng(5))
    assert len(X) == len(y) == 200
    assert {len(s) for s in X} <= set(range(4, 11)) and len({len(s) for s in X}) > 3
    for seq, target in zip(X, y, strict=True):
        assert set(seq) <= {0, 1}
        assert target == [0, *seq[:-1]]
    again, _ = notebook.make_shift_data(n=200, rng=np.random.default_rng(5))
    assert again == X


def test_update_is_the_cores_one_step_gradient(capsys):
    """The compiled notebook step is the core's truncate=1 loss, gradient and SGD step."""
    rng = np.random.default_rng(3)
    model = RNN()
    model.core.params.flat[:] = rng.normal(size=model.core.params.flat.shape)
    x, y = [0, 1, 1, 0, 1, 0, 0], [0, 0, 1, 1, 0, 1, 0]
    loss, grads = model.core.loss_and_grad([x], [y], truncate=1, reduction="sum")
    before = model.core.params.flat.copy()
    model.update_weights(x, y, learning_rate=0.1, print_loss=True)
    step = FlatParams(model.core.network, before - model.core.params.flat)
    for name in ("W_xh", "W_hh", "b_h", "W_hy", "b_y"):
        np.testing.assert_allclose(step[name], 0.1 * grads[name], rtol=1e-12, atol=1e-15)
    assert np.array_equal(step["h0"], [0.0, 0.0])
    assert float(capsys.readouterr().out.split()[-1]) == pytest.approx(loss, rel=1e-12)


def test_bad_sequences_change_nothing():
    model = RNN()
    before = model.core.params.flat.copy()
    with pytest.raises(InvalidInputError):
        model.update_weights([0, 1], [0, 2])
    with pytest.raises(ValueError, match="x_input contains NaN"):
        model.update_weights([0, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="x_input has 2 steps but y_input has 1"):
        model.update_weights([0, 1], [0])
    assert np.array_equal(model.core.params.flat, before)
