"""The task registry: toy problems that small RNNs should solve, each with its data,
loss, metrics and criterion of "solved".

Example::

    task = get_task("shift")
    batch = task.generate(8, np.random.default_rng(0))  # a rnnlab.sequences.Batch
    metrics = task.evaluate(outputs, batch)  # outputs (T, B, O) -> step / sequence accuracy
    task.is_solved(metrics)

``TASKS`` maps each name to the task with default parameters, in display
order; ``get_task(name, **params)`` changes parameters (``get_task("shift",
delay=2)``).
"""

from __future__ import annotations

from typing import Any

from rnnlab.tasks.adding import AddingTask
from rnnlab.tasks.automata import DFA
from rnnlab.tasks.base import Task, TrainDefaults, evaluate_outputs, step_correct
from rnnlab.tasks.bits import BinaryAdditionTask, ParityTask
from rnnlab.tasks.copy_memory import CopyTask
from rnnlab.tasks.dyck import DyckTask
from rnnlab.tasks.shift import ShiftTask, shift_data
from rnnlab.tasks.tomita import TomitaTask

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        ShiftTask(),
        CopyTask(),
        ParityTask(),
        BinaryAdditionTask(),
        AddingTask(),
        *(TomitaTask(g) for g in range(1, 8)),
        DyckTask(),
    )
}


def get_task(name: str, **params: Any) -> Task:
    """The task called ``name``, with ``params`` replacing its default parameters.

    Raises ``ValueError`` naming the known tasks (or the task's parameters).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    task = TASKS[name]
    return task.with_params(**params) if params else task


__all__ = [
    "DFA",
    "TASKS",
    "AddingTask",
    "BinaryAdditionTask",
    "CopyTask",
    "DyckTask",
    "ParityTask",
    "ShiftTask",
    "Task",
    "TomitaTask",
    "TrainDefaults",
    "evaluate_outputs",
    "get_task",
    "shift_data",
    "step_correct",
]
