"""The Elman core against torch.nn.RNN + nn.Linear + BCEWithLogitsLoss autograd, float64."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import random_sequences

import rnnlab

torch = pytest.importorskip("torch")


def torch_loss_and_grad(model, X, Y):
    """Loss and gradients of the same network built from torch modules (float64)."""
    c = model.config
    p = {n: torch.tensor(v, dtype=torch.float64) for n, v in model.params.items()}
    rnn = torch.nn.RNN(c.input_size, c.hidden_size, nonlinearity=c.activation, dtype=torch.float64)
    head = torch.nn.Linear(c.hidden_size, c.output_size, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(p["W_xh"])
        rnn.weight_hh_l0.copy_(p["W_hh"])
        rnn.bias_ih_l0.copy_(p["b_h"])  # rnnlab's b_h = bias_ih + bias_hh
        rnn.bias_hh_l0.zero_()
        head.weight.copy_(p["W_hy"])
        head.bias.copy_(p["b_y"])
    h0 = p["h0"].clone().requires_grad_(True)
    batch = model.batch(X, Y)
    x = torch.tensor(batch.x)  # (T, B, I), time-major like nn.RNN's default
    hs, _ = rnn(x, h0.expand(1, x.shape[1], -1).contiguous())
    logits = head(hs)  # (T, B, O)
    per_term = torch.nn.BCEWithLogitsLoss(reduction="none")(logits, torch.tensor(batch.y))
    loss = (per_term * torch.tensor(batch.mask)[..., None]).sum()
    loss.backward()
    grads = {
        "W_xh": rnn.weight_ih_l0.grad,
        "W_hh": rnn.weight_hh_l0.grad,
        "b_h": rnn.bias_ih_l0.grad,
        "h0": h0.grad,
        "W_hy": head.weight.grad,
        "b_y": head.bias.grad,
    }
    return loss.item(), {n: g.numpy() for n, g in grads.items()}, logits.detach().numpy()


def assert_matches_torch(model, X, Y, tol=1e-10):
    loss, grads = model.loss_and_grad(X, Y, reduction="sum")
    t_loss, t_grads, t_logits = torch_loss_and_grad(model, X, Y)
    valid = model.batch(X).padding_mask.T > 0  # (B, T): torch ran through the padding too
    logits = model.logits(X)  # (B, T, O), zero past each length
    t_logits = t_logits.transpose(1, 0, 2)  # (T, B, O) -> (B, T, O)
    np.testing.assert_allclose(logits[valid], t_logits[valid], rtol=tol, atol=1e-13)
    assert not logits[~valid].any()
    assert loss == pytest.approx(t_loss, rel=tol)
    assert set(grads) == set(t_grads)
    for name in grads:
        assert grads[name].shape == t_grads[name].shape
        scale = np.abs(t_grads[name]).max()  # entries that cancel are compared on this scale
        np.testing.assert_allclose(
            grads[name], t_grads[name], rtol=tol, atol=tol * scale + 1e-300, err_msg=name
        )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize(
    ("hidden", "inputs", "outputs", "lengths"),
    [(1, 1, 1, [5]), (2, 1, 1, [4, 7, 1]), (8, 3, 2, [9, 3, 6, 6])],
)
def test_elman_matches_torch_autograd(activation, hidden, inputs, outputs, lengths):
    model = rnnlab.RNN(inputs, hidden, outputs, activation=activation, seed=hidden)
    rng = np.random.default_rng(hidden)
    model.params["h0"][:] = rng.normal(size=hidden)
    model.params["b_h"][:] = rng.normal(size=hidden)
    X = random_sequences(rng, lengths, inputs)
    Y = random_sequences(rng, lengths, outputs, binary=True)
    assert_matches_torch(model, X, Y)


@given(
    activation=st.sampled_from(["tanh", "relu"]),
    hidden=st.integers(1, 8),
    inputs=st.integers(1, 3),
    lengths=st.lists(st.integers(1, 10), min_size=1, max_size=5),
    scale=st.floats(0.1, 2.0),
    seed=st.integers(0, 2**31),
)
def test_property_elman_matches_torch(activation, hidden, inputs, lengths, scale, seed):
    model = rnnlab.RNN(inputs, hidden, 1, activation=activation, seed=seed)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = rng.normal(scale=scale, size=p.shape)
    X = random_sequences(rng, lengths, inputs)
    Y = random_sequences(rng, lengths, 1, binary=True)
    assert_matches_torch(model, X, Y)
