"""Padded batch-first arrays to the kernels' time-major layout, checked, in one pass.

The numpy way (:func:`rnnlab.sequences.make_batch`) takes a dozen whole-array calls
(lengths' minimum and maximum, the transposed copy, the padding, the finiteness and
0/1 checks), each a microsecond or two at small sizes: 25 us for a batch of 32
sequences of 10 steps, more than the training pass. :func:`time_major` does it in
one loop; when it finds something wrong it says only what kind, and the numpy way
runs again to name it. :func:`batch_first` is the way back, for outputs (a bce model's
probabilities through the sigmoid on the way): 2 us where numpy's sigmoid, transpose
and padding took 9.
"""

from __future__ import annotations

import math

from rnnlab.kernels.compiled.math import kernel, sigmoid

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
    marks = valid.shape[0] > 0
    for t in range(steps):
        for b in range(B):
            inside = t < lengths[b]
            if marks:
                valid[t, b] = 1.0 if inside else 0.0
            if inside:
                for f in range(F):
                    out[t, b, f] = X[b, t, f]
                    v = out[t, b, f]
                    if not math.isfinite(v):
                        return NOT_FINITE
                    if binary and v != 0.0 and v != 1.0:
                        return NOT_BINARY
            else:
                for f in range(F):
                    out[t, b, f] = 0.0
    return steps


@kernel
def batch_first(values, lengths, out, squash):
    """``out (B, T, O)`` = time-major ``values (T, B, O)`` batch-first, through the
    sigmoid where ``squash``, zero from each sequence's length (``lengths (B,)``) on."""
    T, B, O = values.shape
    for b in range(B):
        n = min(max(lengths[b], 0), T)
        for t in range(n):
            for o in range(O):
                v = values[t, b, o]
                out[b, t, o] = sigmoid(v) if squash else v
        for t in range(n, T):
            for o in range(O):
                out[b, t, o] = 0.0
