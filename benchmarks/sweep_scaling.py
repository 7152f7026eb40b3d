"""A sweep on one core and on two, against the same runs as a plain loop of ``fit``.

    python benchmarks/sweep_scaling.py [SPEC] (default: benchmarks/sweeps/shift_seeds.toml)

Times ``rnnlab sweep SPEC --no-save --jobs 1`` and ``--jobs 2`` from the shell (fresh
processes: imports, kernel loading and the worker process's start included, as a user
sees them), the best of five each, interleaved; runs the same runs as a Python loop of
``rnnlab.runs.train_task`` (what ``rnnlab train`` does) and checks that the sweeps gave
the same runs (solved, updates, metrics); then ``rnnlab.sweep(jobs=2)`` twice in this
process (forked workers, or loky's once it has run parallel kernels: the second call
then finds them started); prints wall times, the speed-ups and the sweep's overhead beyond the loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rnnlab
from rnnlab.runs import train_task
from rnnlab.sweeps import load_spec, results_path
from rnnlab.sweeps.execute import fork_is_safe, run_one

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5  # (the best of each: this machine's own noise is +-15%)


def outcome(row: dict) -> tuple:
    metrics = row["metrics"] if isinstance(row["metrics"], dict) else json.loads(row["metrics"])
    return (row["key"], bool(row["solved"]), row["updates"], json.dumps(metrics, sort_keys=True),
            row["stop_reason"])  # fmt: skip


def main() -> int:
    default = ROOT / "benchmarks/sweeps/shift_seeds.toml"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    spec = load_spec(path)
    walls = {1: [], 2: []}
    rows = {}
    for _ in range(ROUNDS):
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                options = ["--jobs", str(jobs), "--no-save", "--no-plots", "--quiet", "--out", out]
                command = [sys.executable, "-m", "rnnlab", "sweep", str(path), *options]
                tick = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                walls[jobs].append(time.perf_counter() - tick)
                rows[jobs] = [outcome(r) for r in _read(results_path(spec, out))]
    train_task("shift", out=None, plot=False)  # kernels loaded before the loop's timing
    tick = time.perf_counter()
    serial = [run_one(r.setting, r.seed, None) for r in spec.runs]
    loop = time.perf_counter() - tick
    kind = "forked" if fork_is_safe() else "loky"
    warm = []
    for _ in range(2):  # in this process: the second finds its worker process running
        with tempfile.TemporaryDirectory() as out:
            tick = time.perf_counter()
            rnnlab.sweep(spec, out=out, jobs=2, save=False)
            warm.append(time.perf_counter() - tick)
    expected = sorted(map(outcome, serial))
    for jobs in (1, 2):
        if sorted(rows[jobs]) != expected:
            print(f"--jobs {jobs}: the runs differ from the loop of train_task")
            return 1
    one, two = min(walls[1]), min(walls[2])
    n = len(spec.runs)
    training = sum(row["seconds"] for row in serial)
    print(f"{spec.name}: {n} runs; the sweeps gave the same {n} runs as the loop:\n")
    print("| way | wall seconds |")
    print("|---|---|")
    print(f"| a loop of train_task in one process (kernels loaded) | {loop:.1f} |")
    print(f"| `rnnlab sweep --jobs 1` from the shell | {one:.1f} |")
    print(f"| `rnnlab sweep --jobs 2` from the shell | {two:.1f} |")
    print(f"| `rnnlab.sweep(jobs=2)` in that process ({kind} workers), the second call | "
          f"{warm[1]:.1f} |")  # fmt: skip
    print()
    ms = {k: v / n * 1000 for k, v in
          {"fit": training, "loop": loop - training, "sweep": one - loop}.items()}  # fmt: skip
    print(f"speed-up of 2 jobs over 1: {one / two:.2f}x from the shell, "
          f"{loop / warm[1]:.2f}x in one process. Per run: training (fit) {ms['fit']:.0f} ms; "
          f"beyond it {ms['loop']:.0f} ms in the loop (the task's data and held-out tests) "
          f"and {ms['sweep']:.0f} ms more in `rnnlab sweep --jobs 1` (start-up: imports, "
          f"kernel loading; the results file)")  # fmt: skip
    return 0


def _read(path: Path) -> list[dict]:
    from rnnlab.sweeps import store

    return store.read(path)


if __name__ == "__main__":
    sys.exit(main())
