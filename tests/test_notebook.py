"""The seed notebook's cells, run unchanged against rnnlab.notebook, print its numbers."""

import math

import numpy as np
import pytest

from rnnlab import notebook
from rnnlab.notebook import RNN, InvalidInputError, binarize, log_loss, sigmoid

REL = 1e-12


def test_initial_prediction_matches_the_notebook():
    model = RNN()
    assert model.predict([0, 1]) == pytest.approx(
        [0.007152809912960745, 0.9928144512645394], rel=REL
    )
    assert model.ba_first == 5  # the slip, kept as written


def test_first_update_prints_the_notebook_loss_and_changes_predictions(capsys):
    model = RNN()
    model.update_weights([1, 1], [0, 1], learning_rate=1, print_loss=True)
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["logistic", "loss"]
    assert float(printed[2]) == pytest.approx(0.014357029257883496, rel=REL)
    assert model.ba_first == 5.0  # one-step gradient of ba_first is 0: Wy_first == 0
    expected = [
        0.007153145366154462,
        0.992864501270733,
        0.9928970229907063,
        0.9928970229906062,
        0.992864502850085,
    ]
    assert model.predict([0, 1, 1, 0, 0]) == pytest.approx(expected, rel=REL)


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
    losses = [float(line.split()[-1]) for line in lines]
    expected = [9.928166952466437, 4.088919006446303, 2.9160551440223093, 2.8897309059567107]
    assert losses == pytest.approx(expected, rel=REL)


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
