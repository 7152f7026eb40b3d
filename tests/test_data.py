"""Your own sequences from files: rnnlab.data's readers, rnnlab train --data, rnnlab predict
--data; each bad file named with its line or array, as one line and exit code 2."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.data import Sequences, at_last_step, infer_loss, load, read_table


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def parity_files(tmp_path):
    """Running parity as .npz (with a held-out split) and as .csv: 200 sequences."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (200, 12)).astype(float)
    Y = np.cumsum(X, axis=1) % 2
    L = rng.integers(4, 13, 200)
    np.savez(tmp_path / "p.npz", X=X[:150], Y=Y[:150], lengths=L[:150], X_val=X[150:],
             Y_val=Y[150:], lengths_val=L[150:])  # fmt: skip
    lines = ["# inputs,targets"] + [
        " ".join(str(int(v)) for v in x[:n]) + "," + " ".join(str(int(v)) for v in y[:n])
        for x, y, n in zip(X, Y, L, strict=True)
    ]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "p.npz", tmp_path / "p.csv", (X, Y, L)


def test_readers_give_the_sequences(parity_files):
    npz, csv, (X, Y, L) = parity_files
    file = load(npz)
    assert file.train.X.shape == (150, 12) and list(file.train.lengths) == list(L[:150])
    assert file.val.X.shape == (50, 12)
    table = load(csv).train
    assert len(table.X) == 200 and table.X[3] == list(X[3, : L[3]])
    assert table.Y[3] == list(Y[3, : L[3]]) and load(csv).val is None
    assert read_table("0 1\t1 1\n", targets=True).Y == [[1.0, 1.0]]  # (tabs too)
    assert read_table("0.5 1,9\n", targets=False).X == [[0.5, 1.0]]  # (inputs only)
    assert infer_loss(table.Y) == "bce" and infer_loss([[0.5, 1.0]]) == "mse"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "0 1,0 1\n1 1\n", "a.csv, line 2: expected inputs and targets, got 1"),
        ("a.csv", "0 x,0 1\n", "a.csv, line 1: inputs must be numbers separated by spaces"),
        ("a.csv", "0 1 1,0 1\n", "a.csv, line 1: 3 inputs but 2 targets"),
        ("a.csv", "# nothing\n\n", "a.csv holds no sequences"),
        ("a.json", "{}", "unsupported data file; give .npz, .csv or .tsv"),
    ],
)
def test_bad_files_are_named(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        load(tmp_path / name)


def test_an_empty_or_broken_npz_is_named(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    for name in ("empty.npz", "broken.npz"):
        with pytest.raises(ValueError, match=f"{name}: not a readable .npz file"):
            load(tmp_path / name)


def test_an_npz_without_its_arrays_is_named(tmp_path):
    np.savez(tmp_path / "a.npz", inputs=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="has no array X, Y; it holds inputs"):
        load(tmp_path / "a.npz")


def test_train_on_a_file_and_predict_from_a_file_and_stdin(capsys, monkeypatch, tmp_path,
                                                           parity_files):  # fmt: skip
    npz, csv, (_, Y, L) = parity_files
    out_dir = tmp_path / "runs"
    code, out, err = run(capsys, "train", "--data", npz, "--cell", "gru", "--max-steps", 400,
                         "--out", out_dir, "--no-plot", "--quiet")  # fmt: skip
    assert code == 0, err
    assert "bce on" in out and "held-out split" in out
    (run_dir,) = out_dir.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "data" and config["task_params"]["data"] == str(npz.resolve())
    recorded = config["task_params"]
    assert recorded["targets"] == "every" and len(recorded["sha256"]) == 64
    assert config["metrics"]["held-out split"]["n"] == 50
    model = run_dir / "model.safetensors"
    code, out, _ = run(capsys, "predict", model, "--data", csv)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 200
    assert [len(line.split()) for line in lines] == list(L)
    right = np.mean([line.split() == [str(int(v)) for v in y[:n]]
                     for line, y, n in zip(lines, Y, L, strict=True)])  # fmt: skip
    assert right > 0.9  # (parity learnt)
    monkeypatch.setattr("sys.stdin", io.StringIO("0 1 1\n1\n"))
    code, out, _ = run(capsys, "predict", model, "--data", "-", "--proba")
    probabilities = [[float(v) for v in line.split()] for line in out.splitlines()]
    assert [len(p) for p in probabilities] == [3, 1]
    assert all(0 <= v <= 1 for p in probabilities for v in p)


def test_real_targets_train_mse_and_print_separated_values(capsys, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.random((64, 6))
    np.savez(tmp_path / "r.npz", X=X, Y=np.cumsum(X, axis=1) / 6)
    code, out, err = run(capsys, "train", "--data", tmp_path / "r.npz", "--max-steps", 20,
                         "--out", tmp_path / "runs", "--no-plot", "--quiet")  # fmt: skip
    assert code == 0 and "mse on" in out, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    code, out, _ = run(capsys, "predict", run_dir / "model.safetensors", "0", "1", "1")
    assert code == 0 and len(out.split()) == 3  # (real values, not glued together)
    assert all(0.0 <= abs(float(v)) < 10.0 for v in out.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "parity", "--data", "DATA"], "--data trains on your sequences"),
        (["train", "--val", "DATA"], "--val, --loss, --targets and --tokens go with --data"),
        (["train", "--data", "DATA", "--targets", "first"], "--targets must be every or last"),
        (["train", "--data", "DATA", "--loss", "hinge"], "--loss must be bce, mse or softmax"),
        (["train", "--data", "MISSING.csv"], "MISSING.csv: cannot be read"),
        (["predict", "MODEL"], "give input bits (e.g. 0110) or --data FILE"),
    ],
)
def test_bad_data_options_are_one_line_and_exit_2(capsys, tmp_path, parity_files, args,
                                                  message):  # fmt: skip
    npz, _, _ = parity_files
    code, _, err = run(capsys, "train", "--data", npz, "--max-steps", 1, "--out", tmp_path / "r",
                       "--no-plot", "--quiet")  # fmt: skip
    model = next((tmp_path / "r").iterdir()) / "model.safetensors"
    swap = {"DATA": str(npz), "MODEL": str(model), "MISSING.csv": str(tmp_path / "MISSING.csv")}
    code, _, err = run(capsys, *[swap.get(a, a) for a in args])
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_class_targets_with_softmax(capsys, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 3, (40, 5)).astype(float)
    np.savez(tmp_path / "c.npz", X=X, Y=X)  # (echo the class)
    args = ["train", "--data", tmp_path / "c.npz", "--loss", "softmax", "--max-steps", 5,
            "--out", tmp_path / "runs", "--no-plot", "--quiet"]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0 and "softmax on" in out, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["model"]["output_size"] == 3


def test_one_label_per_sequence_is_scored_at_its_last_step(capsys, tmp_path):
    """Sequence-to-label: a label per sequence becomes its last step's target, the only
    step scored, for arrays (with lengths) and for lists."""
    arrays = at_last_step(Sequences(np.ones((2, 4)), np.array([1.0, 0.0]), np.array([2, 4])))
    np.testing.assert_array_equal(arrays.mask, [[0, 1, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(arrays.Y, [[0, 1, 0, 0], [0, 0, 0, 0]])
    lists = at_last_step(Sequences([[1, 0, 1], [1, 1]], [[0.5, 2.0], [1.0, 3.0]]))
    assert lists.mask == [[0.0, 0.0, 1.0], [0.0, 1.0]]
    assert lists.Y[1].tolist() == [[0, 0], [1, 3]]
    with pytest.raises(ValueError, match="one label per sequence: Y must have 2 rows"):
        at_last_step(Sequences([[1], [0]], [1.0, 0.0, 1.0]))
    floats = at_last_step(Sequences(np.ones((2, 3)), np.array([1.0, 0.0]), np.array([2.0, 3.0])))
    assert floats.lengths.dtype == np.int64 and floats.mask[0, 1] == 1
    with pytest.raises(ValueError, match=r"lengths must be 2 whole numbers in 1\.\.3"):
        at_last_step(Sequences(np.ones((2, 3)), np.array([1.0, 0.0]), np.array([2.5, 3.0])))
    with pytest.raises(ValueError, match="give no mask with it"):
        at_last_step(Sequences(np.ones((2, 3)), np.array([1.0, 0.0]), None, np.ones((2, 3))))
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(120):
        bits = rng.integers(0, 2, rng.integers(1, 7))
        lines.append(" ".join(map(str, bits)) + "," + str(int(bits.sum() % 2)))
    (tmp_path / "parity.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "--data", tmp_path / "parity.csv", "--targets", "last", "--cell", "gru",
            "--max-steps", 5, "--out", tmp_path / "runs", "--no-plot", "--quiet"]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0 and "bce on" in out, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["metrics"]["training data"]["n"] == 120


def test_token_ids_are_fed_one_hot(capsys, monkeypatch, tmp_path):
    from rnnlab.data import one_hot_tokens

    arrays, V = one_hot_tokens(Sequences(np.array([[2, 0, 9], [1, 1, 1]]), None,
                                         np.array([2, 3])))  # fmt: skip
    assert V == 3 and arrays.X.shape == (2, 3, 3)  # (padding's 9 not read)
    np.testing.assert_array_equal(arrays.X[0, :2], [[0, 0, 1], [1, 0, 0]])
    lists, V = one_hot_tokens(Sequences([[0, 2], [1]], None), vocabulary=4)
    assert V == 4 and lists.X[1].tolist() == [[0, 1, 0, 0]]
    for bad, message in [([[0.5]], "whole numbers from 0"), ([[-1]], "whole numbers from 0"),
                         ([[5]], "token id 5 is outside the vocabulary of 4")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            one_hot_tokens(Sequences(bad, None), vocabulary=4)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (100, 8))
    np.savez(tmp_path / "t.npz", X=X, Y=(X == 3).astype(float))  # (is it token 3?)
    args = ["train", "--data", tmp_path / "t.npz", "--tokens", "--max-steps", 300, "--out",
            tmp_path / "runs", "--no-plot", "--quiet"]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    monkeypatch.setattr("sys.stdin", io.StringIO("3 1 3\n0 0\n"))
    code, out, _ = run(capsys, "predict", run_dir / "model.safetensors", "--data", "-",
                       "--tokens")  # fmt: skip
    assert code == 0 and out.splitlines() == ["1 0 1", "0 0"]
