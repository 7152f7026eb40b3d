"""The ``rnnlab`` command line: thin wrappers that parse, call one library function, print."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Small recurrent neural networks with exact backpropagation through time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
if sys.stdout is None:  # started with stdout closed (``>&-``): its output goes nowhere
    sys.stdout = open(os.devnull, "w")  # (kept for the life of the process)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class CliError(Exception):
    """A bad input from the user: printed as one line, exit code 2."""


# -- train ------------------------------------------------------------------------------------


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="Task to learn (see `rnnlab tasks`).")] = "shift",
    hidden: Annotated[int | None, typer.Option(help="Hidden units (task default).")] = None,
    activation: Annotated[
        str | None, typer.Option(help="Elman nonlinearity: sigmoid, tanh or relu.")
    ] = None,
    cell: Annotated[str | None, typer.Option(help="Cell type: elman, gru, lstm or exprnn.")] = None,
    layers: Annotated[int | None, typer.Option(help="Stacked recurrent layers.")] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="sgd, momentum, adam, adagrad or rmsprop.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (task default).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per update.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Most updates before stopping.")] = None,
    truncate: Annotated[
        int | None, typer.Option(help="Truncate BPTT to this many steps (1: the notebook's).")
    ] = None,
    clip: Annotated[
        str, typer.Option(help="Clip the gradient's global norm to this (none: no clipping).")
    ] = "1.0",
    patience: Annotated[
        int | None, typer.Option(help="Stop after this many evaluations without improvement.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Passes over the training set (instead of --max-steps).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Updates of linear learning-rate warmup.")] = 0,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 0.0,
    monitor: Annotated[
        str,
        typer.Option(
            help="What picks the best weights: auto, val_loss, "
            "val_sequence_accuracy or val_step_accuracy."
        ),
    ] = "auto",
    stop_when_solved: Annotated[
        bool, typer.Option(help="Stop once the held-out data is solved.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for weights, data and batch order.")] = 0,
    backend: Annotated[str, typer.Option(help="auto, numpy or numba.")] = "auto",
    out: Annotated[Path, typer.Option(help="Directory that receives the run directory.")] = Path(
        "runs"
    ),
    plot: Annotated[bool, typer.Option(help="Write curves.png.")] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue an interrupted run (its directory) for the steps it had left."),
    ] = None,
    inspect: Annotated[
        bool, typer.Option(help="Then read the automaton it learned (rnnlab inspect).")
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option(help="A task parameter, KEY=VALUE (repeatable): --param delay=30."),
    ] = None,
    init: Annotated[
        str, typer.Option(help="Initial weights: default (per activation), irnn or orthogonal.")
    ] = "default",
    online: Annotated[
        str | None,
        typer.Option(
            help="Learn the task as a stream, updating at every step: rtrl, uoro, snap1, "
            "rflo, tbptt or truncate1 (the notebook's rule); --lr (default 0.5), --max-steps."
        ),
    ] = None,
    update_every: Annotated[
        int, typer.Option(help="With --online: update every K steps (tbptt: its window).")
    ] = 1,
    dtype: Annotated[str, typer.Option(help="float64 or float32.")] = "float64",
    data: Annotated[
        Path | None,
        typer.Option(help="Train on your sequences instead of a task: .npz, .csv or .tsv."),
    ] = None,
    val: Annotated[
        Path | None, typer.Option(help="Held-out sequences for --data (same formats).")
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="With --data: bce, mse or softmax (default: inferred).")
    ] = None,
    targets: Annotated[
        str,
        typer.Option(
            help="With --data: every (a target per step) or last (one label per "
            "sequence, scored at its last step)."
        ),
    ] = "every",
    tokens: Annotated[
        bool, typer.Option(help="With --data: inputs are integer token ids, fed one-hot.")
    ] = False,
    embedding: Annotated[
        int | None,
        typer.Option(help="With --tokens or text: a learned input embedding of this size."),
    ] = None,
    length: Annotated[
        str | None,
        typer.Option(help="Training sequence lengths: N or LO-HI (default: the task's)."),
    ] = None,
    test_length: Annotated[
        str | None,
        typer.Option(help="Test sequence lengths: N or LO-HI (default: the task's)."),
    ] = None,
) -> None:
    """Train a model on a task, test it on longer sequences, and save the run.

    Ctrl-C stops after the current updates and saves the run (resume it with
    --resume); a second Ctrl-C stops at once, saving nothing."""
    from rnnlab.plots import PlotWorker
    from rnnlab.runs import run_config, train_data, train_task
    from rnnlab.tasks import get_task
    from rnnlab.train import FitConfig

    if resume is not None:
        given = {"--hidden": hidden, "--activation": activation, "--cell": cell,
                 "--layers": layers, "--optimizer": optimizer, "--lr": lr,
                 "--batch-size": batch_size, "--max-steps": max_steps, "--truncate": truncate,
                 "--patience": patience, "--param": param or None, "--length": length,
                 "--epochs": epochs, "--warmup": warmup or None,
                 "--weight-decay": weight_decay or None,
                 "--monitor": None if monitor == "auto" else monitor,
                 "--no-stop-when-solved": None if stop_when_solved else True,
                 "--clip": None if clip == "1.0" else clip,
                 "--test-length": test_length,
                 "--init": None if init == "default" else init,
                 "--dtype": None if dtype == "float64" else dtype, "--data": data,
                 "--val": val, "--loss": loss,
                 "--targets": None if targets == "every" else targets,
                 "--tokens": tokens or None, "--embedding": embedding,
                 "--seed": seed or None, "--online": online,
                 "--update-every": None if update_every == 1 else update_every}  # fmt: skip
        clashing = [name for name, value in given.items() if value is not None]
        if clashing:
            raise CliError(f"--resume continues a run with its own settings; drop "
                           f"{', '.join(clashing)}")  # fmt: skip
    if online is not None and (data is not None or resume or dtype != "float64"):
        raise CliError("--online learns float64 nets on a task's stream: drop --data, --resume "
                       "and --dtype")  # fmt: skip
    resumed = None if resume is None else run_config(resume)
    if resumed is not None and task not in ("shift", resumed["task"]):  # (shift: no name given)
        raise CliError(f"--resume continues {resume}'s own task ({resumed['task']}); drop "
                       f"{task}")  # fmt: skip
    if resumed is not None and resumed["task"] == "text" and inspect:
        raise CliError("--inspect reads automata of task runs, not of text models")
    if resumed is not None and resumed["task"] == "text":
        _train_text(None, resume=resume, backend=backend, out=out, quiet=quiet)
        return
    if task == "shift" and data is not None and data.suffix.lower() == ".txt":
        task = "text"  # (a plain text file: a character model, as `rnnlab train text`)
    if task == "text":
        ignored = {"--resume": resume, "--truncate": truncate, "--activation": activation,
                   "--init": None if init == "default" else init, "--param": param or None,
                   "--val": val, "--online": online, "--test-length": test_length,
                   "--loss": loss, "--targets": None if targets == "every" else targets,
                   "--tokens": tokens or None, "--patience": patience, "--epochs": epochs,
                   "--update-every": None if update_every == 1 else update_every}  # fmt: skip
        dropped = [name for name, value in ignored.items() if value is not None]
        if dropped:
            raise CliError(f"text models do not take {', '.join(dropped)}")
        _train_text(data, hidden=hidden, cell=cell, layers=layers, length=length,
                    batch_size=batch_size, optimizer=optimizer, lr=lr, clip=_clip(clip),
                    max_steps=max_steps, dtype=dtype, seed=seed, backend=backend, out=out,
                    quiet=quiet, embedding=embedding)  # fmt: skip
        return
    if data is None and (val is not None or loss is not None or targets != "every" or tokens):
        raise CliError("--val, --loss, --targets and --tokens go with --data")
    if embedding is not None and not tokens:
        raise CliError("--embedding goes with --data FILE --tokens (or rnnlab train text)")
    if targets not in ("every", "last"):
        raise CliError(f"--targets must be every or last, got {targets!r}")
    if data is not None and (task != "shift" or param or length or test_length or resume):
        raise CliError("--data trains on your sequences: drop the task, --param, --length, "
                       "--test-length and --resume")  # fmt: skip
    params = _task_params(param or [])
    for key, value in (("train_lengths", length), ("test_lengths", test_length)):
        if value is not None:
            if key in params:
                raise CliError(f"--{key.replace('_', '-').replace('train-', '').rstrip('s')} "
                               f"and --param {key} give the same parameter; give one")  # fmt: skip
            params[key] = value
    task_obj = get_task(task, **params) if data is None else None
    fit_config = FitConfig(
        optimizer=optimizer,
        lr=lr,
        batch_size=batch_size,
        max_steps=max_steps,
        truncate=truncate,
        clip=_clip(clip),
        patience=patience,
        seed=seed,
        epochs=epochs,
        warmup=warmup,
        weight_decay=weight_decay,
        monitor=monitor,
        stop_when_solved=stop_when_solved,
    )
    _check_positive(hidden=hidden, layers=layers, update_every=update_every,
                    embedding=embedding)  # fmt: skip
    if update_every != 1 and online is None:
        raise CliError("--update-every goes with --online")
    # matplotlib imports in a second process while this one trains (~0.5 s off the wall time)
    with PlotWorker() if plot else contextlib.nullcontext() as plotter:
        if online is not None:
            from rnnlab.runs import train_online

            result = train_online(task_obj, online, hidden_size=hidden, activation=activation,
                                  cell=cell, num_layers=layers, init=init, seed=seed, out=out,
                                  backend=backend, plot=plot,
                                  fit_config=fit_config, plotter=plotter,
                                  update_every=update_every)  # fmt: skip
        elif resumed is not None and resumed["task"] == "data":
            file = _read_data(**_recorded_source(resumed))
            result = train_data(file, source=resumed["task_params"], backend=backend, out=out,
                                plot=plot, progress=not quiet and sys.stderr.isatty(),
                                plotter=plotter, resume=resume)  # fmt: skip
        elif data is not None:
            result = _train_on_data(data, val, loss, targets == "last", tokens, fit_config,
                                    plotter,
                                    hidden=hidden,
                                    activation=activation, cell=cell, layers=layers, init=init,
                                    dtype=dtype, seed=seed, backend=backend, out=out, plot=plot,
                                    quiet=quiet, embedding=embedding)  # fmt: skip
        else:
            result = train_task(
                task_obj,
                hidden_size=hidden,
                activation=activation,
                cell=cell,
                num_layers=layers,
                init=init,
                dtype=dtype,
                seed=seed,
                backend=backend,
                out=out,
                plot=plot,
                progress=not quiet and sys.stderr.isatty(),
                fit_config=fit_config,
                plotter=plotter,
                resume=resume,
            )
    _print_run(result, result.fit_config or fit_config)
    history = result.history
    if history.interrupted:
        where = result.run_dir
        then = ("" if result.online else
                f"; continue it with: rnnlab train --resume {where}")  # fmt: skip
        print(f"interrupted after step {history.steps}; the run is saved in {where}{then}",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(130)
    if not history.trained:
        print(f"error: {history.stop_reason}; no model saved", file=sys.stderr)
        raise typer.Exit(1)
    if history.ctrl_c_at_end:  # (the run ended as it came: whole, nothing to continue)
        print(f"interrupted as the run ended ({history.stop_reason}); the run is saved in "
              f"{result.run_dir}", file=sys.stderr)  # fmt: skip
        raise typer.Exit(130)
    if inspect and result.run_dir is not None:
        from rnnlab.analysis import inspect_model

        _print_inspection(inspect_model(result.run_dir))


def _train_text(data: Path | None, *, hidden=None, cell="elman", layers=None, length=None,
                batch_size=None, optimizer=None, lr=None, clip=5.0, max_steps=None,
                dtype="float32", seed=0, backend="auto", out=Path("runs"), quiet=False,
                resume: Path | None = None, embedding: int | None = None) -> None:  # fmt: skip
    """``rnnlab train text --data FILE.txt``: a character-level model (:mod:`rnnlab.text`);
    ``--resume RUN`` continues a stopped one."""
    from rnnlab.text import sample, train_text

    if data is None and resume is None:
        raise CliError("text trains on a text file: rnnlab train text --data FILE.txt")
    if length is not None and not (length.isdigit() and int(length) > 0):
        raise CliError(f"--length for text is the characters per chunk (a positive number), "
                       f"got {length}")  # fmt: skip
    _check_positive(hidden=hidden, layers=layers, batch_size=batch_size, max_steps=max_steps,
                    embedding=embedding)  # fmt: skip
    given = {"embedding": embedding, "hidden_size": hidden, "cell": cell,
             "num_layers": layers, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
             "max_steps": max_steps,
             "seq_length": None if length is None else int(length)}  # fmt: skip

    def show(row: dict) -> None:
        if not quiet:
            print(f"update {row['step']:>6}  train {row['train_bits']:.3f} bits/char  "
                  f"held-out {row['val_bits']:.3f} bits/char  ({row['seconds']:.1f} s)",
                  flush=True)  # fmt: skip

    chosen = {k: v for k, v in given.items() if v is not None}
    if resume is not None:
        result = train_text(resume=resume, backend=backend, out=out, progress=show)
    else:
        result = train_text(data, clip=clip, dtype=dtype, seed=seed, backend=backend, out=out,
                            progress=show, **chosen)  # fmt: skip
    if result.interrupted:
        print(f"interrupted after update {result.steps}; the run is saved in "
              f"{result.run_dir}; continue it with: rnnlab train --resume {result.run_dir}",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(130)
    base = result.baselines
    print(f"held-out: {result.bits:.3f} bits per character (character unigram "
          f"{base['unigram']:.3f}, bigram {base['bigram']:.3f}); "
          f"{result.seconds:.1f} s")  # fmt: skip
    if result.ctrl_c_at_end:  # (the run ended as it came: whole, nothing to continue)
        print(f"interrupted as the run ended (reached max_steps={result.steps}); the run is "
              f"saved in {result.run_dir}", file=sys.stderr)  # fmt: skip
        raise typer.Exit(130)
    rng = np.random.default_rng(seed)
    print("sample: " + repr(sample(result.model, result.vocabulary, 200, temperature=0.7,
                                   rng=rng)))  # fmt: skip
    if result.run_dir is not None:
        print(f"saved to {result.run_dir}; rnnlab sample {result.run_dir} draws more")


def _train_on_data(data: Path, val: Path | None, loss: str | None, last: bool, tokens: bool,
                   fit_config, plotter, *,
                   hidden, activation, cell, layers, init, dtype, seed, backend, out, plot,
                   quiet, embedding=None):  # fmt: skip
    """``rnnlab train --data``: the file's sequences (and held-out ones) through
    :func:`rnnlab.runs.train_data`."""
    from rnnlab.runs import train_data

    if loss is not None and loss not in ("bce", "mse", "softmax"):
        raise CliError(f"--loss must be bce, mse or softmax, got {loss!r}")
    file = _read_data(data, val, last, tokens)
    source = {"data": str(data.resolve()), "val": None if val is None else str(val.resolve()),
              "targets": "last" if last else "every", "tokens": tokens,
              "sha256": _digest(data, val)}  # fmt: skip
    return train_data(file, source=source, loss=loss, hidden_size=hidden,
                      activation=activation, cell=cell, num_layers=layers, init=init,
                      dtype=dtype, seed=seed, backend=backend, out=out, plot=plot,
                      progress=not quiet and sys.stderr.isatty(), fit_config=fit_config,
                      embedding=embedding,
                      plotter=plotter)  # fmt: skip


def _read_data(data: Path, val: Path | None, last: bool, tokens: bool):
    """The sequences of ``data`` (and held-out ones of ``val``) as a DataFile, token ids
    one-hot over one vocabulary for both."""
    from rnnlab.data import DataFile, load

    file = load(data, last=last)
    if val is not None:
        if file.val is not None:
            raise CliError(f"{data} holds a held-out split already; drop --val")
        file = DataFile(file.train, load(val, last=last).train)
    if tokens:  # (one vocabulary for both: wide enough for the split's ids too)
        from rnnlab.data import one_hot_tokens

        parts = [part for part in (file.train, file.val) if part is not None]
        size = max(one_hot_tokens(part)[1] for part in parts)
        encoded = [one_hot_tokens(part, size)[0] for part in parts]
        file = DataFile(encoded[0], encoded[1] if len(encoded) > 1 else None)
    return file


def _digest(*paths: Path | None) -> str:
    """SHA-256 of the files' bytes, in turn (a resumed data run checks its files are the
    ones it trained on)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is not None:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _recorded_source(saved: dict) -> dict:
    """The reading options a data run recorded, its files checked unchanged."""
    params = saved.get("task_params") or {}
    try:
        data, val = Path(params["data"]), params["val"] and Path(params["val"])
        options = {"data": data, "val": val, "last": params["targets"] == "last",
                   "tokens": bool(params["tokens"])}  # fmt: skip
        same = _digest(data, val) == params["sha256"]
    except OSError as err:
        raise CliError(f"--resume: cannot read the run's data ({err})") from None
    except (KeyError, TypeError) as err:
        raise CliError(f"--resume: the run does not record how its data was read ({err})"
                       ) from None  # fmt: skip
    if not same:
        raise CliError(f"--resume: {data} (or its --val file) changed since the run trained "
                       "on it; a run continues on its own data")  # fmt: skip
    return options


def _clip(text: str) -> float | None:
    """``--clip``: a positive number, or ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise CliError(f"--clip takes a positive number or none, got {text!r}") from None


def _task_params(pairs: list[str]) -> dict:
    """``["delay=30", ...]`` as task parameters (integers, numbers or text)."""
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise CliError(f"--param takes KEY=VALUE (e.g. --param delay=30), got {pair!r}")
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                value = text
        params[key.strip()] = value
    return params


def _print_run(result, fit_config) -> None:
    from rnnlab.runs import lengths_label, model_kind

    model, task, history = result.model, result.task, result.history
    c, d = model.config, getattr(task, "defaults", None)
    kind = model_kind(c.cell, c.activation)
    k = fit_config.truncate
    grad = "exact BPTT" if k is None else f"BPTT truncated to {k} step{'s' * (k > 1)}"
    if getattr(result, "online", None):
        every = result.update_every or 1
        grad = f"online {result.online}, an update every " + (
            "step" if every == 1 else f"{every} steps"
        )
    if d is not None:
        trained_on = f"{d.n_train} training sequences of {lengths_label(d.train_lengths)}"
    else:
        trained_on = f"{c.loss} on {task.params.get('data', 'your data')}"
    console.print(
        f"[bold]{task.name}[/]: {c.hidden_size} {kind} units"
        f"{f' x {c.num_layers} layers' if c.num_layers > 1 else ''}, {grad}, {trained_on}"
    )
    verdict = "[green]solved[/]" if history.solved else "[red]not solved[/]"
    solved_then = (history.solved and history.stop_reason.startswith("solved")
                   and not getattr(result, "online", None))  # fmt: skip
    reason = "" if solved_then else f" ({history.stop_reason})"
    console.print(f"{verdict} after {history.steps} updates in {history.seconds:.2f} s{reason}")
    table = Table(title="held-out accuracy", title_justify="left")
    for column in ("test set", "sequences", "bits/steps", "whole sequences", "loss"):
        table.add_column(column, justify="right" if column != "test set" else "left")
    for label, m in result.metrics.items():
        table.add_row(
            label,
            str(m["n"]),
            f"{m['step_accuracy']:.2%}",
            f"{m['sequence_accuracy']:.2%}",
            f"{m['loss']:.4g}",
        )
    console.print(table)
    solution = _solution_for(task, model)
    if solution is not None:
        console.print(_weights_table(model, solution))
    if result.run_dir is not None:
        files = ", ".join(sorted(p.name for p in result.run_dir.iterdir()))
        console.print(f"saved to [bold]{result.run_dir}[/] ({files})")


def _solution_for(task, model) -> dict | None:
    """The task's hand-built weights when it has some that fit this model's parameters."""
    try:
        solution = task.solution()
    except (AttributeError, ValueError):  # no solution, or none for these task parameters
        return None
    fits = set(solution) == set(model.params) and all(
        np.shape(v) == model.params[name].shape for name, v in solution.items()
    )
    return solution if fits else None


def _weights_table(model, solution: dict) -> Table:
    table = Table(title="learned vs hand-built weights", title_justify="left")
    for column in ("parameter", "learned", "hand-built"):
        table.add_column(column, justify="right" if column != "parameter" else "left")
    for name, value in model.params.items():
        for index in np.ndindex(value.shape):
            label = f"{name}[{', '.join(map(str, index))}]"
            table.add_row(label, f"{value[index]:+.3f}", f"{solution[name][index]:+.3f}")
    return table


# -- sweep ------------------------------------------------------------------------------------


@app.command()
def sweep(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="A sweep spec (TOML).")],
    out: Annotated[Path, typer.Option(help="Folder that receives the sweep's folder.")] = Path(
        "sweeps"
    ),
    jobs: Annotated[
        int | None, typer.Option(help="Worker processes (default: every core; 1: here).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Run on the Dask cluster at tcp://HOST:PORT.")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="'local': a Dask cluster of --jobs workers here.")
    ] = None,
    save: Annotated[bool, typer.Option(help="Save each run's directory.")] = True,
    summary: Annotated[
        bool, typer.Option(help="Only summarize the results so far (runs nothing).")
    ] = False,
    csv: Annotated[Path | None, typer.Option(help="Also write the summary as CSV.")] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the summary as a Markdown table.")
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write success.png and curves.png.")] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run a sweep: settings x seeds of `rnnlab train`, results in OUT/NAME/results.sqlite.

    A rerun of the same spec skips the runs already recorded; Ctrl-C (or a kill)
    loses no finished run."""
    import rnnlab.sweeps as sweeps
    from rnnlab.sweeps import summary as tables

    spec = sweeps.load_spec(spec_path)
    _check_positive(jobs=jobs)
    if cluster is not None and cluster != "local":
        raise CliError(f"--cluster takes 'local', got {cluster!r}")
    path = sweeps.results_path(spec, out)
    rows = None
    if not summary:
        tick = time.perf_counter()
        try:
            rows = sweeps.sweep(spec, out=out, jobs=jobs, scheduler=scheduler,
                                cluster=cluster is not None, save=save,
                                progress=not quiet and sys.stderr.isatty())  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted; every finished run is saved in {path}; continue with: "
                  f"rnnlab sweep {spec_path} (the same options)", file=sys.stderr)  # fmt: skip
            raise typer.Exit(130) from None
        except sweeps.execute.WorkerDied as err:
            print(f"error: {err} (rnnlab sweep {spec_path})", file=sys.stderr)
            raise typer.Exit(1) from None
        solved = sum(r["solved"] for r in rows)
        console.print(f"[bold]{spec.name}[/]: {len(rows)} runs, {solved} solved, "
                      f"{time.perf_counter() - tick:.1f} s; results in {path}")  # fmt: skip
    summaries = sweeps.summarize(path if rows is None else rows)  # (--summary: all recorded)
    console.print(tables.to_table(summaries, spec.name))
    for target, text in ((csv, tables.to_csv), (markdown, tables.to_markdown)):
        if target is not None:
            target.write_text(text(summaries))
    if plots:
        written = tables.plot(summaries, path.parent, spec.name)
        console.print(f"wrote {', '.join(str(p) for p in written)}")


# -- predict / eval / show ---------------------------------------------------------------------


@app.command(name="sample")
def sample_text(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A run of `rnnlab train text`.")],
    length: Annotated[int, typer.Option(help="Characters to draw.")] = 500,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature (lower: surer, more repetitive).")
    ] = 1.0,
    prime: Annotated[str, typer.Option(help="Text to read before drawing.")] = "",
    seed: Annotated[int, typer.Option(help="Seed of the draws.")] = 0,
) -> None:
    """Draw text from a character-level model, one character at a time, the state carried."""
    from rnnlab.model import load
    from rnnlab.text import Vocabulary, sample

    vocabulary_file = run / "vocabulary.json"
    if not vocabulary_file.is_file():
        raise CliError(f"{run}: no vocabulary.json; give the folder of an `rnnlab train text` run")
    _check_positive(length=length)
    if not temperature > 0:
        raise CliError(f"--temperature must be positive, got {temperature}")
    vocabulary = Vocabulary.load(vocabulary_file)
    model = load(run / "model.safetensors")
    text = sample(model, vocabulary, length, temperature=temperature, prime=prime,
                  rng=np.random.default_rng(seed))  # fmt: skip
    print(prime + text)


@app.command()
def predict(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A model.safetensors file.")],
    bits: Annotated[
        list[str] | None,
        typer.Argument(help="Input bits: `0 1 1 0` or `0110` (one group of I bits per step)."),
    ] = None,
    proba: Annotated[bool, typer.Option(help="Print probabilities instead of bits.")] = False,
    data: Annotated[
        str | None,
        typer.Option(
            help="Sequences to run, one output line each: a .npz (X), .csv or .tsv "
            "file (inputs column), or - for CSV on standard input."
        ),
    ] = None,
    tokens: Annotated[
        bool, typer.Option(help="With --data: inputs are integer token ids, fed one-hot.")
    ] = False,
) -> None:
    """Run a saved model on one input sequence, or on every sequence of --data."""
    from rnnlab.model import load

    model = load(model_path)
    if data is not None:
        if bits:
            raise CliError("give input bits or --data, not both")
        sequences = _read_inputs(data)
        if tokens:
            from rnnlab.data import one_hot_tokens

            sequences, _ = one_hot_tokens(sequences, model.config.input_size)
        outputs = (model.predict_proba if proba else model.predict)(
            sequences.X, lengths=sequences.lengths
        )  # fmt: skip
        lengths = sequences.lengths
        for b, values in enumerate(outputs):
            steps = values if lengths is None else values[: lengths[b]]
            print(" ".join(_format_step(v, model, proba) for v in steps))
        return
    if not bits:
        raise CliError("give input bits (e.g. 0110) or --data FILE")
    steps = _parse_bits(bits, model.config.input_size)
    outputs = model.predict_proba([steps]) if proba else model.predict([steps])
    values = outputs[0]
    text = [_format_step(step, model, proba) for step in values]
    joined_input = len(bits) == 1 and len(bits[0]) > model.config.input_size
    glued = joined_input and not proba and model.config.loss == "bce"
    print(("" if glued else " ").join(text))


def _read_inputs(data: str):
    """``--data``: a file's inputs, or CSV/TSV from standard input (``-``)."""
    from rnnlab.data import load, read_table

    if data == "-":
        return read_table(sys.stdin.read(), targets=False, source="standard input")
    return load(Path(data), targets=False).train


def _format_step(value, model, proba: bool) -> str:
    """One step's output: bits or class indices as integers; probabilities and real
    values as numbers (features joined by commas)."""
    values = np.atleast_1d(value)
    if proba or model.config.loss == "mse":
        return ",".join(f"{float(v):.6g}" for v in values)
    return ("" if model.config.loss == "bce" else ",").join(str(int(v)) for v in values)


def _parse_bits(tokens: list[str], input_size: int) -> list:
    """``["0", "1"]`` or ``["01"]`` -> one step per bit (or per group of ``input_size`` bits)."""
    text = "".join(tokens) if input_size == 1 else None
    groups = list(text) if text is not None else tokens
    if input_size > 1 and len(tokens) == 1 and len(tokens[0]) > input_size:
        chunk = tokens[0]
        if len(chunk) % input_size:
            raise CliError(f"{len(chunk)} bits do not split into steps of {input_size}")
        groups = [chunk[i : i + input_size] for i in range(0, len(chunk), input_size)]
    steps = []
    for group in groups:
        if len(group) != input_size or any(ch not in "01" for ch in group):
            raise CliError(
                f"{group!r} is not {input_size} bit(s) of 0/1; this model takes "
                f"{input_size} input bit(s) per step"
            )
        values = [int(ch) for ch in group]
        steps.append(values[0] if input_size == 1 else values)
    if not steps:
        raise CliError("no input bits given")
    return steps


@app.command(name="eval")
def evaluate_model(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A model.safetensors file.")],
    task: Annotated[
        str | None, typer.Option(help="Task to test on (default: the run's own task).")
    ] = None,
    length: Annotated[int | None, typer.Option(help="Test on sequences of this length.")] = None,
    n: Annotated[int, typer.Option(help="Number of test sequences.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the test data.")] = 12345,
) -> None:
    """Test a saved model on fresh data from its task."""
    from rnnlab.model import load
    from rnnlab.resources import check_fits
    from rnnlab.runs import lengths_label
    from rnnlab.tasks import get_task
    from rnnlab.train import evaluate

    _check_positive(length=length, n=n)
    model = load(model_path)
    task_obj = get_task(task) if task else _run_task(model_path)
    c = model.config
    if (task_obj.input_size, task_obj.output_size, task_obj.loss) != (
        c.input_size, c.output_size, c.loss
    ):  # fmt: skip
        raise CliError(f"task {task_obj.name!r} has {task_obj.input_size} input(s), "
                       f"{task_obj.output_size} output(s) and loss {task_obj.loss!r}; the "
                       f"model has {c.input_size}, {c.output_size} and {c.loss!r}")  # fmt: skip
    lengths = (length, length) if length else task_obj.defaults.train_lengths
    check_fits(8 * n * lengths[1] * (c.input_size + c.output_size + 2 + c.hidden_size),
               f"--n {n} sequences of length {lengths[1]}")  # fmt: skip
    test = task_obj.generate(n, np.random.default_rng(seed), lengths=lengths)
    m = evaluate(model, test, task_obj)
    print(
        f"{task_obj.name}, {n} sequences of {lengths_label(lengths)}: "
        f"bits/steps {m['step_accuracy']:.2%}, whole sequences {m['sequence_accuracy']:.2%}, "
        f"loss {m['loss']:.4g}"
    )


def _run_task(model_path: Path):
    """The task (with its parameters) recorded in the run directory of ``model_path``."""
    from rnnlab.runs import recorded_task

    task = recorded_task(model_path.parent)
    if task is None:
        raise CliError(f"no task recorded beside {model_path}; say which with --task")
    return task


@app.command()
def show(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A model.safetensors file.")],
) -> None:
    """Print a saved model's configuration and weights."""
    from rnnlab.model import load

    model = load(model_path)
    console.print(repr(model))
    table = Table()
    for column in ("parameter", "shape", "values"):
        table.add_column(column)
    for name, value in model.params.items():
        shown = np.array2string(value, precision=3, suppress_small=True, threshold=20)
        table.add_row(name, str(value.shape), shown)
    console.print(table)


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(metavar="RUN_OR_MODEL",
                                         help="A run directory or a model.safetensors file.")],
    method: Annotated[str, typer.Option(help="quantize (k-means of hidden states) or lstar "
                                        "(L*, the network as oracle).")] = "quantize",
) -> None:  # fmt: skip
    """Read the automaton a saved model implements; write automaton.dot and inspect.json."""
    from rnnlab.analysis import inspect_model

    _print_inspection(inspect_model(path, method=method))


def _print_inspection(report: dict) -> None:
    low = report["sample_fidelity"] < 1.0
    name = "DFA" if report["kind"] == "dfa" else "Mealy machine"
    console.print(f"[bold]{report['states']}-state {name}[/] over "
                  f"{report['alphabet']} ({report['method']})"
                  + (" [bold red]low fidelity: not a finite machine at this size[/]" if low
                     else ""))  # fmt: skip
    for length, f in report["fidelity"].items():
        console.print(f"agrees with the network at length {length}: steps {f['step']:.2%}, "
                      f"whole strings {f['sequence']:.2%} ({f['strings']} strings)")  # fmt: skip
    if report["kind"] == "dfa":
        console.print(f"accepting states: {report['accepting']} (0 is the initial state)")
    for transition in report["transitions"]:
        t = transition
        console.print(f"  {t['from']} --{t['input']} / {t['output']}--> {t['to']}")
    for point in report["fixed_points"]:
        largest = max(math.hypot(*e) for e in point["eigenvalues"])
        console.print(f"{point['kind']} point for input {point['input']}: "
                      f"{'stable' if point['stable'] else 'unstable'}, largest |eigenvalue| "
                      f"{largest:.3f}")  # fmt: skip
    folder = Path(report["model"]).parent
    files = "automaton.dot, automaton.png, states.png, fixed_points.json, inspect.json"
    console.print(f"wrote {files} to {folder} in {report['seconds']:.2f} s")


# -- tasks / gradcheck -------------------------------------------------------------------------


@app.command()
def tasks() -> None:
    """List the tasks: their parameters and default settings."""
    from rnnlab.runs import lengths_label, model_kind
    from rnnlab.tasks import TASKS

    table = Table(caption="Every task also takes --length and --test-length (N or LO-HI), "
                          "and --param n_train=N, --param n_test=N (set sizes). Your own "
                          "sequences: rnnlab train --data FILE (.npz, .csv, .tsv); a text: "
                          "rnnlab train text --data FILE.txt (a character model), then "
                          "rnnlab sample RUN.")  # fmt: skip
    for column in ("task", "what it asks", "in", "out", "loss", "model", "parameters",
                   "train on", "test on"):  # fmt: skip
        table.add_column(column)
    for task in TASKS.values():
        d = task.defaults
        kind = model_kind(d.cell, d.activation)
        table.add_row(
            task.name,
            task.description,
            str(task.input_size),
            str(task.output_size),
            task.loss,
            f"{d.hidden_size} {kind}",
            " ".join(f"{k}={v}" for k, v in task.params.items()) or "-",
            f"{d.n_train} x {lengths_label(d.train_lengths)}",
            lengths_label(d.test_lengths),
        )
    console.print(table)


@app.command()
def gradcheck(
    cell: Annotated[str, typer.Option(help="elman, gru, lstm or exprnn.")] = "elman",
    activation: Annotated[
        str | None, typer.Option(help="Elman nonlinearity (default tanh).")
    ] = None,
    hidden: Annotated[int, typer.Option(help="Hidden units.")] = 3,
    layers: Annotated[int, typer.Option(help="Stacked layers.")] = 1,
    inputs: Annotated[int, typer.Option(help="Input features.")] = 2,
    outputs: Annotated[int, typer.Option(help="Outputs.")] = 2,
    length: Annotated[int, typer.Option(help="Longest sequence.")] = 6,
    batch: Annotated[int, typer.Option(help="Sequences (of lengths up to --length).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of weights and data.")] = 0,
) -> None:
    """Compare BPTT gradients with finite differences on a random model and batch."""
    import rnnlab
    from rnnlab.runs import default_activation

    _check_positive(hidden=hidden, layers=layers, inputs=inputs, outputs=outputs)
    _check_positive(length=length, batch=batch)
    activation = activation or default_activation(cell)
    model = rnnlab.RNN(
        inputs, hidden, outputs, activation=activation, cell=cell, num_layers=layers, seed=seed
    )
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.normal(scale=0.2, size=p.shape)
    lengths = rng.integers(1, length + 1, size=batch)
    lengths[0] = length
    X = [rng.normal(size=(n, inputs)) for n in lengths]
    Y = [rng.integers(0, 2, size=(n, outputs)) for n in lengths]
    error = rnnlab.gradcheck(model, X, Y)
    ok = error < 1e-6
    console.print(
        f"{model!r}, {batch} sequences of lengths {sorted(lengths.tolist())}: worst relative "
        f"error {error:.2e} against finite differences: {'[green]ok[/]' if ok else '[red]FAIL[/]'}"
    )
    if not ok:
        raise typer.Exit(1)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; any bad input becomes one line on stderr and exit code 2."""
    try:
        code = app(args=argv, prog_name="rnnlab", standalone_mode=False)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
        print("interrupted; nothing saved", file=sys.stderr)
        return 130
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.TyperException as err:  # usage errors: unknown option, bad value...
        print(f"error: {err.format_message()}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed by its reader (``| head``)
        _quiet_stdout()
        return 1
    except (CliError, ValueError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):  # closed (``>&-``) or gone: nothing more to say
        _quiet_stdout()
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """The ``rnnlab`` command: :func:`main`, then exit without the interpreter's last
    garbage collection (everything is written by then; it spent 0.15 s walking numba's
    objects)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    run()
