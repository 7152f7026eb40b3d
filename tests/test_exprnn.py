"""The expRNN cell: an orthogonal recurrence ``expm(A - A^T)`` with modReLU units.

Its exponential map and gradient against finite differences, the whole network's
gradient against finite differences and against ``torch.autograd`` (float64), and the
model around it: saved, loaded, trained.
"""

import numpy as np
import pytest

import rnnlab
from rnnlab.gradcheck import gradcheck
from rnnlab.kernels.orthogonal import pull_back, recurrent_matrix, skew


def test_the_recurrence_is_orthogonal_and_only_the_upper_triangle_counts(rng):
    A = rng.normal(scale=2.0, size=(7, 7))
    W = recurrent_matrix(A)
    np.testing.assert_allclose(W @ W.T, np.eye(7), atol=1e-12)
    assert np.isclose(np.linalg.det(W), 1.0)  # a rotation: det expm(K) = exp(tr K) = 1
    lower = A + np.tril(rng.normal(size=(7, 7)))  # the diagonal and below changed
    np.testing.assert_array_equal(recurrent_matrix(lower), W)
    np.testing.assert_array_equal(skew(A), -skew(A).T)


def test_pull_back_is_the_gradient_of_the_exponential_map(rng):
    A, C = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))

    def f(A):
        return float((C * recurrent_matrix(A)).sum())

    numeric = np.zeros_like(A)
    for i, j in np.ndindex(A.shape):
        step = np.zeros_like(A)
        step[i, j] = 1e-6
        numeric[i, j] = (f(A + step) - f(A - step)) / 2e-6
    analytic = pull_back(A, C)
    assert np.abs(analytic - numeric).max() <= 1e-8 * np.abs(numeric).max()
    assert not np.tril(analytic).any()  # below the diagonal: no effect, no gradient


def _model(backend, *, layers=1, dtype="float64", seed=0):
    model = rnnlab.RNN(3, 5, 4, cell="exprnn", loss="softmax", num_layers=layers,
                       backend=backend, dtype=dtype, seed=seed)  # fmt: skip
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():  # modReLU biases below zero: some units dead
        p += rng.normal(scale=0.4, size=p.shape) - (0.3 if name.startswith("b_h") else 0.0)
    X = rng.normal(size=(6, 9, 3))
    Y = rng.integers(0, 4, size=(6, 9))
    return model, X, Y, [9, 4, 7, 1, 9, 5]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradient_matches_finite_differences(backend, layers):
    model, X, Y, lengths = _model(backend, layers=layers)
    generators = [name for name in model.params if name.startswith("A_hh")]
    others = [name for name in model.params if name not in generators]
    # steps small enough to stay off modReLU's kinks; the exponential map is accurate
    # to about 1e-15 relative, so its differences need a larger step
    assert gradcheck(model, X, Y, lengths=lengths, eps=1e-5, names=others) <= 1e-6
    assert gradcheck(model, X, Y, lengths=lengths, eps=1e-4, names=generators) <= 1e-4


def _torch_loss_and_grads(model, X, Y, lengths):
    """The same network written in PyTorch (float64), its loss and autograd's gradients."""
    torch = pytest.importorskip("torch")
    params = {name: torch.tensor(np.array(p), requires_grad=True)
              for name, p in model.params.items()}  # fmt: skip
    x = torch.tensor(X)
    B, T = x.shape[0], x.shape[1]
    layer_input = x
    for layer in range(model.config.num_layers):
        suffix = "" if layer == 0 else f"_l{layer}"
        A = torch.triu(params["A_hh" + suffix], 1)
        W_hh = torch.linalg.matrix_exp(A - A.T)
        W_xh, b, h = params["W_xh" + suffix], params["b_h" + suffix], params["h0" + suffix]
        h = h.expand(B, -1)
        outputs = []
        for t in range(T):
            z = layer_input[:, t] @ W_xh.T + h @ W_hh.T
            h = torch.sign(z) * torch.relu(torch.abs(z) + b)
            outputs.append(h)
        layer_input = torch.stack(outputs, dim=1)  # (B, T, H)
    logits = layer_input @ params["W_hy"].T + params["b_y"]  # (B, T, O)
    mask = torch.tensor(np.arange(T)[None, :] < np.asarray(lengths)[:, None], dtype=torch.float64)
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(B * T, -1), torch.tensor(Y).reshape(-1), reduction="none"
    )
    loss = (nll * mask.reshape(-1)).sum() / mask.sum()
    loss.backward()
    return loss.item(), {name: p.grad.numpy() for name, p in params.items()}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradient_matches_torch_autograd(backend, layers):
    model, X, Y, lengths = _model(backend, layers=layers)
    Y = np.where(np.arange(9)[None, :] < np.asarray(lengths)[:, None], Y, 0)
    value, grads = model.loss_and_grad(X, Y, lengths=lengths)
    torch_value, torch_grads = _torch_loss_and_grads(model, X, Y, lengths)
    assert value == pytest.approx(torch_value, rel=1e-12)
    scale = max(np.abs(g).max() for g in torch_grads.values())
    for name, g in torch_grads.items():
        assert np.abs(grads[name] - g).max() <= 1e-10 * scale, name


def test_it_learns_copy_memory_in_the_papers_form_and_stays_orthogonal():
    """3 symbols from 4 recalled after a delay of 23, every step scored: below the
    blank-then-guess baseline within 400 updates (a GRU of 32 units, the same settings,
    recalls 43% of the symbols after 400)."""
    from rnnlab.runs import train_task
    from rnnlab.tasks import get_task
    from rnnlab.train import FitConfig

    task = get_task("copy", symbols=3, alphabet=4, blank_class=True, train_lengths=30,
                    n_train=1000, n_test=200)  # fmt: skip
    result = train_task(task, cell="exprnn", hidden_size=32, out=None, plot=False, seed=0,
                        fit_config=FitConfig(max_steps=400, lr=0.003, batch_size=32))  # fmt: skip
    model, (metrics,) = result.model, result.metrics.values()
    assert metrics["loss"] < task.baseline_loss(30) / 4
    assert metrics["symbol_accuracy"] >= 0.99
    start = rnnlab.RNN(6, 32, 5, cell="exprnn", loss="softmax", seed=0)
    A = model.params["A_hh"]
    assert not np.allclose(A, start.params["A_hh"])  # trained ...
    np.testing.assert_array_equal(np.tril(A), np.tril(start.params["A_hh"]))  # ... above only
    W = recurrent_matrix(A)
    np.testing.assert_allclose(W @ W.T, np.eye(32), atol=1e-12)


def test_saved_and_loaded_and_refused_by_to_torch(tmp_path, rng):
    model = rnnlab.RNN(2, 4, 1, cell="exprnn", num_layers=2, dtype="float32", seed=3)
    X = rng.normal(size=(3, 5, 2))
    loaded = rnnlab.load(model.save(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.params["A_hh_l1"].shape == (4, 4)
    torch = pytest.importorskip("torch")  # noqa: F841
    from rnnlab.interop import to_torch

    with pytest.raises(ValueError, match="PyTorch has no module for the exprnn cell"):
        to_torch(model)
