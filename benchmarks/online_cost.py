"""Cost per step of each online rule against the hidden size (float64).

    python benchmarks/online_cost.py

RTRL carries ``P (H, N)`` with ``N = H (I + H + 2)`` and multiplies it by ``W_hh`` every
step: O(H^4). UORO carries a rank-one ``u v^T``, SnAp-1 and RFLO each unit's own row
of ``P``, truncated BPTT a window of steps: O(H^2), as the notebook's one-step rule is.
Prints microseconds per step (best of three) and each rule's growth from one size to
the next (16x a doubling for O(H^4), 4x for O(H^2)): first the numpy steps of
:class:`rnnlab.online.OnlineGradient`, where below H = 32 the Python of a step (about 30
us) hides both; then the compiled learner (:mod:`rnnlab.kernels.compiled.online`, an
update every step, the stream drawn in chunks), where the growth shows from the start.
"""

from __future__ import annotations

import time

import numpy as np

import rnnlab
from rnnlab.online import COMPILED_RULES, RULES, OnlineGradient, OnlineLearner

SIZES = (2, 4, 8, 16, 32, 64, 128)


def per_step(rule: str, H: int) -> float:
    steps = 200 if H <= 32 else 40
    model = rnnlab.RNN(1, H, 1, activation="tanh", seed=0)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, steps).astype(float)
    best = float("inf")
    for _ in range(3):
        gradient = OnlineGradient(model, rule, np.random.default_rng(0))
        tick = time.perf_counter()
        for b in bits:
            gradient.step([b], [b])
        best = min(best, (time.perf_counter() - tick) / steps)
    return best * 1e6


def per_step_compiled(rule: str, H: int) -> float:
    steps = 2000 if H <= 16 else (200 if H <= 32 else 20)
    rng = np.random.default_rng(0)
    pairs = [([b], [b]) for b in rng.integers(0, 2, steps).astype(float)]
    best = float("inf")
    for _ in range(3):
        model = rnnlab.RNN(1, H, 1, activation="tanh", seed=0, backend="numba")
        learner = OnlineLearner(model, rule, lr=1e-3, seed=0)
        learner.learn(iter(pairs[:10]), 10)  # (compiled)
        tick = time.perf_counter()
        learner.learn(iter(pairs), steps)
        best = min(best, (time.perf_counter() - tick) / steps)
    return best * 1e6


def table(title: str, rules, cost) -> None:
    times = {rule: [cost(rule, H) for H in SIZES] for rule in rules}
    print(f"# {title}: microseconds per step (one input, one output, tanh); x: growth "
          "from the size before")  # fmt: skip
    print("H     " + "".join(f"{rule:>20}" for rule in rules))
    for i, H in enumerate(SIZES):
        cells = []
        for rule in rules:
            t = times[rule][i]
            growth = f" ({t / times[rule][i - 1]:.1f}x)" if i else ""
            cells.append(f"{t:12.1f}{growth:>8}")
        print(f"{H:<6}" + "".join(cells))


def main() -> None:
    table("numpy steps", RULES, per_step)
    print()
    table("compiled learner", COMPILED_RULES, per_step_compiled)


if __name__ == "__main__":
    main()
