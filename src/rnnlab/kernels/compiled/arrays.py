"""Padded batch-first arrays to the kernels' time-major layout, checked, in one pass.

The numpy way (:func:`rnnlab.sequences.make_batch`) takes a dozen whole-array calls
(lengths' minimum and maximum, the transposed copy, the padding, the finiteness and
0/1 checks), each a microsecond or two at small sizes: 25 us for a batch of 32
sequences of 10 steps, more than the training pass. :func:`time_major` does it in
one compiled call (a copy, then whole-array checks on the copy); when it finds
something wrong it says only what kind, and the numpy way runs again to name it.
:func:`batch_first` is the way back, for outputs (a bce model's probabilities
through the sigmoid on the way): 2 us where numpy's sigmoid, transpose and padding
took 9. Loops whose values are read with a stride do not vectorize, so the
sigmoid and the checks run over contiguous arrays, and one feature (most tasks)
takes 2-d loops (32 sequences of 100 steps: 3.5 us to time-major, was 6.4; 4.7 us
back through the sigmoid, was 18.6).
"""

from __future__ import annotations

import numpy as np

from rnnlab.kernels.compiled.math import inline, kernel, sigmoid, summing

#: what :func:`time_major` returns when it finds a bad length, value or target
BAD_LENGTH, NOT_FINITE, NOT_BINARY = -1, -2, -3


@kernel
def time_major(X, lengths, out, valid, binary):
    """``out[:n] (n, B, F)`` = ``X (B, T, F)`` transposed, as ``out``'s dtype, zero after
    each sequence's length (``lengths (B,)``, each in ``1 .. min(T, len(out))``), where
    ``n`` is the longest length (or ``len(out)``, when ``out`` is shorter than ``X``);
    ``valid[:n] (n, B)``, unless empty, 1 inside a sequence and 0 after it. Returns
    ``n``, or :data:`BAD_LENGTH`, :data:`NOT_FINITE` (a value inside a sequence, once
    cast) or, with ``binary``, :data:`NOT_BINARY` (not 0 or 1)."""
    B, T, F = X.shape
    rows = out.shape[0]
    longest = 0
    for b in range(B):
        n = lengths[b]
        if n < 1 or n > T or n > rows:
            return BAD_LENGTH
        longest = max(longest, n)
    steps = longest if rows == T else rows
    if valid.shape[0] > 0:
        for t in range(steps):
            for b in range(B):
                valid[t, b] = 1.0 if t < lengths[b] else 0.0
    if F == 1:  # (one feature, most tasks': as 2-d arrays, a loop that vectorizes)
        X1, out1 = X.reshape(B, T), out.reshape(rows, B)
        for t in range(steps):
            for b in range(B):
                out1[t, b] = X1[b, t] if t < lengths[b] else 0.0
    else:
        for t in range(steps):
            for b in range(B):
                inside = t < lengths[b]
                for f in range(F):
                    out[t, b, f] = X[b, t, f] if inside else 0.0
    # the checks read the copy (padding is 0.0: finite and binary) in whole-array loops
    # that vectorize, rather than a test per value in the copy above
    copied, size = out.reshape(out.size), steps * B * F  # (out[:steps], flat)
    if not _all_finite(copied, size):
        return NOT_FINITE
    if binary and _count_not_binary(copied, size) > 0:
        return NOT_BINARY
    return steps


@inline
def all_finite(values):
    """Whether every number of the vector ``values`` is finite."""
    return _all_finite(values, values.shape[0])


@summing
def _all_finite(values, size):
    """Whether ``values[:size]`` are all finite: ``v * 0`` is 0 for a finite ``v``, NaN
    otherwise."""
    total = 0.0
    for i in range(size):
        total += values[i] * 0.0
    return total == 0.0


@inline
def _count_not_binary(values, size):
    count = 0
    for i in range(size):
        v = values[i]
        count += 0 if v == 0.0 or v == 1.0 else 1
    return count


@kernel
def batch_first(values, lengths, out, squash):
    """``out (B, T, O)`` = time-major ``values (T, B, O)`` batch-first, through the
    sigmoid where ``squash``, zero from each sequence's length (``lengths (B,)``) on.
    The sigmoid runs first, over contiguous values into a copy (see above)."""
    T, B, O = values.shape
    source = values
    if squash:
        source = np.empty_like(values)
        _squash(values, source)
    if O == 1:  # (as in time_major)
        source1, out1 = source.reshape(T, B), out.reshape(B, T)
        for b in range(B):
            for t in range(T):
                out1[b, t] = source1[t, b] if t < lengths[b] else 0.0
        return
    for b in range(B):
        n = min(max(lengths[b], 0), T)
        for t in range(n):
            for o in range(O):
                out[b, t, o] = source[t, b, o]
        for t in range(n, T):
            for o in range(O):
                out[b, t, o] = 0.0


@inline
def _squash(values, out):
    """``out = sigmoid(values)``, over both as flat vectors (a loop that vectorizes)."""
    n = values.size
    flat, squashed = values.reshape(n), out.reshape(n)
    for i in range(n):
        squashed[i] = sigmoid(flat[i])
