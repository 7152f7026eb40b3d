"""Model files (safetensors + JSON config), atomic writes and run directories."""

import ast
import json
import os
import pickle
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import rnnlab
from rnnlab import RNN, RNNConfig, load
from rnnlab.io import (
    ModelFileError,
    _checksum,
    atomic_write_bytes,
    atomic_write_text,
    make_run_dir,
    read_model_file,
    write_model_file,
)
from rnnlab.kernels.registry import CELLS

CONFIGS = [
    {},  # the notebook's 1-2-1 sigmoid network
    {"input_size": 2, "hidden_size": 5, "activation": "tanh", "loss": "mse"},
    {"input_size": 3, "hidden_size": 4, "output_size": 2, "activation": "relu", "num_layers": 2},
    {"hidden_size": 3, "output_size": 3, "loss": "softmax", "dtype": "float32"},
    *({"cell": cell, "hidden_size": 3, "num_layers": 2} for cell in CELLS if cell != "elman"),
]


def model_file(tmp_path, **config) -> tuple[RNN, Path]:
    model = RNN(**config, seed=7, backend="numpy")
    return model, model.save(tmp_path / "model.safetensors")


def file_parts(path) -> tuple[dict, dict]:
    """A model file's tensors (writeable copies) and metadata."""
    with safetensors.safe_open(path, framework="np") as f:
        return {k: f.get_tensor(k).copy() for k in f.keys()}, dict(f.metadata())


def write(path, tensors, metadata=None) -> Path:
    """A safetensors file of ``tensors`` and ``metadata``, written by the library; a
    ``checksum`` in the metadata is made right for the new contents (as a crafted file
    would make it)."""
    if metadata is None or "checksum" not in metadata:
        path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata))
        return path
    plain = safetensors.numpy.save(tensors, metadata={**metadata, "checksum": ""})
    body = plain[8 + int.from_bytes(plain[:8], "little") :]
    checksum = _checksum(metadata.get("config", ""), body)
    path.write_bytes(safetensors.numpy.save(tensors, metadata={**metadata, "checksum": checksum}))
    return path


def expect_error(path, match) -> str:
    """load(path) raises a one-line ModelFileError naming the file and matching ``match``."""
    with pytest.raises(ModelFileError, match=match) as err:
        load(path, backend="numpy")
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message


# -- round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())) or "default"
)
def test_round_trip_is_exact(tmp_path, rng, config):
    model, path = model_file(tmp_path, **config)
    loaded = load(path, backend="numpy")
    assert isinstance(loaded, RNN)
    assert loaded.config == model.config
    assert list(loaded.params) == list(model.params)
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype
        assert loaded.params[name].flags.writeable  # trainable after loading
        np.testing.assert_array_equal(loaded.params[name], value)
    x = rng.normal(size=(3, 6, model.config.input_size)).astype(model.config.dtype)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_file_layout(tmp_path):
    model, path = model_file(tmp_path, hidden_size=3)
    tensors, metadata = file_parts(path)
    assert metadata["format"] == "rnnlab"
    assert metadata["format_version"] == "1"
    assert json.loads(metadata["config"]) == model.config.to_dict()
    assert set(tensors) == set(model.params)
    assert tensors["W_hh"].dtype == np.float64


def test_save_creates_parents_overwrites_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "b" / "model.safetensors"
    RNN(hidden_size=2, seed=1).save(path)
    RNN(hidden_size=4, seed=2).save(str(path))  # str paths too
    assert load(path, backend="numpy").config.hidden_size == 4
    assert os.listdir(path.parent) == ["model.safetensors"]


def test_save_refuses_models_that_could_not_be_loaded(tmp_path):
    path = tmp_path / "model.safetensors"
    model = RNN(seed=0)
    model.params["W_hh"][0, 1] = np.nan
    with pytest.raises(ValueError, match="W_hh contains NaN"):
        model.save(path)
    assert not path.exists()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_params_keep_their_names_shapes_and_dtype(backend):
    model = RNN(seed=0, backend=backend)  # views into one flat vector, on every backend
    model.params["b_h"] = np.array([1.5, 2.5], dtype=np.float32)  # copied in, as float64
    assert model.params["b_h"].dtype == np.float64
    assert model.params.flat[model.network.slices[2][0]] == 1.5
    with pytest.raises(KeyError, match="'extra' is not a parameter"):
        model.params["extra"] = np.zeros(2)
    with pytest.raises(ValueError, match="b_h has shape"):
        model.params["b_h"] = np.zeros(3)


# -- the file format alone: io knows nothing of models ----------------------------------


def test_io_reads_and_writes_config_and_params_without_models(tmp_path):
    source = Path(rnnlab.io.__file__).read_text()
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    # (only the memory check, a module of the standard library's calls)
    ours = [m for m in imported if m and m.startswith("rnnlab") and m != "rnnlab.resources"]
    assert not ours, imported
    config = {"anything": [1, "two"], "hidden_size": 3}
    params = {"a": np.arange(6.0).reshape(2, 3), "b": np.ones(2, dtype=np.float32)}
    path = write_model_file(tmp_path / "plain.safetensors", config, params)
    read_config, read_params = read_model_file(path)
    assert read_config == config
    assert set(read_params) == set(params)
    for name, value in params.items():
        assert read_params[name].dtype == value.dtype
        np.testing.assert_array_equal(read_params[name], value)


@pytest.mark.parametrize(
    ("config", "params", "match"),
    [
        ([1, 2], {}, "config must be a dict"),
        ({"f": object()}, {}, "config is not JSON-serialisable"),
        ({}, {"a": np.zeros(2, dtype=np.float16)}, "parameter a is float16; only float32"),
        ({}, {"a": np.zeros(2, dtype=np.int64)}, "parameter a is int64"),
        ({}, {"a": np.array([0.0, np.inf])}, "parameter a contains NaN or infinite"),
        ({}, {"": np.zeros(2)}, "non-empty strings"),
    ],
)
def test_io_refuses_what_it_could_not_read_back(tmp_path, config, params, match):
    path = tmp_path / "model.safetensors"
    with pytest.raises(ValueError, match=match):
        write_model_file(path, config, params)
    assert not path.exists()


def test_read_errors_name_the_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: cannot read"):
        read_model_file(path)


# -- bad files ----------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    expect_error(tmp_path / "nope.safetensors", "cannot read model file: No such file")
    expect_error(tmp_path, "cannot read model file")


def test_text_file_renamed(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("these are not weights\n" * 10)
    expect_error(path, "not a valid safetensors file")


def test_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(Evil()))
    expect_error(path, "not a valid safetensors file")
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 5, 8, 20, 0.5, -1])
def test_truncated_file(tmp_path, keep):
    _, path = model_file(tmp_path)
    data = path.read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:keep])
    expect_error(path, "not a valid safetensors file")


def test_every_corrupted_header_byte_is_caught(tmp_path):
    _, path = model_file(tmp_path)
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    bad = tmp_path / "bad.safetensors"
    for i in range(header_end):  # the length prefix and every byte of the JSON header
        corrupted = bytearray(data)
        corrupted[i] ^= 0xFF
        bad.write_bytes(bytes(corrupted))
        with pytest.raises(ModelFileError, match=re.escape(str(bad))):
            load(bad, backend="numpy")


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}, {"config": "{}"}])
def test_foreign_safetensors_file(tmp_path, metadata):
    path = write(tmp_path / "foreign.safetensors", {"weight": np.ones((2, 2))}, metadata)
    expect_error(path, "without rnnlab metadata")


def test_unknown_format_version(tmp_path):
    _, path = model_file(tmp_path)
    tensors, metadata = file_parts(path)
    write(path, tensors, {**metadata, "format_version": "2"})
    expect_error(path, r"unsupported format_version '2' \(this rnnlab reads '1'\)")


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (None, "rnnlab metadata has no config"),
        ("{not json", "config metadata is not valid JSON"),
        ("[1, 2]", "config metadata is not a JSON object"),
        ('{"hidden_size": 2, "colour": "red"}', r"config has unknown fields \['colour'\]"),
        ('{"hidden_size": 0}', "invalid config: hidden_size must be a positive integer"),
        ('{"hidden_size": 2.0}', "invalid config: hidden_size must be a positive integer"),
        ('{"activation": "swish"}', "invalid config: unknown activation 'swish'"),
        ('{"cell": ["elman"]}', "invalid config"),
        ('{"dtype": "float16"}', "invalid config: unknown dtype 'float16'"),
    ],
)
def test_bad_config(tmp_path, config, match):
    _, path = model_file(tmp_path)
    tensors, metadata = file_parts(path)
    if config is None:
        del metadata["config"]
    else:
        metadata["config"] = config
    write(path, tensors, metadata)
    expect_error(path, match)


def test_parameter_names_must_match_the_config(tmp_path):
    _, path = model_file(tmp_path)
    tensors, metadata = file_parts(path)
    write(path, {k: v for k, v in tensors.items() if k != "b_y"}, metadata)
    expect_error(path, r"missing \['b_y'\]")
    write(path, {**tensors, "W_extra": np.zeros(2)}, metadata)
    expect_error(path, r"unexpected \['W_extra'\]")


def test_parameter_shapes_must_match_the_config(tmp_path):
    _, path = model_file(tmp_path)  # hidden_size 2
    tensors, metadata = file_parts(path)
    tensors["W_hh"] = np.zeros((3, 3))
    write(path, tensors, metadata)
    expect_error(path, r"parameter W_hh has shape \(3, 3\), expected \(2, 2\)")


@pytest.mark.parametrize(
    ("dtype", "match"),
    [
        (np.int64, "parameter W_xh has dtype I64; expected F32 or F64"),
        (np.float16, "parameter W_xh has dtype F16"),
        (np.float32, "parameter W_xh is float32, the config says float64"),
    ],
)
def test_parameter_dtypes(tmp_path, dtype, match):
    _, path = model_file(tmp_path)
    tensors, metadata = file_parts(path)
    tensors["W_xh"] = tensors["W_xh"].astype(dtype)
    write(path, tensors, metadata)
    expect_error(path, match)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters(tmp_path, value):
    _, path = model_file(tmp_path)
    tensors, metadata = file_parts(path)
    tensors["b_h"][1] = value
    write(path, tensors, metadata)
    expect_error(path, "parameter b_h contains NaN or infinite values")


def test_model_file_error_is_a_value_error_and_bad_backend_is_not_the_file(tmp_path):
    assert issubclass(ModelFileError, ValueError)
    _, path = model_file(tmp_path)
    with pytest.raises(ValueError, match="unknown backend 'cuda'") as err:
        load(path, backend="cuda")
    assert not isinstance(err.value, ModelFileError)


def test_loaded_config_is_the_dataclass(tmp_path):
    _, path = model_file(tmp_path, hidden_size=6, activation="tanh")
    assert load(path).config == RNNConfig(hidden_size=6, activation="tanh")
    assert RNN.load(path, backend="numpy").backend == "numpy"
    assert rnnlab.load is load


# -- atomic writes ------------------------------------------------------------------------


@pytest.mark.parametrize("fail_in", ["fsync", "replace"])
def test_failed_save_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch, fail_in):
    model, path = model_file(tmp_path)
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail_in, boom)
    with pytest.raises(OSError, match="No space left"):
        RNN(hidden_size=5, seed=3).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert load(path, backend="numpy").config == model.config


def test_failed_text_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "history.csv", "step,loss\n")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(path, "something else")
    monkeypatch.undo()
    assert path.read_text() == "step,loss\n"
    assert os.listdir(tmp_path) == ["history.csv"]


def test_atomic_writes_round_trip_and_permissions(tmp_path):
    text = "naïve,β\r\nline two\n"
    path = atomic_write_text(tmp_path / "sub" / "config.json", text)
    assert path.read_bytes() == text.encode("utf-8")  # no newline translation
    assert atomic_write_bytes(path, b"\x00\x01") == path
    assert path.read_bytes() == b"\x00\x01"
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like open(), not mkstemp's 0600


# -- run directories ----------------------------------------------------------------------


def test_make_run_dir_is_unique(tmp_path):
    now = datetime(2024, 1, 2, 3, 4, 5)
    root = tmp_path / "runs"
    first = make_run_dir(root, "shift", now)
    second = make_run_dir(root, "shift", now)
    third = make_run_dir(root, task="shift", now=now)
    other = make_run_dir(root, "parity", now)
    assert first == root / "shift-20240102-030405"
    assert second == root / "shift-20240102-030405-1"
    assert third == root / "shift-20240102-030405-2"
    assert other == root / "parity-20240102-030405"
    assert all(p.is_dir() for p in (first, second, third, other))
    assert len(os.listdir(root)) == 4


def test_make_run_dir_defaults_to_now(tmp_path):
    run = make_run_dir(tmp_path, "copy")
    assert re.fullmatch(r"copy-\d{8}-\d{6}", run.name)
    assert run.parent == tmp_path


@pytest.mark.parametrize("task", ["", "../escape", "a/b", ".hidden"])
def test_make_run_dir_rejects_path_like_task_names(tmp_path, task):
    with pytest.raises(ValueError, match="task must be a plain name"):
        make_run_dir(tmp_path, task)
    assert os.listdir(tmp_path) == []
