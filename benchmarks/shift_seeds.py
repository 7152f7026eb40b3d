"""How many seeds learn the shift with exact BPTT, and with the notebook's one-step gradient.

    python benchmarks/shift_seeds.py [--seeds 20]

Each run is ``rnnlab train shift --seed S`` (and ``--truncate 1``) without
saving: 2 sigmoid units, the notebook's 1000 strings of length 4-10, Adam.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rnnlab.runs import train_task
from rnnlab.train import FitConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    print("| gradient | solved | median updates | median seconds | length-1000 accuracy |")
    print("|---|---|---|---|---|")
    for label, truncate in (("exact BPTT", None), ("truncate=1 (the notebook's)", 1)):
        solved, steps, seconds, long_ok = 0, [], [], 0
        for seed in range(args.seeds):
            tick = time.perf_counter()
            result = train_task(
                "shift", seed=seed, out=None, fit_config=FitConfig(seed=seed, truncate=truncate)
            )
            seconds.append(time.perf_counter() - tick)
            if result.history.solved:
                solved += 1
                steps.append(result.history.steps)
            long_ok += result.metrics["length 1000"]["sequence_accuracy"] == 1.0
        median = statistics.median(steps) if steps else "-"
        print(
            f"| {label} | {solved}/{args.seeds} | {median} | "
            f"{statistics.median(seconds):.2f} | {long_ok}/{args.seeds} at 100% |"
        )


if __name__ == "__main__":
    main()
