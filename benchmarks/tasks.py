"""Train every task with its defaults, and the memory tasks with GRU/LSTM cells; print a table.

    python benchmarks/tasks.py [--only copy,adding] [--seed 0]

Each row is ``rnnlab train TASK`` (plus the options shown), not saved. "held-out"
is the whole-sequence accuracy on fresh data at the training lengths, "test" at
the task's test lengths (longer, where the task generalises).
"""

from __future__ import annotations

import argparse

from rnnlab.runs import model_kind, train_task
from rnnlab.tasks import TASKS, get_task
from rnnlab.train import FitConfig

# (task, task parameters, cell, hidden, max_steps): where gated cells earn their keep
MEMORY_ROWS = [
    ("copy", {"delay": 30}, "elman", None, 3000),
    ("copy", {"delay": 30}, "gru", 64, 3000),
    ("copy", {"delay": 30}, "lstm", 64, 3000),
]


def row(name, params, cell, hidden, max_steps, seed):
    task = get_task(name, **params)
    result = train_task(
        task,
        cell=cell,
        hidden_size=hidden,
        seed=seed,
        out=None,
        fit_config=FitConfig(seed=seed, max_steps=max_steps),
    )
    c, h = result.model.config, result.history
    kind = model_kind(c.cell, c.activation)
    metrics = list(result.metrics.items())
    label = name + "".join(f" {k}={v}" for k, v in params.items())
    test_label, test = metrics[-1]
    print(
        f"| {label} | {c.hidden_size} {kind} | {'yes' if h.solved else 'no'} | {h.steps} | "
        f"{h.seconds:.1f} | {metrics[0][1]['sequence_accuracy']:.1%} | "
        f"{test['sequence_accuracy']:.1%} ({test_label}) |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated task names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the GRU/LSTM rows")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    print("| task | model | solved | updates | seconds | held-out | test |")
    print("|---|---|---|---|---|---|---|")
    for name in TASKS:
        if not only or name in only:
            row(name, {}, None, None, None, args.seed)
    if not args.no_memory:
        for name, params, cell, hidden, steps in MEMORY_ROWS:
            if not only or name in only:
                row(name, params, cell, hidden, steps, args.seed)


if __name__ == "__main__":
    main()
