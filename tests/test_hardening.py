"""Hostile and unlucky inputs: crafted model files, sizes beyond memory.

Each case ends in one clear error (``ModelFileError`` / ``ValueError`` in the API;
``error:`` and exit 2 in the CLI) within a bound of time and memory, and loses
nothing.
"""

import json
import os
import resource
import time
import warnings

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab import RNN, load
from rnnlab.cli import main as cli_main
from rnnlab.io import MAX_JSON_DEPTH, ModelFileError, _checksum, read_model_file

#: what one crafted file may cost the loader
SECONDS, MEGABYTES = 2.0, 64


def saved(tmp_path, **config):
    model = RNN(**config, seed=3, backend="numpy")
    return model, model.save(tmp_path / "model.safetensors")


def crafted(path, tensors, config: dict | str, *, checksum=True):
    """A file with any config and a checksum made right for it (as an attacker could)."""
    config_json = config if isinstance(config, str) else json.dumps(config)
    metadata = {"format": "rnnlab", "format_version": "1", "config": config_json}
    if checksum:
        plain = safetensors.numpy.save(tensors, metadata={**metadata, "checksum": ""})
        body = plain[8 + int.from_bytes(plain[:8], "little") :]
        metadata["checksum"] = _checksum(config_json, body)
    path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata))
    return path


def refused_quickly(path, match):
    """load(path) raises one line naming the file, in bounded time and memory."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=match) as err:
        load(path, backend="numpy")
    assert time.perf_counter() - start < SECONDS
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < MEGABYTES
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 700
    return message


def tensors_of(model):
    return {name: np.array(value) for name, value in model.params.items()}


@pytest.mark.parametrize("layers", [10**6, 10**9, 10**18])
def test_a_config_claiming_huge_sizes_is_refused_before_anything_is_built(tmp_path, layers):
    model, _ = saved(tmp_path)
    config = {**model.config.to_dict(), "num_layers": layers}
    path = crafted(tmp_path / "big.safetensors", tensors_of(model), config)
    refused_quickly(path, "memory|describes")


def test_a_huge_hidden_size_is_refused(tmp_path):
    model, _ = saved(tmp_path)
    config = {**model.config.to_dict(), "hidden_size": 10**8}
    refused_quickly(crafted(tmp_path / "wide.safetensors", tensors_of(model), config), "memory")


def test_deeply_nested_config_is_refused(tmp_path):
    model, _ = saved(tmp_path)
    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    path = crafted(tmp_path / "deep.safetensors", tensors_of(model), deep)
    refused_quickly(path, f"nests 100000 levels deep \\(at most {MAX_JSON_DEPTH}\\)")


def test_a_header_length_beyond_the_file_is_refused(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    refused_quickly(path, "not a valid safetensors file")


def test_a_huge_sparse_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of holes
    refused_quickly(path, "not a valid safetensors file")


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_only_regular_files_are_read(tmp_path, kind):
    path = tmp_path / "model.safetensors"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    refused_quickly(path, "not a regular file|Is a directory")


def test_a_changed_weight_byte_is_caught_by_the_checksum(tmp_path):
    _, path = saved(tmp_path, hidden_size=3)
    data = bytearray(path.read_bytes())
    body_start = 8 + int.from_bytes(data[:8], "little")
    caught = 0
    for i in range(body_start, len(data), 7):
        changed = data.copy()
        changed[i] ^= 0x01  # the smallest change: one bit of one weight
        path.write_bytes(bytes(changed))
        with pytest.raises(ModelFileError, match="checksum mismatch"):
            load(path, backend="numpy")
        caught += 1
    assert caught > 10


def test_a_file_without_checksum_loads_with_a_notice(tmp_path):
    model, _ = saved(tmp_path)
    path = crafted(tmp_path / "old.safetensors", tensors_of(model), model.config.to_dict(),
                   checksum=False)  # fmt: skip
    with pytest.warns(UserWarning, match="before rnnlab stored checksums"):
        loaded = load(path, backend="numpy")
    assert np.array_equal(loaded.params.flat, model.params.flat)


def test_saving_is_deterministic_and_readable_by_safetensors(tmp_path):
    model = RNN(2, 3, 2, cell="gru", num_layers=2, seed=1, backend="numpy")
    first = model.save(tmp_path / "a.safetensors").read_bytes()
    second = model.save(tmp_path / "b.safetensors").read_bytes()
    assert first == second
    tensors = safetensors.numpy.load_file(tmp_path / "a.safetensors")
    assert set(tensors) == set(model.params)
    assert all(np.array_equal(tensors[k], model.params[k]) for k in tensors)


def test_sizes_beyond_memory_are_refused_up_front():
    with pytest.raises(ValueError, match=r"hidden_size=100000000,.* needs .* of memory"):
        RNN(1, 10**8, 1)
    with pytest.raises(ValueError, match=r"num_layers=1000000000,.* needs .* of memory"):
        RNN(1, 2, 1, num_layers=10**9)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train", "shift", "--hidden", "100000", "--quiet"], "hidden_size=100000"),
        (["train", "shift", "--layers", "1000000000", "--quiet"], "num_layers=1000000000"),
    ],
)
def test_cli_refuses_sizes_beyond_memory_in_one_line(tmp_path, capsys, argv, match):
    assert cli_main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err
    assert not any(tmp_path.iterdir())  # nothing made for a run that never started


@pytest.mark.parametrize("command", ["show", "eval", "predict"])
def test_cli_refuses_crafted_files_in_one_line(tmp_path, capsys, command):
    model, _ = saved(tmp_path)
    config = {**model.config.to_dict(), "num_layers": 10**9}
    path = crafted(tmp_path / "big.safetensors", tensors_of(model), config)
    argv = [command, str(path)] + (["1", "0", "1"] if command == "predict" else [])
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_loader_fuzz_never_crashes_and_stays_bounded(tmp_path, data):
    """Random changes to a valid file: a model or a ModelFileError, fast, small."""
    model = RNN(1, 3, 1, cell="lstm", seed=0, backend="numpy")
    path = tmp_path / "fuzz.safetensors"
    original = bytearray(model.save(path).read_bytes())
    changed = original.copy()
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(changed) - 1))
        changed[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        changed = changed[: data.draw(st.integers(0, len(changed)))]
    path.write_bytes(bytes(changed))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_model_file(path)
            load(path, backend="numpy")
        except ModelFileError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
    assert time.perf_counter() - start < SECONDS
