"""Online rules compared on the shift stream: seeds solved of 20, steps to solve, cost.

    python benchmarks/online_rules.py [SEEDS]   (default 20)

The notebook's 2 sigmoid units learn the endless shift stream (each bit, then the bit
before it) with an SGD update (lr 0.5, gradient norm clipped to 1) after every step, by
each rule of :mod:`rnnlab.online`; a run is solved once 500 predictions in a row, each
made before its step's update, were right, within 20,000 steps. Prints, per rule, the
seeds solved, the median and quartiles of steps to solve, and microseconds per step.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import rnnlab
from rnnlab.online import RULES, OnlineLearner, shift_stream

STEPS, UNTIL = 20_000, 500


def main() -> int:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"Shift stream, 2 sigmoid units, an update every step (lr 0.5); solved: {UNTIL} "
          f"right in a row within {STEPS:,} steps; {seeds} seeds:\n")  # fmt: skip
    print("| rule | solved | steps to solve: median [quartiles] | us per step |")
    print("|---|---|---|---|")
    for rule in RULES:
        solved, steps, seconds, total = [], [], 0.0, 0
        for seed in range(seeds):
            learner = OnlineLearner(rnnlab.RNN(seed=seed), rule, lr=0.5, seed=seed)
            tick = time.perf_counter()
            losses = learner.learn(shift_stream(np.random.default_rng(seed)), STEPS, until=UNTIL)
            seconds += time.perf_counter() - tick
            total += len(losses)
            if learner.solved_at is not None:
                solved.append(seed)
                steps.append(learner.solved_at)
        spread = "-"
        if steps:
            q1, median, q3 = np.percentile(steps, [25, 50, 75])
            spread = f"{median:.0f} [{q1:.0f}-{q3:.0f}]"
        print(f"| {rule} | {len(solved)}/{seeds} | {spread} | {seconds / total * 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
