"""Stopped runs continue exactly: a run interrupted (Ctrl-C) and resumed ends with the
same weights, optimizer state and history as one that ran through, from the API
(:func:`rnnlab.fit`'s ``resume``, :func:`rnnlab.text.train_text`'s) and from the CLI
(``rnnlab train --resume RUN``) for task, data and text runs."""

from __future__ import annotations

import csv
import json
import signal

import numpy as np
import pytest

import rnnlab
from rnnlab.cli import main
from rnnlab.fit_state import FitState
from rnnlab.io import ModelFileError, read_model_file
from rnnlab.train import TrainStep


@pytest.fixture(autouse=True)
def python_handles_ctrl_c():
    """Python's own SIGINT handler, as an interactive process has it (a runner started in
    the background hands its children SIGINT ignored, and fit leaves that alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class StopAt:
    """Ctrl-C (a real SIGINT) during update ``step``: the loop stops after it."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, step, loss, norm):
        if step == self.step:
            signal.raise_signal(signal.SIGINT)


@pytest.fixture
def interrupt_at(monkeypatch):
    """Sends SIGINT during the ``n``-th training update of whatever trains next (the CLI's
    own loop: no callback reaches it)."""

    def arm(n: int):
        calls = {"n": 0}
        original = TrainStep.__call__

        def counted(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                signal.raise_signal(signal.SIGINT)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(TrainStep, "__call__", counted)

    return arm


SETTINGS = dict(max_steps=60, eval_every=5, stop_when_solved=False, schedule="cosine",
                warmup=10, patience=50)  # fmt: skip


def fresh(backend="numpy"):
    return rnnlab.RNN(1, 3, 1, seed=1, backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fit_resumed_from_a_saved_state_equals_the_run_that_went_through(tmp_path, backend):
    whole = fresh(backend)
    through = rnnlab.fit(whole, "parity", **SETTINGS)
    stopped = fresh(backend)
    first = rnnlab.fit(stopped, "parity", callbacks=[StopAt(23)], **SETTINGS)
    assert first.interrupted and first.steps == 23 and first.state.step == 23
    first.state.save(tmp_path / "state.safetensors")
    resumed = fresh(backend)  # (other weights: the state's replace them)
    rest = rnnlab.fit(resumed, "parity", resume=tmp_path / "state.safetensors", **SETTINGS)
    assert rest.steps == through.steps == 60 and not rest.interrupted
    assert np.array_equal(resumed.params.flat, whole.params.flat)  # bit for bit
    assert np.array_equal(rest.state.weights, through.state.weights)
    for key, value in through.state.optimizer.items():
        assert np.array_equal(rest.state.optimizer[key], value)
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(rest.rows) == drop(through.rows) and len(rest.rows) == 12
    assert rest.best == through.best and rest.stop_reason == through.stop_reason


def test_ctrl_c_during_many_updates_in_one_call_stops_after_them(monkeypatch):
    """The compiled backend makes many updates in one call (up to the next evaluation):
    a Ctrl-C during one stops the run after them, and it resumes exactly."""
    settings = {**SETTINGS, "eval_every": 20}
    whole = fresh("numba")
    through = rnnlab.fit(whole, "parity", **settings)
    calls, original = [], TrainStep.many

    def many(self, data, index, rates):
        made = sum(calls)
        calls.append(len(index))
        if made < 30 <= made + len(index):  # (the call that makes update 30)
            signal.raise_signal(signal.SIGINT)
        return original(self, data, index, rates)

    monkeypatch.setattr(TrainStep, "many", many)
    model = fresh("numba")
    first = rnnlab.fit(model, "parity", **settings)
    assert max(calls) > 1 and first.interrupted and first.steps == sum(calls) >= 30
    rest = rnnlab.fit(model, "parity", resume=first.state, **settings)
    assert rest.steps == 60 and np.array_equal(model.params.flat, whole.params.flat)
    drop = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop(rest.rows) == drop(through.rows)


def test_fit_resumes_in_memory_and_from_a_run_directory(tmp_path):
    whole = fresh()
    rnnlab.fit(whole, "parity", **SETTINGS)
    model = fresh()
    first = rnnlab.fit(model, "parity", callbacks=[StopAt(40)], **SETTINGS)
    rnnlab.fit(model, "parity", resume=first.state, **SETTINGS)
    assert np.array_equal(model.params.flat, whole.params.flat)
    first.state.save(tmp_path / "checkpoint.safetensors")
    again = fresh()
    rnnlab.fit(again, "parity", resume=tmp_path, **SETTINGS)  # (a run directory)
    assert np.array_equal(again.params.flat, whole.params.flat)


def test_a_fit_state_round_trips_exactly_and_bad_ones_are_refused(tmp_path):
    model = fresh()
    history = rnnlab.fit(model, "parity", callbacks=[StopAt(12)], **SETTINGS)
    state = history.state
    state.rows[0]["val_loss"] = float("nan")  # (non-finite values survive too)
    path = state.save(tmp_path / "state.safetensors")
    back = FitState.load(path)
    assert back.step == 12 and back.rng == state.rng and back.running_loss == state.running_loss
    assert np.isnan(back.rows[0]["val_loss"]) and back.rows[1] == state.rows[1]
    assert np.array_equal(back.order, state.order) and back.best_score == state.best_score
    with pytest.raises(ValueError, match="holds 22 weights"):
        rnnlab.fit(rnnlab.RNN(1, 4, 1, seed=0), "parity", resume=path, **SETTINGS)
    with pytest.raises(ValueError, match="has run 12 steps already; max_steps is 11"):
        rnnlab.fit(fresh(), "parity", resume=path, **{**SETTINGS, "max_steps": 11})
    model.save(tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError, match="not a fit state"):
        FitState.load(tmp_path / "model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no checkpoint\.safetensors"):
        rnnlab.fit(fresh(), "parity", resume=tmp_path / "empty", **SETTINGS)


def params_of(run):
    return read_model_file(run / "model.safetensors")[1]


def rows_of(run, drop="seconds"):
    with (run / "history.csv").open() as f:
        return [{k: v for k, v in row.items() if k != drop} for row in csv.DictReader(f)]


def only_run(folder):
    (run,) = folder.iterdir()
    return run


def same_runs(a, b):
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert np.array_equal(pa[key], pb[key]), key
    assert rows_of(a) == rows_of(b)


TASK_RUN = ["train", "parity", "--hidden", "3", "--max-steps", "60", "--no-stop-when-solved",
            "--backend", "numpy", "--no-plot", "--quiet", "--seed", "3"]  # fmt: skip


def test_rnnlab_train_resume_continues_a_task_run_exactly(tmp_path, interrupt_at, capsys):
    assert main([*TASK_RUN, "--out", str(tmp_path / "through")]) == 0
    interrupt_at(17)
    assert main([*TASK_RUN, "--out", str(tmp_path / "stopped")]) == 130
    stopped = only_run(tmp_path / "stopped")
    err = capsys.readouterr().err
    assert f"continue it with: rnnlab train --resume {stopped}" in err
    config = json.loads((stopped / "config.json").read_text())
    assert config["interrupted"] and config["steps"] == 17
    assert main(["train", "--resume", str(stopped), "--out", str(tmp_path / "resumed"),
                 "--no-plot", "--quiet", "--backend", "numpy"]) == 0  # fmt: skip
    resumed = only_run(tmp_path / "resumed")
    same_runs(resumed, only_run(tmp_path / "through"))
    assert json.loads((resumed / "config.json").read_text())["steps"] == 60
    assert main(["train", "--resume", str(resumed)]) == 2
    assert "the run ended (reached max_steps=60)" in capsys.readouterr().err


def test_ctrl_c_in_the_update_a_run_ends_on_is_not_lost(tmp_path, interrupt_at, capsys):
    """The loop checks for Ctrl-C before each update; one that comes during the last
    (its evaluation: the longest part of a short run) finds the loop ending by itself.
    The run is whole, and it is said, not dropped: the CLI exits 130, a sweep stops."""
    ended = rnnlab.fit(fresh(), "parity", callbacks=[StopAt(60)], **SETTINGS)
    assert ended.steps == 60 and not ended.interrupted and ended.ctrl_c_at_end
    assert ended.stop_reason == "reached max_steps=60"
    stopped = rnnlab.fit(fresh(), "parity", callbacks=[StopAt(59)], **SETTINGS)
    assert stopped.interrupted and not stopped.ctrl_c_at_end and stopped.steps == 59
    assert not rnnlab.fit(fresh(), "parity", **SETTINGS).ctrl_c_at_end

    interrupt_at(60)
    assert main([*TASK_RUN, "--out", str(tmp_path)]) == 130
    run = only_run(tmp_path)
    err = capsys.readouterr().err
    assert f"interrupted as the run ended (reached max_steps=60); the run is saved in {run}" in err
    assert "--resume" not in err
    config = json.loads((run / "config.json").read_text())
    assert config["steps"] == 60 and not config["interrupted"]

    from rnnlab.sweeps.execute import run_one

    interrupt_at(60)
    with pytest.raises(KeyboardInterrupt):  # (not recorded: a rerun of the sweep redoes it)
        run_one({"task": "parity", "hidden": 3, "max_steps": 60, "backend": "numpy"}, 3, None)


def test_rnnlab_train_resume_continues_a_data_run_on_its_own_file(tmp_path, interrupt_at,
                                                                 capsys):  # fmt: skip
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(40, 6, 1)).astype(float)
    path = tmp_path / "bits.npz"
    np.savez(path, X=X, Y=np.cumsum(X, axis=1) % 2)
    argv = ["train", "--data", str(path), "--hidden", "4", "--max-steps", "30",
            "--no-stop-when-solved", "--backend", "numpy", "--no-plot", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "through")]) == 0
    interrupt_at(11)
    assert main([*argv, "--out", str(tmp_path / "stopped")]) == 130
    stopped = only_run(tmp_path / "stopped")
    assert main(["train", "--resume", str(stopped), "--out", str(tmp_path / "resumed"),
                 "--no-plot", "--quiet", "--backend", "numpy"]) == 0  # fmt: skip
    same_runs(only_run(tmp_path / "resumed"), only_run(tmp_path / "through"))
    capsys.readouterr()
    np.savez(path, X=X, Y=1 - np.cumsum(X, axis=1) % 2)  # the data changed under the run
    assert main(["train", "--resume", str(stopped)]) == 2
    err = capsys.readouterr().err
    assert "changed since the run trained on it" in err and err.count("\n") == 1


PERIODIC = "abacabadabae" * 400


def test_a_text_run_resumed_from_the_api_and_the_cli_equals_one_that_went_through(
        tmp_path, interrupt_at, capsys):  # fmt: skip
    from rnnlab.text import train_text

    path = tmp_path / "periodic.txt"
    path.write_text(PERIODIC)
    options = dict(hidden_size=8, seq_length=5, batch_size=4, max_steps=30, eval_every=4,
                   backend="numpy", dtype="float64", cell="lstm")  # fmt: skip
    through = train_text(path, out=tmp_path / "through", **options)
    interrupt_at(13)
    stopped = train_text(path, out=tmp_path / "stopped", **options)
    assert stopped.interrupted and stopped.steps == 13 and not through.interrupted
    resumed = train_text(resume=stopped.run_dir, out=tmp_path / "resumed", backend="numpy")
    assert resumed.steps == 30 and resumed.bits == through.bits
    same_runs(resumed.run_dir, through.run_dir)
    # the CLI: Ctrl-C, then rnnlab train --resume
    argv = ["train", "text", "--data", str(path), "--hidden", "8", "--length", "5",
            "--batch-size", "4", "--max-steps", "30", "--backend", "numpy"]  # fmt: skip
    interrupt_at(9)
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 130
    run = only_run(tmp_path / "cli")
    assert f"rnnlab train --resume {run}" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--out", str(tmp_path / "cli-resumed"),
                 "--backend", "numpy"]) == 0  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "cli-through")]) == 0
    same_runs(only_run(tmp_path / "cli-resumed"), only_run(tmp_path / "cli-through"))


def interrupt_every_stretch(monkeypatch) -> None:
    """SIGINT at the start of every stretch of online learning (the loop stops after it)."""
    from rnnlab.online import OnlineLearner

    learn = OnlineLearner.learn

    def interrupted(self, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return learn(self, *args, **kwargs)

    monkeypatch.setattr(OnlineLearner, "learn", interrupted)


def cli_train_online(out, max_steps: int) -> int:
    """``rnnlab train shift --online rtrl``'s exit code."""
    return main(["train", "shift", "--online", "rtrl", "--max-steps", str(max_steps),
                 "--no-plot", "--quiet", "--out", str(out)])  # fmt: skip


def test_ctrl_c_saves_an_online_run_and_does_not_offer_to_resume_it(tmp_path, monkeypatch,
                                                                     capsys):  # fmt: skip
    interrupt_every_stretch(monkeypatch)
    assert cli_train_online(tmp_path, 100000) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    run = only_run(tmp_path)
    assert err == f"interrupted after step 100; the run is saved in {run}"
    config = json.loads((run / "config.json").read_text())
    assert config["interrupted"] and config["steps"] == 100 and config["online"] == "rtrl"


def test_ctrl_c_in_the_last_update_of_text_and_online_runs_is_not_lost(
        tmp_path, interrupt_at, monkeypatch, capsys):  # fmt: skip
    """As for fit: a Ctrl-C during the update (text) or the stretch (online) a run ends on
    leaves it whole, and the CLI says so and exits 130, where it used to exit 0."""
    from rnnlab.text import train_text

    path = tmp_path / "periodic.txt"
    path.write_text(PERIODIC)
    options = dict(hidden_size=8, seq_length=5, batch_size=4, max_steps=12, eval_every=4,
                   backend="numpy", dtype="float64")  # fmt: skip
    interrupt_at(12)
    ended = train_text(path, out=tmp_path / "text", **options)
    assert ended.steps == 12 and not ended.interrupted and ended.ctrl_c_at_end
    assert not train_text(path, out=None, **options).ctrl_c_at_end
    interrupt_at(12)
    argv = ["train", "text", "--data", str(path), "--hidden", "8", "--length", "5",
            "--batch-size", "4", "--max-steps", "12", "--backend", "numpy"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 130
    run = only_run(tmp_path / "cli")
    out, err = capsys.readouterr()
    assert "held-out:" in out and "sample:" not in out  # (the result, then the Ctrl-C)
    last = err.strip().splitlines()[-1]
    assert last == f"interrupted as the run ended (reached max_steps=12); the run is saved in {run}"

    interrupt_every_stretch(monkeypatch)  # (the first stretch is the whole run)
    assert cli_train_online(tmp_path / "online", 100) == 130
    run = only_run(tmp_path / "online")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"interrupted as the run ended (reached max_steps=100); the run is saved in {run}"
    config = json.loads((run / "config.json").read_text())
    assert not config["interrupted"] and config["steps"] == 100


def test_a_state_is_refused_for_another_optimizer_and_after_a_divergence(tmp_path):
    from rnnlab.optim import make_optimizer

    first = rnnlab.fit(fresh(), "parity", callbacks=[StopAt(12)], **SETTINGS)
    with pytest.raises(ValueError, match="holds adam's state; the optimizer is momentum"):
        rnnlab.fit(fresh(), "parity", resume=first.state,
                   optimizer=make_optimizer("momentum", lr=0.1), **SETTINGS)  # fmt: skip

    class BlowUp:  # NaN weights after step 12: fit goes back to step 10's
        def __init__(self, model):
            self.model = model

        def on_step(self, step, loss, norm):
            if step == 12:
                self.model.params.flat[:] = np.nan

    model = fresh()
    history = rnnlab.fit(model, "parity", callbacks=[BlowUp(model)], **SETTINGS)
    assert history.diverged and "returned to the weights evaluated at step 10" in (
        history.stop_reason)  # fmt: skip
    assert history.state is None  # (no place to go on from)


def test_damaged_states_and_finished_runs_are_refused_in_one_line(tmp_path, capsys):
    model = fresh()
    history = rnnlab.fit(model, "parity", callbacks=[StopAt(12)], **SETTINGS)
    path = history.state.save(tmp_path / "state.safetensors")
    from rnnlab.io import read_model_file, write_model_file

    config, arrays = read_model_file(path)
    for key, bad in (("best_metrics", []), ("best_score", "x"), ("rng", 3), ("good_step", -1)):
        write_model_file(tmp_path / "bad.safetensors", {**config, key: bad}, arrays)
        with pytest.raises(ModelFileError, match="a damaged fit state"):
            FitState.load(tmp_path / "bad.safetensors")
    assert main([*TASK_RUN, "--max-steps", "20", "--out", str(tmp_path / "runs")]) == 0
    run = only_run(tmp_path / "runs")
    capsys.readouterr()
    for argv, words in [
        (["train", "--resume", str(run)], "the run ended (reached max_steps=20)"),
        (["train", "parity", "--resume", str(run), "--seed", "4"], "drop --seed"),
        (["train", "copy", "--resume", str(run)], "own task (parity); drop copy"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err


def test_the_kernels_refuse_a_network_with_an_embedding():
    from rnnlab.kernels import get_backend

    model = rnnlab.RNN(9, 4, 9, embedding=3)
    for backend in ("numpy", "numba"):
        with pytest.raises(ValueError, match="without an input embedding"):
            get_backend(backend).forward(model.network, model.params.flat, np.zeros((2, 1, 9)))
    assert "embedding=3" in repr(model)
