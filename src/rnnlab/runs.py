"""A training run on a task, from defaults to a run directory on disk."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from rnnlab import __version__
from rnnlab.fit_state import FitState
from rnnlab.io import ModelFileError, atomic_write_text, publish_run_dir, staging_dir
from rnnlab.kernels.registry import get_cell
from rnnlab.model import RNN, RNNConfig, load
from rnnlab.optim import Optimizer
from rnnlab.tasks import Task, get_task
from rnnlab.train import (
    FitConfig,
    History,
    StopOnInterrupt,
    evaluate,
    fit,
    held_out_set,
    make_fit_optimizer,
    training_set,
)


@dataclass
class RunResult:
    """A trained model, how training went, and held-out metrics per test set."""

    model: RNN
    task: Task
    history: History
    metrics: dict[str, dict]  # test-set label ("lengths 4-10") -> loss and accuracies
    run_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    optimizer: Optimizer | None = None  # (its state is in the run's checkpoint)
    fit_config: FitConfig | None = None  # the settings it trained with
    init: str | None = "default"  # how its initial weights were drawn
    online: str | None = None  # the online rule it learned by (rnnlab.online), if any
    update_every: int | None = None  # ... updating every this many steps


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


def model_config(task: Task, *, hidden_size: int | None = None, activation: str | None = None,
                 cell: str | None = None, num_layers: int | None = None) -> RNNConfig:  # fmt: skip
    """The model :func:`train_task` builds for ``task``: its defaults where unset (the
    task's activation if its cell is kept; a cell's own default otherwise). Raises
    ``ValueError`` for an unknown cell or a bad size."""
    d = task.defaults
    cell = cell or d.cell
    if activation is None:
        activation = d.activation if cell == d.cell else default_activation(cell)
    return RNNConfig(task.input_size, hidden_size or d.hidden_size, task.output_size, cell,
                     activation, num_layers or d.num_layers, task.loss)  # fmt: skip


def train_task(
    task: str | Task,
    *,
    hidden_size: int | None = None,
    activation: str | None = None,
    cell: str | None = None,
    num_layers: int | None = None,
    init: str = "default",
    dtype: str = "float64",
    seed: int = 0,
    backend: str = "auto",
    out: str | Path | None = "runs",
    plot: bool = True,
    progress: bool = False,
    fit_config: FitConfig | None = None,
    plotter=None,
    resume: str | Path | None = None,
) -> RunResult:
    """Train a fresh model on ``task`` (its defaults unless given) and save the run.

    The model is tested on held-out data at the training lengths and at the
    task's longer test lengths. ``init``: how its weights are drawn (see
    :mod:`rnnlab.initializers`); ``dtype``: float64 or float32. With ``out=None``
    nothing is written. ``resume``: a run directory (saved by an interrupted run) that
    continues exactly where it stopped (its checkpoint: :mod:`rnnlab.fit_state`), with
    its own task, sizes and settings (the other arguments must be left unset).
    """
    timings = {}
    tick = time.perf_counter()
    state = None
    if resume is not None:
        model, saved, fit_config, state = resumed_run(Path(resume), backend)
        task = get_task(saved["task"], **saved.get("task_params", {}))
        init = saved.get("init")
        optimizer = make_fit_optimizer(fit_config, task)
    else:
        task = get_task(task) if isinstance(task, str) else task
        c = model_config(task, hidden_size=hidden_size, activation=activation, cell=cell,
                         num_layers=num_layers)  # fmt: skip
        model = RNN(c.input_size, c.hidden_size, c.output_size, activation=c.activation,
                    cell=c.cell, num_layers=c.num_layers, loss=c.loss, seed=seed,
                    backend=backend, init=init, dtype=dtype)  # fmt: skip
        fit_config = fit_config or FitConfig(seed=seed)
        optimizer = make_fit_optimizer(fit_config, task)
    if out is not None:  # refused now, not after training
        check_writable(Path(out))
    timings["build"] = time.perf_counter() - tick

    tick = time.perf_counter()
    history = fit(model, task, config=fit_config, progress=progress, optimizer=optimizer,
                  resume=state)  # fmt: skip
    timings["fit"] = time.perf_counter() - tick
    _start_plot(plotter, plot and out is not None, model, task, history)

    tick = time.perf_counter()
    metrics = tested(model, task, fit_config.seed) if history.trained else {}
    timings["evaluate"] = time.perf_counter() - tick

    result = RunResult(model, task, history, metrics, timings=timings, optimizer=optimizer,
                       fit_config=fit_config, init=init)  # fmt: skip
    if out is not None:
        save_run(result, Path(out), fit_config, plot=plot, plotter=plotter)
    return result


def train_data(
    data,
    *,
    source: str | dict,
    loss: str | None = None,
    hidden_size: int | None = None,
    activation: str | None = None,
    cell: str | None = None,
    num_layers: int | None = None,
    init: str = "default",
    dtype: str = "float64",
    seed: int = 0,
    backend: str = "auto",
    out: str | Path | None = "runs",
    plot: bool = True,
    progress: bool = False,
    fit_config: FitConfig | None = None,
    plotter=None,
    resume: str | Path | None = None,
    embedding: int | None = None,
) -> RunResult:
    """Train a fresh model on a user's sequences (a :class:`rnnlab.data.DataFile`, read
    from ``source``) and save the run, as :func:`train_task` does for a task: sizes from
    the data, ``loss`` inferred (0/1 targets: ``bce``, else ``mse``) unless given, 16
    units of an Elman tanh cell unless given (``embedding``: a learned input table of
    that size, for one-hot tokens); tested on the file's held-out split (or,
    without one, on the training data). ``source``: what the run records of the file
    (its path, or a dict of the options it was read with: ``rnnlab train --resume`` reads
    it again from them); ``resume``:
    a run directory of the same data to continue (:func:`train_task`'s)."""
    from rnnlab.data import feature_size, infer_loss
    from rnnlab.train import DataTask

    timings = {}
    tick = time.perf_counter()
    train, val = data.train, data.val
    state = None
    if resume is not None:
        model, saved, fit_config, state = resumed_run(Path(resume), backend)
        loss, init = model.config.loss, saved.get("init")
    else:
        loss = loss or infer_loss(train.Y, train.lengths)
        cell = cell or "elman"
        activation = activation or default_activation(cell)
        outputs = feature_size(train.Y) if loss != "softmax" else _classes(train.Y)
        model = RNN(feature_size(train.X), hidden_size or 16, outputs, activation=activation,
                    cell=cell, num_layers=num_layers or 1, loss=loss, seed=seed,
                    backend=backend, init=init, dtype=dtype, embedding=embedding)  # fmt: skip
    batches = [None if part is None else model.batch(part.X, part.Y, lengths=part.lengths,
                                                     mask=part.mask)
               for part in (train, val)]  # fmt: skip
    task = DataTask(loss, source=source)
    fit_config = (fit_config or FitConfig(seed=seed)).resolved(task, batches[0].size)
    optimizer = make_fit_optimizer(fit_config, task)
    if out is not None:
        check_writable(Path(out))
    timings["build"] = time.perf_counter() - tick
    tick = time.perf_counter()
    history = fit(model, batches[0], validation=batches[1], config=fit_config,
                  progress=progress, optimizer=optimizer, resume=state)  # fmt: skip
    timings["fit"] = time.perf_counter() - tick
    _start_plot(plotter, plot and out is not None, model, task, history)
    tested = batches[1] if batches[1] is not None else batches[0]
    label = "held-out split" if batches[1] is not None else "training data"
    metrics = {}
    if history.trained:
        metrics[label] = {"n": tested.size, **evaluate(model, tested, task)}
    result = RunResult(model, task, history, metrics, timings=timings, optimizer=optimizer,
                       fit_config=fit_config, init=init)  # fmt: skip
    if out is not None:
        save_run(result, Path(out), fit_config, plot=plot, plotter=plotter)
    return result


def train_online(
    task: Task,
    rule: str,
    *,
    hidden_size: int | None = None,
    activation: str | None = None,
    cell: str | None = None,
    num_layers: int | None = None,
    init: str = "default",
    seed: int = 0,
    backend: str = "auto",
    out: str | Path | None = "runs",
    plot: bool = True,
    fit_config: FitConfig | None = None,
    plotter=None,
    until: int = 500,
    update_every: int = 1,
) -> RunResult:
    """Learn the shift task (its ``delay``: a delayed copy) as an endless stream with an
    online ``rule`` of :mod:`rnnlab.online` (an SGD update after every ``update_every``
    steps, ``tbptt``'s window; lr 0.5 unless ``fit_config.lr``, up to
    ``fit_config.max_steps`` steps, 20,000 by default), and save the run as
    :func:`train_task` does. Solved once ``until`` predictions in a row, each made before
    its update, were right; evaluated every 100 steps on the held-out strings and tested
    at the end as a task run is. ``backend``: on the numba one a one-layer Elman learner
    runs compiled (:mod:`rnnlab.kernels.compiled.online`)."""
    from rnnlab.online import OnlineLearner, check_online, shift_stream

    check_online(task.name, rule)
    fit_config = fit_config or FitConfig(seed=seed)
    fit_config = replace(fit_config, lr=fit_config.lr or 0.5,
                         max_steps=fit_config.max_steps or 20_000)  # fmt: skip
    c = model_config(task, hidden_size=hidden_size, activation=activation, cell=cell,
                     num_layers=num_layers)  # fmt: skip
    model = RNN(c.input_size, c.hidden_size, c.output_size, activation=c.activation,
                cell=c.cell, num_layers=c.num_layers, loss=c.loss, seed=seed,
                init=init, backend=backend)  # fmt: skip
    learner = OnlineLearner(model, rule, lr=fit_config.lr, k=update_every, clip=fit_config.clip,
                            seed=seed)  # fmt: skip
    stream = shift_stream(np.random.default_rng([seed, 0]), delay=task.delay)
    val = held_out_set(task, seed, 1)
    if out is not None:
        check_writable(Path(out))
    history, tick = History(), time.perf_counter()
    with StopOnInterrupt() as interrupt:  # (Ctrl-C: stop after this stretch, save the run)
        while (learner.steps < fit_config.max_steps and learner.solved_at is None
               and not interrupt.requested):  # fmt: skip
            _learn_stretch(learner, stream, until, model, val, task, fit_config, history, tick)
    history.steps, history.seconds = learner.steps, time.perf_counter() - tick
    history.solved = learner.solved_at is not None
    # (a Ctrl-C during the stretch the run ends on, solved or at max_steps: whole, said)
    history.interrupted = interrupt.requested and not history.solved and \
        learner.steps < fit_config.max_steps  # fmt: skip
    history.ctrl_c_at_end = interrupt.requested and not history.interrupted
    history.stop_reason = f"reached max_steps={fit_config.max_steps}"
    if history.interrupted:
        history.stop_reason = f"interrupted (Ctrl-C) after step {learner.steps}"
    if history.solved:
        history.stop_reason = (f"solved at step {learner.solved_at}: {until} predictions in a "
                               "row right on the stream")  # fmt: skip
    history.best = history.rows[-1] if history.rows else {}
    _start_plot(plotter, plot and out is not None, model, task, history)
    metrics = tested(model, task, seed)
    result = RunResult(model, task, history, metrics, fit_config=fit_config, init=init,
                       online=rule, update_every=update_every)  # fmt: skip
    if out is not None:
        save_run(result, Path(out), fit_config, plot=plot, plotter=plotter)
    return result


def _learn_stretch(learner, stream, until, model, val, task, fit_config, history, tick) -> None:
    """Up to 100 steps of online learning, then a held-out evaluation (a history row)."""
    losses = learner.learn(stream, min(100, fit_config.max_steps - learner.steps), until=until)
    metrics = evaluate(model, val, task)
    history.rows.append({
        "step": learner.steps, "seconds": round(time.perf_counter() - tick, 6),
        "lr": fit_config.lr, "train_loss": float(losses.mean()),
        "val_loss": metrics["loss"], "val_step_accuracy": metrics["step_accuracy"],
        "val_sequence_accuracy": metrics["sequence_accuracy"],
    })  # fmt: skip


def _classes(Y) -> int:
    """Classes of integer class targets (their largest, plus one)."""
    values = [np.max(np.asarray(y)) for y in Y] if isinstance(Y, list) else [np.max(Y)]
    return int(max(values)) + 1


def tested(model: RNN, task: Task, seed: int) -> dict[str, dict]:
    """The held-out metrics of a run of ``seed``, per test set (:func:`test_sets`): none
    of their strings is a training string."""
    d, metrics = task.defaults, {}
    train = training_set(task, seed)  # (what is not held out)
    for i, (label, source, lengths) in enumerate(test_sets(task)):
        n = d.n_test if i == 0 else max(1, min(d.n_test, 200_000 // max(lengths)))
        test = held_out_set(task, seed, 2 + i, n=n, lengths=lengths, train=train,
                            source=source)  # fmt: skip
        metrics[label] = {"n": len(test.lengths), **evaluate(model, test, task)}
    return metrics


def test_sets(task: Task) -> list[tuple[str, Task, tuple[int, int]]]:
    """What a run is tested on, as ``(label, task that draws it, lengths)``: fresh data at
    the training lengths, then the test lengths (from :meth:`Task.test_task`, which may
    reach beyond the training distribution otherwise too: its parameters that differ
    join the label)."""
    d, beyond = task.defaults, task.test_task()
    label = lengths_label(d.test_lengths) + "".join(
        f", {k}={v}" for k, v in beyond.params.items() if v is not None and task.params.get(k) != v
    )
    sets = [(lengths_label(d.train_lengths), task, d.train_lengths)]
    if (label, beyond) != (sets[0][0], task):
        sets.append((label, beyond, d.test_lengths))
    return sets


def save_run(result: RunResult, root: Path, fit_config: FitConfig, *, plot: bool = True,
             plotter=None) -> Path:  # fmt: skip
    """Write ``config.json``, ``model.safetensors``, ``history.csv`` (and ``curves.png``,
    drawn by ``plotter``, a :class:`~rnnlab.plots.PlotWorker`, when given)."""
    tick = time.perf_counter()
    run_dir = staging_dir(root, result.task.name)  # published when complete
    history = result.history
    if history.trained:  # a run that never had finite weights saves no model
        result.model.save(run_dir / "model.safetensors")
        if history.state is not None:  # (where training stood: --resume goes on from it)
            history.state.save(run_dir / "checkpoint.safetensors")
    config = {
        "task": result.task.name,
        "task_params": result.task.params,
        "model": result.model.config.to_dict(),
        "init": result.init,
        "online": result.online,
        "update_every": result.update_every,
        "fit": asdict(fit_config.resolved(result.task)),  # (what it trained with)
        "rnnlab_version": __version__,
        "solved": history.solved,
        "trained": history.trained,
        "interrupted": history.interrupted,
        "steps": history.steps,
        "stop_reason": history.stop_reason,
        "metrics": result.metrics,
    }
    text = json.dumps(strict_json(config), indent=2, allow_nan=False)  # (NaN is not JSON)
    atomic_write_text(run_dir / "config.json", text + "\n")
    atomic_write_text(run_dir / "history.csv", result.history.to_csv())
    result.timings["save"] = time.perf_counter() - tick
    if plot and result.history.rows:
        from rnnlab.plots import plot_history

        tick = time.perf_counter()
        draw = plot_history if plotter is None else plotter.plot
        title = _title(result.model, result.task)
        draw(result.history.rows, run_dir / "curves.png", title=title)
        result.timings["plot"] = time.perf_counter() - tick
    result.run_dir = publish_run_dir(run_dir, result.task.name)
    return result.run_dir


def _start_plot(plotter, plot: bool, model: RNN, task: Task, history: History) -> None:
    """Have ``plotter`` draw the curves while the model is tested (save_run waits)."""
    if plotter is not None and plot and history.rows:
        plotter.start(history.rows, title=_title(model, task))


def _title(model: RNN, task: Task) -> str:
    c = model.config
    kind = model_kind(c.cell, c.activation)
    layers = f" x{c.num_layers}" if c.num_layers > 1 else ""
    return f"{task.name}: {kind}{layers}, {c.hidden_size} hidden units"


def recorded_task(folder: Path) -> Task | None:
    """The task a run directory's config.json names, with the parameters it records, or
    None (none, unreadable, not a known task and parameters)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
        params = config.get("task_params") or {}
        return get_task(config["task"], **params)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def strict_json(value):
    """``value`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def check_writable(root: Path) -> None:
    """Refuse an output directory that cannot be written, before any training."""
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out {root}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--out {root}: {probe} is not writable")


def run_config(run: Path) -> dict:
    """A run directory's config.json (a task, data or text run's); ``ValueError`` (one
    line) when there is none or it names no task."""
    try:
        saved = json.loads((Path(run) / "config.json").read_text())
        if not isinstance(saved, dict) or not isinstance(saved.get("task"), str):
            raise ValueError("no task named")
    except (OSError, ValueError) as err:
        raise ValueError(f"--resume {run}: not a run directory rnnlab can continue ({err})"
                         ) from None  # fmt: skip
    return saved


def interrupted_run(run: Path) -> dict:
    """:func:`run_config` of a run that ``--resume`` can continue: ``ValueError`` for a
    run that ended."""
    saved = run_config(run)
    if saved.get("interrupted") is not True:
        ended = saved.get("stop_reason") or f"after {saved.get('steps')} steps"
        raise ValueError(f"--resume {run}: the run ended ({ended}); only an interrupted run "
                         "continues")  # fmt: skip
    return saved


def resumed_run(run: Path, backend: str) -> tuple[RNN, dict, FitConfig, FitState]:
    """What a stopped run left: its model, its config.json, the settings it trained with
    and its checkpoint (where training stood)."""
    saved = interrupted_run(run)
    try:
        known = {f.name for f in fields(FitConfig)}
        fit_config = FitConfig(**{k: v for k, v in saved["fit"].items() if k in known})
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"--resume {run}: not a run directory rnnlab can continue ({err})"
                         ) from None  # fmt: skip
    if not (run / "model.safetensors").exists():
        raise ValueError(f"--resume {run}: the run saved no model (it never trained)")
    if not (run / "checkpoint.safetensors").exists():
        raise ValueError(f"--resume {run}: no checkpoint.safetensors (an online run, or one "
                         "saved by an older rnnlab): it cannot be continued")  # fmt: skip
    model = load(run / "model.safetensors", backend=backend)
    try:
        state = FitState.load(run / "checkpoint.safetensors")
    except ModelFileError as err:
        raise ValueError(f"--resume {run}: {err}") from None
    return model, saved, fit_config, state
