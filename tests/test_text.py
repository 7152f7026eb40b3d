"""Character-level language models: vocabulary, the text as tracks and chunks, n-gram
baselines, training with the state carried across chunks, sampling, the CLI."""

import json

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.text import (
    Vocabulary,
    bits_per_char,
    chunk,
    ngram_bits,
    read_text,
    sample,
    tracks,
    train_text,
)

PERIODIC = "abacabadabae" * 400  # after an "a", the letter two back says what comes next


def test_vocabulary_round_trips_and_names_what_it_lacks(tmp_path):
    vocabulary = Vocabulary.of("hello, world")
    assert vocabulary.chars == " ,dehlorw"
    assert vocabulary.decode(vocabulary.encode("world, hello")) == "world, hello"
    with pytest.raises(ValueError, match="'z' is not in the model's vocabulary"):
        vocabulary.encode("zoo")
    vocabulary.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocabulary
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a vocabulary file"):
        Vocabulary.load(tmp_path / "bad.json")


@pytest.mark.parametrize(("content", "words"), [
    (b"", "the text is empty"),
    (b"\xff\xfe\x00a", "not UTF-8 text"),
    (b"ab\x00cd", "holds NUL bytes"),
])  # fmt: skip
def test_bad_text_files_are_refused_in_one_line(tmp_path, content, words):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        read_text(path)
    with pytest.raises(ValueError, match="cannot read it"):
        read_text(tmp_path / "missing.txt")


def test_tracks_and_chunks_read_the_text_side_by_side():
    ids = np.arange(23)
    data = tracks(ids, 4)  # 4 tracks of 5, 3 left over
    np.testing.assert_array_equal(data[1], [5, 6, 7, 8, 9])
    x, y = chunk(data, 0, 3, 23, np.float32)  # (T, B, V)
    assert x.shape == (3, 4, 23) and x.dtype == np.float32
    np.testing.assert_array_equal(x.argmax(-1)[:, 1], [5, 6, 7])
    np.testing.assert_array_equal(y.argmax(-1)[:, 1], [6, 7, 8])  # the next characters
    last_x, _ = chunk(data, 3, 3, 23, np.float32)  # the tracks' end cuts it short
    assert last_x.shape[0] == 1
    with pytest.raises(ValueError, match="cannot fill 12 tracks"):
        tracks(ids, 12)


def test_ngram_baselines():
    text = np.array([0, 1] * 500)  # alternating: a bigram knows the next one
    unigram, bigram = ngram_bits(text, text, 2)
    assert unigram == pytest.approx(1.0, abs=1e-3)
    assert bigram < 0.01


def test_the_state_is_carried_across_chunks_and_the_model_learns_the_text():
    """Chunks of 4 characters of a text of period 12 whose next letter after an "a"
    depends on the letter two back: read with the state carried it is all but certain
    (the bigram baseline: 0.9 bits); sampled cold, the model writes the period."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as folder:
        path = Path(folder) / "periodic.txt"
        path.write_text(PERIODIC)
        result = train_text(path, hidden_size=16, seq_length=4, batch_size=8, lr=0.01,
                            max_steps=300, eval_every=100, out=None)  # fmt: skip
    assert result.baselines["bigram"] == pytest.approx(0.90, abs=0.01)
    assert result.bits < 0.1 and [row["step"] for row in result.history] == [100, 200, 300]
    assert result.history[-1]["val_perplexity"] == pytest.approx(2**result.bits)
    ids = result.vocabulary.encode(PERIODIC[:1200])
    assert bits_per_char(result.model, ids, seq_length=4, batch_size=8) < 0.1
    text = sample(result.model, result.vocabulary, 24, temperature=0.1,
                  prime="abacabadabae", rng=np.random.default_rng(0))  # fmt: skip
    assert text == "abacabadabae" * 2
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        sample(result.model, result.vocabulary, 5, temperature=0, rng=np.random.default_rng(0))
    cold = sample(result.model, result.vocabulary, 12, temperature=1e-300,
                  prime="abacabadabae", rng=np.random.default_rng(0))  # fmt: skip
    assert cold == "abacabadabae"  # (the most likely character each time, no overflow)
    with pytest.raises(ValueError, match="seq_length must be a positive integer"):
        train_text(path, seq_length=0, out=None)


def test_rnnlab_train_text_and_sample(tmp_path, capsys):
    path = tmp_path / "periodic.txt"
    path.write_text(PERIODIC)
    code = main(["train", "text", "--data", str(path), "--hidden", "16", "--length", "4",
                 "--batch-size", "8", "--lr", "0.01", "--max-steps", "300", "--dtype",
                 "float32", "--out", str(tmp_path / "runs")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "held-out:" in out and "bigram 0.90" in out
    (run,) = (tmp_path / "runs").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "text" and config["seq_length"] == 4 and config["val_bits"] < 0.1
    assert (run / "history.csv").read_text().startswith("step,seconds,train_bits,val_bits")
    code = main(["sample", str(run), "--length", "12", "--prime", "abacabadabae",
                 "--temperature", "0.1"])  # fmt: skip
    assert code == 0 and capsys.readouterr().out == "abacabadabae" * 2 + "\n"
    for argv, words in [
        (["train", "text"], "rnnlab train text --data FILE.txt"),
        (["train", "text", "--data", str(tmp_path / "none.txt")], "cannot read it"),
        (["sample", str(tmp_path)], "no vocabulary.json"),
        (["sample", str(run), "--prime", "xyz"], "'x' is not in the model's vocabulary"),
        (["sample", str(run), "--temperature", "0"], "--temperature must be positive"),
        (["train", "text", "--data", str(path), "--length", "0"], "a positive number"),
        (["train", "text", "--data", str(path), "--resume", str(run)], "settings; drop --data"),
        (
            ["train", "text", "--data", str(path), "--truncate", "3", "--param", "a=1"],
            "do not take --truncate, --param",
        ),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


def test_rnnlab_train_data_of_a_txt_file_trains_a_character_model(tmp_path, capsys):
    path = tmp_path / "periodic.txt"
    path.write_text(PERIODIC)
    code = main(["train", "--data", str(path), "--hidden", "8", "--length", "4",
                 "--batch-size", "8", "--max-steps", "20",
                 "--out", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0 and "bits per character" in capsys.readouterr().out
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["task"] == "text"
