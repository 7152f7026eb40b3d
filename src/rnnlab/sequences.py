"""Turning user sequences into padded time-major batches, and back.

The public API takes what the notebook uses — a list of variable-length
sequences, each a list of numbers (one feature) or of feature vectors — or a
padded batch-first array ``(B, T)`` / ``(B, T, F)`` with ``lengths`` (PyTorch's
``batch_first`` convention). Inside, everything is time-major: ``x (T, B, I)``,
``y (T, B, O)`` and a loss mask ``(T, B)`` that is zero on padding.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from rnnlab import functional


class Batch(NamedTuple):
    """A padded, time-major batch (immutable; a named tuple, which builds in a third of
    a frozen dataclass's time: it is made on every call with arrays).

    Attributes
    ----------
    x : ndarray of shape (T, B, I)
        Inputs, zero on padding.
    y : ndarray of shape (T, B, O) or None
        Targets (one-hot rows for class targets), zero on padding.
    mask : ndarray of shape (T, B)
        Loss weight of each step: 1 where a step is scored, 0 on padding and
        on steps the task does not score.
    lengths : ndarray of shape (B,)
        Number of valid steps of each sequence.
    as_list : bool
        Whether the user gave lists (outputs go back as lists) or arrays.
    """

    x: np.ndarray
    y: np.ndarray | None
    mask: np.ndarray
    lengths: np.ndarray
    as_list: bool = True

    @property
    def size(self) -> int:
        """Number of sequences ``B``."""
        return self.x.shape[1]

    def take(self, index: np.ndarray) -> Batch:
        """The sequences at ``index`` as a batch, padding trimmed to the longest of them."""
        lengths = self.lengths[index]
        T = int(np.maximum.reduce(lengths))  # (lengths.max() without its Python wrapper)
        # (take: C-contiguous, as the kernels take them, where x[:T, index] is not; the
        # method, not np.take's wrapper: this runs once per update of fit)
        y = None if self.y is None else self.y[:T].take(index, axis=1)
        return Batch(self.x[:T].take(index, axis=1), y, self.mask[:T].take(index, axis=1),
                     lengths, self.as_list)  # fmt: skip

    def astype(self, dtype) -> Batch:
        """The same batch with ``x``, ``y`` and ``mask`` cast to ``dtype``."""
        return Batch(
            x=self.x.astype(dtype),
            y=None if self.y is None else self.y.astype(dtype),
            mask=self.mask.astype(dtype),
            lengths=self.lengths,
            as_list=self.as_list,
        )

    @property
    def padding_mask(self) -> np.ndarray:
        """``(T, B)`` float mask: 1 on valid steps, 0 on padding."""
        steps = np.arange(self.x.shape[0])[:, None]  # (T, 1)
        return (steps < self.lengths[None, :]).astype(self.x.dtype)


def make_batch(
    X,
    Y=None,
    *,
    input_size: int,
    output_size: int,
    lengths=None,
    mask=None,
    targets: str = "binary",
    dtype=np.float64,
) -> Batch:
    """Validate user sequences and pad them into a :class:`Batch`.

    Parameters
    ----------
    X : list of sequences, or ndarray of shape (B, T) or (B, T, I)
    Y : same layout as ``X`` with ``O`` features, or class indices ``(B, T)``
        for ``targets="class"``; optional.
    lengths : array-like of shape (B,), only with array inputs
    mask : same layout as ``X`` without features; which steps are scored
        (1) and which are not (0). Defaults to every valid step.
    targets : {"binary", "class", "real"}
        What the targets must be: 0/1 values, class indices (or one-hot
        rows), or any finite reals.
    """
    if isinstance(X, Batch):  # (a tuple: it would read as five sequences)
        raise ValueError("X is already a Batch; pass it to the model as it is")
    arrays = isinstance(X, np.ndarray)
    if arrays and all(a is None or isinstance(a, np.ndarray) for a in (Y, mask)):
        return _padded_batch(X, Y, mask, input_size, output_size, lengths, targets, dtype)
    as_list = not arrays
    xs = _sequences(X, "X", input_size, lengths, dtype)
    seq_lengths = np.array([len(s) for s in xs], dtype=np.int64)
    x = _pad(xs, input_size, dtype)

    y = None
    if Y is not None:
        if targets == "class":
            ys = _class_sequences(Y, output_size, lengths, dtype)
        else:
            ys = _sequences(Y, "Y", output_size, lengths, dtype)
        _check_same_lengths(xs, ys, "Y")
        if targets == "binary":
            _check_binary(ys)
        y = _pad(ys, output_size, dtype)

    valid = (np.arange(x.shape[0])[:, None] < seq_lengths[None, :]).astype(dtype)  # (T, B)
    if mask is not None:
        ms = _sequences(mask, "mask", 1, lengths, dtype)
        _check_same_lengths(xs, ms, "mask")
        if any(np.any(m < 0) for m in ms):
            raise ValueError("mask values must be non-negative (1 scores a step, 0 skips it)")
        valid = valid * _pad(ms, 1, dtype)[..., 0]
    return Batch(x=x, y=y, mask=valid, lengths=seq_lengths, as_list=as_list)


def _padded_batch(X, Y, mask, input_size, output_size, lengths, targets, dtype) -> Batch:
    """:func:`make_batch` for padded arrays: the same checks and messages, on whole arrays
    (no per-sequence Python), the same :class:`Batch`."""
    fast = _compiled_padded_batch(X, Y, mask, input_size, output_size, lengths, targets, dtype)
    if fast is not None:
        return fast
    return _numpy_padded_batch(X, Y, mask, input_size, output_size, lengths, targets, dtype)


def _numpy_padded_batch(X, Y, mask, input_size, output_size, lengths, targets, dtype) -> Batch:
    """:func:`_padded_batch` in whole-array numpy calls: any arrays, every check's message."""
    x, steps = _padded(X, "X", input_size, lengths, dtype)  # (the given lengths, or T)
    T, B = x.shape[0], x.shape[1]
    valid = np.arange(T)[:, None] < steps[None, :]  # (T, B)
    y = None
    if Y is not None:
        if targets == "class":
            y = _padded_classes(Y, output_size, lengths, valid, dtype)
        else:
            y, _ = _padded(Y, "Y", output_size, lengths, dtype, follows=(T, B))
            if targets == "binary":
                bad = (y != 0) & (y != 1)  # (padding is zero)
                if bad.any():
                    b = int(np.argmax(bad.any(axis=(0, 2))))
                    raise ValueError(f"targets must be 0 or 1, but Y[{b}] holds "
                                     f"{y[:, b][bad[:, b]][0]:g}")  # fmt: skip
    weights = valid.astype(dtype)
    if mask is not None:
        m, _ = _padded(mask, "mask", 1, lengths, dtype, follows=(T, B))
        if (m < 0).any():
            raise ValueError("mask values must be non-negative (1 scores a step, 0 skips it)")
        weights *= m[..., 0]
    return Batch(x=x, y=y, mask=weights, lengths=steps, as_list=False)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _compiled_padded_batch(X, Y, mask, input_size, output_size, lengths, targets, dtype):
    """:func:`_padded_batch`'s Batch in one compiled pass per array
    (:func:`rnnlab.kernels.compiled.arrays.time_major`: 32 sequences of 10 steps with
    targets in 7.5 us instead of 25), once the compiled backend is loaded, for float
    arrays with binary or real targets and no mask; None otherwise, and when anything is
    wrong (the numpy way then says what)."""
    if "rnnlab.kernels.compiled" not in sys.modules or mask is not None or targets == "class":
        return None
    from rnnlab.kernels.compiled.arrays import time_major

    X = _three_axes(X, "X", input_size)
    B, T = X.shape[0], X.shape[1]
    if X.dtype not in _FLOATS or not X.flags.c_contiguous:  # (no other compiled variants)
        return None
    if lengths is None:
        steps = np.full(B, T, dtype=np.int64)
    else:
        steps = np.array(lengths)  # (a copy: the Batch keeps it)
        if steps.shape != (B,) or steps.dtype.kind not in "iu":
            return None
        steps = steps.astype(np.int64, copy=False)
    x, valid = np.empty((T, B, input_size), dtype), np.empty((T, B), dtype)
    n = time_major(X, steps, x, valid, False)
    if n < 0:
        return None
    y = None
    if Y is not None:
        Y = _three_axes(Y, "Y", output_size)
        if (Y.dtype not in _FLOATS or not Y.flags.c_contiguous or Y.shape[0] != B
                or (lengths is None and Y.shape[1] != n)):  # fmt: skip
            return None
        y = np.empty((n, B, output_size), dtype)
        if time_major(Y, steps, y, _NO_VALID[y.dtype], targets == "binary") < 0:
            return None
    if n < x.shape[0]:
        x, valid = x[:n], valid[:n]
    return Batch(x, y, valid, steps, False)


def _compiled_batch_first(values, lengths, sigmoid):
    """:func:`unbatch`'s array in one compiled pass
    (:func:`rnnlab.kernels.compiled.arrays.batch_first`), once the compiled backend is
    loaded, for float C-contiguous ``values``; None otherwise."""
    if "rnnlab.kernels.compiled" not in sys.modules or values.dtype not in _FLOATS:
        return None
    if not values.flags.c_contiguous or lengths.dtype != np.int64:
        return None
    from rnnlab.kernels.compiled.arrays import batch_first

    T, B, O = values.shape
    out = np.empty((B, T, O), values.dtype)
    batch_first(values, lengths, out, sigmoid)
    return out


#: an empty (0, 0) array per dtype: "no valid marks wanted"
_NO_VALID = {t: np.empty((0, 0), t) for t in _FLOATS}


def _padded(X, name, features, lengths, dtype, follows=None):
    """A padded batch-first array as time-major ``(T, B, features)`` of ``dtype``, zero
    after each sequence's length, and the lengths; ``T`` is the longest length, or X's
    for the arrays that must match X (``follows``: X's ``(T, B)``). Checked with the
    messages of the list path."""
    X = _three_axes(X, name, features)
    B, T = X.shape[:2]
    if follows is not None and B != follows[1]:
        raise ValueError(f"{name} has {B} sequences but X has {follows[1]}")
    if lengths is None:
        if follows is not None and T != follows[0]:  # each sequence is a whole row
            raise ValueError(f"sequence 0: X has {follows[0]} steps but {name} has {T}")
        lengths = np.full(B, T, dtype=np.int64)
    else:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be {B} integers, one per sequence, got {lengths!r}")
        if lengths.min() < 1 or lengths.max() > T:  # (methods: np.any costs 3 us a call)
            raise ValueError(
                f"lengths must lie in 1..{T} (the padded length), got {lengths.tolist()}"
            )
        lengths = lengths.astype(np.int64)
    T = int(lengths.max()) if follows is None else follows[0]
    x = np.array(np.swapaxes(X[:, :T], 0, 1), dtype=dtype, order="C")  # (T, B, F), a copy
    if lengths.min() < T:
        padding = np.arange(T)[:, None, None] >= lengths[None, :, None]  # (T, B, 1)
        np.copyto(x, 0.0, where=padding)
    finite = np.isfinite(x)
    if not finite.all():
        b = int(np.argmax(~finite.all(axis=(0, 2))))
        raise ValueError(f"{name}[{b}] contains NaN or infinite values")
    return x, lengths


def _padded_classes(Y, classes, lengths, valid, dtype) -> np.ndarray:
    """Class targets as a padded array: indices ``(B, T)`` or one-hot ``(B, T, C)``, as
    one-hot ``(T, B, C)`` (zero on padding)."""
    follows = valid.shape
    if Y.ndim != 2:
        y, _ = _padded(Y, "Y", classes, lengths, dtype, follows=follows)
        bad = ((y != 0) & (y != 1)).any(axis=2) | (valid & (y.sum(axis=2) != 1))
        if bad.any():
            raise ValueError(f"Y[{int(np.argmax(bad.any(axis=0)))}] must hold one-hot rows "
                             "for class targets")  # fmt: skip
        return y
    k, _ = _padded(Y, "Y", 1, lengths, np.float64, follows=follows)
    k = k[..., 0]  # (T, B), zero on padding
    bad = (k != np.round(k)) | (k < 0) | (k >= classes)
    if bad.any():
        b = int(np.argmax(bad.any(axis=0)))
        raise ValueError(f"Y[{b}] must hold class indices in 0..{classes - 1}")
    y = np.eye(classes, dtype=dtype)[k.astype(np.int64)]  # (T, B, C)
    y[~valid] = 0.0
    return y


def unbatch(values: np.ndarray, batch: Batch, *, sigmoid: bool = False):
    """Time-major ``values (T, B, O)`` back into the user's layout, through the sigmoid
    first where ``sigmoid`` (a bce model's probabilities).

    Lists in, lists out: one list per sequence, one value per step when
    ``O == 1`` (else one row of ``O`` values per step). Arrays in, arrays out:
    ``(B, T)`` when ``O == 1`` else ``(B, T, O)``, padding set to 0.
    """
    if not batch.as_list:
        out = _compiled_batch_first(values, batch.lengths, sigmoid)
        if out is not None:
            return out[..., 0] if out.shape[-1] == 1 else out
    if sigmoid:
        values = functional.sigmoid(values)
    out = np.swapaxes(values, 0, 1) * batch.padding_mask.T[..., None]  # (B, T, O)
    if values.shape[-1] == 1:
        out = out[..., 0]
    if not batch.as_list:
        return out
    return [out[b, : batch.lengths[b]].tolist() for b in range(out.shape[0])]


def _sequences(X, name: str, features: int, lengths, dtype) -> list[np.ndarray]:
    """A list of ``(T_i, features)`` arrays from a list of sequences or a padded array."""
    if isinstance(X, np.ndarray):
        return _from_padded(X, name, features, lengths, dtype)
    if lengths is not None:
        raise ValueError("lengths= is only for padded arrays; lists carry their own lengths")
    try:
        n = len(X)
    except TypeError:
        raise ValueError(f"{name} must be a list of sequences or an array") from None
    if n == 0:
        raise ValueError(f"{name} holds no sequences")
    out = []
    for i, seq in enumerate(X):
        try:
            arr = np.asarray(seq, dtype=dtype)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}[{i}] is not a sequence of numbers or of equal-length vectors"
            ) from None
        if arr.ndim == 0:
            raise ValueError(
                f"{name}[{i}] is a single number; {name} must be a list of sequences, "
                f"e.g. [[0, 1, 1]] for one sequence"
            )
        if arr.ndim == 1 and features == 1:
            arr = arr[:, None]  # (T_i,) -> (T_i, 1)
        if arr.ndim != 2 or arr.shape[1] != features:
            raise ValueError(
                f"{name}[{i}] should have {features} value(s) per step, got shape {np.shape(seq)}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{name}[{i}] is empty; every sequence needs at least one step")
        _check_finite(arr, f"{name}[{i}]")
        out.append(arr)
    return out


def _from_padded(X: np.ndarray, name: str, features: int, lengths, dtype) -> list[np.ndarray]:
    """A padded array as one ``(T_i, features)`` array per sequence (the list path's form)."""
    x, lengths = _padded(X, name, features, lengths, dtype)
    return [x[: lengths[b], b] for b in range(x.shape[1])]


def _three_axes(X: np.ndarray, name: str, features: int) -> np.ndarray:
    """A padded array of numbers as ``(B, T, features)``, or a ValueError naming ``name``."""
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {X.dtype}")
    if X.ndim == 2 and features == 1:
        X = X[..., None]
    if X.ndim != 3 or X.shape[2] != features:
        raise ValueError(
            f"{name} should be a padded array of shape (B, T) or (B, T, {features}), got {X.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} holds no sequences (shape {X.shape})")
    return X


def _class_sequences(Y, classes: int, lengths, dtype) -> list[np.ndarray]:
    """Class indices ``(T_i,)`` (or one-hot rows ``(T_i, C)``) as one-hot ``(T_i, C)``."""
    is_indices = (isinstance(Y, np.ndarray) and Y.ndim == 2) or (
        not isinstance(Y, np.ndarray) and len(Y) > 0 and np.ndim(Y[0]) == 1
    )
    if not is_indices:
        ys = _sequences(Y, "Y", classes, lengths, dtype)
        for i, y in enumerate(ys):
            if np.any((y != 0) & (y != 1)) or np.any(y.sum(axis=1) != 1):
                raise ValueError(f"Y[{i}] must hold one-hot rows for class targets")
        return ys
    idx = _sequences(Y, "Y", 1, lengths, np.float64)
    out = []
    for i, col in enumerate(idx):
        k = col[:, 0]
        if np.any(k != np.round(k)) or np.any(k < 0) or np.any(k >= classes):
            raise ValueError(f"Y[{i}] must hold class indices in 0..{classes - 1}")
        out.append(np.eye(classes, dtype=dtype)[k.astype(np.int64)])
    return out


def _pad(seqs: list[np.ndarray], features: int, dtype) -> np.ndarray:
    """Stack ``(T_i, F)`` arrays into a zero-padded ``(T, B, F)`` array."""
    T = max(len(s) for s in seqs)
    out = np.zeros((T, len(seqs), features), dtype=dtype)
    for b, s in enumerate(seqs):
        out[: len(s), b] = s
    return out


def _check_same_lengths(xs: list[np.ndarray], ys: list[np.ndarray], name: str) -> None:
    if len(ys) != len(xs):
        raise ValueError(f"{name} has {len(ys)} sequences but X has {len(xs)}")
    for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
        if len(a) != len(b):
            raise ValueError(f"sequence {i}: X has {len(a)} steps but {name} has {len(b)}")


def _check_binary(ys: list[np.ndarray]) -> None:
    for i, y in enumerate(ys):
        bad = y[(y != 0) & (y != 1)]
        if bad.size:
            raise ValueError(f"targets must be 0 or 1, but Y[{i}] holds {bad[0]:g}")


def _check_finite(arr: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where} contains NaN or infinite values")
