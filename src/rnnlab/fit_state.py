"""Where a :func:`rnnlab.fit` loop stands, saved and read back: what resuming needs to
continue exactly as if it had never stopped.

>>> history = rnnlab.fit(model, "copy", max_steps=5000)   # Ctrl-C at step 1200
>>> history.state.save("checkpoint.safetensors")
>>> rnnlab.fit(model, "copy", max_steps=5000, resume="checkpoint.safetensors")

A state holds the weights after its last update (not the best ones a run ends with),
the optimizer's moments and step count (so the schedule goes on from there), the data
order's generator and the rest of its current permutation, the history so far, and
the early-stopping bookkeeping (best weights and score, evaluations since, the weights
last evaluated as finite). The file is an rnnlab model-style safetensors file: arrays
as tensors (bit for bit), the rest as its JSON config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rnnlab.io import ModelFileError, read_model_file, write_model_file

FORMAT = "rnnlab-fit-state"
_ARRAYS = ("weights", "initial", "best", "good", "carried")  # (or absent)


@dataclass
class FitState:
    """The state of a fit loop after ``step`` updates (see the module's docstring)."""

    step: int = 0
    weights: np.ndarray | None = None  # (P,) after `step` updates
    initial: np.ndarray | None = None  # (P,) the weights the run started from
    rng: dict | None = None  # the data order's generator: bit_generator.state
    order: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # rest of an epoch
    optimizer: dict = field(default_factory=dict)  # optimizer.state["flat"]: step, moments
    optimizer_name: str | None = None  # whose state that is ("adam", ...)
    rows: list[dict] = field(default_factory=list)  # the history's rows so far
    best: np.ndarray | None = None  # (P,) the best weights evaluated so far
    best_score: tuple | None = None  # their rank (fit's monitor)
    best_metrics: dict = field(default_factory=dict)
    best_solved: bool = False
    last_solved: bool = False
    evals_since_best: int = 0
    good: np.ndarray | None = None  # (P,) the weights last evaluated with a finite loss
    good_step: int | None = None
    running_loss: float = 0.0  # the training loss summed since the last evaluation
    seen: int = 0  # over this many updates
    seconds: float = 0.0  # training time so far
    # a stream read in order (rnnlab.text): where it stands, and the states carried there
    position: int = 0
    carried: np.ndarray | None = None  # (2, L, B, H): h and c (zeros for a cell without)

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` (atomically; exact: arrays and floats bit for bit)."""
        arrays = {name: getattr(self, name) for name in _ARRAYS if getattr(self, name) is not None}
        arrays["order"] = self.order.astype(np.float64)  # (indices: exact below 2**53)
        moments = {k: v for k, v in self.optimizer.items() if isinstance(v, np.ndarray)}
        arrays.update({f"optimizer.{k}": v for k, v in moments.items()})
        names = list(self.rows[0]) if self.rows else []  # (every row has the same fields)
        rows = np.array([[row[k] for k in names] for row in self.rows], np.float64)
        rows = rows.reshape(len(self.rows), len(names))
        odd = ~np.isfinite(rows)  # (NaN is not strict JSON nor a saved tensor: listed apart)
        arrays["rows"] = np.where(odd, 0.0, rows)
        config = {
            "format": FORMAT,
            "step": self.step,
            "position": self.position,
            "row_fields": names,
            "rng": self.rng,
            "optimizer_step": int(self.optimizer.get("step", 0)),
            "optimizer_name": self.optimizer_name,
            "odd_rows": [[int(i), int(j), repr(float(rows[i, j]))] for i, j in np.argwhere(odd)],
            "best_score": _score(self.best_score),
            "best_metrics": {k: float(v) for k, v in self.best_metrics.items()},  # (finite)
            "best_solved": self.best_solved,
            "last_solved": self.last_solved,
            "evals_since_best": self.evals_since_best,
            "good_step": self.good_step,
            "running_loss": self.running_loss,
            "seen": self.seen,
            "seconds": self.seconds,
        }
        return write_model_file(path, config, arrays)

    @classmethod
    def load(cls, path: str | Path) -> FitState:
        """A state written by :meth:`save`; ``ModelFileError`` naming what is wrong."""
        config, arrays = read_model_file(path)
        if config.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a fit state (a checkpoint of rnnlab.fit)")
        try:
            rows = arrays.pop("rows").copy()
            for i, j, value in config["odd_rows"]:
                rows[i, j] = float(value)
            order = arrays.pop("order").astype(np.int64)
            moments = {k.removeprefix("optimizer."): arrays.pop(k)
                       for k in list(arrays) if k.startswith("optimizer.")}  # fmt: skip
            score, names = _score_of(config["best_score"]), config["row_fields"]
            metrics, rng = config["best_metrics"], config["rng"]
            if not isinstance(metrics, dict) or not isinstance(rng, dict | None):
                raise TypeError("best_metrics and rng must be objects")
            name = config.get("optimizer_name")
            state = cls(
                step=_count(config["step"]),
                rng=rng,
                order=order,
                optimizer={"step": _count(config["optimizer_step"]), **moments},
                optimizer_name=name if isinstance(name, str) else None,
                rows=[dict(zip(names, _row_values(r), strict=True)) for r in rows],
                best_score=score,
                best_metrics={k: float(v) for k, v in metrics.items()},
                best_solved=bool(config["best_solved"]),
                last_solved=bool(config["last_solved"]),
                evals_since_best=_count(config["evals_since_best"]),
                good_step=None if config["good_step"] is None else _count(config["good_step"]),
                running_loss=float(config["running_loss"]),
                seen=_count(config["seen"]),
                seconds=float(config["seconds"]),
                position=_count(config["position"]),
                **{name: arrays.pop(name, None) for name in _ARRAYS},
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise ModelFileError(f"{path}: a damaged fit state ({err!r})") from None
        if state.weights is None or state.initial is None:
            raise ModelFileError(f"{path}: a damaged fit state (no weights)")
        return state

    def put_back(self, model, optimizer, max_steps: int) -> FitState:
        """Check the state against ``model`` and the run's length and put it in place: the
        model's weights and the optimizer's moments and step count become the state's.
        Returns a copy to go on with (in the model's dtype)."""
        size = model.params.flat.size
        for name in ("weights", "initial", "best", "good"):
            value = getattr(self, name)
            if value is not None and value.shape != (size,):
                raise ValueError(f"the fit state to resume holds {value.size} weights "
                                 f"({name}); the model has {size}")  # fmt: skip
        if self.optimizer_name is not None and self.optimizer_name != optimizer.name:
            raise ValueError(f"the fit state to resume holds {self.optimizer_name}'s state; "
                             f"the optimizer is {optimizer.name}")  # fmt: skip
        if self.step >= max_steps:
            raise ValueError(f"the fit state to resume has run {self.step} steps already; "
                             f"max_steps is {max_steps}")  # fmt: skip
        dtype = model.params.flat.dtype
        model.params.flat[...] = self.weights
        moments = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v
                   for k, v in self.optimizer.items()}  # fmt: skip
        optimizer.state["flat"] = {"step": 0, **moments}
        copy = replace(self, order=self.order.copy(), rows=[dict(row) for row in self.rows])
        for name in ("initial", "best", "good", "carried"):
            value = getattr(copy, name)
            setattr(copy, name, None if value is None else value.astype(dtype))
        return copy

    def take_optimizer(self, optimizer) -> None:
        """Keep a copy of ``optimizer``'s flat state (moments and step count)."""
        flat = optimizer.state.get("flat", {"step": 0})
        self.optimizer = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in flat.items()}
        self.optimizer_name = optimizer.name

    def generator(self) -> np.random.Generator:
        """The data order's generator, where it stood."""
        rng = np.random.default_rng()
        if self.rng is not None:
            try:
                rng.bit_generator.state = self.rng
            except (TypeError, ValueError, KeyError) as err:
                raise ValueError(f"a damaged fit state: its generator ({err})") from None
        return rng


def _score(score):
    """A rank (a number, or a tuple of them) as JSON."""
    if isinstance(score, tuple):
        return [float(v) for v in score]
    return None if score is None else float(score)


def _score_of(value):
    """A rank read back: None, a number or a tuple of numbers."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, int | float) for v in value):
        return tuple(float(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"best_score must be a number or a list of numbers, got {value!r}")


def _count(value) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _row_values(row: np.ndarray) -> list:
    values = [float(v) for v in row]
    if values:
        values[0] = int(values[0])  # the step (every history's first field)
    return values


def resolve(resume) -> FitState:
    """``fit``'s ``resume=``: a :class:`FitState`, its file, or a run directory holding
    ``checkpoint.safetensors``."""
    if isinstance(resume, FitState):
        return resume
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
        if not path.exists():
            raise ValueError(f"{path.parent}: no checkpoint.safetensors; not a run that can "
                             "be continued")  # fmt: skip
    return FitState.load(path)
