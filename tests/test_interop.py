"""rnnlab <-> PyTorch: every cell and depth against torch autograd, exact round trips."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnnlab
from rnnlab.interop import from_torch, to_torch, torch_names

torch = pytest.importorskip("torch")

KINDS = [  # (cell, activation)
    ("elman", "sigmoid"),
    ("elman", "tanh"),
    ("elman", "relu"),
    ("gru", "sigmoid"),
    ("lstm", "sigmoid"),
]


def random_model_and_batch(cell, activation, I, H, O, lengths, *, layers=1, seed=0, **kw):
    """A model with random parameters and a padded batch-first batch ``(B, T, .)``."""
    model = rnnlab.RNN(
        I, H, O, activation=activation, cell=cell, num_layers=layers, seed=seed,
        backend="numpy", **kw,
    )  # fmt: skip
    rng = np.random.default_rng(seed + 1)
    for p in model.params.values():
        p += rng.normal(scale=0.5, size=p.shape)
    B, T = len(lengths), max(lengths)
    X, Y = np.zeros((B, T, I)), np.zeros((B, T, O))
    for b, n in enumerate(lengths):
        X[b, :n] = rng.normal(size=(n, I))
        Y[b, :n] = rng.integers(0, 2, size=(n, O))
    return model, X, Y


def assert_matches_torch(model, X, Y, lengths, *, tol=1e-10):
    """One check for every cell: shapes and dtypes, forward values, loss, then gradients.

    Torch side: ``to_torch(model)`` on packed sequences, ``BCEWithLogitsLoss(sum)``
    over valid steps, autograd. Gradients come back to rnnlab names through
    :func:`torch_names`, the layout :func:`from_torch` reads. Returns the worst
    absolute forward error and the worst relative gradient error.
    """
    c = model.config
    B, T = X.shape[:2]
    module = to_torch(model)
    assert all(p.dtype == torch.float64 for p in module.parameters())
    valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)

    logits = module(torch.from_numpy(X), lengths)  # (B, T, O)
    assert logits.shape == (B, T, c.output_size) and logits.dtype == torch.float64
    ours = model.logits(X, lengths=lengths)  # (B, T, O) as well
    theirs = logits.detach().numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)  # padding included
    assert not ours[~valid].any() and not theirs[~valid].any()  # zero past each length
    forward_error = float(np.abs(ours - theirs).max())

    vmask = torch.from_numpy(valid)
    loss = torch.nn.BCEWithLogitsLoss(reduction="sum")(logits[vmask], torch.from_numpy(Y)[vmask])
    loss.backward()
    value, grads = model.loss_and_grad(X, Y, lengths=lengths, reduction="sum")
    assert value == pytest.approx(loss.item(), rel=tol)

    layout = torch_names(c.cell, c.num_layers)
    tparams = dict(module.named_parameters())
    assert set(layout) == set(grads)
    assert {s for sources in layout.values() for s in sources} == set(tparams)
    grad_error = 0.0
    for name, sources in layout.items():
        tg = tparams[sources[0]].grad.numpy()
        for other in sources[1:]:  # a summed pair of torch biases: one shared gradient
            np.testing.assert_allclose(tparams[other].grad.numpy(), tg, rtol=1e-13, atol=1e-13)
        assert grads[name].shape == tg.shape and grads[name].dtype == np.float64
        scale = np.abs(tg).max()  # entries that cancel are compared on this scale
        np.testing.assert_allclose(grads[name], tg, rtol=tol, atol=tol * scale, err_msg=name)
        err = np.abs(grads[name] - tg) / np.maximum(np.abs(tg), max(scale, 1e-300))
        grad_error = max(grad_error, float(err.max()))
    return forward_error, grad_error


# -- against torch autograd -----------------------------------------------------------------


@pytest.mark.parametrize(("cell", "activation"), KINDS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@given(
    sizes=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3)),
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
)
def test_forward_and_gradients_match_torch(cell, activation, layers, sizes, lengths, seed):
    I, H, O = sizes
    model, X, Y = random_model_and_batch(
        cell, activation, I, H, O, lengths, layers=layers, seed=seed
    )
    assert_matches_torch(model, X, Y, lengths)


@pytest.mark.parametrize(("cell", "activation"), KINDS)
def test_a_larger_variable_length_batch_matches_torch(cell, activation):
    lengths = [9, 1, 5, 7, 3, 9]
    model, X, Y = random_model_and_batch(cell, activation, 3, 5, 2, lengths, layers=2, seed=3)
    assert_matches_torch(model, X, Y, lengths)


# -- round trips and predictions ------------------------------------------------------------


@pytest.mark.parametrize(("cell", "activation"), KINDS)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_from_torch_of_to_torch_gives_back_the_same_model(cell, activation, layers, dtype):
    model, *_ = random_model_and_batch(
        cell, activation, 2, 3, 2, [1], layers=layers, loss="softmax", dtype=dtype
    )
    module = to_torch(model)
    assert module.head.weight.dtype == {"float64": torch.float64, "float32": torch.float32}[dtype]
    back = from_torch(module, backend="numpy")
    assert back.config == model.config
    assert list(back.params) == list(model.params)
    for name in model.params:
        assert back.params[name].dtype == model.params[name].dtype
        np.testing.assert_array_equal(back.params[name], model.params[name], err_msg=name)


@pytest.mark.parametrize(("cell", "activation"), KINDS)
def test_a_model_moved_to_torch_predicts_the_same(cell, activation):
    lengths = [6, 2, 4]
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        model, X, _ = random_model_and_batch(
            cell, activation, 2, 3, 1, lengths, layers=2, dtype=dtype
        )
        X = X.astype(dtype)
        with torch.no_grad():
            proba = torch.sigmoid(to_torch(model)(torch.from_numpy(X), lengths)).numpy()
        ours = model.predict_proba(X, lengths=lengths)  # (B, T) for array input, O == 1
        for b, n in enumerate(lengths):
            np.testing.assert_allclose(proba[b, :n, 0], ours[b, :n], rtol=tol, atol=tol)
        bits = model.predict([x[:n] for x, n in zip(X, lengths, strict=True)])
        assert bits == [
            (proba[b, :n, 0] >= 0.5).astype(int).tolist() for b, n in enumerate(lengths)
        ]


@pytest.mark.parametrize(("cell", "activation"), KINDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_to_torch_and_logits_give_the_same_array(cell, activation, dtype):
    """``to_torch(model)(x)`` and ``model.logits(x)``: same layout (B, T, O), same values,
    with and without lengths (zero past each length on both sides)."""
    lengths = [5, 2, 4]
    model, X, _ = random_model_and_batch(cell, activation, 2, 3, 2, lengths, layers=2, dtype=dtype)
    X = X.astype(dtype)
    module = to_torch(model)
    tol = 1e-12 if dtype == "float64" else 1e-5
    with torch.no_grad():
        full = module(torch.from_numpy(X)).numpy()
        packed = module(torch.from_numpy(X), lengths).numpy()
    ours_full, ours_packed = model.logits(X), model.logits(X, lengths=lengths)
    assert ours_full.shape == full.shape == (3, 5, 2) and ours_full.dtype == full.dtype
    np.testing.assert_allclose(ours_full, full, rtol=tol, atol=tol)
    assert ours_packed.shape == packed.shape == (3, 5, 2)
    np.testing.assert_allclose(ours_packed, packed, rtol=tol, atol=tol)
    assert not packed[1, 2:].any() and not ours_packed[1, 2:].any()
    assert ours_full[1, 2:].any()  # without lengths every step is a step


# -- from plain torch modules ---------------------------------------------------------------


def _torch_logits(rnn, head, x, hx):
    """Logits of plain torch modules on a time-major batch ``x (T, B, I)``."""
    with torch.no_grad():
        out, _ = rnn(x, hx)
        return head(out).numpy()  # (T, B, O)


def test_from_torch_reads_a_plain_lstm_with_initial_states():
    torch.manual_seed(0)
    L, I, H, O, B, T = 2, 3, 4, 2, 3, 5
    rnn = torch.nn.LSTM(I, H, L, dtype=torch.float64)  # time-major: accepted, same weights
    head = torch.nn.Linear(H, O, dtype=torch.float64)
    h0, c0 = torch.randn(L, 1, H, dtype=torch.float64), torch.randn(L, H, dtype=torch.float64)
    model = from_torch(rnn, head, h0=h0, c0=c0, loss="bce", backend="numpy")
    c = model.config
    assert (c.cell, c.num_layers, c.dtype) == ("lstm", 2, "float64")
    np.testing.assert_array_equal(model.params["c0_l1"], c0[1].numpy())
    np.testing.assert_array_equal(
        model.params["b_h_l1"], (rnn.bias_ih_l1 + rnn.bias_hh_l1).detach().numpy()
    )
    x = torch.randn(T, B, I, dtype=torch.float64)
    hx = (h0.expand(L, B, H).contiguous(), c0[:, None].expand(L, B, H).contiguous())
    expected = _torch_logits(rnn, head, x, hx)
    np.testing.assert_allclose(  # batch-first (B, T, O) against torch's time-major
        model.logits(x.numpy().transpose(1, 0, 2)), expected.transpose(1, 0, 2), rtol=1e-12,
        atol=1e-14,
    )  # fmt: skip


@pytest.mark.parametrize(
    "rnn",
    [
        lambda: torch.nn.GRU(2, 3, 2, bias=False, batch_first=True, dtype=torch.float64),
        lambda: torch.nn.RNN(2, 3, nonlinearity="relu", dtype=torch.float64),
        lambda: torch.nn.RNN(2, 3, 3, nonlinearity="tanh", dtype=torch.float32),
    ],
)
def test_from_torch_reads_gru_and_rnn_modules_with_and_without_biases(rnn):
    torch.manual_seed(1)
    rnn = rnn()
    head = torch.nn.Linear(3, 2, bias=False, dtype=rnn.weight_ih_l0.dtype)
    model = from_torch(rnn, head, loss="mse", backend="numpy")  # zero states, zero biases
    dtypes = {torch.float64: "float64", torch.float32: "float32"}
    assert model.config.dtype == dtypes[head.weight.dtype]
    if not rnn.bias:
        assert not model.params["b_xh"].any() and not model.params["b_hh_l1"].any()
    assert not model.params["b_y"].any() and not model.params["h0"].any()
    x = torch.randn(4, 3, 2, dtype=head.weight.dtype)  # (T, B, I)
    if rnn.batch_first:
        expected = _torch_logits(rnn, head, x.transpose(0, 1), None).transpose(1, 0, 2)
    else:
        expected = _torch_logits(rnn, head, x, None)
    tol = 1e-12 if model.config.dtype == "float64" else 1e-5
    np.testing.assert_allclose(
        model.logits(x.numpy().transpose(1, 0, 2)), expected.transpose(1, 0, 2), rtol=tol,
        atol=tol,
    )  # fmt: skip


def test_sigmoid_rnn_behaves_like_nn_rnn_on_packed_and_padded_input():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from rnnlab.interop import SigmoidRNN

    torch.manual_seed(2)
    rnn = SigmoidRNN(2, 3, 2, dtype=torch.float64)
    assert [n for n, _ in rnn.named_parameters()] == [
        n for n, _ in torch.nn.RNN(2, 3, 2).named_parameters()
    ]
    x = torch.randn(3, 4, 2, dtype=torch.float64)  # (B, T, I)
    lengths = torch.tensor([2, 4, 1])
    out, h_n = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(out, batch_first=True)
    for b, n in enumerate(lengths.tolist()):  # each sequence alone, unpadded
        alone, h_alone = rnn(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], rtol=1e-14, atol=1e-14)
        assert not out[b, n:].any()  # padding outputs are zero, as nn.RNN's
        torch.testing.assert_close(h_n[:, b], h_alone[:, 0], rtol=1e-14, atol=1e-14)
    time_major = SigmoidRNN(2, 3, 2, batch_first=False, dtype=torch.float64)
    time_major.load_state_dict(rnn.state_dict())
    torch.testing.assert_close(time_major(x.transpose(0, 1))[0].transpose(0, 1), rnn(x)[0])


# -- bad input ------------------------------------------------------------------------------


def _head(H=3):
    return torch.nn.Linear(H, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: (torch.nn.GRU(2, 3, bidirectional=True), _head()), "bidirectional"),
        (lambda: (torch.nn.LSTM(2, 3, proj_size=2), _head()), r"proj_size > 0"),
        (lambda: (torch.nn.LSTM(2, 3, 2, dropout=0.5), _head()), "dropout"),
        (lambda: (torch.nn.LSTMCell(2, 3), _head()), "from_torch takes torch.nn.RNN"),
        (lambda: (torch.nn.Linear(2, 3), _head()), "from_torch takes torch.nn.RNN"),
        (lambda: (torch.nn.GRU(2, 3), None), "output layer as a torch.nn.Linear"),
        (lambda: (torch.nn.GRU(2, 3), _head(4)), "takes 4 features but"),
    ],
)
def test_from_torch_refuses_what_rnnlab_cannot_run(make, message):
    rnn, head = make()
    with pytest.raises(ValueError, match=message):
        from_torch(rnn, head)


def test_from_torch_demands_the_loss_of_plain_modules():
    with pytest.raises(ValueError, match="from_torch needs loss= with plain torch modules"):
        from_torch(torch.nn.GRU(2, 3), _head())
    assert from_torch(torch.nn.GRU(2, 3), _head(), loss="mse").config.loss == "mse"


def test_from_torch_refuses_an_unknown_nonlinearity():
    rnn = torch.nn.RNN(2, 3)
    rnn.nonlinearity = "gelu"
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        from_torch(rnn, _head())


def test_from_torch_refuses_bad_initial_states():
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 3\) or \(2, 1, 3\)"):
        from_torch(torch.nn.GRU(2, 3, 2), _head(), h0=torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="c0 is the LSTM's cell state"):
        from_torch(torch.nn.GRU(2, 3), _head(), c0=torch.zeros(1, 3))
    module = to_torch(rnnlab.RNN(cell="lstm"))
    with pytest.raises(ValueError, match="pass it alone"):
        from_torch(module, _head(2))


def test_unknown_cell_names_are_refused():
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        torch_names("transformer", 1)


def test_torch_classes_are_module_attributes():
    import rnnlab.interop as interop

    assert interop.TorchRNN.__module__ == "rnnlab.interop"
    assert isinstance(to_torch(rnnlab.RNN(cell="gru")), interop.TorchRNN)
    with pytest.raises(AttributeError):
        interop.NoSuchThing


# -- torch stays optional -------------------------------------------------------------------

_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # any "import torch" now fails
import rnnlab, rnnlab.interop
model = rnnlab.RNN(cell="lstm", num_layers=2, seed=0)
model.loss_and_grad([[0, 1, 1]], [[1, 0, 1]])
try:
    rnnlab.interop.to_torch(model)
except ImportError as err:
    print(err)
"""


def test_rnnlab_works_without_torch_and_says_how_to_get_it():
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install torch==2.13.0" in done.stdout


def test_importing_rnnlab_does_not_import_torch():
    code = "import sys, rnnlab, rnnlab.interop; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
