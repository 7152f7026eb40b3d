"""Callbacks for :func:`rnnlab.fit`: a CSV log of every evaluation, and a checkpoint of the
best weights so far.

A callback is any object with some of ``on_step(step, loss, grad_norm)`` (after each
update), ``on_eval(step, row, model)`` (after each held-out evaluation: ``row`` is the
history's row: step, seconds, lr, train_loss, val_loss, val_step_accuracy,
val_sequence_accuracy) and ``on_end(history, model)``::

    rnnlab.fit(model, "parity", callbacks=[CSVLogger("log.csv"), Checkpoint("best.safetensors")])
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


class CSVLogger:
    """Appends each evaluation's row to ``path`` as it happens (a header first)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._header = False

    def on_eval(self, step: int, row: dict, model) -> None:
        with self.path.open("a" if self._header else "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if not self._header:
                writer.writeheader()
                self._header = True
            writer.writerow(row)


class Checkpoint:
    """Saves the model to ``path`` whenever the monitored held-out metric improves
    (``monitor``: ``"val_loss"`` (lower is better) or ``"val_sequence_accuracy"`` /
    ``"val_step_accuracy"`` (higher)); ``best`` is that metric's best value so far."""

    def __init__(self, path: str | Path, monitor: str = "val_loss"):
        if monitor not in ("val_loss", "val_sequence_accuracy", "val_step_accuracy"):
            raise ValueError(f"unknown monitor {monitor!r}; choose val_loss, "
                             "val_sequence_accuracy or val_step_accuracy")  # fmt: skip
        self.path, self.monitor = Path(path), monitor
        self.best: float | None = None
        self.step: int | None = None

    def on_eval(self, step: int, row: dict, model) -> None:
        value = row[self.monitor]
        if not math.isfinite(value):
            return
        sign = -1.0 if self.monitor == "val_loss" else 1.0
        if self.best is None or sign * value > sign * self.best:
            self.best, self.step = value, step
            model.save(self.path)
