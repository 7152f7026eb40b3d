"""Models on disk and run directories.

A model file is a ``safetensors`` file: one tensor per parameter under its
rnnlab name, and string metadata ``{"format": "rnnlab", "format_version": "1",
"config": <RNNConfig as JSON>}``. Loading parses bytes only — nothing is
unpickled or executed — and checks every part of the file against the config;
any problem raises :class:`ModelFileError` naming the file.

Every write here is atomic: the bytes go to a temporary file in the target's
directory, which is then renamed over the target, so a reader sees the old
file or the new one, never half of one.

>>> save_model(model, "runs/shift/model.safetensors")  # doctest: +SKIP
>>> load_model("runs/shift/model.safetensors")  # doctest: +SKIP
RNN(input_size=1, hidden_size=2, output_size=1, cell='elman', activation='sigmoid', loss='bce')
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
from datetime import datetime
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from rnnlab import kernels
from rnnlab.kernels.layout import param_shapes
from rnnlab.model import DTYPES, RNN, RNNConfig

FORMAT = "rnnlab"
FORMAT_VERSION = "1"
# safetensors dtype tag -> little-endian numpy dtype (the file format is little-endian)
_FILE_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4")}


class ModelFileError(ValueError):
    """A model file that cannot be loaded: missing, corrupted, foreign or inconsistent."""


# -- atomic writes ------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename).

    Parent directories are created. If anything fails the target is left as
    it was and the temporary file is removed. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation). Returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable where the OS allows syncing a directory (POSIX)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- models -------------------------------------------------------------------------------


def save_model(model: RNN, path: str | os.PathLike) -> Path:
    """Save ``model``'s config and parameters to a safetensors file, atomically.

    Parameters are stored exactly (bit for bit) in the config's dtype.
    Raises ``ValueError`` for a model that could not be loaded back: missing
    or extra parameters, or one that is not a finite array of the config's
    dtype and shape.
    """
    config = model.config
    dtype = np.dtype(DTYPES[config.dtype])
    shapes = param_shapes(
        config.cell, config.input_size, config.hidden_size, config.output_size, config.num_layers
    )
    if set(model.params) != set(shapes):
        raise ValueError(
            f"parameter names {sorted(model.params)} do not match the config's {sorted(shapes)}"
        )
    tensors = {}
    for name, shape in shapes.items():
        value = np.asarray(model.params[name])
        if value.shape != shape:
            raise ValueError(f"parameter {name} has shape {value.shape}, expected {shape}")
        if value.dtype != dtype:
            raise ValueError(f"parameter {name} is {value.dtype}, the config says {dtype}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"parameter {name} contains NaN or infinite values; not saving")
        tensors[name] = np.ascontiguousarray(value)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict()),
    }
    return atomic_write_bytes(path, safetensors.numpy.save(tensors, metadata=metadata))


def load_model(path: str | os.PathLike, backend: str = "auto") -> RNN:
    """Load a model saved by :func:`save_model`.

    Raises
    ------
    ModelFileError
        For any unreadable or invalid file (one line naming the file and the problem).
    ValueError
        For an unknown or unavailable ``backend``.
    """
    kernels.get_backend(backend)  # a bad backend is the caller's error, not the file's
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read model file: {err.strerror or err}") from None
    try:
        config, params = _parse(data)
        return RNN.from_params(config, params, backend)
    except (ValueError, TypeError) as err:
        message = " ".join(str(err).split())  # one line, whatever the source wrote
        raise ModelFileError(f"{path}: {message}") from None


def _parse(data: bytes) -> tuple[RNNConfig, dict[str, np.ndarray]]:
    """Config and parameters from a model file's bytes; ValueError for anything wrong."""
    try:
        tensors = safetensors.deserialize(data)  # checks header, offsets and sizes
    except Exception as err:  # the Rust binding raises SafetensorError and others
        raise ValueError(f"not a valid safetensors file ({err})") from None
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])  # valid: deserialize parsed it
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise ValueError("safetensors file without rnnlab metadata (not an rnnlab model)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported format_version {metadata.get('format_version')!r} "
            f"(this rnnlab reads {FORMAT_VERSION!r})"
        )
    if "config" not in metadata:
        raise ValueError("rnnlab metadata has no config")
    try:
        fields = json.loads(metadata["config"])
    except json.JSONDecodeError as err:
        raise ValueError(f"config metadata is not valid JSON ({err})") from None
    if not isinstance(fields, dict):
        raise ValueError("config metadata is not a JSON object")
    known = {f.name for f in dataclasses.fields(RNNConfig)}
    if set(fields) - known:
        raise ValueError(f"config has unknown fields {sorted(set(fields) - known)}")
    try:
        config = RNNConfig(**fields)
    except (ValueError, TypeError) as err:
        raise ValueError(f"invalid config: {err}") from None
    params = {}
    for name, view in tensors:
        dtype = _FILE_DTYPES.get(view["dtype"])
        if dtype is None:
            raise ValueError(f"parameter {name} has dtype {view['dtype']}; expected F32 or F64")
        if dtype != np.dtype(DTYPES[config.dtype]).newbyteorder("<"):
            raise ValueError(f"parameter {name} is {dtype.name}, the config says {config.dtype}")
        params[name] = np.frombuffer(view["data"], dtype=dtype).reshape(view["shape"])
    return config, params


# -- run directories ----------------------------------------------------------------------


def make_run_dir(
    root: str | os.PathLike = "runs", task: str = "shift", now: datetime | None = None
) -> Path:
    """Create and return a fresh ``root/<task>-<YYYYmmdd-HHMMSS>`` directory.

    If that name is taken, ``-1``, ``-2``... is appended; creation is atomic,
    so concurrent callers never share a directory.
    """
    if not task or task.startswith(".") or any(c in task for c in "/\\:"):
        raise ValueError(f"task must be a plain name (no path separators), got {task!r}")
    now = datetime.now() if now is None else now
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{task}-{now:%Y%m%d-%H%M%S}"
    for n in range(10_000):
        run = root / (base if n == 0 else f"{base}-{n}")
        try:
            run.mkdir()
        except FileExistsError:
            continue
        return run
    raise RuntimeError(f"too many run directories named {base}-N in {root}")
