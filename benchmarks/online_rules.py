"""Online rules compared: seeds solved of 20, steps to solve, cost per step.

    python benchmarks/online_rules.py [OUT]   (default runs/online)

Two tables. First the notebook's 2 sigmoid units on the endless shift stream (each bit,
then the bit before it), an SGD update (lr 0.5, gradient norm clipped to 1) after every
step (``tbptt``: after each window of 8 steps) by each rule of :mod:`rnnlab.online`; a
run is solved once 500 predictions in a row, each made before its step's update, were
right, within 20,000 steps. Then the sweep ``benchmarks/sweeps/online.toml`` (into
``OUT/sweeps``; a rerun skips finished runs): the delayed-copy stream, delays 1-5, 8 tanh
units, per rule and delay the seeds solved and the median steps to solve, and each
rule's microseconds per step, timed apart (2,000 steps at delay 3, kernels warm: the
sweep's own clock counts each worker's compiling). A one-layer Elman learner runs
rtrl, snap1, rflo and truncate1 compiled (:mod:`rnnlab.kernels.compiled.online`), uoro
and tbptt in numpy.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import rnnlab
from rnnlab.online import RULES, OnlineLearner, shift_stream
from rnnlab.sweeps import load_spec

ROOT = Path(__file__).resolve().parent.parent
STEPS, UNTIL, SEEDS = 20_000, 500, 20
#: updates every this many steps, by rule (tbptt: its window)
EVERY = {"tbptt": 8}


def spread(steps: list[int]) -> str:
    if not steps:
        return "-"
    q1, median, q3 = np.percentile(steps, [25, 50, 75])
    return f"{median:.0f} [{q1:.0f}-{q3:.0f}]"


def warm() -> None:
    """Compile (or load) the kernels every rule uses, so no timing below counts it."""
    for rule in RULES:
        for H in (2, 8):
            learner = OnlineLearner(rnnlab.RNN(1, H, 1, seed=0), rule, lr=0.1, seed=0)
            learner.learn(shift_stream(np.random.default_rng(0)), 20)


def cost_per_step(rule: str) -> float:
    """Microseconds per step at 8 tanh units on the delay-3 stream (best of three)."""
    best = float("inf")
    for _ in range(3):
        model = rnnlab.RNN(1, 8, 1, activation="tanh", seed=0)
        learner = OnlineLearner(model, rule, lr=0.1, seed=0, k=EVERY.get(rule, 1))
        stream = shift_stream(np.random.default_rng(0), delay=3)
        tick = time.perf_counter()
        learner.learn(stream, 2000)
        best = min(best, (time.perf_counter() - tick) / 2000)
    return best * 1e6


def notebook_table() -> None:
    print(f"Shift stream, 2 sigmoid units, an update every step (lr 0.5; tbptt: every 8); "
          f"solved: {UNTIL} right in a row within {STEPS:,} steps; {SEEDS} seeds:\n")  # fmt: skip
    print("| rule | solved | steps to solve: median [quartiles] | us per step |")
    print("|---|---|---|---|")
    for rule in RULES:
        steps, seconds, total = [], 0.0, 0
        for seed in range(SEEDS):
            learner = OnlineLearner(rnnlab.RNN(seed=seed), rule, lr=0.5, seed=seed,
                                    k=EVERY.get(rule, 1))  # fmt: skip
            tick = time.perf_counter()
            losses = learner.learn(shift_stream(np.random.default_rng(seed)), STEPS, until=UNTIL)
            seconds += time.perf_counter() - tick
            total += len(losses)
            if learner.solved_at is not None:
                steps.append(learner.solved_at)
        print(f"| {rule} | {len(steps)}/{SEEDS} | {spread(steps)} | "
              f"{seconds / total * 1e6:.1f} |")  # fmt: skip


def delayed_copy_table(out: Path) -> None:
    spec = load_spec(ROOT / "benchmarks" / "sweeps" / "online.toml")
    rows = rnnlab.sweep(spec, out=out / "sweeps", save=False)
    delays = sorted({r["setting"]["delay"] for r in rows})
    print(f"\nDelayed-copy stream (the bit `delay` steps back), 8 tanh units, lr 0.1 "
          f"(`benchmarks/sweeps/online.toml`, {len(rows)} runs): seeds solved of "
          f"{len(spec.seeds)}, and median steps to solve:\n")  # fmt: skip
    print("| rule | " + " | ".join(f"delay {d}" for d in delays) + " | us per step |")
    print("|---|" + "---|" * (len(delays) + 1))
    for rule in RULES:
        mine = [r for r in rows if r["setting"]["online"] == rule]
        cells = []
        for d in delays:
            runs = [r for r in mine if r["setting"]["delay"] == d]
            solved = [r["updates"] for r in runs if r["solved"]]
            median = f" ({np.median(solved):.0f})" if solved else ""
            cells.append(f"{len(solved)}/{len(runs)}{median}")
        print(f"| {rule} | " + " | ".join(cells) + f" | {cost_per_step(rule):.1f} |")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "online"
    warm()
    notebook_table()
    delayed_copy_table(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
