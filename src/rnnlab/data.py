"""Your own sequences from files: what ``rnnlab train --data`` and ``rnnlab predict --data``
read.

- ``.npz``: arrays ``X (B, T[, I])`` and ``Y (B, T[, O])``, optional ``lengths (B,)`` and
  ``mask (B, T)``, and a held-out split under the same names with ``_val``
  (``X_val``, ``Y_val``...); with ``last``, ``Y (B[, O])``, one label a sequence;
- ``.csv`` / ``.tsv``: one sequence a line, its inputs and its targets in two columns
  (comma or tab), each a space-separated list of numbers, one a step (``0 1 1,0 0 1``;
  with ``last``, one label a sequence: ``0 1 1,0``);
  blank lines and lines starting with ``#`` are skipped. ``rnnlab predict`` reads the
  inputs column alone, from a file or standard input.

Sequences may differ in length; a file's bad line or array is named in the error.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Sequences(NamedTuple):
    """Inputs and (optional) targets: padded arrays with ``lengths``, or lists."""

    X: object  # (B, T[, I]) array, or a list of sequences
    Y: object | None  # (B, T[, O]) array, a list, or None
    lengths: np.ndarray | None = None  # (B,) for arrays
    mask: np.ndarray | None = None  # (B, T) for arrays


class DataFile(NamedTuple):
    """A data file's training sequences and its held-out split (None if it has none)."""

    train: Sequences
    val: Sequences | None


def load(path: str | Path, *, targets: bool = True, last: bool = False) -> DataFile:
    """The sequences in ``path`` (``.npz``, ``.csv``, ``.tsv``; see the module's
    docstring); ``targets=False`` reads inputs only; ``last``: one label per sequence,
    scored at its last step (:func:`at_last_step`). ``ValueError`` for anything else."""
    file = _load(Path(path), targets, last)
    if not last:
        return file
    return DataFile(at_last_step(file.train), None if file.val is None else at_last_step(file.val))


def _load(path: Path, targets: bool, last: bool) -> DataFile:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path, targets)
    if suffix in (".csv", ".tsv"):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: cannot be read ({err})") from None
        return DataFile(_table(text, "\t" if suffix == ".tsv" else None, targets, str(path),
                               last), None)  # fmt: skip
    raise ValueError(f"{path}: unsupported data file; give .npz, .csv or .tsv (or .txt for "
                     "a character model: rnnlab train text --data FILE.txt)")  # fmt: skip


def read_table(text: str, *, targets: bool, source: str = "input") -> Sequences:
    """Sequences from CSV/TSV text (see the module's docstring)."""
    return _table(text, None, targets, source, False)


def _npz(path: Path, targets: bool) -> DataFile:
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as arrays:
            data = {name: arrays[name] for name in arrays.files}  # (our file: closed on errors)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err or 'empty'})") from None
    need = ("X", "Y") if targets else ("X",)
    missing = [name for name in need if name not in data]
    if missing:
        raise ValueError(f"{path} has no array {', '.join(missing)}; it holds "
                         f"{', '.join(data) or 'none'}")  # fmt: skip

    def split(suffix: str) -> Sequences:
        return Sequences(data[f"X{suffix}"], data.get(f"Y{suffix}") if targets else None,
                         data.get(f"lengths{suffix}"), data.get(f"mask{suffix}"))  # fmt: skip

    val = split("_val") if "X_val" in data else None
    if val is not None and targets and val.Y is None:
        raise ValueError(f"{path} has X_val but no Y_val")
    return DataFile(split(""), val)


def _table(text: str, delimiter: str | None, targets: bool, source: str,
           last: bool) -> Sequences:  # fmt: skip
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    if not lines:
        raise ValueError(f"{source} holds no sequences")
    if delimiter is None:
        delimiter = "\t" if "\t" in lines[0][1] else ","
    X, Y = [], []
    for n, line in lines:
        (fields,) = csv.reader(io.StringIO(line), delimiter=delimiter)
        want = 2 if targets else 1
        if len(fields) < want or (targets and len(fields) != 2):
            raise ValueError(f"{source}, line {n}: expected "
                             f"{'inputs and targets' if targets else 'inputs'}, got "
                             f"{len(fields)} column(s)")  # fmt: skip
        X.append(_numbers(fields[0], source, n, "inputs"))
        if targets:
            y = _numbers(fields[1], source, n, "targets")
            if last:  # (one label: a number, or one vector)
                Y.append(y[0] if len(y) == 1 else y)
                continue
            if len(y) != len(X[-1]):
                raise ValueError(f"{source}, line {n}: {len(X[-1])} inputs but {len(y)} "
                                 "targets")  # fmt: skip
            Y.append(y)
    return Sequences(X, Y if targets else None)


def _numbers(field: str, source: str, line: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in field.split()]
    except ValueError:
        raise ValueError(f"{source}, line {line}: {what} must be numbers separated by "
                         f"spaces, got {field.strip()!r}") from None  # fmt: skip
    if not values:
        raise ValueError(f"{source}, line {line}: no {what}")
    return values


def infer_loss(Y, lengths=None) -> str:
    """``"bce"`` for targets that are all 0 or 1, else ``"mse"`` (a padded array's
    padding, past ``lengths``, does not count)."""
    if isinstance(Y, list):
        values = np.concatenate([np.ravel(np.asarray(y, dtype=float)) for y in Y])
    else:
        values = np.asarray(Y, dtype=float)
        if lengths is not None and values.ndim >= 2:
            inside = np.arange(values.shape[1])[None, :] < np.asarray(lengths)[:, None]
            values = values[inside]
    return "bce" if np.isin(values, (0.0, 1.0)).all() else "mse"


def feature_size(X) -> int:
    """Features per step of ``X``: its last axis for a 3-D array, else 1."""
    if isinstance(X, np.ndarray):
        return X.shape[2] if X.ndim == 3 else 1
    first = np.asarray(X[0], dtype=float)
    return first.shape[1] if first.ndim == 2 else 1


def at_last_step(sequences: Sequences) -> Sequences:
    """Sequence-to-label data as per-step data: one label per sequence (``Y (B,)`` or
    ``(B, O)``, or a list of numbers or of ``O``-vectors) becomes the target of its last
    step, the only step scored (``mask``); the other steps' targets are 0, unscored."""
    X, Y = sequences.X, sequences.Y
    if Y is None:
        return sequences
    labels = np.asarray(Y, dtype=float)
    B = len(X)
    if labels.ndim not in (1, 2) or labels.shape[0] != B:
        raise ValueError(f"one label per sequence: Y must have {B} rows (one number or one "
                         f"vector each), got shape {labels.shape}")  # fmt: skip
    labels = labels.reshape(B, -1)  # (B, O)
    if sequences.mask is not None:
        raise ValueError("one label per sequence scores its last step: give no mask with it")
    if isinstance(X, np.ndarray):
        T = X.shape[1]
        lengths = np.full(B, T) if sequences.lengths is None else np.asarray(sequences.lengths)
        whole = lengths.dtype.kind in "iu" or (
            lengths.dtype.kind == "f" and np.all(lengths == np.round(lengths)))  # fmt: skip
        if lengths.shape != (B,) or not whole or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must be {B} whole numbers in 1..{T}")
        lengths = lengths.astype(np.int64)
        steps = np.zeros((B, T, labels.shape[1]))  # (B, T, O)
        mask = np.zeros((B, T))  # (B, T)
        steps[np.arange(B), lengths - 1] = labels
        mask[np.arange(B), lengths - 1] = 1.0
        return Sequences(X, steps if labels.shape[1] > 1 else steps[..., 0], lengths, mask)
    steps, masks = [], []
    for x, label in zip(X, labels, strict=True):
        T = len(x)
        y = np.zeros((T, labels.shape[1]))
        y[-1] = label
        steps.append(y if labels.shape[1] > 1 else y[:, 0])
        masks.append([0.0] * (T - 1) + [1.0])
    return Sequences(X, steps, None, masks)


def one_hot_tokens(sequences: Sequences, vocabulary: int | None = None) -> tuple[Sequences, int]:
    """Integer token ids as one-hot input vectors: ``X (B, T)`` ids (or lists of ids)
    become ``(B, T, V)`` (or lists of V-vectors), ``V`` = ``vocabulary`` or the largest
    id plus one; returns the sequences and ``V``. Ids must be whole numbers in
    ``0 .. V - 1`` (a padded array's padding is not read)."""
    X = sequences.X
    if isinstance(X, np.ndarray):
        ids = np.asarray(X, dtype=float)
        if ids.ndim != 2:
            raise ValueError(f"token ids are one number a step: X must be (B, T), got {ids.shape}")
        inside = np.ones(ids.shape, bool)  # (B, T)
        if sequences.lengths is not None:
            inside = np.arange(ids.shape[1])[None, :] < np.asarray(sequences.lengths)[:, None]
        values = ids[inside]
    else:
        ids = [np.asarray(x, dtype=float) for x in X]
        if any(x.ndim != 1 for x in ids):
            raise ValueError("token ids are one number a step")
        values = np.concatenate(ids)
    if not np.all(values == np.round(values)) or values.min() < 0:
        raise ValueError("token ids must be whole numbers from 0")
    V = int(values.max()) + 1 if vocabulary is None else int(vocabulary)
    if values.max() >= V:
        raise ValueError(f"token id {int(values.max())} is outside the vocabulary of {V}")
    eye = np.eye(V)
    if isinstance(X, np.ndarray):
        safe = np.where(inside, ids, 0).astype(np.int64)  # (padding: any id, zeroed later)
        return sequences._replace(X=eye[safe]), V
    return sequences._replace(X=[eye[x.astype(np.int64)] for x in ids]), V
