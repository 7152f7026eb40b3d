"""The model's surface: backends, parameters, dtypes, batch-first outputs, reductions."""

import inspect

import numpy as np
import pytest

import rnnlab
from rnnlab.functional import sigmoid
from rnnlab.kernels.layout import FlatParams
from rnnlab.model import RNN
from rnnlab.train import FitConfig, evaluate

# -- backends and parameters --------------------------------------------------------------


def test_backend_reports_what_runs():
    assert rnnlab.RNN(backend="numpy").backend == "numpy"
    assert rnnlab.RNN(backend="numba").backend == "numba"
    model = rnnlab.RNN(backend="auto")  # numba imports here: "auto" takes it
    assert model.backend == "numba" and model.kernels.name == "numba"
    model.use_backend("numpy")
    assert model.backend == "numpy" and model.kernels.name == "numpy"


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_a_backend_round_trip_keeps_every_array_the_models(cell):
    model = rnnlab.RNN(2, 3, 1, cell=cell, num_layers=2, seed=0, backend="numba")
    params, flat = model.params, model.params.flat
    held = {n: p for n, p in model.params.items()}
    assert isinstance(params, FlatParams) and flat.shape == (model.network.size,)
    X = [np.ones((4, 2)), np.zeros((2, 2))]
    before = model.logits(X)
    model.use_backend("numpy")
    assert model.params is params and model.params.flat is flat
    np.testing.assert_allclose(model.logits(X), before, rtol=1e-12, atol=1e-14)
    model.use_backend("numba")
    for name, array in held.items():
        assert model.params[name] is array and np.shares_memory(array, flat)
    held["b_y"][0] += 1.0  # an edit of a held array changes the model
    assert model.logits(X)[0, 0, 0] == pytest.approx(before[0, 0, 0] + 1.0, rel=1e-12)


def test_assigning_params_copies_into_the_models_arrays():
    model = rnnlab.RNN(seed=0)
    held = model.params["W_hh"]
    other = rnnlab.RNN(seed=1)
    model.params = other.params
    assert model.params["W_hh"] is held
    np.testing.assert_array_equal(held, other.params["W_hh"])
    assert not np.shares_memory(held, other.params.flat)


def test_network_is_the_cached_layout():
    model = rnnlab.RNN(2, 3, 1, cell="gru", num_layers=2)
    assert model.network is rnnlab.RNN(2, 3, 1, cell="gru", num_layers=2).network
    assert model.network.names == tuple(model.params)
    assert model.network.size == sum(p.size for p in model.params.values())


def test_grads_are_named_views_of_one_flat_gradient():
    model = rnnlab.RNN(seed=0)
    _, grads = model.loss_and_grad([[0, 1, 1]], [[0, 0, 1]])
    assert isinstance(grads, FlatParams) and list(grads) == list(model.params)
    assert grads.flat.shape == model.params.flat.shape
    assert np.shares_memory(grads["W_hh"], grads.flat) and grads.flat.any()


# -- constructor arguments --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (np.float32, "float32"),
        ("float32", "float32"),
        (np.dtype("float32"), "float32"),
        (np.float64, "float64"),
        ("float64", "float64"),
        (np.dtype("float64"), "float64"),
    ],
)
def test_dtype_forms(dtype, name):
    model = rnnlab.RNN(seed=0, dtype=dtype)
    assert model.config.dtype == name  # the config keeps the name
    assert model.params.flat.dtype == np.dtype(name)
    assert model.logits([[0, 1]]).dtype == np.dtype(name)
    assert rnnlab.RNNConfig(dtype=dtype).dtype == name


@pytest.mark.parametrize("dtype", ["float16", np.int32, np.dtype("complex128"), None, True])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(ValueError, match="unknown dtype"):
        rnnlab.RNN(dtype=dtype)


def test_activation_is_keyword_only():
    assert rnnlab.RNN(1, 2, 1, activation="tanh").config.activation == "tanh"
    with pytest.raises(TypeError):
        rnnlab.RNN(1, 2, 1, "tanh")
    kind = inspect.signature(rnnlab.RNN).parameters["activation"].kind
    assert kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"seed": "a"}, "seed must be"), ({"seed": -1}, "seed must be"),
     ({"seed": 1.5}, "seed must be"), ({"loss": ["bce"]}, "unknown loss")],
)  # fmt: skip
def test_bad_seeds_and_losses_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnnlab.RNN(backend="numpy", **kwargs)


def test_activation_and_cell_are_checked_against_the_registry():
    with pytest.raises(ValueError, match="unknown activation 'swish'; choose one of sigmoid"):
        rnnlab.RNN(activation="swish")
    with pytest.raises(ValueError, match="activation applies to the elman cell only"):
        rnnlab.RNN(cell="lstm", activation="relu")
    with pytest.raises(ValueError, match="unknown cell 'rnn'; choose one of elman, gru, lstm"):
        rnnlab.RNN(cell="rnn")


# -- one surface: batch-first, zero past each length ---------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_logits_are_batch_first_and_zero_past_each_length(backend):
    model = rnnlab.RNN(2, 3, 2, activation="tanh", num_layers=2, seed=1, backend=backend)
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(n, 2)) for n in (4, 1, 3)]
    logits = model.logits(X)
    assert logits.shape == (3, 4, 2) and logits.flags.c_contiguous
    for b, x in enumerate(X):
        np.testing.assert_allclose(logits[b, : len(x)], model.logits([x])[0], rtol=1e-13)
        assert not logits[b, len(x) :].any()
    padded = np.zeros((3, 4, 2))
    for b, x in enumerate(X):
        padded[b, : len(x)] = x
    np.testing.assert_array_equal(model.logits(padded, lengths=[4, 1, 3]), logits)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lstm_hidden_states_carry_c_and_feed_the_logits(backend):
    model = rnnlab.RNN(2, 3, 1, cell="lstm", num_layers=2, seed=2, backend=backend)
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(n, 2)) for n in (5, 2)]
    states = model.hidden_states(X)
    assert isinstance(states, rnnlab.HiddenStates)
    assert states.h.shape == states.c.shape == (2, 2, 5, 3)  # (L, B, T, H)
    assert not states.h[:, 1, 2:].any() and not states.c[:, 1, 2:].any()
    assert states.h[:, 1, :2].all() and states.c[:, 1, :2].all()
    p = model.params
    np.testing.assert_allclose(  # the top layer's states give the logits
        model.logits(X), states.h[-1] @ p["W_hy"].T + p["b_y"] * (states.h[-1] != 0)[..., :1],
        rtol=1e-12, atol=1e-14,
    )  # fmt: skip
    # the first step of layer 0 by hand: gates i, f, g, o from (h0, c0)
    a = p["W_xh"] @ X[0][0] + p["W_hh"] @ p["h0"] + p["b_h"]
    i, f, g, o = sigmoid(a[:3]), sigmoid(a[3:6]), np.tanh(a[6:9]), sigmoid(a[9:])
    c1 = f * p["c0"] + i * g
    np.testing.assert_allclose(states.c[0, 0, 0], c1, rtol=1e-12)
    np.testing.assert_allclose(states.h[0, 0, 0], o * np.tanh(c1), rtol=1e-12)
    assert model.hidden_states([X[1]]).h.shape == (2, 1, 2, 3)


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_cells_without_a_cell_state_have_no_c(cell):
    states = rnnlab.RNN(cell=cell).hidden_states([[0, 1, 1]])
    assert states.c is None and states.h.shape == (1, 1, 3, 2)


# -- one reduction default: the mean ------------------------------------------------------


def test_reduction_defaults_to_the_mean_everywhere():
    model = rnnlab.RNN(1, 3, 2, seed=0)
    X = [[0, 1, 1, 0], [1, 1]]
    Y = [[[0, 1]] * 4, [[1, 1]] * 2]
    terms = (4 + 2) * 2  # scored steps times outputs (bce is element-wise)
    total = model.loss(X, Y, reduction="sum")
    assert model.loss(X, Y) == pytest.approx(total / terms, rel=1e-14)
    value, grads = model.loss_and_grad(X, Y)
    summed_value, summed = model.loss_and_grad(X, Y, reduction="sum")
    assert value == pytest.approx(summed_value / terms, rel=1e-14)
    np.testing.assert_allclose(grads.flat, summed.flat / terms, rtol=1e-13)
    assert evaluate(model, model.batch(X, Y))["loss"] == pytest.approx(value, rel=1e-14)
    assert FitConfig().reduction == "mean"
    for fn in (rnnlab.gradcheck, rnnlab.RNN.loss, rnnlab.RNN.loss_and_grad, evaluate):
        assert inspect.signature(fn).parameters["reduction"].default == "mean"
    from rnnlab.losses import loss_and_dlogits

    assert inspect.signature(loss_and_dlogits).parameters["reduction"].default == "mean"


# -- copies, and prepared batches ---------------------------------------------------------


@pytest.mark.parametrize("copy_of", ["deepcopy", "pickle"])
def test_a_copied_model_is_its_own_and_runs_the_same(copy_of):
    import copy
    import pickle

    model = rnnlab.RNN(2, 3, 1, cell="lstm", num_layers=2, seed=3, backend="numpy")
    other = copy.deepcopy(model) if copy_of == "deepcopy" else pickle.loads(pickle.dumps(model))
    assert other.backend == "numpy" and other.network is model.network
    assert other.params.flat is not model.params.flat
    assert np.shares_memory(other.params["W_hh"], other.params.flat)
    X = [np.ones((4, 2))]
    np.testing.assert_array_equal(other.logits(X), model.logits(X))
    other.params["b_y"] += 1.0  # the copy's own arrays
    assert not np.array_equal(other.logits(X), model.logits(X))


def test_a_prepared_batch_is_checked_against_the_model():
    from rnnlab.optim import make_optimizer
    from rnnlab.train import TrainStep

    model = rnnlab.RNN(seed=0, backend="numpy")
    wide = rnnlab.RNN(2, 2, 1, seed=0, backend="numpy").batch([[[0, 1]]], [[1]])
    with pytest.raises(ValueError, match="the Batch has 2 input features per step"):
        model.logits(wide)
    inputs_only = model.batch([[0, 1, 1]])
    with pytest.raises(ValueError, match="a Batch carries its own targets"):
        model.loss(inputs_only, [[0, 0, 1]])
    with pytest.raises(ValueError, match="evaluate needs a batch with targets"):
        evaluate(model, inputs_only)
    with pytest.raises(ValueError, match="a training step needs a batch with targets"):
        TrainStep(model, make_optimizer("adam", lr=0.1))(inputs_only)


def test_predict_refuses_a_threshold_that_is_not_a_number():
    model = rnnlab.RNN(seed=0)
    with pytest.raises(ValueError, match="threshold"):
        model.predict([[0, 1]], threshold="a")
    assert model.predict([[0, 1]], threshold=0.5) == model.predict([[0, 1]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_flat_vector_starts_on_a_cache_line(dtype):
    import copy

    from rnnlab.kernels.layout import ALIGNMENT, aligned_empty

    for size in (1, 7, 1000):
        assert aligned_empty(size, dtype).ctypes.data % ALIGNMENT == 0
    model = rnnlab.RNN(1, 5, 1, seed=0, dtype=dtype)
    clone = copy.deepcopy(model.params)
    for flat in (model.params.flat, clone.flat):
        assert flat.ctypes.data % ALIGNMENT == 0 and flat.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(clone.flat, model.params.flat)


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_initialisation_schemes(cell):
    """irnn: identity recurrence, inputs N(0, 0.001) (Le et al. 2015); orthogonal: an
    orthogonal block per gate; default: the activation's scheme, as before."""
    kind = {"activation": "relu"} if cell == "elman" else {}
    irnn = RNN(3, 64, 1, cell=cell, init="irnn", **kind).params
    gates = irnn["W_hh"].shape[0] // 64
    for g in range(gates):
        np.testing.assert_array_equal(irnn["W_hh"][64 * g : 64 * (g + 1)], np.eye(64))
    assert irnn["W_xh"].std() == pytest.approx(0.001, rel=0.1)
    ortho = RNN(3, 16, 1, cell=cell, init="orthogonal", **kind).params["W_hh"]
    for g in range(gates):
        block = ortho[16 * g : 16 * (g + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-12)
    default = RNN(3, 16, 1, cell=cell, **kind).params
    again = RNN(3, 16, 1, cell=cell, init="default", **kind).params
    assert all(np.array_equal(default[k], again[k]) for k in default)
    with pytest.raises(ValueError, match="unknown init 'xavier'; choose one of default, irnn"):
        RNN(3, 16, 1, cell=cell, init="xavier", **kind)
