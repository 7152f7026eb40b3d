"""Model files and run directories.

A model file is a ``safetensors`` file: one tensor per parameter under its
rnnlab name, and string metadata ``{"format": "rnnlab", "format_version": "1",
"config": <the config dict as JSON>}``. This module reads and writes
``(config dict, parameter dict)`` pairs and knows nothing of models:
:meth:`rnnlab.RNN.save` and :func:`rnnlab.load` sit on it and check the config
and the parameters against each other. Reading parses bytes only — nothing is
unpickled or executed — and any problem raises :class:`ModelFileError` naming
the file.

Every write here is atomic: the bytes go to a temporary file in the target's
directory, which is then renamed over the target, so a reader sees the old
file or the new one, never half of one.

>>> write_model_file("model.safetensors", {"hidden_size": 2}, {"b": np.zeros(2)})  # doctest: +SKIP
>>> read_model_file("model.safetensors")  # doctest: +SKIP
({'hidden_size': 2}, {'b': array([0., 0.])})
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

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


# -- model files -------------------------------------------------------------------------


def write_model_file(path: str | os.PathLike, config: Mapping, params: Mapping[str, np.ndarray]
                     ) -> Path:  # fmt: skip
    """Save ``config`` (a JSON-serialisable dict) and named float arrays, atomically.

    Parameters are stored exactly (bit for bit) in their own dtype, float32 or
    float64. Raises ``ValueError`` for what could not be read back: a config that
    is not a JSON object, a parameter that is not a finite float32/float64 array.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    try:
        config_json = json.dumps(dict(config))
    except (TypeError, ValueError) as err:
        raise ValueError(f"config is not JSON-serialisable ({err})") from None
    tensors = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
        value = np.asarray(value)
        if value.dtype.newbyteorder("<") not in _FILE_DTYPES.values():
            raise ValueError(f"parameter {name} is {value.dtype}; only float32 and float64 "
                             "are saved")  # fmt: skip
        if not np.all(np.isfinite(value)):
            raise ValueError(f"parameter {name} contains NaN or infinite values; not saving")
        tensors[name] = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config_json}
    return atomic_write_bytes(path, safetensors.numpy.save(tensors, metadata=metadata))


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The config dict and parameters (read-only float arrays, in file order) of a
    file written by :func:`write_model_file`.

    Raises
    ------
    ModelFileError
        For any unreadable or invalid file (one line naming the file and the problem).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read model file: {err.strerror or err}") from None
    try:
        return _parse(data)
    except (ValueError, TypeError) as err:
        raise model_file_error(path, err) from None


def model_file_error(path: str | os.PathLike, err: Exception) -> ModelFileError:
    """``err`` as a :class:`ModelFileError` of one line that starts with the file's name
    (for the layers above, whose checks of a file's contents fail)."""
    message = " ".join(str(err).split())  # one line, whatever the source wrote
    return ModelFileError(f"{path}: {message}")


def _parse(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Config dict and parameters from a model file's bytes; ValueError for anything wrong."""
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
        config = json.loads(metadata["config"])
    except json.JSONDecodeError as err:
        raise ValueError(f"config metadata is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError("config metadata is not a JSON object")
    params = {}
    for name, view in tensors:
        dtype = _FILE_DTYPES.get(view["dtype"])
        if dtype is None:
            raise ValueError(f"parameter {name} has dtype {view['dtype']}; expected F32 or F64")
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
