"""A learned input embedding (``RNN(..., embedding=D)``): the table folded into the first
layer's input weights for the kernels, its gradient and ``W_xh``'s pulled back from
theirs; checked against finite differences and torch autograd (``nn.Embedding``-style
lookup, then the torch module of the same cell) in float64, and trained end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnlab
from rnnlab.cli import main
from rnnlab.interop import to_torch, torch_names
from rnnlab.kernels.embedded import Embedded, kernel_network

CELLS = ["elman", "gru", "lstm", "exprnn"]


def model_and_tokens(cell, backend, *, V=5, D=2, H=3, O=4, layers=2, B=3, T=6, seed=0):
    extra = {"activation": "tanh"} if cell == "elman" else {}
    model = rnnlab.RNN(V, H, O, cell=cell, num_layers=layers, loss="softmax", embedding=D,
                       seed=seed, backend=backend, **extra)  # fmt: skip
    rng = np.random.default_rng(seed)
    X = np.eye(V)[rng.integers(0, V, size=(B, T))]  # (B, T, V) one-hot tokens
    Y = np.eye(O)[rng.integers(0, O, size=(B, T))]
    lengths = rng.integers(1, T + 1, size=B)
    return model, X, Y, lengths


def test_the_table_is_a_parameter_and_the_first_layer_reads_its_width():
    model, *_ = model_and_tokens("lstm", "numpy", V=7, D=3, H=4)
    assert model.params["E"].shape == (7, 3) and model.params["W_xh"].shape == (16, 3)
    assert model.params["W_xh_l1"].shape == (16, 4)
    assert model.config.parameter_count() == (len(model.params), model.params.flat.size)
    assert isinstance(model.kernels, Embedded) and kernel_network(model.network).input_size == 7
    plain = rnnlab.RNN(7, 4, 4, cell="lstm", num_layers=2, loss="softmax", seed=0)
    assert "embedding" not in plain.config.to_dict()  # (files of models without one unchanged)
    with pytest.raises(ValueError, match="embedding must be a positive integer"):
        rnnlab.RNN(7, 4, 4, embedding=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_equal_finite_differences(cell, backend):
    model, X, Y, lengths = model_and_tokens(cell, backend)
    _, grads = model.loss_and_grad(X, Y, lengths=lengths, reduction="sum")
    theta, eps = model.params.flat, 1e-6
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        keep = theta[i]
        theta[i] = keep + eps
        up = model.loss(X, Y, lengths=lengths, reduction="sum")
        theta[i] = keep - eps
        down = model.loss(X, Y, lengths=lengths, reduction="sum")
        theta[i] = keep
        numeric[i] = (up - down) / (2 * eps)
    tol = 1e-6 if cell == "exprnn" else 1e-7  # (scipy's expm: ~1e-15 relative)
    for name, (a, b) in zip(model.network.names, model.network.slices, strict=True):
        np.testing.assert_allclose(grads[name].ravel(), numeric[a:b], atol=tol, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_gradients_equal_torch_autograd(cell, backend):
    torch = pytest.importorskip("torch")
    model, X, Y, lengths = model_and_tokens(cell, backend, layers=2)
    c = model.config
    # the same network without the table, reading the embedded inputs: torch's module
    core = rnnlab.RNN(c.embedding, c.hidden_size, c.output_size, cell=cell,
                      num_layers=c.num_layers, loss="softmax", activation=c.activation)  # fmt: skip
    core.params = {k: v for k, v in model.params.items() if k != "E"}
    module = to_torch(core)
    E = torch.tensor(model.params["E"], requires_grad=True)
    logits = module(torch.from_numpy(X) @ E, lengths)  # (B, T, O): x -> E^T x per step
    valid = torch.from_numpy(np.arange(X.shape[1])[None, :] < lengths[:, None])
    target = torch.from_numpy(Y.argmax(-1))
    loss = torch.nn.functional.cross_entropy(logits[valid], target[valid], reduction="sum")
    loss.backward()
    value, grads = model.loss_and_grad(X, Y, lengths=lengths, reduction="sum")
    assert value == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(grads["E"], E.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(module.named_parameters())
    for name, sources in torch_names(cell, c.num_layers).items():
        np.testing.assert_allclose(grads[name], tparams[sources[0]].grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)  # fmt: skip
    np.testing.assert_allclose(model.logits(X, lengths=lengths),
                               logits.detach().numpy()[:, : lengths.max()],
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    with pytest.raises(ValueError, match=r"torch\.nn\.Embedding"):
        to_torch(model)


def test_numba_equals_numpy_and_a_saved_model_loads_whole(tmp_path):
    a, X, Y, lengths = model_and_tokens("gru", "numpy")
    b, *_ = model_and_tokens("gru", "numba")
    la, ga = a.loss_and_grad(X, Y, lengths=lengths)
    lb, gb = b.loss_and_grad(X, Y, lengths=lengths)
    assert la == pytest.approx(lb, rel=1e-12)
    np.testing.assert_allclose(ga.flat, gb.flat, atol=1e-12)
    a.save(tmp_path / "m.safetensors")
    back = rnnlab.load(tmp_path / "m.safetensors")
    assert back.config.embedding == 2 and np.array_equal(back.params.flat, a.params.flat)
    np.testing.assert_allclose(back.predict_proba(X, lengths=lengths),
                               a.predict_proba(X, lengths=lengths), atol=1e-12)  # fmt: skip


def test_a_text_model_with_an_embedding_learns_and_samples(tmp_path, capsys):
    from rnnlab.text import sample, train_text

    path = tmp_path / "periodic.txt"
    path.write_text("abacabadabae" * 400)
    run = train_text(path, hidden_size=16, embedding=4, seq_length=4, batch_size=8, lr=0.01,
                     max_steps=300, eval_every=100, out=None)  # fmt: skip
    assert run.model.params["E"].shape == (5, 4)
    assert run.bits < 0.1 < run.baselines["bigram"]  # (the bigram: 0.9 bits)
    text = sample(run.model, run.vocabulary, 24, temperature=0.1, prime="abacabadabae",
                  rng=np.random.default_rng(0))  # fmt: skip
    assert text == "abacabadabae" * 2
    code = main(["train", "text", "--data", str(path), "--hidden", "8", "--embedding", "3",
                 "--length", "4", "--batch-size", "8", "--max-steps", "20",
                 "--out", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0
    (saved,) = (tmp_path / "runs").iterdir()
    assert json.loads((saved / "config.json").read_text())["model"]["embedding"] == 3
    capsys.readouterr()


def test_the_cli_takes_an_embedding_for_tokens_only(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=(60, 5))
    path = tmp_path / "tokens.npz"
    np.savez(path, X=ids.astype(float), Y=(ids[..., None] % 2).astype(float))
    assert main(["train", "--data", str(path), "--tokens", "--embedding", "3", "--max-steps",
                 "30", "--no-plot", "--quiet", "--out", str(tmp_path / "runs")]) == 0  # fmt: skip
    (run,) = (tmp_path / "runs").iterdir()
    model = rnnlab.load(run / "model.safetensors")
    assert model.config.embedding == 3 and model.params["E"].shape == (6, 3)
    capsys.readouterr()
    for argv, words in [
        (["train", "parity", "--embedding", "3"], "--embedding goes with --data FILE --tokens"),
        (["train", "--data", str(path), "--tokens", "--embedding", "0"], "--embedding must be"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    with pytest.raises(ValueError, match="without an input embedding"):
        from rnnlab.online import OnlineLearner

        OnlineLearner(model, "rtrl")
