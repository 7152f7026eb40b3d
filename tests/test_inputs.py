"""Bad input gets a ValueError that names the problem; good input in every accepted layout."""

import numpy as np
import pytest

import rnnlab


@pytest.fixture
def model():
    return rnnlab.RNN(seed=0)


@pytest.mark.parametrize(
    ("X", "Y", "message"),
    [
        ([[0, 1, 1]], [[0, 2, 1]], "targets must be 0 or 1"),
        ([[0, 1, 1]], [[0, 0.5, 1]], "targets must be 0 or 1"),
        ([[0, 1, 1]], [[0, 1]], "X has 3 steps but Y has 2"),
        ([[0, 1, 1], [1]], [[0, 1, 1]], "Y has 1 sequences but X has 2"),
        ([], [], "X holds no sequences"),
        ([[]], [[]], "X\\[0\\] is empty"),
        ([[0, np.nan]], [[0, 1]], "X\\[0\\] contains NaN or infinite"),
        ([[0, np.inf]], [[0, 1]], "X\\[0\\] contains NaN or infinite"),
        ([[0, 1]], [[0, np.nan]], "Y\\[0\\] contains NaN or infinite"),
        ([0, 1, 1], [0, 1, 1], "single number"),
        ([[[0, 1], [1, 0]]], [[0, 1]], "should have 1 value"),
        ([["a", "b"]], [[0, 1]], "not a sequence of numbers"),
    ],
)
def test_bad_data_is_named(model, X, Y, message):
    with pytest.raises(ValueError, match=message):
        model.loss_and_grad(X, Y)


def test_bad_arrays_and_lengths_are_named(model):
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.4"):
        model.predict(x, lengths=np.array([5, 2]))
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        model.predict(x, lengths=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="lengths= is only for padded arrays"):
        model.predict([[0, 1]], lengths=[2])
    with pytest.raises(ValueError, match=r"shape \(B, T\) or \(B, T, 1\)"):
        model.predict(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="holds no sequences"):
        model.predict(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="Y has 3 sequences but X has 2"):
        model.loss_and_grad(x, np.zeros((3, 4)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "softsign"}, "unknown activation 'softsign'"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"input_size": -1}, "input_size must be a positive integer"),
        ({"output_size": 1.5}, "output_size must be a positive integer"),
        ({"num_layers": 0}, "num_layers must be a positive integer"),
        ({"cell": "transformer"}, "unknown cell 'transformer'"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"backend": "cuda"}, "unknown backend 'cuda'"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
    ],
)
def test_bad_model_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.RNN(**kwargs)


@pytest.mark.parametrize("truncate", [0, -2, 1.5, True])
def test_bad_truncation_and_reduction(model, truncate):
    with pytest.raises(ValueError, match="truncate must be a positive integer"):
        model.loss_and_grad([[0, 1]], [[0, 0]], truncate=truncate)


def test_bad_reduction_and_missing_targets(model):
    with pytest.raises(ValueError, match="unknown reduction"):
        model.loss_and_grad([[0, 1]], [[0, 0]], reduction="max")
    with pytest.raises(ValueError, match="needs targets"):
        model.loss_and_grad([[0, 1]])


def test_outputs_follow_the_input_layout():
    model = rnnlab.RNN(2, 3, 2, activation="tanh", seed=1)
    X = [[[0, 1], [1, 1], [0.5, 0]], [[1, 0]]]
    proba = model.predict_proba(X)
    assert [len(s) for s in proba] == [3, 1] and len(proba[0][0]) == 2
    bits = model.predict(X)
    assert all(v in (0, 1) for s in bits for step in s for v in step)
    one = rnnlab.RNN(seed=1)
    assert isinstance(one.predict([[0, 1, 1]])[0][0], int)
    assert one.predict([[0, 1, 1]], threshold=0.0) == [[1, 1, 1]]
    assert one.predict(np.array([[0, 1, 1]])).shape == (1, 3)
