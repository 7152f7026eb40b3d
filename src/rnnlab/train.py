"""The fit loop: mini-batches, optimizer, evaluation, early stopping, history.

>>> model = rnnlab.RNN(seed=0)
>>> history = rnnlab.fit(model, "shift")          # a task by name, its defaults
>>> history = rnnlab.fit(model, (X, Y), validation=(Xv, Yv), lr=0.01)
"""

from __future__ import annotations

import csv
import functools
import io
import math
import signal
import threading
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np

from rnnlab.fit_state import FitState
from rnnlab.fit_state import resolve as resolve_state
from rnnlab.losses import LOSSES, check_reduction, loss_value
from rnnlab.model import RNN
from rnnlab.optim import Optimizer, make_optimizer, make_schedule
from rnnlab.sequences import Batch
from rnnlab.tasks import Task, get_task
from rnnlab.tasks.base import evaluate_outputs, input_keys

HISTORY_FIELDS = (
    "step", "seconds", "lr", "train_loss", "val_loss", "val_step_accuracy",
    "val_sequence_accuracy",
)  # fmt: skip


#: what ranks held-out evaluations (the best weights kept, patience): "auto" is
#: (sequence accuracy, step accuracy, -loss) in that order; the others one of them
MONITORS = ("auto", "val_loss", "val_sequence_accuracy", "val_step_accuracy")


@dataclass(frozen=True)
class FitConfig:
    """How to train. ``None`` fields take the task's defaults."""

    optimizer: str | None = None  # task default (Adam for every built-in task)
    lr: float | None = None  # task default
    batch_size: int | None = None  # task default
    max_steps: int | None = None  # task default: an upper bound, runs stop when solved
    truncate: int | None = None  # None: exact BPTT; 1: the notebook's one-step gradient
    reduction: str = "mean"  # mean loss per scored term: lr independent of batch size
    clip: float | None = 1.0  # global gradient-norm clip: one bad batch cannot wreck a run
    schedule: str = "constant"  # or "cosine" over max_steps
    eval_every: int = 10  # updates between held-out evaluations (cheap for small models)
    patience: int | None = None  # evaluations without improvement before stopping; None: never
    restore_best: bool = True  # end with the best held-out weights, not the last
    seed: int = 0  # data order and task data
    epochs: int | None = None  # passes over the training set, instead of max_steps
    warmup: int = 0  # updates over which lr rises linearly from 0 to its value
    weight_decay: float = 0.0  # L2 added to the gradient (coupled, as in torch)
    monitor: str = "auto"  # what ranks evaluations (best weights, patience): see MONITORS
    stop_when_solved: bool = True  # stop once the held-out data is solved (tasks)

    def __post_init__(self):
        for name in ("batch_size", "max_steps", "eval_every", "patience", "truncate"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if value is not None:
                object.__setattr__(self, name, int(value))  # (numpy integers as RNN takes them)
        for name in ("lr", "clip"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.integer | np.floating)
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.epochs is not None:
            if isinstance(self.epochs, bool) or not isinstance(self.epochs, int | np.integer) or (
                self.epochs < 1
            ):  # fmt: skip
                raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
            if self.max_steps is not None:
                raise ValueError("give epochs or max_steps, not both")
            object.__setattr__(self, "epochs", int(self.epochs))
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int | np.integer) or (
            self.warmup < 0
        ):  # fmt: skip
            raise ValueError(f"warmup must be a non-negative integer, got {self.warmup!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(
            self.weight_decay, int | float | np.integer | np.floating
        ) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):  # fmt: skip
            raise ValueError(f"weight_decay must be a non-negative number, got "
                             f"{self.weight_decay!r}")  # fmt: skip
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r}; choose one of "
                             f"{', '.join(MONITORS)}")  # fmt: skip

    def resolved(self, task=None, train_size: int | None = None) -> FitConfig:
        """The settings ``fit`` trains with: unset ones from ``task``'s defaults (user
        data: Adam, lr 0.01, batch 32, 1000 updates); ``epochs`` as updates over
        ``train_size`` sequences (default the task's ``n_train``)."""
        d = getattr(task, "defaults", None)
        batch_size = self.batch_size or getattr(d, "batch_size", 32)
        max_steps = self.max_steps or getattr(d, "max_steps", 1000)
        if self.epochs is not None:  # (as updates: an epoch is a pass over the set)
            size = train_size or getattr(d, "n_train", None) or batch_size
            max_steps = math.ceil(self.epochs * size / batch_size)
        return replace(
            self,
            optimizer=self.optimizer or getattr(d, "optimizer", "adam"),
            lr=self.lr or getattr(d, "lr", 0.01),
            batch_size=batch_size,
            max_steps=max_steps,
            epochs=None,
        )


@dataclass
class History:
    """What happened during :func:`fit`: one row per evaluation, and how it ended."""

    rows: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    solved: bool = False
    stop_reason: str = ""
    best: dict = field(default_factory=dict)  # the held-out metrics of the kept weights
    interrupted: bool = False  # stopped by Ctrl-C (SIGINT)
    #: Ctrl-C came during the update the run ended on by itself (solved, out of patience,
    #: its last step): the run is whole, and its caller should stop after it
    ctrl_c_at_end: bool = False
    diverged: bool = False  # stopped by a non-finite loss or gradient
    trained: bool = True  # False: it diverged before any weights were evaluated as finite
    state: FitState | None = field(default=None, repr=False)  # where the loop stopped

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()


class DataTask:
    """User data seen as a task: the loss's own metric; solved when every sequence is right."""

    def __init__(self, loss: str, tolerance: float = 0.04, source: str | dict | None = None):
        self.name = "data"
        self.loss = loss
        self.tolerance = tolerance
        # what a run records of the data: its path, or the options it was read with
        self.params = {} if source is None else (
            dict(source) if isinstance(source, dict) else {"data": source})  # fmt: skip

    def evaluate(self, outputs: np.ndarray, batch: Batch) -> dict:
        return evaluate_outputs(outputs, batch, self.loss, tolerance=self.tolerance)

    def is_solved(self, metrics: dict) -> bool:
        return metrics["sequence_accuracy"] >= 1.0


def evaluate(model: RNN, batch: Batch, task=None, *, reduction: str = "mean") -> dict:
    """Held-out loss and accuracies of ``model`` on a prepared batch."""
    task = task or DataTask(model.config.loss)
    batch = model.batch(batch)
    if batch.y is None:
        raise ValueError("evaluate needs a batch with targets")
    logits, _, _ = model.kernels.forward(model.network, model.params.flat, batch.x)  # (T, B, O)
    loss = loss_value(model.config.loss, logits, batch.y, batch.mask, reduction)
    metrics = task.evaluate(LOSSES[model.config.loss].output(logits), batch)
    return {"loss": loss, **metrics}


class TrainStep:
    """One training update: loss, exact gradient, clipping, optimizer step.

    >>> step = TrainStep(model, make_optimizer("adam", lr=0.05), clip=1.0)
    >>> loss, norm = step(batch)  # doctest: +SKIP

    It works on the model's flat parameter vector (``model.params.flat``) through
    the backend protocol (:mod:`rnnlab.kernels`) only, with the backend's ``trainer``
    for its options (made again when the model changes backend). An optimizer with a
    flat rule (Adam, SGD, Momentum) hands it over as an
    :class:`~rnnlab.optim.rules.Update` and the trainer's ``train_step`` computes the
    gradient and applies the update in one call; otherwise (Adagrad, RMSprop) the
    trainer's ``loss_and_grad`` gives the flat gradient and ``optimizer.step_flat``
    applies it. Returns the loss and the gradient's global norm before clipping; when
    either is inf or NaN the weights (and the optimizer's step count) are left as they
    were.
    """

    def __init__(self, model: RNN, optimizer: Optimizer, *, truncate: int | None = None,
                 reduction: str = "mean", clip: float | None = None):  # fmt: skip
        if truncate is not None and (
            isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 1
        ):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        if clip is not None and not (isinstance(clip, int | float) and math.isfinite(clip)
                                     and clip > 0):  # fmt: skip
            raise ValueError(f"clip must be a positive number or None, got {clip!r}")
        check_reduction(reduction)
        self.model, self.optimizer = model, optimizer
        self.truncate, self.reduction = truncate, reduction
        self.clip = None if clip is None else float(clip)
        self._for = self._trainer = None

    def trainer(self):
        """The model's backend's trainer for this step's options (kept while the
        model's backend and network stay the same objects)."""
        model = self.model
        backend, net = model.kernels, model.network
        if self._for is None or self._for[0] is not backend or self._for[1] is not net:
            options = {"reduction": self.reduction, "truncate": self.truncate}
            self._trainer = backend.trainer(net, loss=model.config.loss, **options)
            self._for = (backend, net)
        return self._trainer

    def __call__(self, batch: Batch, initial=None, final=None) -> tuple[float, float]:
        """One update on ``batch``; ``initial``: the states to start from (a
        :class:`~rnnlab.model.State`: the next chunk of a stream; default ``h0``);
        ``final``: a ``(2, L, B, H)`` array of the model's dtype that receives the states
        the pass ends in (before the update: the next chunk's ``initial``)."""
        model, optimizer = self.model, self.optimizer
        trainer, theta = self.trainer(), model.params.flat
        batch = model.batch(batch)  # (the model's dtype)
        if batch.y is None:
            raise ValueError("a training step needs a batch with targets")
        initial = None if initial is None else tuple(initial)
        update = optimizer.flat_update(theta, self.clip)
        if update is not None:  # pass and update in one backend call
            loss, norm = trainer.train_step(theta, batch.x, batch.y, batch.mask, update, initial,
                                            final)  # fmt: skip
            if math.isfinite(loss) and math.isfinite(norm):
                optimizer.advance_flat()
            return loss, norm
        loss, grad = trainer.loss_and_grad(theta, batch.x, batch.y, batch.mask, initial, final)
        if not math.isfinite(loss):
            return loss, float(np.linalg.norm(grad))
        return loss, optimizer.step_flat(theta, grad, max_norm=self.clip)

    def many(self, data: Batch, index: np.ndarray, rates) -> np.ndarray:
        """Updates on the batches ``data.take(index[k])`` at learning rates ``rates[k]``,
        ``k = 0, 1, ...`` (``index (K, B)``), stopping after the first whose loss or
        gradient norm is not finite (that update not made): ``(k, 2)`` their losses and
        norms. The same bits as ``k`` calls of :meth:`__call__`, made in one backend call
        where the backend has one (``train_steps``: the compiled backend, a flat
        optimizer, no truncation that could cut a batch, blocks on one thread). The
        optimizer's ``lr`` is the last rate used."""
        model, optimizer = self.model, self.optimizer
        data = model.batch(data)
        if data.y is None:
            raise ValueError("a training step needs a batch with targets")
        K = len(index)
        run = getattr(self.trainer(), "train_steps", None)
        update = None if run is None or K < 2 else optimizer.flat_update(model.params.flat,
                                                                          self.clip)  # fmt: skip
        if update is not None:
            record = np.empty((K, 3))
            record[:, 0] = rates
            if run(model.params.flat, data.x, data.y, data.mask, data.lengths,
                   np.asarray(index, np.int64), record, update):  # fmt: skip
                finite = np.isfinite(record[:, 1:]).all(axis=1)
                made = K if finite.all() else int(np.argmin(finite))
                done = min(made + 1, K)
                optimizer.lr = float(rates[done - 1])
                optimizer.advance_flat(made)
                return record[:done, 1:]
        rows = []
        for k in range(K):
            optimizer.lr = float(rates[k])
            loss, norm = self(data.take(index[k]))
            rows.append((loss, norm))
            if not (math.isfinite(loss) and math.isfinite(norm)):
                break
        return np.array(rows).reshape(-1, 2)

    def warm(self, batch: Batch) -> None:
        """Run the backend call :meth:`__call__` makes for ``batch`` on copies of the
        weights and the optimizer's state: its kernels are loaded (or compiled, on a
        first run) and nothing changes (the optimizer's state arrays are made, zero, as
        its first step would make them)."""
        model, trainer = self.model, self.trainer()
        theta = model.params.flat.copy()
        batch = model.batch(batch)
        update = self.optimizer.flat_update(model.params.flat, self.clip)
        if update is not None:
            update = update._replace(first=update.first.copy(), second=update.second.copy())
            trainer.train_step(theta, batch.x, batch.y, batch.mask, update)
        else:
            trainer.loss_and_grad(theta, batch.x, batch.y, batch.mask)


def fit(
    model: RNN,
    data,
    *,
    validation=None,
    config: FitConfig | None = None,
    progress: bool = False,
    backend: str | None = None,
    callbacks=(),
    resume=None,
    **overrides,
) -> History:
    """Train ``model`` in place and return its :class:`History`.

    Parameters
    ----------
    data : Task, task name, ``(X, Y)`` / ``(X, Y, mask)``, or a ``Batch``
        A task generates its own training and held-out data from ``seed``.
    validation : same forms as ``data`` (not a task name), optional
        Held-out data; for user data without it, the training data is used.
    config : FitConfig, optional; keyword ``overrides`` replace its fields
        (``lr=0.01``, ``max_steps=500``...).
    progress : bool
        Show a rich progress bar with loss and accuracy.
    backend : {"auto", "numpy", "numba"}, optional
        Train on these kernels (the model returns to its own afterwards; its
        parameter arrays stay the same objects throughout); ``None``: the model's.
    optimizer : str or Optimizer, optional (an override)
        A name sets ``config.optimizer``; an :class:`~rnnlab.optim.Optimizer`
        instance is used as it is, state included (a resumed run), instead of a new
        one made from ``config`` (:func:`make_fit_optimizer`).
    callbacks : objects with any of ``on_step(step, loss, grad_norm)`` (after each
        update), ``on_eval(step, row, model)`` (after each held-out evaluation; ``row``
        is the history's) and ``on_end(history, model)``; :mod:`rnnlab.callbacks` has a
        CSV logger and a checkpoint writer.
    resume : FitState, its file, or a run directory, optional
        Continue a stopped run exactly where it stood (:mod:`rnnlab.fit_state`): its
        weights, optimizer state, data order and history; the other arguments must be
        the run's own (``max_steps`` counts from its start; callbacks start afresh: a
        ``CSVLogger`` writes its file anew). ``History.state`` is where a run stands when
        ``fit`` returns (``history.state.save(path)``; None after a divergence).

    Stops when the held-out data is solved (unless ``stop_when_solved=False``), when
    ``patience`` evaluations
    pass without improvement, at ``max_steps``, when the loss or gradient turns
    NaN or infinite (returning to the weights last evaluated as finite), or at
    Ctrl-C (after the current backend call: one update, or the compiled backend's
    updates up to the next evaluation, about 50 ms of them; a second Ctrl-C interrupts
    at once). Without an ``on_step`` callback, the compiled backend makes those updates
    in one call (:meth:`TrainStep.many`), with the same bits as one at a time.
    """
    optimizer = overrides.pop("optimizer") if isinstance(overrides.get("optimizer"),
                                                         Optimizer) else None  # fmt: skip
    if optimizer is not None and overrides.get("weight_decay"):
        raise ValueError("weight_decay is the optimizer's: give it to the optimizer instance "
                         "(Adam(lr, weight_decay=...)), not to fit")  # fmt: skip
    unknown = sorted(set(overrides) - {f.name for f in fields(FitConfig)})
    if unknown:
        raise ValueError(f"unknown fit setting(s) {', '.join(unknown)}; FitConfig has "
                         f"{', '.join(f.name for f in fields(FitConfig))}")  # fmt: skip
    config = replace(config or FitConfig(), **overrides)
    if backend is None:
        return _fit(model, data, validation, config, progress, optimizer, callbacks, resume)
    own = model.backend  # "numba" or "numpy": what runs now
    model.use_backend(backend)
    try:
        return _fit(model, data, validation, config, progress, optimizer, callbacks, resume)
    finally:
        model.use_backend(own)


def make_fit_optimizer(config: FitConfig, task=None) -> Optimizer:
    """The optimizer :func:`fit` makes for ``config`` (the task's defaults where unset)."""
    config = config.resolved(task)
    decay = {"weight_decay": config.weight_decay} if config.weight_decay else {}
    return make_optimizer(config.optimizer, lr=config.lr, **decay)


def _fit(model: RNN, data, validation, config: FitConfig, progress: bool,
         optimizer: Optimizer | None, callbacks=(), resume=None) -> History:  # fmt: skip
    task, train, val = _prepare(model, data, validation, config)
    settings = config.resolved(task, train.size)
    batch_size, max_steps = settings.batch_size, settings.max_steps
    optimizer = optimizer or make_fit_optimizer(config, task)
    schedule = make_schedule(config.schedule, settings.lr, max_steps,
                             warmup=config.warmup)  # (lr: its base)  # fmt: skip
    rank = _RANKS[config.monitor]
    on_step = [c.on_step for c in callbacks if hasattr(c, "on_step")]
    on_eval = [c.on_eval for c in callbacks if hasattr(c, "on_eval")]
    train_step = TrainStep(model, optimizer, truncate=config.truncate,
                           reduction=config.reduction, clip=config.clip)  # fmt: skip

    # the loop's state (what a checkpoint holds): fresh, or where a stopped run stood
    if resume is None:
        s = FitState(initial=model.params.flat.copy())
        rng = np.random.default_rng(config.seed)
    else:
        s = resolve_state(resume).put_back(model, optimizer, max_steps)
        rng = s.generator()
    history = History(rows=[dict(row) for row in s.rows], best=dict(s.best_metrics))
    if model.kernels.name != "numpy":  # (the clock starts once the kernels are in)
        with _CompilingNotice(enabled=progress):
            train_step.warm(train.take(np.resize(np.arange(train.size), batch_size)))
            evaluate(model, val, task)
    start = time.perf_counter() - s.seconds
    bar = _ProgressBar(max_steps, enabled=progress)
    # (overflow in a diverging run is caught below and reported; numpy need not warn)
    with bar, StopOnInterrupt() as interrupt, np.errstate(over="ignore", invalid="ignore"):
        stopped, per_update = False, None
        # (many updates per backend call where the backend makes them; callbacks see each)
        batched = (getattr(train_step.trainer(), "train_steps", None) is not None
                   and not on_step and train.size >= batch_size)  # fmt: skip
        while s.step < max_steps and not stopped:
            if interrupt.requested:
                history.interrupted = True
                history.stop_reason = f"interrupted (Ctrl-C) after step {s.step}"
                break
            n = _updates_in_one_call(s.step, config.eval_every, max_steps, per_update, batched)
            index = _next_batches(s, rng, train.size, batch_size, n)
            called = time.perf_counter()
            made = train_step.many(train, index, [schedule(s.step + k) for k in range(n)])
            per_update = (time.perf_counter() - called) / len(made)
            for loss, norm in made.tolist():
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    what = (
                        f"loss became {loss}"
                        if not math.isfinite(loss)
                        else f"gradient norm became {norm}"
                    )
                    history.diverged = stopped = True
                    if s.good is None:
                        history.trained = False
                        model.params.flat[...] = s.initial
                        history.stop_reason = (
                            f"{what} at step {s.step + 1}, before any weights were evaluated "
                            "as finite: nothing trained, the weights are as they started (try "
                            "a smaller --lr or gradient clipping)"
                        )
                    else:
                        model.params.flat[...] = s.good
                        history.stop_reason = (
                            f"{what} at step {s.step + 1}; returned to the weights evaluated "
                            f"at step {s.good_step} (try a smaller --lr or gradient clipping)"
                        )
                    break
                s.step += 1
                step = s.step
                s.running_loss += loss
                s.seen += 1
                for call in on_step:
                    call(step, loss, norm)

                if step % config.eval_every == 0 or step == max_steps:
                    stopped = _evaluated(model, val, task, config, history, s, optimizer,
                                         bar, rank, on_eval, start)  # fmt: skip
        if not stopped and not history.interrupted:
            history.stop_reason = f"reached max_steps={max_steps}"
    history.ctrl_c_at_end = interrupt.requested and not history.interrupted

    # where the loop stands, before the best weights come back: a resume goes on from here
    s.seconds = time.perf_counter() - start
    s.weights, s.rng = model.params.flat.copy(), rng.bit_generator.state
    s.rows, s.best_metrics = history.rows, history.best
    s.take_optimizer(optimizer)
    # (a diverged run went back to earlier weights: its loop state is no place to go on from)
    history.state = None if history.diverged else s
    if not history.solved:  # (solved: whether the weights it ends with were, when evaluated)
        if config.restore_best and s.best is not None and history.trained:
            model.params.flat[...] = s.best
            history.solved = s.best_solved
        else:
            history.solved = s.last_solved and history.trained
    history.steps = s.step
    history.seconds = s.seconds
    for callback in callbacks:
        if hasattr(callback, "on_end"):
            callback.on_end(history, model)
    return history


def _evaluated(model, val, task, config, history, s, optimizer, bar, rank, on_eval,
               start) -> bool:  # fmt: skip
    """The evaluation after update ``s.step``: its row into ``history``, the best and last
    good weights into ``s``; True when the run stops there (solved, or no patience left)."""
    step = s.step
    metrics = evaluate(model, val, task)
    row = {
        "step": step,
        "seconds": round(time.perf_counter() - start, 6),
        "lr": optimizer.lr,
        "train_loss": s.running_loss / s.seen,
        "val_loss": metrics["loss"],
        "val_step_accuracy": metrics["step_accuracy"],
        "val_sequence_accuracy": metrics["sequence_accuracy"],
    }
    history.rows.append(row)
    s.running_loss, s.seen = 0.0, 0
    bar.update(step, row)
    if math.isfinite(metrics["loss"]):
        s.good, s.good_step = model.params.flat.copy(), step
    s.last_solved = task.is_solved(metrics) and _every_string_right(model, task)
    score = rank(metrics)
    if math.isfinite(metrics["loss"]) and (s.best_score is None
                                           or score > s.best_score):  # fmt: skip
        s.best_score, s.evals_since_best = score, 0
        s.best, s.best_solved = model.params.flat.copy(), s.last_solved
        history.best = metrics
    else:
        s.evals_since_best += 1
    for call in on_eval:
        call(step, row, model)
    if s.last_solved and config.stop_when_solved:
        history.solved = True
        history.stop_reason = f"solved at step {step}"
        return True
    if config.patience is not None and s.evals_since_best >= config.patience:
        history.stop_reason = f"no improvement in {config.patience} evaluations (step {step})"
        return True
    return False


#: how long one call of many updates may run (fit sees a Ctrl-C between calls), and at
#: most how many it makes (its batches' indices stay small)
_CALL_SECONDS, _MOST_PER_CALL = 0.05, 4096


def _updates_in_one_call(step: int, eval_every: int, max_steps: int,
                         per_update: float | None, batched: bool) -> int:  # fmt: skip
    """How many updates fit makes in its next backend call: one unless ``batched``; else
    up to the next evaluation (or the last step), about :data:`_CALL_SECONDS` of them
    (one, to time it, first), and at most :data:`_MOST_PER_CALL`."""
    if not batched or per_update is None:
        return 1
    to_eval = eval_every - step % eval_every
    fit_in_time = int(_CALL_SECONDS / max(per_update, 1e-9))
    return max(1, min(to_eval, max_steps - step, fit_in_time, _MOST_PER_CALL))


def _next_batches(s: FitState, rng, size: int, batch_size: int, n: int) -> np.ndarray:
    """The next ``n`` batches' indices ``(n, B)`` from the loop's order ``s.order``, which
    takes a fresh permutation of the ``size`` sequences whenever fewer than a batch
    are left (``n > 1`` only when ``size >= batch_size``: the same order, drawn ahead)."""
    parts, have, need = [s.order], len(s.order), max(n * batch_size, 1)
    while have < need:  # (n = 1: one permutation, however few sequences there are)
        parts.append(rng.permutation(size))
        have += size
        if n == 1:
            break
    order = np.concatenate(parts) if len(parts) > 1 else s.order
    index, s.order = order[: n * batch_size], order[n * batch_size :]
    return index.reshape(n, -1)


#: :data:`MONITORS` as keys that rank an evaluation's metrics (larger is better)
_RANKS = {
    "auto": lambda m: (m["sequence_accuracy"], m["step_accuracy"], -m["loss"]),
    "val_loss": lambda m: -m["loss"],
    "val_sequence_accuracy": lambda m: (m["sequence_accuracy"], -m["loss"]),
    "val_step_accuracy": lambda m: (m["step_accuracy"], -m["loss"]),
}


def _every_string_right(model: RNN, task) -> bool:
    """For a regular language's task, every short string too (:meth:`Task.every_string`)."""
    every = getattr(task, "every_string", None)
    batch = every() if every is not None else None
    return batch is None or evaluate(model, batch, task)["sequence_accuracy"] >= 1.0


class StopOnInterrupt:
    """Ctrl-C (SIGINT) during training asks the loop to stop after the current update;
    a second Ctrl-C interrupts at once, as usual. Only on the main thread, and only
    while Python's default handler is installed (an application's own is left alone).

    (Raising inside a compiled call is what broke runs before: numba's dispatcher
    reported "returned a result with an exception set" and nothing was saved.)"""

    def __enter__(self):
        self.requested = False
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):  # fmt: skip
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _prepare(model: RNN, data, validation, config: FitConfig):
    """The task (or a stand-in for user data), the training batch and the held-out batch."""
    if isinstance(data, str):
        data = get_task(data)
    if isinstance(data, Task):
        task = data
        if (task.input_size, task.output_size, task.loss) != (
            model.config.input_size,
            model.config.output_size,
            model.config.loss,
        ):
            raise ValueError(
                f"task {task.name!r} needs input_size={task.input_size}, "
                f"output_size={task.output_size}, loss={task.loss!r}; the model has "
                f"{model.config.input_size}, {model.config.output_size}, {model.config.loss!r}"
            )
        train = training_set(task, config.seed)
        if validation is not None:
            val = _as_batch(model, validation)
        else:
            val = held_out_set(task, config.seed, 1, train=train)
        return task, model.batch(train), model.batch(val)  # in the model's dtype, cast once
    train = _as_batch(model, data)
    val = train if validation is None else _as_batch(model, validation)
    return DataTask(model.config.loss), train, val


@functools.lru_cache(maxsize=1)
def training_set(task: Task, seed: int) -> Batch:
    """The training set ``fit`` draws from ``task`` for a run of ``seed``; the last one is
    kept, so the tests after ``fit`` (which must leave its strings out) do not draw it
    again (``task`` is keyed by identity; a Batch is not changed by its users)."""
    d = task.defaults
    return task.generate(d.n_train, np.random.default_rng([seed, 0]), lengths=d.train_lengths)


def held_out_set(task: Task, seed: int, stream: int, *, n: int | None = None,
                 lengths: tuple[int, int] | None = None, train: Batch | None = None,
                 source: Task | None = None) -> Batch:  # fmt: skip
    """Fresh data of ``task`` for a run of ``seed`` (draws of random stream ``stream``:
    1 is fit's validation, 2 and up the tests after it) with no sequence of its training
    set (``train``, or drawn again) among them: ``n`` (default ``n_test``) sequences of
    ``lengths`` (default the training lengths), drawn by ``source`` (default ``task``)."""
    d = task.defaults
    train = training_set(task, seed) if train is None else train
    rng = np.random.default_rng([seed, stream])
    return (source or task).held_out(d.n_test if n is None else n, rng,
                                     lengths or d.train_lengths, input_keys(train))  # fmt: skip


def _as_batch(model: RNN, data) -> Batch:
    if isinstance(data, Batch):
        return model.batch(data)
    if isinstance(data, tuple) and len(data) in (2, 3):
        X, Y, *rest = data
        return model.batch(X, Y, mask=rest[0] if rest else None)
    raise ValueError("data must be a task, a task name, (X, Y), (X, Y, mask) or a Batch")


class _CompilingNotice:
    """Says that kernels are being compiled when loading them takes longer than
    ``after`` seconds (a first run: numba compiles, then caches on disk), as a rich
    status until they are in; says nothing otherwise."""

    def __init__(self, *, enabled: bool, after: float = 1.0):
        self.enabled, self.after, self._status, self._timer = enabled, after, None, None
        self._lock = threading.Lock()

    def _show(self) -> None:
        from rich.console import Console

        with self._lock:
            if self._timer is not None:
                self._status = Console(stderr=True).status(
                    "compiling kernels for this network (first run only: they are cached)"
                )
                self._status.start()

    def __enter__(self):
        if self.enabled:
            self._timer = threading.Timer(self.after, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc):
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._status is not None:
                self._status.stop()
                self._status = None


class _ProgressBar:
    """A rich progress bar showing step, loss and held-out accuracy (or nothing)."""

    def __init__(self, total: int, *, enabled: bool):
        self.total, self.enabled, self.progress, self.task_id = total, enabled, None, None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                transient=True,
            )
            self.progress.__enter__()
            self.task_id = self.progress.add_task("train", total=self.total, status="")
        return self

    def update(self, step: int, row: dict) -> None:
        if self.progress is not None:
            status = (
                f"loss {row['train_loss']:.4f}  bit acc {row['val_step_accuracy']:.3f}  "
                f"seq acc {row['val_sequence_accuracy']:.3f}"
            )
            self.progress.update(self.task_id, completed=step, status=status)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
