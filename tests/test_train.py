"""The fit loop: solving, stopping, restoring, and user data."""

import math
import types

import numpy as np
import pytest

import rnnlab
from rnnlab.kernels import Trainer
from rnnlab.tasks import Task, get_task
from rnnlab.train import fit


def test_fit_solves_shift_and_records_history():
    model = rnnlab.RNN(seed=0)
    history = fit(model, "shift")
    assert history.solved and history.stop_reason.startswith("solved")
    assert history.rows[-1]["val_sequence_accuracy"] == 1.0
    assert [r["step"] for r in history.rows] == list(range(10, history.steps + 1, 10))
    csv = history.to_csv().splitlines()
    assert csv[0].startswith("step,seconds,lr,train_loss") and len(csv) == len(history.rows) + 1
    test = get_task("shift").generate(50, np.random.default_rng(9), lengths=(1000, 1000))
    assert rnnlab.train.evaluate(model, test, get_task("shift"))["sequence_accuracy"] == 1.0


def test_same_seed_same_training_bit_for_bit():
    a, b = rnnlab.RNN(seed=3), rnnlab.RNN(seed=3)
    fit(a, "shift", max_steps=30)
    fit(b, "shift", max_steps=30)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def warm_up_calls(model) -> int:
    return 0 if model.kernels.name == "numpy" else 1


def _nan_on_update_5(model, calls, snapshot):
    """A backend (the protocol: name, forward, loss_and_grad, train_step, trainer) that runs the
    model's own, except that the 5th update's training call returns a NaN loss, changing
    nothing. (On compiled kernels call 1 is fit's warm-up, on copies of the weights.)"""
    real = model.kernels
    nan_call = 5 + warm_up_calls(model)

    def training(kernel):
        def call(net, theta, *args, **kwargs):
            calls.append(1)
            if len(calls) == nan_call:
                snapshot.update({n: p.copy() for n, p in model.params.items()})
                return math.nan, (0.0 if kernel is real.train_step else np.zeros_like(theta))
            return kernel(net, theta, *args, **kwargs)

        return call

    backend = types.SimpleNamespace(
        name=real.name,
        forward=real.forward,
        loss_and_grad=training(real.loss_and_grad),
        train_step=training(real.train_step),
    )
    backend.trainer = lambda net, **options: Trainer(backend, net, **options)
    return backend


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])  # train_step; loss_and_grad + step
def test_nan_loss_stops_and_returns_to_the_last_evaluated_weights(backend, optimizer):
    model = rnnlab.RNN(seed=0, backend=backend)
    calls, snapshot = [], {}
    model.kernels = _nan_on_update_5(model, calls, snapshot)
    history = fit(model, "shift", optimizer=optimizer, restore_best=False, eval_every=4)
    assert not history.solved and history.steps == 4 and len(calls) == 5 + warm_up_calls(model)
    assert "loss became nan at step 5" in history.stop_reason
    assert "returned to the weights evaluated at step 4" in history.stop_reason
    assert history.diverged and history.trained
    assert snapshot
    for name, value in snapshot.items():  # the weights of step 4, evaluated then
        np.testing.assert_array_equal(model.params[name], value)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_nan_loss_before_any_evaluation_leaves_the_weights_as_they_started(backend):
    model = rnnlab.RNN(seed=0, backend=backend)
    start = model.params.flat.copy()
    calls, snapshot = [], {}
    model.kernels = _nan_on_update_5(model, calls, snapshot)
    history = fit(model, "shift", restore_best=False, eval_every=10)
    assert history.diverged and not history.trained and "nothing trained" in history.stop_reason
    np.testing.assert_array_equal(model.params.flat, start)


def test_patience_stops_and_best_weights_come_back():
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 2, size=n).tolist() for n in rng.integers(3, 8, size=200)]
    Y = [[0, *x[:-1]] for x in X]
    anti = [[1 - b for b in y] for y in Y]  # held-out targets that learning makes worse
    model = rnnlab.RNN(seed=0)
    history = fit(model, (X, Y), validation=(X, anti), lr=0.05, patience=2, eval_every=5)
    assert "no improvement in 2 evaluations" in history.stop_reason
    rows = history.rows
    best = max(
        rows, key=lambda r: (r["val_sequence_accuracy"], r["val_step_accuracy"], -r["val_loss"])
    )
    assert rows[-1]["step"] == best["step"] + 10  # two evaluations after the best
    replay = rnnlab.RNN(seed=0)
    fit(replay, (X, Y), validation=(X, anti), lr=0.05, max_steps=best["step"], restore_best=False)
    for name in model.params:  # the kept weights are those of the best evaluation
        np.testing.assert_array_equal(model.params[name], replay.params[name])


def test_fit_on_user_data_with_validation():
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 2, size=n).tolist() for n in rng.integers(3, 8, size=200)]
    Y = [[0, *x[:-1]] for x in X]
    model = rnnlab.RNN(seed=1)
    history = fit(model, (X, Y), validation=(X[:50], Y[:50]), lr=0.05, max_steps=2000)
    assert history.solved
    assert model.predict([[1, 0, 1, 1]]) == [[0, 1, 0, 1]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"lr": "0.1"}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"truncate": 0}, "truncate must be a positive integer"),
        ({"optimizer": "lbfgs"}, "lbfgs"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(rnnlab.RNN(), "shift", **kwargs)


def test_task_and_model_must_fit_together():
    with pytest.raises(ValueError, match="task 'binary_addition' needs input_size=2"):
        fit(rnnlab.RNN(), "binary_addition")


def test_compiled_training_path_matches_the_reference():
    """fit on the compiled backend follows the numpy reference update for update
    (rounding aside)."""
    reference = rnnlab.RNN(hidden_size=3, seed=2, backend="numpy")
    compiled = rnnlab.RNN(hidden_size=3, seed=2, backend="numba")
    assert (reference.backend, compiled.backend) == ("numpy", "numba")
    for model in (reference, compiled):
        fit(model, "shift", max_steps=20, clip=0.5, restore_best=False)
    assert any(not np.array_equal(reference.params[n], rnnlab.RNN(hidden_size=3, seed=2).params[n])
               for n in reference.params)  # fmt: skip
    for name in reference.params:
        np.testing.assert_allclose(compiled.params[name], reference.params[name], rtol=1e-9,
                                   atol=1e-12)  # fmt: skip


def test_fit_on_another_backend_returns_the_model_to_its_own():
    model = rnnlab.RNN(seed=0, backend="numba")
    before = {n: p.copy() for n, p in model.params.items()}
    fit(model, "shift", max_steps=10, backend="numpy")
    assert model.backend == "numba"
    assert any(not np.array_equal(model.params[n], before[n]) for n in before)  # it trained
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        fit(model, "shift", max_steps=10, backend="gpu")
    assert model.backend == "numba"


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    ("optimizer", "hyper"),
    [("adam", {}), ("momentum", {"nesterov": True, "weight_decay": 0.01}), ("sgd", {}),
     ("adagrad", {}), ("rmsprop", {"centered": True})],
)  # fmt: skip
@pytest.mark.parametrize("batch_size", [1, 5])
def test_train_step_equals_pass_then_update(backend, optimizer, hyper, batch_size):
    """A TrainStep (the backend's train_step with the optimizer's Update, or its
    loss_and_grad and step_flat) does what a separate pass and optimizer step do."""
    from rnnlab.optim import make_optimizer
    from rnnlab.train import TrainStep

    task = get_task("shift")
    batch = task.generate(batch_size, np.random.default_rng(0), lengths=(4, 9))
    stepped = rnnlab.RNN(seed=4, backend=backend)
    plain = rnnlab.RNN(seed=4, backend="numpy")
    step = TrainStep(stepped, make_optimizer(optimizer, lr=0.1, **hyper), clip=0.05)
    opt = make_optimizer(optimizer, lr=0.1, **hyper)
    start = plain.params.flat.copy()
    for _ in range(6):
        loss, norm = step(batch)
        expected_loss, grads = plain.loss_and_grad(batch)
        assert loss == pytest.approx(expected_loss, rel=1e-12)
        assert norm == pytest.approx(opt.step_flat(plain.params.flat, grads.flat, max_norm=0.05),
                                     rel=1e-12)  # fmt: skip
    assert not np.allclose(plain.params.flat, start)  # it did train
    np.testing.assert_allclose(stepped.params.flat, plain.params.flat, rtol=1e-12, atol=1e-15)
    assert step.optimizer.state["flat"]["step"] == 6


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_train_step_with_a_nan_changes_nothing(backend, optimizer):
    from rnnlab.optim import make_optimizer
    from rnnlab.train import TrainStep

    model = rnnlab.RNN(seed=0, backend=backend)
    batch = get_task("shift").generate(2, np.random.default_rng(0), lengths=(4, 9))
    batch.x[1, 0, 0] = np.nan
    before = model.params.flat.copy()
    step = TrainStep(model, make_optimizer(optimizer, lr=0.1))
    loss, norm = step(batch)
    assert math.isnan(loss) and math.isnan(norm)
    np.testing.assert_array_equal(model.params.flat, before)
    assert step.optimizer.state.get("flat", {"step": 0})["step"] == 0


@pytest.mark.parametrize(("own", "other"), [("numba", "numpy"), ("numpy", "numba")])
def test_switching_backends_keeps_the_parameter_arrays(own, other):
    model = rnnlab.RNN(seed=0, backend=own)
    params, held, flat = model.params, model.params["W_hh"], model.params.flat
    before = held.copy()
    fit(model, "shift", max_steps=10, backend=other)
    assert model.backend == own
    assert model.params is params and model.params["W_hh"] is held
    assert np.shares_memory(held, model.params.flat) and model.params.flat is flat
    assert not np.array_equal(held, before)  # the training on the other backend reached it
    held[0, 0] = 123.0  # an in-place edit still changes the model
    assert model.params.flat[model.network.slices[model.network.names.index("W_hh")][0]] == 123.0


def test_an_error_inside_fit_returns_the_model_to_its_backend():
    model = rnnlab.RNN(seed=0, backend="numba")
    seen = []

    class Broken(Task):  # a task whose data cannot be made
        name, input_size, output_size, loss = "broken", 1, 1, "bce"
        defaults = get_task("shift").defaults

        def generate(self, n, rng, lengths=None):
            seen.append(model.backend)  # fit did switch before this
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit(model, Broken(), backend="numpy")
    assert seen == ["numpy"]
    assert model.backend == "numba"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"clip": 0.0}, "clip must be"), ({"clip": float("nan")}, "clip must be"),
     ({"truncate": 0}, "truncate must be"), ({"reduction": "max"}, "reduction")],
)  # fmt: skip
def test_train_step_checks_its_arguments(kwargs, message):
    from rnnlab.optim import make_optimizer
    from rnnlab.train import TrainStep

    with pytest.raises(ValueError, match=message):
        TrainStep(rnnlab.RNN(seed=0), make_optimizer("adam", lr=0.1), **kwargs)


def test_fit_refuses_unknown_settings():
    model = rnnlab.RNN(seed=0)
    with pytest.raises(ValueError, match="unknown fit setting"):
        fit(model, "shift", max_step=3)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_warm_up_changes_nothing(optimizer):
    """fit loads (or compiles) its kernels before its clock starts, on copies."""
    from rnnlab.optim import make_optimizer
    from rnnlab.tasks import get_task
    from rnnlab.train import TrainStep

    model = rnnlab.RNN(seed=0, backend="numba")
    step = TrainStep(model, make_optimizer(optimizer, lr=0.1))
    batch = model.batch(get_task("shift").generate(8, np.random.default_rng(0)))
    step(batch)  # (optimizer state exists)
    weights = model.params.flat.copy()
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
             for k, v in step.optimizer.state["flat"].items()}  # fmt: skip
    step.warm(batch)
    np.testing.assert_array_equal(model.params.flat, weights)
    for key, value in step.optimizer.state["flat"].items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)


def test_compiling_notice_shows_only_when_loading_is_slow():
    import threading

    from rnnlab.train import _CompilingNotice

    shown = threading.Event()
    with _CompilingNotice(enabled=True, after=0.01) as notice:
        for _ in range(500):  # (up to 5 s for the timer's thread to run)
            if notice._status is not None:
                shown.set()
                break
            shown.wait(0.01)
    assert shown.is_set() and notice._status is None
    with _CompilingNotice(enabled=True, after=60) as notice:
        pass
    assert notice._status is None and notice._timer is None


# -- fit as people expect: epochs, warmup, weight decay, monitor, callbacks ----------------


def test_epochs_and_not_stopping_when_solved():
    model = rnnlab.RNN(seed=0)
    history = fit(model, "shift", epochs=2, stop_when_solved=False)
    assert history.steps == math.ceil(2 * 1000 / 32)  # passes over the 1000 strings
    assert history.solved and history.stop_reason.startswith("reached max_steps")
    with pytest.raises(ValueError, match="give epochs or max_steps, not both"):
        fit(model, "shift", epochs=2, max_steps=10)


def test_warmup_and_weight_decay_reach_the_optimizer():
    history = fit(rnnlab.RNN(seed=0), "shift", warmup=40, max_steps=60,
                  stop_when_solved=False)  # fmt: skip
    lrs = {row["step"]: row["lr"] for row in history.rows}
    assert lrs[10] == pytest.approx(0.05 * 10 / 40) and lrs[60] == pytest.approx(0.05)
    from rnnlab.train import FitConfig, make_fit_optimizer

    assert make_fit_optimizer(FitConfig(weight_decay=0.1), get_task("shift")).weight_decay == 0.1
    plain, decayed = rnnlab.RNN(seed=1), rnnlab.RNN(seed=1)
    fit(plain, "shift", max_steps=50, stop_when_solved=False, restore_best=False)
    fit(decayed, "shift", max_steps=50, stop_when_solved=False, restore_best=False,
        weight_decay=1.0)  # fmt: skip
    assert np.linalg.norm(decayed.params.flat) < np.linalg.norm(plain.params.flat)


def test_monitor_val_loss_keeps_the_lowest_loss():
    model = rnnlab.RNN(seed=3)
    history = fit(model, "parity", max_steps=200, monitor="val_loss", stop_when_solved=False)
    assert history.best["loss"] == min(row["val_loss"] for row in history.rows)
    # "solved" says whether the weights it ends with were: the kept evaluation's verdict
    task = get_task("parity")
    from rnnlab.train import _every_string_right

    assert history.solved == (task.is_solved(history.best) and _every_string_right(model, task))
    with pytest.raises(ValueError, match="weight_decay is the optimizer's"):
        fit(model, "parity", optimizer=rnnlab.optim.Adam(0.01), weight_decay=0.1)


def test_callbacks_log_checkpoint_and_see_every_step(tmp_path):
    from rnnlab.callbacks import Checkpoint, CSVLogger

    class Counter:
        steps, ends = 0, 0

        def on_step(self, step, loss, norm):
            assert math.isfinite(loss) and norm >= 0
            self.steps += 1

        def on_end(self, history, model):
            self.ends += 1

    counter, log = Counter(), CSVLogger(tmp_path / "log.csv")
    best = Checkpoint(tmp_path / "best.safetensors", monitor="val_loss")
    model = rnnlab.RNN(seed=2)
    history = fit(model, "shift", max_steps=80, stop_when_solved=False,
                  callbacks=[counter, log, best])  # fmt: skip
    assert counter.steps == 80 and counter.ends == 1
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("step,seconds,lr") and len(lines) == 1 + len(history.rows)
    assert best.best == min(row["val_loss"] for row in history.rows)
    saved = rnnlab.load(tmp_path / "best.safetensors")
    assert best.step in [row["step"] for row in history.rows]
    from rnnlab.train import evaluate, held_out_set

    val = held_out_set(get_task("shift"), 0, 1)  # (fit's validation set, seed 0)
    assert evaluate(saved, val, get_task("shift"))["loss"] == pytest.approx(best.best)
    with pytest.raises(ValueError, match="unknown monitor"):
        Checkpoint(tmp_path / "x.safetensors", monitor="loss")


class _EveryStep:
    """An ``on_step`` callback: fit then makes one update per backend call."""

    def on_step(self, step, loss, norm):
        pass


@pytest.mark.parametrize(
    ("cell", "dtype", "hidden", "batch_size"),
    [("elman", "float64", 3, 16), ("gru", "float32", 4, 2), ("lstm", "float64", 40, 8)],
)  # blocks of sequences; one sequence at a time; products through BLAS
def test_fit_makes_many_updates_per_backend_call_with_the_same_bits(
        monkeypatch, cell, dtype, hidden, batch_size):  # fmt: skip
    from rnnlab.train import TrainStep

    calls = []
    original = TrainStep.many

    def counted(self, data, index, rates):
        calls.append(len(index))
        return original(self, data, index, rates)

    monkeypatch.setattr(TrainStep, "many", counted)
    rng = np.random.default_rng(0)
    X = [rng.integers(0, 2, size=n).tolist() for n in rng.integers(3, 12, size=40)]
    Y = [[0, *x[:-1]] for x in X]  # sequences of 3 to 11 steps: each batch trimmed to its own
    settings = dict(batch_size=batch_size, max_steps=90, eval_every=40, schedule="cosine",
                    warmup=7, clip=0.5, weight_decay=1e-3, seed=5, restore_best=False,
                    stop_when_solved=False)  # fmt: skip
    runs = []
    for callbacks in ([_EveryStep()], []):
        model = rnnlab.RNN(1, hidden, 1, cell=cell, dtype=dtype, seed=2, backend="numba")
        calls.clear()
        history = fit(model, (X, Y), callbacks=callbacks, **settings)
        runs.append((model.params.flat.copy(), history, list(calls)))
    (one, one_history, one_calls), (many, many_history, many_calls) = runs
    assert set(one_calls) == {1} and len(one_calls) == 90
    assert max(many_calls) > 1 and sum(many_calls) == 90  # (up to each evaluation)
    assert not np.allclose(one, rnnlab.RNN(1, hidden, 1, cell=cell, dtype=dtype, seed=2)
                           .params.flat)  # it trained  # fmt: skip
    np.testing.assert_array_equal(many, one)  # bit for bit
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(many_history.rows) == drop(one_history.rows) and len(one_history.rows) == 3
    for key, value in one_history.state.optimizer.items():
        np.testing.assert_array_equal(many_history.state.optimizer[key], value)
    assert many_history.state.rng == one_history.state.rng


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_many_updates_stop_after_the_first_that_is_not_finite(backend):
    """``TrainStep.many`` in one backend call does what its updates one at a time do, and
    stops after the first whose loss is NaN (that one not applied)."""
    from rnnlab.optim import make_optimizer
    from rnnlab.train import TrainStep

    train = get_task("shift").generate(20, np.random.default_rng(0), lengths=(4, 9))
    index = np.stack([np.random.default_rng(k).permutation(20)[:5] for k in range(8)])
    bad = min(set(index[3]) - set(index[:3].ravel()))
    train.x[1, bad, 0] = np.nan  # update 3 meets it
    rates = [0.1, 0.05, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    made = []
    for many in (True, False):
        model = rnnlab.RNN(seed=4, backend=backend)
        step = TrainStep(model, make_optimizer("adam", lr=0.3), clip=0.5)
        if many:
            record = step.many(train, index, rates)
        else:
            rows = []
            for k in range(4):
                step.optimizer.lr = rates[k]
                rows.append(step(train.take(index[k])))
            record = np.array(rows)
        made.append((record, model.params.flat.copy(), step.optimizer))
    (record, weights, optimizer), (expected, expected_weights, _) = made
    assert record.shape == (4, 2) and np.isnan(record[3]).all() and np.isfinite(record[:3]).all()
    np.testing.assert_array_equal(record, expected)
    np.testing.assert_array_equal(weights, expected_weights)
    assert optimizer.state["flat"]["step"] == 3 and optimizer.lr == 0.1


def test_fit_asks_for_updates_up_to_the_next_evaluation_and_about_50_ms_of_them():
    from rnnlab.train import _updates_in_one_call as updates

    assert updates(0, 10, 100, None, True) == 1  # the first alone: it is timed
    assert updates(3, 10, 100, 1e-6, True) == 7  # up to the next evaluation
    assert updates(95, 1000, 100, 1e-6, True) == 5  # or the last step
    assert updates(0, 10**6, 10**7, 0.01, True) == 5  # about 50 ms of them
    assert updates(0, 10**6, 10**7, 1e-12, True) == 4096  # and never more than this
    assert updates(0, 10**6, 10**7, 10.0, True) == 1
    assert updates(3, 10, 100, 1e-6, False) == 1  # one per call where they cannot batch
