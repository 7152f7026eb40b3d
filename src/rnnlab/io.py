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
import hashlib
import itertools
import json
import math
import os
import secrets
import shutil
import stat
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np

from rnnlab.resources import check_fits

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
#
# The layout is safetensors': an 8-byte little-endian header length, a JSON header (each
# tensor's dtype, shape and byte range, and string metadata), then the tensor bytes. It is
# written here, with sorted keys, so the same model always gives the same bytes (the
# safetensors library orders metadata by hash), and read here, checking everything the
# header claims against the file before the tensors are read (the library reads the
# whole file first). The files stay safetensors files: the tests read them with the
# library.

#: the largest header read (a 1000-layer model's header is about 100 kB)
MAX_HEADER_BYTES = 1 << 22
#: how deeply JSON in a header may nest (an rnnlab header nests 3 levels)
MAX_JSON_DEPTH = 32
_TAGS = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32"}


def write_model_file(path: str | os.PathLike, config: Mapping, params: Mapping[str, np.ndarray]
                     ) -> Path:  # fmt: skip
    """Save ``config`` (a JSON-serialisable dict) and named float arrays, atomically.

    Parameters are stored exactly (bit for bit) in their own dtype, float32 or
    float64, in the given order, with a SHA-256 checksum of the config and the
    tensor bytes; the same arguments always give the same bytes. Raises
    ``ValueError`` for what could not be read back: a config that is not a strict
    JSON object, a parameter that is not a finite float32/float64 array.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    try:
        config_json = json.dumps(dict(config), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config is not JSON-serialisable ({err})") from None
    header: dict = {}
    chunks, offset = [], 0
    for name, value in params.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
        value = np.asarray(value)
        dtype = value.dtype.newbyteorder("<")
        if dtype not in _TAGS:
            raise ValueError(f"parameter {name} is {value.dtype}; only float32 and float64 "
                             "are saved")  # fmt: skip
        if not np.all(np.isfinite(value)):
            raise ValueError(f"parameter {name} contains NaN or infinite values; not saving")
        data = np.ascontiguousarray(value, dtype=dtype).tobytes()
        header[name] = {"dtype": _TAGS[dtype], "shape": list(value.shape),
                        "data_offsets": [offset, offset + len(data)]}  # fmt: skip
        chunks.append(data)
        offset += len(data)
    body = b"".join(chunks)
    checksum = _checksum(config_json, body)
    header["__metadata__"] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                              "config": config_json, "checksum": checksum}  # fmt: skip
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the tensors start 8-byte aligned
    return atomic_write_bytes(path, len(text).to_bytes(8, "little") + text + body)


def _checksum(config_json: str, body: bytes) -> str:
    digest = hashlib.sha256(config_json.encode())
    digest.update(body)
    return "sha256:" + digest.hexdigest()


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The config dict and parameters (read-only float arrays, in file order) of a
    file written by :func:`write_model_file`.

    Only regular files are opened (not FIFOs, devices or directories); the header
    is bounded (:data:`MAX_HEADER_BYTES`, :data:`MAX_JSON_DEPTH`) and every size it
    claims is checked against the file before the tensors are read, so a crafted
    file costs at most its own size in memory. The checksum is verified; a file
    written before checksums existed loads with a warning.

    Raises
    ------
    ModelFileError
        For any unreadable or invalid file (one line naming the file and the problem).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read model file: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError("not a regular file")
            header, header_size = _read_header(f, size)
            metadata, config = _metadata(header)
            _check_tensors(header, size - 8 - header_size)
            check_fits(size, "reading this model file")
            body = f.read(size - 8 - header_size)
        if len(body) != size - 8 - header_size:
            raise ValueError("the file is shorter than its header says (changed while read?)")
        checksum = metadata.get("checksum")
        if checksum is None:
            warnings.warn(f"{path}: written before rnnlab stored checksums; its weights "
                          "cannot be verified (save it again to add one)",
                          stacklevel=2)  # fmt: skip
        elif checksum != _checksum(metadata["config"], body):
            raise ValueError("checksum mismatch: the file is corrupted (its weights or "
                             "config changed since it was written)")  # fmt: skip
        return config, _tensors(header, size - 8 - header_size, body)
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read model file: {err.strerror or err}") from None
    except (ValueError, TypeError, RecursionError) as err:
        raise model_file_error(path, err) from None


def model_file_error(path: str | os.PathLike, err: Exception) -> ModelFileError:
    """``err`` as a :class:`ModelFileError` of one line that starts with the file's name
    (for the layers above, whose checks of a file's contents fail)."""
    message = " ".join(str(err).split())  # one line, whatever the source wrote
    if len(message) > 500:
        message = message[:500] + "..."
    return ModelFileError(f"{path}: {message}")


def _read_header(f, size: int) -> tuple[dict, int]:
    """The header of an open model file of ``size`` bytes, and its length."""
    if size < 8:
        raise ValueError("not a valid safetensors file (shorter than its 8-byte header length)")
    header_size = int.from_bytes(f.read(8), "little")
    if header_size > min(MAX_HEADER_BYTES, size - 8):
        raise ValueError(f"not a valid safetensors file (header of {header_size} bytes in a "
                         f"file of {size})")  # fmt: skip
    text = f.read(header_size)
    try:
        header = _bounded_json(text, "header")
    except ValueError as err:
        raise ValueError(f"not a valid safetensors file ({err})") from None
    if not isinstance(header, dict):
        raise ValueError("not a valid safetensors file (its header is not a JSON object)")
    return header, header_size


def _bounded_json(text: bytes | str, what: str):
    """``json.loads(text)``, refusing nesting deeper than :data:`MAX_JSON_DEPTH` before
    parsing (a deep nest would exhaust the recursion limit)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"the {what} is not UTF-8 text") from None
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise ValueError(f"the {what} nests {deepest} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"the {what} is not valid JSON ({err})") from None


def _metadata(header: dict) -> tuple[dict, dict]:
    """(metadata, config dict) of a header: rnnlab's, of a version this reads."""
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError("safetensors file without rnnlab metadata (not an rnnlab model)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported format_version {str(metadata.get('format_version'))[:40]!r} "
            f"(this rnnlab reads {FORMAT_VERSION!r})"
        )
    if not isinstance(metadata.get("config"), str):
        raise ValueError("rnnlab metadata has no config")
    config = _bounded_json(metadata["config"], "config metadata")
    if not isinstance(config, dict):
        raise ValueError("config metadata is not a JSON object")
    return metadata, config


def _check_tensors(header: dict, body_size: int) -> None:
    """Every tensor's dtype, shape and byte range, against each other and the file."""
    ends = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"not a valid safetensors file (parameter {name[:40]} has no "
                             "dtype, shape and offsets)")  # fmt: skip
        dtype = _FILE_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ValueError(f"parameter {name[:40]} has dtype {str(entry.get('dtype'))[:20]}; "
                             "expected F32 or F64")  # fmt: skip
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
                and isinstance(offsets, list) and len(offsets) == 2
                and all(type(o) is int for o in offsets)):  # fmt: skip
            raise ValueError(f"not a valid safetensors file (parameter {name[:40]} has an "
                             "invalid shape or offsets)")  # fmt: skip
        begin, end = offsets
        if not 0 <= begin <= end <= body_size or end - begin != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"not a valid safetensors file (parameter {name[:40]}'s bytes "
                             "do not fit its shape or the file: truncated?)")  # fmt: skip
        ends.append((begin, end))
    ends.sort()
    if ends and (ends[0][0] != 0 or ends[-1][1] != body_size or
                 any(a[1] != b[0] for a, b in itertools.pairwise(ends))):  # fmt: skip
        raise ValueError("not a valid safetensors file (its tensors do not tile the data: "
                         "gaps, overlaps or extra bytes)")  # fmt: skip
    if not ends and body_size:
        raise ValueError("not a valid safetensors file (data but no tensors)")


def _tensors(header: dict, body_size: int, body: bytes) -> dict[str, np.ndarray]:
    """Read-only arrays over ``body``, in file order."""
    params = {}
    entries = sorted((entry["data_offsets"][0], name, entry) for name, entry in header.items()
                     if name != "__metadata__")  # fmt: skip
    for begin, name, entry in entries:
        dtype = _FILE_DTYPES[entry["dtype"]]
        end = entry["data_offsets"][1]
        params[name] = np.frombuffer(body, dtype=dtype, count=(end - begin) // dtype.itemsize,
                                     offset=begin).reshape(entry["shape"])  # fmt: skip
    return params


# -- run directories ----------------------------------------------------------------------


def make_run_dir(
    root: str | os.PathLike = "runs", task: str = "shift", now: datetime | None = None
) -> Path:
    """Create and return a fresh ``root/<task>-<YYYYmmdd-HHMMSS>`` directory.

    If that name is taken, ``-1``, ``-2``... is appended; creation is atomic,
    so concurrent callers never share a directory.
    """
    _check_task_name(task)
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


def staging_dir(root: str | os.PathLike = "runs", task: str = "shift") -> Path:
    """A hidden directory in ``root`` to write a run into, then :func:`publish_run_dir`.

    Its name holds this process's id; staging directories of processes that no
    longer run (killed while writing) are removed first, so nothing half-written
    stays behind and a published run directory is always complete.
    """
    _check_task_name(task)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(".*.staging-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    staging = root / f".{task}.{secrets.token_hex(4)}.staging-{os.getpid()}"
    staging.mkdir()
    return staging


def publish_run_dir(staging: Path, task: str = "shift", now: datetime | None = None) -> Path:
    """Rename a complete ``staging`` directory to ``<root>/<task>-<YYYYmmdd-HHMMSS>``
    (``-1``, ``-2``... if taken), atomically; returns the run directory."""
    now = datetime.now() if now is None else now
    base = f"{task}-{now:%Y%m%d-%H%M%S}"
    for n in range(10_000):
        run = staging.parent / (base if n == 0 else f"{base}-{n}")
        if run.exists():
            continue
        try:
            os.rename(staging, run)  # fails if another process took the name meanwhile
        except OSError:
            if run.exists():
                continue
            raise
        _fsync_dir(staging.parent)
        return run
    raise RuntimeError(f"too many run directories named {base}-N in {staging.parent}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


def _check_task_name(task: str) -> None:
    if not task or task.startswith(".") or any(c in task for c in "/\\:"):
        raise ValueError(f"task must be a plain name (no path separators), got {task!r}")
