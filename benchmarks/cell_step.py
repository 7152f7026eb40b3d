"""One step of a cell over a block, alone: ``cells.forward_block`` in a compiled loop.

``python benchmarks/cell_step.py``: microseconds per step of each cell at H = 64 over 32
float32 lanes (the best of 7 rounds of 2000 steps), the number docs/architecture.md
quotes for the layout of a cell's step ("A cell's step over a block"). Set
``NUMBA_CPU_NAME`` (e.g. ``haswell``) and an empty ``NUMBA_CACHE_DIR`` to time the code
compiled for another CPU.
"""

from __future__ import annotations

import numpy as np

from rnnlab.kernels.compiled.cells import ELMAN, GRU, LSTM, forward_block
from rnnlab.kernels.compiled.functions import TANH
from rnnlab.kernels.compiled.math import kernel
from speed import best_seconds

#: cell code, its gate count, its tape's numbers per unit
CELLS = {"elman": (ELMAN, 1, 0), "gru": (GRU, 3, 4), "lstm": (LSTM, 4, 5)}


@kernel
def _steps(cell, ax, ah, hs, cs, tape, repeats):
    for _ in range(repeats):
        forward_block(cell, TANH, ax, ah, hs, cs, tape, 0, 0, ax.shape[2])


def seconds_per_step(name, hidden=64, lanes=32, repeats=2000, rounds=7):
    code, gates, taped = CELLS[name]
    rng = np.random.default_rng(0)
    ax, ah = (rng.standard_normal((1, gates * hidden, lanes)).astype(np.float32)
              for _ in range(2))  # fmt: skip
    hs, cs = np.zeros((2, hidden, lanes), np.float32), np.zeros((2, hidden, lanes), np.float32)
    tape = np.zeros((1, max(taped, 1) * hidden, lanes), np.float32)
    return best_seconds(lambda: _steps(code, ax, ah, hs, cs, tape, repeats), rounds) / repeats


def main():
    for name in CELLS:
        print(f"{name:6} H=64, 32 float32 lanes: {seconds_per_step(name) * 1e6:.2f} us a step")


if __name__ == "__main__":
    main()
