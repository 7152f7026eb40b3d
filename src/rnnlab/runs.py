"""A training run on a task, from defaults to a run directory on disk."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.io import atomic_write_text, make_run_dir
from rnnlab.kernels.registry import get_cell
from rnnlab.model import RNN
from rnnlab.tasks import Task, get_task
from rnnlab.train import FitConfig, History, evaluate, fit


@dataclass
class RunResult:
    """A trained model, how training went, and held-out metrics per test set."""

    model: RNN
    task: Task
    history: History
    metrics: dict[str, dict]  # test-set label ("lengths 4-10") -> loss and accuracies
    run_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


def lengths_label(lengths: tuple[int, int]) -> str:
    lo, hi = lengths
    return f"length {lo}" if lo == hi else f"lengths {lo}-{hi}"


def model_kind(cell: str, activation: str) -> str:
    """``"elman tanh"`` for a cell that takes an activation, the cell's name otherwise."""
    return f"{cell} {activation}" if len(get_cell(cell).activations) > 1 else cell


def default_activation(cell: str) -> str:
    """``tanh`` for a cell that takes an activation, its fixed one otherwise."""
    choices = get_cell(cell).activations
    return "tanh" if "tanh" in choices else choices[0]


def train_task(
    task: str | Task,
    *,
    hidden_size: int | None = None,
    activation: str | None = None,
    cell: str | None = None,
    num_layers: int | None = None,
    seed: int = 0,
    backend: str = "auto",
    out: str | Path | None = "runs",
    plot: bool = True,
    progress: bool = False,
    fit_config: FitConfig | None = None,
    plotter=None,
) -> RunResult:
    """Train a fresh model on ``task`` (its defaults unless given) and save the run.

    The model is tested on held-out data at the training lengths and at the
    task's longer test lengths. With ``out=None`` nothing is written.
    """
    task = get_task(task) if isinstance(task, str) else task
    d = task.defaults
    timings = {}
    tick = time.perf_counter()
    cell = cell or d.cell
    if activation is None:  # the task's choice if its cell is kept; GRU/LSTM take none
        activation = d.activation if cell == d.cell else default_activation(cell)
    model = RNN(
        task.input_size,
        hidden_size or d.hidden_size,
        task.output_size,
        activation=activation,
        cell=cell,
        num_layers=num_layers or d.num_layers,
        loss=task.loss,
        seed=seed,
        backend=backend,
    )
    fit_config = fit_config or FitConfig(seed=seed)
    timings["build"] = time.perf_counter() - tick

    tick = time.perf_counter()
    history = fit(model, task, config=fit_config, progress=progress)
    timings["fit"] = time.perf_counter() - tick

    tick = time.perf_counter()
    metrics = {}
    for i, lengths in enumerate(dict.fromkeys([d.train_lengths, d.test_lengths])):
        n = d.n_test if i == 0 else max(1, min(d.n_test, 200_000 // max(lengths)))
        test = task.generate(n, np.random.default_rng([fit_config.seed, 2 + i]), lengths=lengths)
        metrics[lengths_label(lengths)] = {"n": n, **evaluate(model, test, task)}
    timings["evaluate"] = time.perf_counter() - tick

    result = RunResult(model, task, history, metrics, timings=timings)
    if out is not None:
        save_run(result, Path(out), fit_config, plot=plot, plotter=plotter)
    return result


def save_run(result: RunResult, root: Path, fit_config: FitConfig, *, plot: bool = True,
             plotter=None) -> Path:  # fmt: skip
    """Write ``config.json``, ``model.safetensors``, ``history.csv`` (and ``curves.png``,
    drawn by ``plotter``, a :class:`~rnnlab.plots.PlotWorker`, when given)."""
    tick = time.perf_counter()
    run_dir = make_run_dir(root, result.task.name)
    result.model.save(run_dir / "model.safetensors")
    config = {
        "task": result.task.name,
        "model": result.model.config.to_dict(),
        "fit": asdict(fit_config),
        "solved": result.history.solved,
        "steps": result.history.steps,
        "stop_reason": result.history.stop_reason,
        "metrics": result.metrics,
    }
    atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(run_dir / "history.csv", result.history.to_csv())
    result.timings["save"] = time.perf_counter() - tick
    if plot and result.history.rows:
        from rnnlab.plots import plot_history

        tick = time.perf_counter()
        draw = plot_history if plotter is None else plotter.plot
        draw(result.history.rows, run_dir / "curves.png", title=_title(result))
        result.timings["plot"] = time.perf_counter() - tick
    result.run_dir = run_dir
    return run_dir


def _title(result: RunResult) -> str:
    c = result.model.config
    kind = model_kind(c.cell, c.activation)
    layers = f" x{c.num_layers}" if c.num_layers > 1 else ""
    return f"{result.task.name}: {kind}{layers}, {c.hidden_size} hidden units"
