"""GRU and LSTM cells: hand-worked steps, finite differences, truncation, stacking, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnlab
from rnnlab.kernels.layout import param_name, param_shapes
from rnnlab.kernels.registry import get_cell

CELL_KINDS = ["gru", "lstm"]


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _model_and_data(cell, hidden, inputs, outputs, lengths, *, layers=1, seed=0):
    """A model with random parameters (biases and initial states too) and random data."""
    model = rnnlab.RNN(
        inputs, hidden, outputs, cell=cell, num_layers=layers, seed=seed, backend="numpy"
    )
    rng = np.random.default_rng(seed + 100)
    for p in model.params.values():
        p += rng.normal(scale=0.5, size=p.shape)
    X = [rng.normal(size=(n, inputs)) for n in lengths]
    Y = [rng.integers(0, 2, size=(n, outputs)).astype(float) for n in lengths]
    return model, X, Y


def _tiny(cell, params):
    """A 1-1-1 model of ``cell`` with the given scalar parameters."""
    model = rnnlab.RNN(1, 1, 1, cell=cell, backend="numpy")
    for name, value in params.items():
        model.params[name][...] = np.reshape(value, model.params[name].shape)
    return model


# -- hand-worked examples: 2 steps, 1 unit, every number by hand ----------------------------


def test_gru_two_steps_by_hand():
    # gate rows r, z, n
    p = {
        "W_xh": [0.5, -0.5, 1.0],
        "W_hh": [0.25, 0.5, -1.0],
        "b_xh": [0.1, 0.2, -0.1],
        "b_hh": [0.0, -0.3, 0.2],
        "h0": [0.5],
        "W_hy": [2.0],
        "b_y": [-0.5],
    }
    model = _tiny("gru", p)
    x, y = [1.0, -1.0], [1.0, 0.0]
    # step 1, x=1, h0=0.5:
    #   a_r = 0.5*1 + 0.1 + 0.25*0.5 + 0    = 0.725   r = sigmoid(0.725)  = 0.67370710
    #   a_z = -0.5*1 + 0.2 + 0.5*0.5 - 0.3  = -0.35   z = sigmoid(-0.35)  = 0.41338242
    #   hn  = -1*0.5 + 0.2                  = -0.3
    #   a_n = 1*1 - 0.1 + r*hn              = 0.69788787   n = tanh(a_n) = 0.60302541
    #   h1  = (1 - z) n + z h0              = 0.56043652   logit = 2 h1 - 0.5 = 0.62087304
    # step 2, x=-1, h1:
    #   a_r = -0.5 + 0.1 + 0.25 h1          = -0.25989087  r = 0.43539053
    #   a_z = 0.5 + 0.2 + 0.5 h1 - 0.3      = 0.68021826   z = 0.66378741
    #   hn  = -h1 + 0.2                     = -0.36043652
    #   a_n = -1 - 0.1 + r*hn               = -1.25693065  n = -0.85021571
    #   h2  = (1 - z) n + z h1              = 0.08615748   logit = -0.32768504
    logits = model.logits([x])[0, :, 0]
    np.testing.assert_allclose(logits, [0.6208730368639681, -0.32768504294773315], rtol=1e-14)

    # the same in plain Python, and the gradient of the summed BCE by the chain rule
    Wx, Wh, bx, bh = p["W_xh"], p["W_hh"], p["b_xh"], p["b_hh"]
    h, steps = 0.5, []
    for xt in x:
        r = _sigmoid(Wx[0] * xt + bx[0] + Wh[0] * h + bh[0])
        z = _sigmoid(Wx[1] * xt + bx[1] + Wh[1] * h + bh[1])
        hn = Wh[2] * h + bh[2]
        n = math.tanh(Wx[2] * xt + bx[2] + r * hn)
        # dh_new/dh = z + (h - n) dz/dh + (1 - z) dn/dh
        dz_dh = z * (1 - z) * Wh[1]
        dn_dh = (1 - n * n) * (r * Wh[2] + hn * r * (1 - r) * Wh[0])
        steps.append(
            {"x": xt, "h_prev": h, "z": z, "n": n, "dh": z + (h - n) * dz_dh + (1 - z) * dn_dh}
        )
        h = (1 - z) * n + z * h
        steps[-1]["h"] = h
    assert [2 * s["h"] - 0.5 for s in steps] == pytest.approx(logits.tolist(), rel=1e-14)
    e = [_sigmoid(2 * s["h"] - 0.5) - yt for s, yt in zip(steps, y, strict=True)]  # dL/dlogit
    delta2 = e[1] * 2.0  # dL/dh2
    delta1 = e[0] * 2.0 + delta2 * steps[1]["dh"]  # dL/dh1
    expected = {
        "h0": delta1 * steps[0]["dh"],
        "W_hy": e[0] * steps[0]["h"] + e[1] * steps[1]["h"],
        "b_y": e[0] + e[1],
        # dL/dW_xh[z] = sum_t delta_t (h_{t-1} - n_t) z_t (1 - z_t) x_t
        "W_xh[z]": sum(
            d * (s["h_prev"] - s["n"]) * s["z"] * (1 - s["z"]) * s["x"]
            for d, s in zip((delta1, delta2), steps, strict=True)
        ),
    }
    _, grads = model.loss_and_grad([x], [y], reduction="sum")
    assert grads["h0"][0] == pytest.approx(expected["h0"], rel=1e-13)
    assert grads["W_hy"][0, 0] == pytest.approx(expected["W_hy"], rel=1e-13)
    assert grads["b_y"][0] == pytest.approx(expected["b_y"], rel=1e-13)
    assert grads["W_xh"][1, 0] == pytest.approx(expected["W_xh[z]"], rel=1e-13)


def test_lstm_two_steps_by_hand():
    # gate rows i, f, g, o
    p = {
        "W_xh": [1.0, 0.5, -1.0, 0.25],
        "W_hh": [0.5, -0.5, 1.0, 0.5],
        "b_h": [0.0, 1.0, 0.1, -0.2],
        "h0": [0.2],
        "c0": [-0.4],
        "W_hy": [2.0],
        "b_y": [-0.5],
    }
    model = _tiny("lstm", p)
    x, y = [1.0, -1.0], [1.0, 0.0]
    # step 1, x=1, (h0, c0) = (0.2, -0.4): a = W_xh x + W_hh h0 + b_h
    #   a_i = 1 + 0.1       = 1.1    i = sigmoid(1.1)  = 0.75026011
    #   a_f = 0.5 - 0.1 + 1 = 1.4    f = sigmoid(1.4)  = 0.80218389
    #   a_g = -1 + 0.2 + 0.1 = -0.7  g = tanh(-0.7)    = -0.60436778
    #   a_o = 0.25 + 0.1 - 0.2 = 0.15  o = sigmoid(0.15) = 0.53742985
    #   c1 = f c0 + i g = -0.77430659   h1 = o tanh(c1) = -0.34902128
    #   logit = 2 h1 - 0.5 = -1.19804256
    # step 2, x=-1: a = (-1.17451064, 0.67451064, 0.75097872, -0.62451064)
    #   i = 0.23604063  f = 0.66251243  g = 0.63573248  o = 0.34875627
    #   c2 = -0.36292904   h2 = -0.12129443   logit = -0.74258887
    logits = model.logits([x])[0, :, 0]
    np.testing.assert_allclose(logits, [-1.198042562573654, -0.7425888657014053], rtol=1e-14)

    Wx, Wh, b = p["W_xh"], p["W_hh"], p["b_h"]
    h, c, steps = 0.2, -0.4, []
    for xt in x:
        a = [Wx[k] * xt + Wh[k] * h + b[k] for k in range(4)]
        i, f, g, o = _sigmoid(a[0]), _sigmoid(a[1]), math.tanh(a[2]), _sigmoid(a[3])
        c_new = f * c + i * g
        tc = math.tanh(c_new)
        # Jacobian of (h_new, c_new) with respect to (h, c)
        dc_dh = c * f * (1 - f) * Wh[1] + g * i * (1 - i) * Wh[0] + i * (1 - g * g) * Wh[2]
        dc_dc = f
        dh_dh = o * (1 - o) * Wh[3] * tc + o * (1 - tc * tc) * dc_dh
        dh_dc = o * (1 - tc * tc) * f
        h, c = o * tc, c_new
        steps.append({"h": h, "dh_dh": dh_dh, "dh_dc": dh_dc, "dc_dh": dc_dh, "dc_dc": dc_dc})
    assert [2 * s["h"] - 0.5 for s in steps] == pytest.approx(logits.tolist(), rel=1e-14)
    e = [_sigmoid(2 * s["h"] - 0.5) - yt for s, yt in zip(steps, y, strict=True)]
    dh2, dc2 = e[1] * 2.0, 0.0  # nothing after step 2 reads c2
    s2 = steps[1]
    dh1 = e[0] * 2.0 + dh2 * s2["dh_dh"] + dc2 * s2["dc_dh"]
    dc1 = dh2 * s2["dh_dc"] + dc2 * s2["dc_dc"]
    s1 = steps[0]
    expected_h0 = dh1 * s1["dh_dh"] + dc1 * s1["dc_dh"]
    expected_c0 = dh1 * s1["dh_dc"] + dc1 * s1["dc_dc"]
    _, grads = model.loss_and_grad([x], [y], reduction="sum")
    assert grads["h0"][0] == pytest.approx(expected_h0, rel=1e-13)
    assert grads["c0"][0] == pytest.approx(expected_c0, rel=1e-13)
    assert grads["b_y"][0] == pytest.approx(e[0] + e[1], rel=1e-13)


# -- finite differences -----------------------------------------------------------------


@pytest.mark.parametrize("cell", CELL_KINDS)
@pytest.mark.parametrize(
    ("hidden", "inputs", "outputs", "lengths", "layers"),
    [
        (1, 1, 1, [4], 1),
        (3, 2, 2, [5, 2, 4], 1),
        (2, 3, 1, [4, 3], 2),
    ],
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradients_match_finite_differences(
    cell, hidden, inputs, outputs, lengths, layers, reduction
):
    model, X, Y = _model_and_data(cell, hidden, inputs, outputs, lengths, layers=layers)
    assert rnnlab.gradcheck(model, X, Y, reduction=reduction) < 1e-6


# -- truncated BPTT against its definition -----------------------------------------------


def _carries_before(model, x):
    """The carry of every layer before each step of one sequence ``x (T, I)``.

    Returns ``carries[t][layer]``, a tuple of ``(H,)`` arrays (``t = 0..T``): the
    initial states, then the model's own hidden (and cell) states after each step.
    """
    c = model.config
    states = model.hidden_states([x])  # h, c: (L, 1, T, H)
    carries = []
    for t in range(len(x) + 1):
        per_layer = []
        for layer in range(c.num_layers):
            if t == 0:
                carry = (model.params[param_name("h0", layer)],)
                if states.c is not None:
                    carry += (model.params[param_name("c0", layer)],)
            else:
                carry = (states.h[layer, 0, t - 1],)
                if states.c is not None:
                    carry += (states.c[layer, 0, t - 1],)
            per_layer.append(carry)
        carries.append(per_layer)
    return carries


def _truncated_by_windows(model, X, Y, k):
    """The definition of ``truncate=k``, summed loss: for each sequence and step ``t``,
    the exact gradient of step ``t``'s loss on the window ``t-k+1 .. t`` started
    from the (constant) states before it; ``h0``/``c0`` only when the window
    starts at step 0.
    """
    c = model.config
    states = ("h0", "c0") if get_cell(c.cell).cell_state else ("h0",)
    total = {n: np.zeros_like(v) for n, v in model.params.items()}
    for x, y in zip(X, Y, strict=True):
        carries = _carries_before(model, x)
        for t in range(len(x)):
            first = max(t - k + 1, 0)
            params = {n: v.copy() for n, v in model.params.items()}
            if first > 0:  # the window starts from the carried states, held constant
                for layer in range(c.num_layers):
                    for j, base in enumerate(states):
                        params[param_name(base, layer)] = carries[first][layer][j]
            window = rnnlab.RNN.from_params(c, params, backend="numpy")
            mask = [[0] * (t - first) + [1]]  # score step t alone
            _, grads = window.loss_and_grad(
                [x[first : t + 1]], [y[first : t + 1]], mask=mask, reduction="sum"
            )
            for name, g in grads.items():
                if first > 0 and name.split("_l")[0] in states:
                    continue
                total[name] += g
    return total


@pytest.mark.parametrize("cell", CELL_KINDS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncated_gradient_is_the_sum_over_windows(cell, layers, k):
    model, X, Y = _model_and_data(cell, 3, 2, 2, [6, 3, 5], layers=layers, seed=k)
    _, grads = model.loss_and_grad(X, Y, truncate=k, reduction="sum")
    _, full = model.loss_and_grad(X, Y, reduction="sum")
    assert not np.allclose(grads["W_hh"], full["W_hh"])  # truncation does cut something
    expected = _truncated_by_windows(model, X, Y, k)
    for name in grads:
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(
            grads[name], expected[name], rtol=1e-11, atol=1e-12 * scale, err_msg=name
        )


@pytest.mark.parametrize("cell", CELL_KINDS)
def test_truncation_longer_than_the_sequence_is_full_bptt(cell):
    model, X, Y = _model_and_data(cell, 2, 1, 1, [4, 2], layers=2)
    _, full = model.loss_and_grad(X, Y)
    _, truncated = model.loss_and_grad(X, Y, truncate=4)
    for name in full:
        np.testing.assert_allclose(truncated[name], full[name], rtol=1e-13, atol=1e-15)


# -- padding, layers, initialisation ------------------------------------------------------


@pytest.mark.parametrize("cell", CELL_KINDS)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    layers=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_a_sequence_alone_equals_the_same_sequence_in_a_padded_batch(cell, lengths, layers, seed):
    model, X, Y = _model_and_data(cell, 2, 2, 1, lengths, layers=layers, seed=seed)
    batch_logits = model.logits(X)  # (B, T, O)
    _, batch_grads = model.loss_and_grad(X, Y, reduction="sum")
    summed = {n: np.zeros_like(v) for n, v in model.params.items()}
    for b, (x, y) in enumerate(zip(X, Y, strict=True)):
        np.testing.assert_allclose(
            batch_logits[b, : len(x)], model.logits([x])[0], rtol=1e-13, atol=1e-15
        )
        assert not batch_logits[b, len(x) :].any()  # zero past the sequence's length
        for name, g in model.loss_and_grad([x], [y], reduction="sum")[1].items():
            summed[name] += g
    for name in summed:
        np.testing.assert_allclose(batch_grads[name], summed[name], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    ("cell", "gates", "states"),
    [("elman", 1, ("h0",)), ("gru", 3, ("h0",)), ("lstm", 4, ("h0", "c0"))],
)
@pytest.mark.parametrize("layers", [1, 3])
def test_parameter_layout_of_every_cell(cell, gates, states, layers):
    I, H, O = 3, 4, 2
    model = rnnlab.RNN(I, H, O, cell=cell, num_layers=layers, backend="numpy")
    assert list(model.params) == list(param_shapes(cell, I, H, O, layers))
    for layer in range(layers):
        n_in = I if layer == 0 else H
        assert model.params[param_name("W_xh", layer)].shape == (gates * H, n_in)
        assert model.params[param_name("W_hh", layer)].shape == (gates * H, H)
        for base in states:
            assert model.params[param_name(base, layer)].shape == (H,)
    hidden = model.hidden_states([[[0.0, 1.0, 2.0]] * 5])
    assert hidden.h.shape == (layers, 1, 5, H)
    if "c0" in states:
        assert hidden.c.shape == (layers, 1, 5, H)
    else:
        assert hidden.c is None


def test_lstm_forget_gate_bias_starts_at_one():
    model = rnnlab.RNN(2, 3, 1, cell="lstm", num_layers=2, backend="numpy")
    for name in ("b_h", "b_h_l1"):
        np.testing.assert_array_equal(model.params[name], [0] * 3 + [1] * 3 + [0] * 6)
    gru = rnnlab.RNN(2, 3, 1, cell="gru", backend="numpy")
    assert not gru.params["b_xh"].any() and not gru.params["b_hh"].any()


@pytest.mark.parametrize("cell", CELL_KINDS)
def test_same_seed_same_weights_and_float32_runs(cell):
    a = rnnlab.RNN(2, 3, 1, cell=cell, seed=7, backend="numpy")
    b = rnnlab.RNN(2, 3, 1, cell=cell, seed=7, backend="numpy")
    assert all(np.array_equal(a.params[n], b.params[n]) for n in a.params)
    model32 = rnnlab.RNN(2, 3, 1, cell=cell, seed=7, backend="numpy", dtype="float32")
    X = [np.ones((4, 2))]
    assert model32.logits(X).dtype == np.float32
    np.testing.assert_allclose(model32.logits(X), a.logits(X), rtol=1e-5, atol=1e-6)
    _, grads = model32.loss_and_grad(X, [[[1.0]] * 4])
    assert all(g.dtype == np.float32 for g in grads.values())


# -- bad input ------------------------------------------------------------------------------


def test_unknown_cell_is_refused():
    with pytest.raises(ValueError, match="unknown cell 'rnn'; choose one of elman, gru, lstm"):
        rnnlab.RNN(cell="rnn")


@pytest.mark.parametrize("layers", [0, -1, 1.5, True])
def test_num_layers_must_be_a_positive_integer(layers):
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        rnnlab.RNN(cell="gru", num_layers=layers)


@pytest.mark.parametrize("cell", CELL_KINDS)
def test_activation_is_the_elman_cells_alone(cell):
    rnnlab.RNN(cell=cell, activation="sigmoid")  # the default is accepted (and unused)
    with pytest.raises(ValueError, match="activation applies to the elman cell only"):
        rnnlab.RNN(cell=cell, activation="tanh")
