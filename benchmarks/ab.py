"""This tree's training step against another revision's, over the speed grid, interleaved.

    python benchmarks/ab.py REV [--rounds 2] [--cells elman,gru,lstm] [--batches 1,32,256]

``speed.py --compare`` compares two grids measured on different days, and this
machine's speed moves by 20-30% from one run to the next. Here both sides run within
seconds of each other: for every configuration, a fresh process per revision (the
float32 ``TrainStep``, as ``fit`` runs it: ``speed.rnnlab_step``), alternating,
``--rounds`` times after a warm-up (kernel compiling), best of each. REV is checked
out in a temporary git worktree. Prints this tree's speed over REV's per
configuration (above 1: faster now) and a summary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: one child: microseconds per training step, best of 5 measurements
CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, {benchmarks!r})
from speed import rnnlab_step, seconds_per_call, shift_data
cell, H, B, T = sys.argv[1], *map(int, sys.argv[2:5])
step = rnnlab_step(cell, H, shift_data(T, B, np.random.default_rng(0)), backend="numba",
                   dtype="float32")
print(min(seconds_per_call(step, 0.05) for _ in range(5)) * 1e6)
"""


def step_us(src: Path, cell: str, H: int, B: int, T: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    code = CHILD.format(benchmarks=str(ROOT / "benchmarks"))
    out = subprocess.run([sys.executable, "-c", code, cell, str(H), str(B), str(T)], env=env,
                         check=True, capture_output=True, text=True, cwd=src.parent)  # fmt: skip
    return float(out.stdout.split()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cells", default="elman,gru,lstm")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--hidden", default="2,16,64,256")
    args = parser.parse_args(argv)
    grid = [(cell, H, B, T) for cell in args.cells.split(",")
            for H in map(int, args.hidden.split(",")) for B in map(int, args.batches.split(","))
            for T in (10, 100)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.rev], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        try:
            print(f"# this tree / {args.rev}: float32 training step, best of {args.rounds} "
                  f"interleaved rounds (us)")  # fmt: skip
            print(f"{'cell':6} {'H':>4} {'B':>4} {'T':>4} {'old':>10} {'new':>10} {'new/old':>8}")
            ratios = []
            for cell, H, B, T in grid:
                trees = {"old": old / "src", "new": ROOT / "src"}
                for src in trees.values():  # warm-up: compiles what this size needs
                    step_us(src, cell, H, B, T)
                best = dict.fromkeys(trees, float("inf"))
                for _ in range(args.rounds):  # (alternating: the machine's drift hits both)
                    for name, src in trees.items():
                        best[name] = min(best[name], step_us(src, cell, H, B, T))
                ratios.append(best["old"] / best["new"])
                print(f"{cell:6} {H:4d} {B:4d} {T:4d} {best['old']:10.1f} {best['new']:10.1f} "
                      f"{ratios[-1]:8.2f}", flush=True)  # fmt: skip
            ratios.sort()
            print(f"# {len(ratios)} configurations: new/old speed median "
                  f"{statistics.median(ratios):.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}; "
                  f"below 0.9: {sum(r < 0.9 for r in ratios)}, below 0.8: "
                  f"{sum(r < 0.8 for r in ratios)}")  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           capture_output=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
