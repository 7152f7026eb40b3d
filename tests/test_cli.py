"""The command line: each command's output, and one-line exits for bad input."""

import json
import subprocess
import sys

import pytest

import rnnlab
from rnnlab.cli import main
from rnnlab.model import RNN, RNNConfig
from rnnlab.tasks import get_task


@pytest.fixture
def shift_model(tmp_path):
    """The hand-built shift solution saved as a run directory."""
    model = RNN.from_params(RNNConfig(), get_task("shift").solution())
    path = tmp_path / "run" / "model.safetensors"
    model.save(path)
    (tmp_path / "run" / "config.json").write_text(json.dumps({"task": "shift"}))
    return path


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_prints_the_shifted_bits(capsys, shift_model):
    code, out, _ = run(capsys, "predict", shift_model, *"0 1 0 1 1 1 1 1".split())
    assert code == 0 and out.strip() == "0 0 1 0 1 1 1 1"
    code, out, _ = run(capsys, "predict", shift_model, "01011111")
    assert code == 0 and out.strip() == "00101111"
    code, out, _ = run(capsys, "predict", shift_model, "--proba", "0", "1")
    values = [float(v) for v in out.split()]
    assert len(values) == 2 and values[0] < 0.01 and values[1] < 0.01


def test_eval_uses_the_runs_task(capsys, shift_model):
    code, out, _ = run(capsys, "eval", shift_model, "--length", 1000, "--n", 5)
    assert code == 0
    assert "5 sequences of length 1000" in out and "whole sequences 100.00%" in out


def test_show_and_tasks(capsys, shift_model):
    code, out, _ = run(capsys, "show", shift_model)
    assert code == 0 and "W_hh" in out and "RNN(input_size=1" in out
    code, out, _ = run(capsys, "tasks")
    assert code == 0
    for name in ("shift", "copy", "parity", "adding", "tomita7", "dyck1"):
        assert name in out


def test_gradcheck_command(capsys):
    code, out, _ = run(capsys, "gradcheck", "--hidden", 2, "--length", 4)
    assert code == 0 and "ok" in out


def test_train_shift_solves_and_saves_a_run(capsys, tmp_path):
    code, out, err = run(capsys, "train", "shift", "--out", tmp_path, "--no-plot", "--quiet")
    assert code == 0, err
    assert "solved" in out and "not solved" not in out
    assert "length 1000" in out and "hand-built" in out
    (run_dir,) = tmp_path.iterdir()
    assert {p.name for p in run_dir.iterdir()} == {
        "config.json",
        "model.safetensors",
        "checkpoint.safetensors",
        "history.csv",
    }
    config = json.loads((run_dir / "config.json").read_text())
    assert config["solved"] is True
    for metrics in config["metrics"].values():
        assert metrics["sequence_accuracy"] == 1.0
    code, out, _ = run(capsys, "predict", run_dir / "model.safetensors", "01011111")
    assert out.strip() == "00101111"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "MODEL", "0", "2", "1"], "'2' is not 1 bit"),
        (["predict", "MODEL", "01x1"], "'x' is not 1 bit"),
        (["predict", "missing.safetensors", "0"], "missing.safetensors"),
        (["predict", "GARBAGE", "0"], "GARBAGE"),
        (["train", "juggling"], "unknown task 'juggling'"),
        (["train", "shift", "--hidden", "0"], "--hidden must be a positive integer"),
        (["train", "shift", "--lr", "-1"], "lr must be a positive number"),
        (["train", "shift", "--lr", "nan"], "lr must be a positive number"),
        (["train", "shift", "--activation", "swish"], "unknown activation 'swish'"),
        (["train", "shift", "--hidden", "abc"], "Invalid value for '--hidden'"),
        (["eval", "MODEL", "--length", "0"], "--length must be a positive integer"),
        (["train", "adding", "--length", "1"], "train_lengths must be at least 2"),
        (["train", "parity", "--test-length", "9-3"], "the longest of test_lengths"),
        (["train", "parity", "--length", "ten"], "a length or LO-HI"),
        (["train", "shift", "--init", "xavier"], "unknown init 'xavier'"),
        (["train", "shift", "--clip", "zero"], "--clip takes a positive number or none"),
        (["train", "shift", "--epochs", "2", "--max-steps", "3"], "give epochs or max_steps"),
        (["train", "shift", "--monitor", "acc"], "unknown monitor 'acc'"),
        (["train", "parity", "--length", "5", "--param", "train_lengths=6"], "give one"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, shift_model, args, message):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 this is not a model")
    args = [
        str(shift_model) if a == "MODEL" else str(garbage) if a == "GARBAGE" else a for a in args
    ]
    if "GARBAGE" in message:
        message = "garbage.safetensors"
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err + out


def test_train_at_given_lengths_and_set_sizes(capsys, tmp_path):
    args = ["train", "parity", "--length", 7, "--test-length", "30-31", "--param", "n_test=16",
            "--max-steps", 3, "--out", tmp_path, "--no-plot", "--quiet"]  # fmt: skip
    code, out, err = run(capsys, *args, "--init", "irnn", "--clip", "none", "--warmup", 1)
    assert code == 0, err
    assert "length 7" in out and "lengths 30-31" in out
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task_params"] == {"final": False, "train_lengths": [7, 7],
                                     "test_lengths": [30, 31], "n_test": 16}  # fmt: skip
    assert config["metrics"]["length 7"]["n"] == 16 and "lengths 30-31" in config["metrics"]
    assert config["init"] == "irnn"
    # what it trained with, the task's defaults filled in, and which rnnlab
    assert (config["fit"]["optimizer"], config["fit"]["lr"], config["fit"]["batch_size"],
            config["fit"]["max_steps"]) == ("adam", 0.02, 32, 3)  # fmt: skip
    assert config["fit"]["clip"] is None and config["fit"]["warmup"] == 1
    assert config["rnnlab_version"] == rnnlab.__version__


def test_eval_tests_on_the_runs_task_with_its_parameters(capsys, tmp_path):
    args = ["train", "parity", "--param", "final=true", "--max-steps", 2, "--out", tmp_path,
            "--no-plot", "--quiet"]  # fmt: skip
    assert run(capsys, *args)[0] == 0
    (run_dir,) = tmp_path.iterdir()
    code, out, err = run(capsys, "eval", run_dir / "model.safetensors", "--n", 20)
    assert code == 0, err
    assert out.startswith("parity, 20 sequences of lengths 1-40")  # (final's lengths)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_train_with_gated_cells_and_layers(capsys, tmp_path, cell):
    args = ["train", "parity", "--cell", cell, "--layers", 2, "--hidden", 4, "--max-steps", 20]
    code, out, err = run(capsys, *args, "--out", tmp_path, "--no-plot", "--quiet")
    assert code == 0, err
    assert f"4 {cell} units x 2 layers" in out
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["cell"] == cell and config["model"]["num_layers"] == 2


def test_train_draws_curves_in_a_worker_while_the_model_is_tested(capsys, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    from rnnlab import plots, runs

    started, start, tested = [], plots.PlotWorker.start, runs.tested

    def start_and_note(worker, rows, *, title):
        started.append(title)
        start(worker, rows, title=title)

    def tested_after_start(*args):
        assert started == ["shift: elman sigmoid, 2 hidden units"]  # the drawing goes on
        return tested(*args)

    def not_here(*args, **kwargs):
        raise AssertionError("drawn in this process")

    monkeypatch.setattr(plots.PlotWorker, "start", start_and_note)
    monkeypatch.setattr(runs, "tested", tested_after_start)
    monkeypatch.setattr(plots, "plot_history", not_here)
    code, _, err = run(capsys, "train", "shift", "--out", tmp_path, "--max-steps", 20, "--quiet")
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_cli_imports_no_slow_library_before_it_needs_it():
    slow = ("numba", "scipy.linalg", "matplotlib", "torch")  # (numba: the backend loads it)
    code = f"import sys, rnnlab.cli; print([m for m in {slow!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
