"""A sweep on one core and on two, against the same runs as a plain loop of ``fit``.

    python benchmarks/sweep_scaling.py [SPEC] (default: benchmarks/sweeps/shift_seeds.toml)

Runs every run of the spec three ways, nothing saved: a Python loop of
``rnnlab.runs.train_task`` (what ``rnnlab train`` does), ``rnnlab.sweep(jobs=1)`` (in
this process) and ``rnnlab.sweep(jobs=2)`` (two worker processes, started and warmed
inside the timing), checks that all three give the same runs, and prints wall times,
the speed-up of two jobs over one, and the sweep's overhead per run beyond training.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import rnnlab
from rnnlab.runs import train_task
from rnnlab.sweeps import load_spec
from rnnlab.sweeps.execute import run_one

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    spec = load_spec(
        sys.argv[1] if len(sys.argv) > 1 else ROOT / "benchmarks/sweeps/shift_seeds.toml"
    )
    train_task("shift", out=None, plot=False)  # kernels loaded before any timing
    tick = time.perf_counter()
    serial = [run_one(r.setting, r.seed, None) for r in spec.runs]
    loop = time.perf_counter() - tick
    walls = {}
    results = {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            tick = time.perf_counter()
            results[jobs] = rnnlab.sweep(spec, out=out, jobs=jobs, save=False)
            walls[jobs] = time.perf_counter() - tick
    fields = ("key", "solved", "updates", "metrics", "stop_reason")
    expected = sorted(tuple(str(row[f]) for f in fields) for row in serial)
    for jobs, rows in results.items():
        got = sorted(tuple(str(row[f]) for f in fields) for row in rows)
        if got != expected:
            print(f"jobs={jobs}: the runs differ from the loop of train_task")
            return 1
    training = sum(row["seconds"] for row in serial)
    n = len(spec.runs)
    print(f"# {spec.name}: {n} runs, the same {n} runs (solved, updates, metrics) three ways")
    print("| way | wall seconds | per run |")
    print("|---|---|---|")
    print(f"| a loop of train_task | {loop:.1f} | {loop / n:.3f} |")
    print(f"| rnnlab sweep, 1 job | {walls[1]:.1f} | {walls[1] / n:.3f} |")
    print(f"| rnnlab sweep, 2 jobs | {walls[2]:.1f} | {walls[2] / n:.3f} |")
    print(f"speed-up of 2 jobs over 1: {walls[1] / walls[2]:.2f}x; training (fit) "
          f"{training:.1f} s of the loop's {loop:.1f} s; the sweep's overhead over the loop: "
          f"{(walls[1] - loop) / n * 1000:.0f} ms per run")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
