"""Which way the compiled driver runs a batch, by cell, hidden size and batch size.

The thresholds were measured with ``benchmarks/speed.py`` on this project's
2-core machine; the measurements are in ``docs/speed_grid.txt`` and
``docs/architecture.md``. Every way gives the same result to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import numba

#: sequences per block when the batch runs in SIMD lanes
LANES = 32


class Thresholds(NamedTuple):
    blas_min_hidden: int  # from this H on, the whole batch is one block with BLAS products
    parallel_min_batch: int  # lanes blocks run on all threads from this batch size on ...
    parallel_max_hidden: int  # ... up to this H (beyond it, BLAS wins)


TABLE = {
    "elman": Thresholds(blas_min_hidden=32, parallel_min_batch=64, parallel_max_hidden=95),
    "gru": Thresholds(blas_min_hidden=9, parallel_min_batch=64, parallel_max_hidden=64),
    "lstm": Thresholds(blas_min_hidden=17, parallel_min_batch=64, parallel_max_hidden=64),
}


class Path(NamedTuple):
    lanes: int  # block width (lanes); a BLAS block is the whole batch
    use_blas: bool
    parallel: bool


def choose(cell: str, hidden: int, batch: int, threads: int | None = None) -> Path:
    """The way to run ``batch`` sequences of a ``cell`` network of ``hidden`` units."""
    limits = TABLE[cell]
    threads = numba.get_num_threads() if threads is None else threads
    if threads > 1 and batch >= limits.parallel_min_batch and hidden <= limits.parallel_max_hidden:
        return Path(LANES, False, True)
    return Path(LANES, hidden >= limits.blas_min_hidden, False)
