"""Exact BPTT: finite differences, padding, truncation, and the notebook's gradient."""

import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import random_sequences

import rnnlab
from rnnlab import notebook
from rnnlab.kernels.layout import FlatParams


def _model_and_data(activation, hidden, inputs, outputs, lengths, *, layers=1, seed=0):
    model = rnnlab.RNN(inputs, hidden, outputs, activation=activation, num_layers=layers, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for p in model.params.values():  # random everything, h0 and biases included
        p += rng.normal(scale=0.3, size=p.shape)
    X = random_sequences(rng, lengths, inputs)
    Y = random_sequences(rng, lengths, outputs, binary=True)
    return model, X, Y


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize(
    ("hidden", "inputs", "outputs", "lengths", "layers"),
    [
        (1, 1, 1, [4], 1),
        (2, 1, 1, [6, 3, 5], 1),
        (5, 3, 2, [7, 2, 4], 1),
        (3, 2, 3, [5, 6], 2),
        (2, 2, 1, [4, 3], 3),
    ],
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradients_match_finite_differences(
    activation, hidden, inputs, outputs, lengths, layers, reduction
):
    model, X, Y = _model_and_data(activation, hidden, inputs, outputs, lengths, layers=layers)
    assert rnnlab.gradcheck(model, X, Y, reduction=reduction) < 1e-6


def test_gradcheck_catches_a_wrong_gradient():
    model, X, Y = _model_and_data("tanh", 3, 2, 1, [5, 4])
    assert rnnlab.gradcheck(model, X, Y) < 1e-6
    real = model.kernels

    def off_by_a_bit(net, *args, **kwargs):
        loss, grad = real.loss_and_grad(net, *args, **kwargs)
        FlatParams(net, grad)["W_hh"][0, 1] *= 1.0001
        return loss, grad

    # a backend of its own (the protocol: name, forward, loss_and_grad, train_step)
    model.kernels = types.SimpleNamespace(
        name="wrong", forward=real.forward, loss_and_grad=off_by_a_bit,
        train_step=real.train_step,
    )  # fmt: skip
    assert rnnlab.gradcheck(model, X, Y) > 1e-5


def test_target_mask_scores_only_chosen_steps():
    model, X, Y = _model_and_data("tanh", 3, 1, 1, [5, 4])
    mask = [[0, 0, 0, 0, 1], [0, 1, 0, 1]]
    assert rnnlab.gradcheck(model, X, Y, mask=mask) < 1e-6
    # the masked loss is exactly the sum of the chosen steps' losses
    p = model.predict_proba(X)
    expected = -np.log(p[0][4] if Y[0][4, 0] else 1 - p[0][4])
    expected += sum(-np.log(p[1][t] if Y[1][t, 0] else 1 - p[1][t]) for t in (1, 3))
    assert model.loss(X, Y, mask=mask, reduction="sum") == pytest.approx(expected, rel=1e-12)
    assert model.loss(X, Y, mask=mask) == pytest.approx(expected / 3, rel=1e-12)  # the mean


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_padding_changes_nothing(activation):
    model, X, Y = _model_and_data(activation, 3, 2, 2, [6, 2, 4], layers=2)
    loss, grads = model.loss_and_grad(X, Y, reduction="sum")
    alone = [model.loss_and_grad([x], [y], reduction="sum") for x, y in zip(X, Y, strict=True)]
    assert loss == pytest.approx(sum(a[0] for a in alone), rel=1e-13)
    for name, g in grads.items():
        np.testing.assert_allclose(g, sum(a[1][name] for a in alone), rtol=1e-12, atol=1e-14)
    together = model.predict_proba(X)
    for x, out in zip(X, together, strict=True):
        np.testing.assert_allclose(model.predict_proba([x])[0], out, rtol=1e-14)


def test_padded_arrays_with_lengths_equal_lists():
    model, X, Y = _model_and_data("tanh", 3, 2, 1, [5, 3])
    xa = np.zeros((2, 5, 2))
    ya = np.zeros((2, 5))
    for b, (x, y) in enumerate(zip(X, Y, strict=True)):
        xa[b, : len(x)] = x
        ya[b, : len(y)] = y[:, 0]
    lengths = np.array([5, 3])
    loss_list, grads_list = model.loss_and_grad(X, Y)
    loss_arr, grads_arr = model.loss_and_grad(xa, ya, lengths=lengths)
    assert loss_arr == loss_list
    for name in grads_list:
        np.testing.assert_array_equal(grads_arr[name], grads_list[name])
    proba = model.predict_proba(xa, lengths=lengths)
    assert proba.shape == (2, 5) and np.all(proba[1, 3:] == 0)
    np.testing.assert_allclose(proba[1, :3], model.predict_proba(X)[1])


def _notebook_gradient_sum(model, xs, ys):
    """The notebook's hand-derived gradients, summed over the sequence, in plain Python."""
    nb = notebook.RNN()
    for key in model.params:
        nb.core.params[key][...] = model.params[key]
    a1, a2 = nb.a_first, nb.a_second
    total = np.zeros(11)
    for x, y in zip(xs, ys, strict=True):
        grads, a1, a2, _ = nb.forward_pass(x, y, a1, a2)
        total += grads
    return dict(zip(notebook.steps.WEIGHTS[: notebook.steps.GRADIENTS], total, strict=True))


def test_truncate_1_is_the_notebooks_gradient_and_full_bptt_is_not():
    model, _, _ = _model_and_data("sigmoid", 2, 1, 1, [1], seed=3)
    xs, ys = [0, 1, 1, 0, 1, 1, 0], [0, 0, 1, 1, 0, 1, 1]
    _, one_step = model.loss_and_grad([xs], [ys], truncate=1, reduction="sum")
    _, full = model.loss_and_grad([xs], [ys], reduction="sum")
    expected = _notebook_gradient_sum(model, xs, ys)
    for name, value in expected.items():
        key, index = notebook._NAMES[name]
        assert one_step[key][index] == pytest.approx(value, rel=1e-12, abs=1e-15)
    assert not np.allclose(full["W_hh"], one_step["W_hh"], rtol=1e-3)
    assert one_step["W_hy"] == pytest.approx(full["W_hy"], rel=1e-15)  # the head is local


def _brute_force_truncated(model, x, y, k):
    """Sum over steps t of dL_t/dparams with the state entering step t-k+1 held constant."""
    T = len(x)
    states = model.hidden_states([x]).h  # (L, 1, T, H)
    total = {name: np.zeros_like(p) for name, p in model.params.items()}
    for t in range(T):
        start = max(0, t - k + 1)
        window = rnnlab.RNN.from_params(model.config, model.params, backend="numpy")
        if start > 0:
            for layer, hs in enumerate(states):
                window.params["h0" if layer == 0 else f"h0_l{layer}"] = hs[0, start - 1]
        mask = [[0] * (t - start) + [1]]
        _, g = window.loss_and_grad(
            [x[start : t + 1]], [y[start : t + 1]], mask=mask, reduction="sum"
        )
        for name in total:
            if not (name.startswith("h0") and start > 0):
                total[name] += g[name]
    return total


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("layers", [1, 2])
def test_truncate_k_equals_its_definition(k, layers):
    model, X, Y = _model_and_data("tanh", 3, 2, 1, [7], layers=layers)
    _, grads = model.loss_and_grad(X, Y, truncate=k, reduction="sum")
    expected = _brute_force_truncated(model, X[0], Y[0], k)
    for name in grads:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-11, atol=1e-14)


def test_truncate_at_least_the_length_is_full_bptt():
    model, X, Y = _model_and_data("sigmoid", 2, 1, 1, [5, 3])
    _, full = model.loss_and_grad(X, Y)
    _, long = model.loss_and_grad(X, Y, truncate=5)
    for name in full:
        np.testing.assert_allclose(long[name], full[name], rtol=1e-13)


@given(
    activation=st.sampled_from(["sigmoid", "tanh"]),
    hidden=st.integers(1, 6),
    inputs=st.integers(1, 3),
    outputs=st.integers(1, 3),
    lengths=st.lists(st.integers(1, 8), min_size=1, max_size=4),
    layers=st.integers(1, 2),
    seed=st.integers(0, 2**31),
)
def test_property_padding_and_directional_derivative(
    activation, hidden, inputs, outputs, lengths, layers, seed
):
    model, X, Y = _model_and_data(
        activation, hidden, inputs, outputs, lengths, layers=layers, seed=seed
    )
    loss, grads = model.loss_and_grad(X, Y, reduction="sum")
    # a sequence alone == the same sequence inside the padded batch
    alone = sum(model.loss([x], [y], reduction="sum") for x, y in zip(X, Y, strict=True))
    assert loss == pytest.approx(alone, rel=1e-12)
    # <grad, v> against a central difference along a random direction v
    rng = np.random.default_rng(seed)
    direction = {n: rng.normal(size=p.shape) for n, p in model.params.items()}
    eps = 1e-5
    values = []
    for sign in (1, -1):
        for n, p in model.params.items():
            p += sign * eps * direction[n]
        values.append(model.loss(X, Y, reduction="sum"))
        for n, p in model.params.items():
            p -= sign * eps * direction[n]
    numeric = (values[0] - values[1]) / (2 * eps)
    analytic = sum(float(np.sum(grads[n] * direction[n])) for n in grads)
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_same_seed_same_model_bit_for_bit():
    a = rnnlab.RNN(2, 4, 1, activation="tanh", seed=7)
    b = rnnlab.RNN(2, 4, 1, activation="tanh", seed=7)
    c = rnnlab.RNN(2, 4, 1, activation="tanh", seed=8)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["W_xh"], c.params["W_xh"])


def test_params_are_float64_and_editing_them_changes_the_model():
    model = rnnlab.RNN()
    assert set(model.params) == {"W_xh", "W_hh", "b_h", "h0", "W_hy", "b_y"}
    shapes = {n: p.shape for n, p in model.params.items()}
    assert shapes == {
        "W_xh": (2, 1), "W_hh": (2, 2), "b_h": (2,), "h0": (2,), "W_hy": (1, 2), "b_y": (1,)
    }  # fmt: skip
    assert all(p.dtype == np.float64 for p in model.params.values())
    before = model.predict_proba([[1, 0, 1]])
    model.params["b_y"][0] += 3.0
    assert model.predict_proba([[1, 0, 1]])[0][0] > before[0][0]
