"""The stateful step API: ``initial_state`` and ``step``, forward only, from any state."""

import numpy as np
import pytest

import rnnlab
from rnnlab import RNN, State

NETWORKS = [
    {"cell": "elman", "activation": "tanh"},
    {"cell": "elman", "activation": "sigmoid", "num_layers": 2},
    {"cell": "gru", "num_layers": 2},
    {"cell": "lstm"},
    {"cell": "lstm", "num_layers": 3},
    {"cell": "exprnn", "num_layers": 2},
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("config", NETWORKS, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("B", [1, 2, 5])  # one sequence at a time, and blocks
def test_stepping_gives_what_the_whole_sequence_gives(rng, backend, config, B):
    model = RNN(2, 4, 3, loss="softmax", seed=1, backend=backend, **config)
    X = rng.normal(size=(B, 7, 2))
    whole = model.predict_proba(X)  # (B, T, O)
    states = model.hidden_states(X)  # h (L, B, T, H)
    state = model.initial_state(B)
    for t in range(7):
        outputs, state = model.step(X[:, t], state)
        np.testing.assert_allclose(outputs, whole[:, t], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state.h, states.h[:, :, t], rtol=1e-12, atol=1e-12)
        if states.c is not None:
            np.testing.assert_allclose(state.c, states.c[:, :, t], rtol=1e-12, atol=1e-12)
        else:
            assert state.c is None
    logits, _ = model.step(X[:, 0], model.initial_state(B), logits=True)
    np.testing.assert_allclose(logits, model.logits(X)[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_any_state_can_be_continued_and_the_backends_agree(rng, backend):
    model = RNN(1, 3, 1, cell="gru", seed=2, backend=backend)
    other = RNN(1, 3, 1, cell="gru", seed=2, backend="numpy")
    state = State(rng.normal(size=(1, 4, 3)), None)  # any state, not only reachable ones
    for x in ([1, 0, 1, 1], [0, 0, 0, 1]):
        a, state_a = model.step(np.array(x), state)
        b, state_b = other.step(np.array(x), state)
        np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_allclose(state_a.h, state_b.h, rtol=1e-12)
        state = state_a
    assert model.initial_state(4).h.shape == (1, 4, 3)
    assert np.array_equal(model.initial_state(2).h[0, 1], model.params["h0"])


def test_step_in_float32(rng):
    model = RNN(2, 5, 2, cell="lstm", num_layers=2, dtype="float32", seed=0)
    X = rng.normal(size=(3, 6, 2)).astype(np.float32)
    state, outs = model.initial_state(3), []
    for t in range(6):
        out, state = model.step(X[:, t], state)
        outs.append(out)
    assert state.h.dtype == np.float32
    np.testing.assert_allclose(np.stack(outs, 1), model.predict_proba(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.step(np.zeros((2, 1)), m.initial_state(3)), r"x must be \(B, I\) = \(3, 1\)"),
        (lambda m: m.step(np.zeros(3), (np.zeros((1, 3, 2)),)), "state must be a State"),
        (lambda m: m.step(np.zeros(1), State(np.zeros((1, 2, 2)), None)), "x must be"),
        (lambda m: m.step(np.zeros(2), State(np.zeros((2, 2, 2)), None)), "initial states must"),
        (lambda m: m.step([np.nan], m.initial_state()), "NaN"),
        (lambda m: m.initial_state(0), "batch_size must be a positive integer"),
    ],
)
def test_bad_steps_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(RNN(seed=0, backend="numpy"))


def test_state_is_exported():
    assert rnnlab.State is State


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("config", NETWORKS, ids=lambda c: "-".join(map(str, c.values())))
def test_training_from_a_carried_state(rng, backend, config):
    """A stream in chunks: ``loss_and_grad(chunk, initial=state)`` is the loss of the
    chunk continued from the state the last one left (the whole sequence's loss over
    its second part), and its gradient is that loss's derivative with the state held
    fixed (finite differences): h0 and c0 get none."""
    model = RNN(2, 3, 2, loss="softmax", seed=2, backend=backend, **config)
    X = rng.normal(size=(3, 9, 2))
    Y = rng.integers(0, 2, size=(3, 9))
    _, state = model.step(X[:, 0], model.initial_state(3))
    for t in range(1, 5):
        _, state = model.step(X[:, t], state)
    later = np.zeros((3, 9))
    later[:, 5:] = 1.0  # the whole sequence, scored on the second chunk only
    whole = model.loss(X, Y, mask=later, reduction="sum")
    value, grads = model.loss_and_grad(X[:, 5:], Y[:, 5:], initial=state, reduction="sum")
    assert value == pytest.approx(whole, rel=1e-12)
    assert not grads["h0"].any() and (grads.get("c0") is None or not grads["c0"].any())
    flat, eps = model.params.flat, 1e-6
    for index in rng.choice(flat.size, size=12, replace=False):
        old = flat[index]
        flat[index] = old + eps
        up = model.loss(X[:, 5:], Y[:, 5:], reduction="sum", initial=state)
        flat[index] = old - eps
        down = model.loss(X[:, 5:], Y[:, 5:], reduction="sum", initial=state)
        flat[index] = old
        assert grads.flat[index] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)
