"""Which way the compiled driver runs a batch, by cell, hidden size and batch size.

The thresholds were measured on this project's 2-core machine; the measurements
are in ``docs/architecture.md``, the full grid against PyTorch in
``docs/speed_grid.txt``. Every way gives the same result to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import numba

from rnnlab.kernels.compiled import blas
from rnnlab.kernels.compiled.products import THIN
from rnnlab.kernels.registry import get_cell

#: sequences per block when the batch runs in SIMD lanes
LANES = 32
#: BLAS products need this many sequences to beat loops
BLAS_MIN_BATCH = 8
#: per-step recurrent products (G H x H times sequences, multiply-adds) in this range run
#: BLAS on one thread (:mod:`.blas`): OpenBLAS threads them from about 2^13, and below
#: 2^18 waking a second thread costs more than it saves (docs/architecture.md)
ONE_BLAS_THREAD = (2**13, 2**18)
#: BLAS blocks on threads of fewer sequences than this each take them only while the
#: gate matrix has at most BLAS_THREADS_MAX_ROWS rows (G H): thinner products of a larger
#: one run faster as one block on BLAS's own two threads (LSTM H = 256, B = 32: a
#: training pass 41.1 ms as one block, 44.0 ms as two; docs/architecture.md)
BLAS_THREADS_WIDE = 64
BLAS_THREADS_MAX_ROWS = 512
#: a forward pass runs lanes blocks on threads from this H on: below it (the notebook's
#: and the demo's 2 units) the pass gains only 1.1x at 256 sequences (Elman, GRU)
FORWARD_LANES_THREADS_MIN_HIDDEN = 4


class Thresholds(NamedTuple):
    blas_min_hidden: int  # from this H on, the whole batch is one block with BLAS products
    parallel_min_batch: int  # lanes blocks run on all threads from this batch on ...
    parallel_max_hidden: int  # ... below this H (BLAS from blas_min_hidden, else one thread)
    sequence_blas_min_hidden: int  # one sequence at a time: BLAS products from this H on
    # a BLAS block of an even batch runs as two blocks of half of it on two threads (one
    # per core, BLAS on one thread in each: BLAS blocks on threads) when training from
    # this H on ...
    blas_threads_min_hidden: int
    # ... and in a forward pass (no tape) from this many multiply-adds per block and step
    # in the recurrent product (G H x H x B / 2) on
    forward_threads_min_work: int


#: per cell; the measurements they come from are in docs/architecture.md ("Thresholds")
TABLE = {
    "elman": Thresholds(
        blas_min_hidden=16,
        parallel_min_batch=64,
        parallel_max_hidden=32,
        sequence_blas_min_hidden=16,
        blas_threads_min_hidden=64,
        forward_threads_min_work=2**15,
    ),
    "gru": Thresholds(
        blas_min_hidden=8,
        parallel_min_batch=64,
        parallel_max_hidden=32,
        sequence_blas_min_hidden=8,
        blas_threads_min_hidden=16,
        forward_threads_min_work=2**16,
    ),
    "lstm": Thresholds(
        blas_min_hidden=8,
        parallel_min_batch=64,
        parallel_max_hidden=8,
        sequence_blas_min_hidden=8,
        blas_threads_min_hidden=16,
        forward_threads_min_work=2**15,
    ),
}
TABLE["exprnn"] = TABLE["elman"]  # an Elman cell in its products (not measured on its own)


class Path(NamedTuple):
    lanes: int  # block width (lanes); a BLAS block is the whole batch
    use_blas: bool
    parallel: bool


_SERIAL_LANES, _PARALLEL_LANES, _BLAS = Path(LANES, False, False), Path(LANES, False, True), \
    Path(LANES, True, False)  # fmt: skip


def choose(cell: str, hidden: int, batch: int, threads: int | None = None,
           training: bool = True) -> Path:  # fmt: skip
    """The way to run ``batch`` sequences of a ``cell`` network of ``hidden`` units
    (``training``: with a backward pass; otherwise a forward pass, which keeps no tape)."""
    limits = TABLE[cell]
    threads = numba.get_num_threads() if threads is None else threads
    many = batch >= limits.parallel_min_batch and (
        hidden < limits.parallel_max_hidden
        if training
        else FORWARD_LANES_THREADS_MIN_HIDDEN <= hidden < limits.blas_min_hidden
    )
    if many and threads > 1:
        return _PARALLEL_LANES
    if hidden >= limits.blas_min_hidden and batch >= BLAS_MIN_BATCH:
        half = batch // 2  # (a BLAS block's products take all its lanes: two full blocks)
        rows = get_cell(cell).gates * hidden
        two = (
            threads > 1
            and batch % 2 == 0
            and half >= THIN
            and (half >= BLAS_THREADS_WIDE or rows <= BLAS_THREADS_MAX_ROWS)
            and blas.available()
        )  # fmt: skip  (each block's BLAS held to one thread)
        if two and (
            hidden >= limits.blas_threads_min_hidden
            if training
            else rows * hidden * half >= limits.forward_threads_min_work
        ):
            return Path(half, True, True)
        return _BLAS
    return _SERIAL_LANES


def one_blas_thread(gates: int, hidden: int, sequences: int) -> bool:
    """Whether BLAS products of ``sequences`` columns at a time by a network of ``gates``
    gates and ``hidden`` units should run on one thread (:data:`ONE_BLAS_THREAD`)."""
    low, high = ONE_BLAS_THREAD
    return low <= gates * hidden * hidden * sequences <= high
