"""Online learning: RTRL's gradient is BPTT's, UORO's is unbiased, and a 2-unit sigmoid
net learns the shift stream updating at every step."""

from __future__ import annotations

import numpy as np
import pytest

import rnnlab
from rnnlab.online import OnlineGradient, OnlineLearner, shift_stream


def _flat(grads: dict, names) -> np.ndarray:
    return np.concatenate([np.ravel(grads[name]) for name in names])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("loss", ["bce", "mse", "softmax"])
def test_rtrl_accumulated_over_a_sequence_is_bptt(activation, loss):
    """Frozen weights: the sum of RTRL's step gradients equals full BPTT's, 1e-10."""
    model = rnnlab.RNN(2, 4, 3, activation=activation, loss=loss, seed=1)
    model.params["h0"][:] = [0.1, -0.2, 0.3, 0.05]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 2))
    Y = np.eye(3)[rng.integers(0, 3, 9)] if loss == "softmax" else rng.random((9, 3)).round()
    gradient = OnlineGradient(model, "rtrl")
    total = sum(gradient.step(x, y) for x, y in zip(X, Y, strict=True))
    expected_loss, expected = model.loss_and_grad([X], [Y], reduction="sum")
    assert total == pytest.approx(expected_loss, rel=1e-12)
    for name in expected:
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(gradient.grads[name], expected[name], rtol=1e-10,
                                   atol=1e-12 * scale, err_msg=name)  # fmt: skip


DEEP = [
    {"cell": "gru"},
    {"cell": "lstm"},
    {"cell": "elman", "activation": "tanh", "num_layers": 2},
    {"cell": "gru", "num_layers": 2},
    {"cell": "lstm", "num_layers": 3},
]


@pytest.mark.parametrize("config", DEEP, ids=lambda c: "-".join(map(str, c.values())))
def test_rtrl_is_bptt_for_every_cell_and_depth(config):
    """Frozen weights, any cell and depth: RTRL's step gradients sum to BPTT's, 1e-10."""
    model = rnnlab.RNN(2, 3, 2, loss="softmax", seed=2, **config)
    rng = np.random.default_rng(4)
    for p in model.params.values():  # initial states (and biases) away from zero
        p += rng.normal(scale=0.3, size=p.shape)
    X, Y = rng.standard_normal((8, 2)), np.eye(2)[rng.integers(0, 2, 8)]
    gradient = OnlineGradient(model, "rtrl")
    total = sum(gradient.step(x, y) for x, y in zip(X, Y, strict=True))
    expected_loss, expected = model.loss_and_grad([X], [Y], reduction="sum")
    assert total == pytest.approx(expected_loss, rel=1e-12)
    scale = max(np.abs(g).max() for g in expected.values())
    for name in expected:
        np.testing.assert_allclose(gradient.grads[name], expected[name], rtol=1e-10,
                                   atol=1e-12 * scale, err_msg=name)  # fmt: skip


def test_snap1_for_an_lstm_is_rtrl_when_units_do_not_talk():
    """An LSTM whose recurrent blocks are diagonal (each unit's gates see only its own
    h): every unit's state depends on its own parameters alone, so SnAp-1 is exact; with
    full blocks it is not."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((10, 2)), rng.random((10, 1)).round()
    for diagonal in (True, False):
        model = rnnlab.RNN(2, 3, 1, cell="lstm", seed=7)
        if diagonal:
            model.params["W_hh"][:] = np.concatenate([np.diag(rng.normal(size=3))
                                                      for _ in range(4)])  # fmt: skip
        gradients = {rule: OnlineGradient(model, rule) for rule in ("snap1", "rtrl")}
        for x, y in zip(X, Y, strict=True):
            for gradient in gradients.values():
                gradient.step(x, y)
        snap, exact = (_flat(gradients[r].grads, list(model.params)) for r in ("snap1", "rtrl"))
        if diagonal:
            np.testing.assert_allclose(snap, exact, rtol=1e-10, atol=1e-12)
        else:
            assert np.abs(snap - exact).max() > 1e-4


def test_truncate1_is_bptt_truncated_to_one_step():
    model = rnnlab.RNN(1, 3, 1, activation="tanh", seed=4)
    X = np.array([[1.0], [0.0], [1.0], [1.0]])
    Y = np.array([[0.0], [1.0], [0.0], [1.0]])
    gradient = OnlineGradient(model, "truncate1")
    for x, y in zip(X, Y, strict=True):
        gradient.step(x, y)
    _, expected = model.loss_and_grad([X], [Y], reduction="sum", truncate=1)
    for name in ("W_xh", "W_hh", "b_h", "W_hy", "b_y"):
        np.testing.assert_allclose(gradient.grads[name], expected[name], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_snap1_is_rtrl_where_the_recurrence_is_diagonal_and_an_approximation_elsewhere(
    activation,
):
    """SnAp-1 drops what ``W_hh``'s off-diagonal carries: with a diagonal ``W_hh`` it is
    RTRL (so BPTT), 1e-10; with a full one it differs, but points the same way (cosine
    0.87-0.9997 here)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 2))
    Y = rng.random((12, 2)).round()
    for diagonal in (True, False):
        model = rnnlab.RNN(2, 4, 2, activation=activation, seed=5)
        model.params["h0"][:] = [0.1, -0.2, 0.3, 0.05]
        if diagonal:
            model.params["W_hh"][:] = np.diag([0.9, -0.5, 0.3, 1.2])
        gradients = {rule: OnlineGradient(model, rule) for rule in ("snap1", "rtrl")}
        for x, y in zip(X, Y, strict=True):
            for gradient in gradients.values():
                gradient.step(x, y)
        names = [n for n in model.params if n != "h0"]  # (SnAp-1 keeps h0's own unit only)
        snap, exact = (_flat(gradients[r].grads, names) for r in ("snap1", "rtrl"))
        if diagonal:
            np.testing.assert_allclose(snap, exact, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(
                gradients["snap1"].grads["h0"],
                gradients["rtrl"].grads["h0"],
                rtol=1e-10,
                atol=1e-12,
            )
        else:
            assert np.abs(snap - exact).max() > 1e-3
            cosine = snap @ exact / (np.linalg.norm(snap) * np.linalg.norm(exact))
            assert cosine > 0.5


@pytest.mark.parametrize("window", [1, 3, 12])
def test_tbptt_is_bptt_within_each_window(window):
    """Windows of ``window`` steps, the state carried, its gradient not: the sum over a
    12-step sequence is each window's BPTT from the state it starts in (12: full BPTT
    but for h0, whose gradient it never takes; 1: the notebook's rule)."""
    model = rnnlab.RNN(2, 3, 1, activation="tanh", seed=6)
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((12, 2)), rng.random((12, 1)).round()
    gradient = OnlineGradient(model, "tbptt", window=window)
    for x, y in zip(X, Y, strict=True):
        gradient.step(x, y)
    names = ["W_xh", "W_hh", "b_h", "W_hy", "b_y"]
    expected = {name: np.zeros_like(model.params[name]) for name in names}
    states = model.hidden_states([X]).h[0, 0]  # (T, H)
    for start in range(0, 12, window):
        piece = rnnlab.RNN(2, 3, 1, activation="tanh", seed=6)
        piece.params["h0"][:] = states[start - 1] if start else model.params["h0"]
        _, grads = piece.loss_and_grad([X[start : start + window]], [Y[start : start + window]],
                                       reduction="sum")  # fmt: skip
        for name in names:
            expected[name] += grads[name]
    for name in names:
        np.testing.assert_allclose(gradient.grads[name], expected[name], rtol=1e-10,
                                   atol=1e-13, err_msg=name)  # fmt: skip


def test_rflo_is_the_notebooks_rule_with_a_decaying_trace_and_random_feedback(monkeypatch):
    """RFLO's trace without decay, fed back through W_hy^T, is the one-step rule; its own
    decay keeps earlier steps in the trace, and its random feedback changes the result."""
    import rnnlab.online as online

    model = rnnlab.RNN(1, 3, 1, activation="tanh", seed=4)
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((7, 1)), rng.random((7, 1)).round()

    def summed(rule, **attributes):
        gradient = OnlineGradient(model, rule, np.random.default_rng(0))
        for name, value in attributes.items():
            setattr(gradient, name, value)
        for x, y in zip(X, Y, strict=True):
            gradient.step(x, y)
        return _flat(gradient.grads, ["W_xh", "W_hh", "b_h"])

    own = summed("rflo")
    monkeypatch.setattr(online, "RFLO_DECAY", 0.0)
    one_step = summed("truncate1")
    np.testing.assert_allclose(summed("rflo", feedback=model.params["W_hy"].T), one_step,
                               rtol=1e-12, atol=1e-15)  # fmt: skip
    assert np.abs(summed("rflo") - one_step).max() > 1e-3  # random feedback
    assert np.abs(own - summed("rflo")).max() > 1e-3  # the decaying trace


def test_uoro_is_unbiased():
    """Averaged over independent draws, UORO's gradient converges to the exact one: the
    error shrinks as draws grow, and 4000 draws point the exact way."""
    model = rnnlab.RNN(1, 3, 1, activation="tanh", seed=2)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (6, 1)).astype(float)
    Y = np.vstack([[0.0], X[:-1]])
    _, exact = model.loss_and_grad([X], [Y], reduction="sum")
    names = list(exact)
    target = _flat(exact, names)
    total, errors = np.zeros_like(target), {}
    for n in range(1, 4001):
        gradient = OnlineGradient(model, "uoro", np.random.default_rng(n))
        for x, y in zip(X, Y, strict=True):
            gradient.step(x, y)
        total += _flat(gradient.grads, names)
        if n in (250, 4000):
            mean = total / n
            errors[n] = np.linalg.norm(mean - target) / np.linalg.norm(target)
    cosine = mean @ target / (np.linalg.norm(mean) * np.linalg.norm(target))
    assert cosine > 0.98 and errors[4000] < 0.15 and errors[4000] < 0.6 * errors[250]
    one = OnlineGradient(model, "uoro", np.random.default_rng(0))
    for x, y in zip(X, Y, strict=True):
        one.step(x, y)
    single = _flat(one.grads, names)  # (one draw alone is far off: the average is the point)
    assert np.linalg.norm(single - target) > errors[4000] * np.linalg.norm(target)


def test_the_notebooks_net_learns_the_shift_stream_with_rtrl():
    """2 sigmoid units, an update at every step of an endless stream (no sequences)."""
    solved = 0
    for seed in range(3):
        model = rnnlab.RNN(seed=seed)
        OnlineLearner(model, "rtrl", lr=0.5, seed=seed).learn(
            shift_stream(np.random.default_rng(seed)), 15000)  # fmt: skip
        stream, right = shift_stream(np.random.default_rng(100 + seed)), 0
        state = model.initial_state(1)
        for t in range(501):  # (frozen weights, the state carried; step 0 has no past)
            x, y = next(stream)
            probability, state = model.step([x], state)
            right += t > 0 and (probability[0, 0] > 0.5) == (y[0] == 1)
        solved += right == 500
    assert solved >= 2


def test_bad_online_setups_are_refused():
    with pytest.raises(ValueError, match="uoro learns one-layer Elman networks"):
        OnlineGradient(rnnlab.RNN(cell="gru"), "uoro", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown rule 'bptt'"):
        OnlineGradient(rnnlab.RNN(), "bptt")
    with pytest.raises(ValueError, match="uoro draws random numbers"):
        OnlineGradient(rnnlab.RNN(), "uoro")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        OnlineLearner(rnnlab.RNN(), k=0)
    with pytest.raises(ValueError, match="a step takes 1 input\\(s\\) and 1 target\\(s\\); got 2"):
        OnlineGradient(rnnlab.RNN(), "rtrl").step([0, 1], [1])


def test_streams_give_what_they_say():
    from rnnlab.online import adding_stream, data_stream, parity_stream, tomita_stream
    from rnnlab.tasks.tomita import GRAMMARS

    rng = np.random.default_rng(0)
    steps = [next(s) for s in [shift_stream(rng, delay=3)] for _ in range(50)]
    bits = [x[0] for x, _ in steps]
    assert [y[0] for _, y in steps] == [0, 0, 0, *bits[:-3]]
    pairs = [next(s) for s in [parity_stream(rng, window=3)] for _ in range(40)]
    bits = [x[0] for x, _ in pairs]
    assert [y[0] for _, y in pairs] == [sum(bits[max(0, t - 2) : t + 1]) % 2 for t in range(40)]
    stream = tomita_stream(rng, 4)  # no 000 substring
    word = []
    for _ in range(40):
        x, y = next(stream)
        word.append(int(x[1]))
        assert y[0] == float(GRAMMARS[4][1].accepts(word))
    pairs = [next(s) for s in [adding_stream(rng, window=5)] for _ in range(60)]
    marked = [x[0] * x[1] for x, _ in pairs]
    assert all(0.0 <= x[0] < 1.0 and x[1] in (0.0, 1.0) for x, _ in pairs)
    assert 0 < sum(x[1] for x, _ in pairs) < 60
    for t, (_, y) in enumerate(pairs):
        assert y[0] == pytest.approx(sum(marked[max(0, t - 4) : t + 1]), abs=1e-12)
    rows = data_stream([[1.0], [2.0]], [[0.0], [1.0]])
    assert [next(rows)[0][0] for _ in range(5)] == [1.0, 2.0, 1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="must be \\(T, I\\) and \\(T, O\\)"):
        next(data_stream([1.0, 2.0], [[0.0]]))


def test_learning_stops_once_the_last_predictions_were_right():
    model = rnnlab.RNN(seed=0)
    learner = OnlineLearner(model, "rtrl", lr=0.5)
    losses = learner.learn(shift_stream(np.random.default_rng(0)), 20000, until=500)
    assert learner.solved_at == len(losses) < 20000


def test_rnnlab_train_online_learns_the_stream_and_saves_the_run(tmp_path, capsys):
    import json

    from rnnlab.cli import main

    code = main(["train", "shift", "--online", "rtrl", "--out", str(tmp_path), "--no-plot",
                 "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "online rtrl, an update every step" in out
    assert "500 predictions in a row right on the stream" in out
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["online"] == "rtrl" and config["solved"] and config["fit"]["lr"] == 0.5
    assert (run_dir / "history.csv").read_text().startswith("step,seconds,lr")
    assert config["metrics"]["length 1000"]["step_accuracy"] > 0.99  # (all but the first)
    assert config["update_every"] == 1


def test_rnnlab_train_online_tbptt_updates_every_window(tmp_path, capsys):
    import json

    from rnnlab.cli import main

    code = main(["train", "shift", "--online", "tbptt", "--update-every", "4", "--max-steps",
                 "200", "--out", str(tmp_path), "--no-plot", "--quiet"])  # fmt: skip
    assert code == 0 and "online tbptt, an update every 4 steps" in capsys.readouterr().out
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["online"], config["update_every"], config["steps"]) == ("tbptt", 4, 200)
    assert main(["train", "shift", "--update-every", "4"]) == 2
    assert "--update-every goes with --online" in capsys.readouterr().err


def test_rnnlab_train_online_runs_gated_cells_with_rtrl_and_snap1(tmp_path, capsys):
    import json

    from rnnlab.cli import main

    code = main(["train", "shift", "--online", "snap1", "--cell", "lstm", "--hidden", "2",
                 "--max-steps", "100", "--out", str(tmp_path), "--no-plot", "--quiet"])  # fmt: skip
    assert code == 0 and "online snap1" in capsys.readouterr().out
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["online"], config["model"]["cell"], config["steps"]) == ("snap1", "lstm", 100)
    assert main(["train", "shift", "--online", "uoro", "--cell", "gru"]) == 2
    assert "uoro learns one-layer Elman networks" in capsys.readouterr().err


@pytest.mark.parametrize("rule", ["rtrl", "snap1", "rflo", "truncate1"])
@pytest.mark.parametrize(("H", "activation", "loss"), [(2, "sigmoid", "bce"),
                                                       (4, "tanh", "mse"),
                                                       (3, "relu", "softmax"),
                                                       (16, "tanh", "bce")])  # fmt: skip
def test_the_compiled_learner_is_the_numpy_one(rule, H, activation, loss):
    """On the numba backend a one-layer Elman learner runs its steps compiled, a chunk
    a call: the same losses and weights as numpy's steps (updates every 2 steps; two
    calls, the second longer than a chunk). Learning amplifies rounding: 340 steps of
    updates hold the two to 1e-7."""
    pytest.importorskip("rnnlab.kernels.compiled")

    def stream():
        for x, y in shift_stream(np.random.default_rng(0), delay=2):
            yield x, ([1.0 - y[0], y[0]] if loss == "softmax" else y)

    results = []
    for backend in ("numpy", "numba"):
        model = rnnlab.RNN(1, H, 2 if loss == "softmax" else 1, activation=activation,
                           loss=loss, seed=1, backend=backend)  # fmt: skip
        learner = OnlineLearner(model, rule, lr=0.2, seed=3, k=2)
        assert learner.compiled == (backend == "numba")
        losses = np.concatenate([learner.learn(stream(), 40), learner.learn(stream(), 300)])
        results.append((losses, model.params.flat.copy()))
    (losses, weights), (compiled_losses, compiled_weights) = results
    np.testing.assert_allclose(compiled_losses, losses, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(compiled_weights, weights, rtol=1e-7, atol=1e-12)


def test_the_compiled_learner_stops_where_numpy_stops():
    solved = []
    for backend in ("numpy", "numba"):
        learner = OnlineLearner(rnnlab.RNN(seed=0, backend=backend), "rtrl", lr=0.5)
        losses = learner.learn(shift_stream(np.random.default_rng(0)), 20000, until=500)
        solved.append((learner.solved_at, len(losses), learner.right_run))
    assert solved[0] == solved[1] and solved[0][0] < 20000


def test_snap1_trains_every_layer_of_a_stacked_network():
    """A top unit reads the layers below within the step: SnAp-1 keeps their parameters
    in its pattern, so the lower layers get a gradient, close to RTRL's in direction."""
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((10, 2)), rng.random((10, 1)).round()
    for cell in ("elman", "gru"):
        model = rnnlab.RNN(2, 3, 1, cell=cell, num_layers=2, seed=3)
        gradients = {rule: OnlineGradient(model, rule) for rule in ("snap1", "rtrl")}
        for x, y in zip(X, Y, strict=True):
            for gradient in gradients.values():
                gradient.step(x, y)
        lower = ["W_xh", "W_hh"]
        snap, exact = (_flat(gradients[r].grads, lower) for r in ("snap1", "rtrl"))
        assert np.abs(snap).max() > 1e-4
        assert snap @ exact / (np.linalg.norm(snap) * np.linalg.norm(exact)) > 0.5


def test_learner_settings_are_checked():
    with pytest.raises(ValueError, match="clip must be a positive number or None"):
        OnlineLearner(rnnlab.RNN(), "rtrl", clip=0)
    learner = OnlineLearner(rnnlab.RNN(), "rtrl")
    with pytest.raises(ValueError, match="until must be a positive integer"):
        learner.learn(shift_stream(np.random.default_rng(0)), 10, until=0)
    with pytest.raises(ValueError, match="online rules do not run the exprnn cell"):
        OnlineGradient(rnnlab.RNN(cell="exprnn"), "rtrl")
