"""A sweep specification: settings x seeds, read from TOML and checked before any run.

A spec names the runs of a sweep::

    name = "shift-seeds"          # optional (default: the file's name)
    seeds = 20                    # 0..19, or a list: [0, 3, 7]

    [fixed]                       # every run (any `rnnlab train` option)
    task = "shift"

    [grid]                        # every combination of these values
    truncate = ["none", 1]        # "none": the option's default (exact BPTT here)

    [[list]]                      # or (and) settings one by one: each is crossed
    cell = "gru"                  # with the grid
    hidden = 64

The options are those of ``rnnlab train`` (:data:`OPTIONS`); any other key is a
parameter of the task (``delay = 30`` for ``copy``), checked against it. Every
setting is checked (task parameters, model and training options) before any
run starts; an error names the line of the spec it comes from.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

#: ``rnnlab train`` options a spec may set, and the type of their values
OPTIONS: dict[str, type] = {
    "task": str,
    "hidden": int,
    "activation": str,
    "cell": str,
    "layers": int,
    "init": str,
    "dtype": str,
    "optimizer": str,
    "lr": float,
    "batch_size": int,
    "max_steps": int,
    "truncate": int,
    "clip": float,
    "patience": int,
    "epochs": int,
    "warmup": int,
    "weight_decay": float,
    "monitor": str,
    "backend": str,
    "online": str,
    "update_every": int,
}
#: options that may be "none" (their default: the task's, or none at all)
OPTIONAL = {"hidden", "activation", "cell", "layers", "optimizer", "lr", "batch_size",
            "max_steps", "truncate", "clip", "patience", "epochs", "online"}  # fmt: skip
_TABLES = ("name", "seeds", "fixed", "grid", "list")


class SpecError(ValueError):
    """A spec that cannot run: the message names the line it comes from."""


def canonical(value) -> str:
    """``value`` as canonical JSON (sorted keys): how settings and runs are keyed."""
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its setting (options and task parameters) and seed."""

    setting: dict
    seed: int

    @property
    def setting_key(self) -> str:
        """The setting as canonical JSON (sorted keys): a sweep's unit of summary."""
        return canonical(self.setting)

    @property
    def key(self) -> str:
        """Setting and seed as canonical JSON: a run's identity in the results."""
        return canonical({"setting": self.setting, "seed": self.seed})


@dataclass(frozen=True)
class Spec:
    """A checked sweep: its name and runs (settings in spec order, then seeds)."""

    name: str
    runs: tuple[Run, ...]
    settings: tuple[dict, ...]
    seeds: tuple[int, ...]


def load_spec(path: str | Path) -> Spec:
    """Read and check the TOML spec at ``path`` (:class:`SpecError` names the line)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read the spec ({err})") from None
    return parse_spec(text, default_name=path.stem, source=str(path))


def parse_spec(text: str, *, default_name: str = "sweep", source: str = "spec") -> Spec:
    """A :class:`Spec` from TOML ``text``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{source}: not valid TOML: {err}") from None
    lines = text.splitlines()

    def fail(key: str, message: str) -> SpecError:
        return SpecError(f"{source}, line {_line_of(lines, key)}: {message}")

    unknown = sorted(set(raw) - set(_TABLES))
    for key in unknown:
        if key in OPTIONS:
            raise fail(key, f"{key!r} must sit in [fixed], [grid] or [[list]]")
        raise fail(key, f"unknown top-level key {key!r}; a spec has {', '.join(_TABLES)}")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise fail("name", f"name must be 1-64 letters, digits, '_', '.' or '-', got {name!r}")
    seeds = _seeds(raw.get("seeds", 1), lambda m: fail("seeds", m))
    fixed = _table(raw, "fixed", lambda m: fail("fixed", m))
    grid = _table(raw, "grid", lambda m: fail("grid", m))
    listed = raw.get("list", [{}])
    if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
        raise fail("list", "list must be an array of tables ([[list]])")
    if not listed:
        raise fail("list", "[[list]] holds no settings")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise fail(key, f"grid option {key!r} must be a list of values, got {values!r}")
        if not values:
            raise fail(key, f"grid option {key!r} has no values: the grid is empty")
    names = list(grid)
    settings, seen = [], set()
    for entry in listed:
        for combo in itertools.product(*(grid[k] for k in names)):
            setting = {**fixed, **entry, **dict(zip(names, combo, strict=True))}
            setting = {k: _value(k, v, lambda k, m: fail(k, m)) for k, v in setting.items()}
            setting = {k: v for k, v in setting.items() if v is not None}
            key = canonical(setting)
            if key not in seen:
                seen.add(key)
                settings.append(setting)
    for setting in settings:
        check_setting(setting, lambda key, message: fail(key, message))
    runs = tuple(Run(s, seed) for s in settings for seed in seeds)
    return Spec(name, runs, tuple(settings), seeds)


def _line_of(lines: list[str], key: str) -> int:
    """The first line that sets ``key`` (or opens the table ``[key]``), 1-based."""
    pattern = re.compile(rf'^\s*(\[\[?\s*{re.escape(key)}\s*\]\]?|"?{re.escape(key)}"?\s*=)')
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return number
    return 1


def _seeds(value, fail) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise fail(f"seeds must be a positive count or a list of seeds, got {value}")
        return tuple(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        if len(set(value)) != len(value):
            raise fail("seeds repeat")
        return tuple(value)
    raise fail(f"seeds must be a positive count or a non-empty list of seeds >= 0, got {value!r}")


def _table(raw: dict, name: str, fail) -> dict:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise fail(f"[{name}] must be a table")
    return table


def _value(key: str, value, fail):
    """``value`` of option ``key`` as its type ("none": None); task parameters as given."""
    kind = OPTIONS.get(key)
    if kind is None:  # a task parameter: checked by the task
        if not isinstance(value, int | float | str | bool):
            raise fail(key, f"task parameter {key!r} must be a number, string or boolean")
        return value
    if value == "none" and key in OPTIONAL:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        none = ' (or "none")' if key in OPTIONAL else ""
        raise fail(key, f"{key} must be {kind.__name__}{none}, got {value!r}")
    return value


def check_setting(setting: dict, fail) -> None:
    """Refuse a setting that cannot train: an unknown task, task parameter, cell,
    activation or a bad number (``fail(key, message)`` makes the error)."""
    from rnnlab.kernels import get_backend
    from rnnlab.runs import model_config
    from rnnlab.tasks import TASKS, get_task
    from rnnlab.train import FitConfig

    name = setting.get("task", "shift")
    if name not in TASKS:
        raise fail("task", f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    params = task_params(setting)
    task = TASKS[name]
    for key in params:
        if key not in task.parameters():
            own = ", ".join(task.parameters())
            raise fail(key, f"unknown option {key!r}: not an `rnnlab train` option "
                            f"({', '.join(OPTIONS)}) nor a parameter of task {name!r} "
                            f"({own})")  # fmt: skip
    try:
        task = get_task(name, **params)
    except (TypeError, ValueError) as err:
        raise fail(next(iter(params), "task"), str(err)) from None
    try:
        model_config(task, hidden_size=setting.get("hidden"), activation=setting.get("activation"),
                     cell=setting.get("cell"), num_layers=setting.get("layers"))  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        named = [k for k in ("activation", "cell", "hidden", "layers") if k in setting]
        key = next((k for k in named if k in str(err)), named[0] if named else "task")
        raise fail(key, str(err).strip("'\"")) from None
    try:
        FitConfig(**fit_options(setting))
    except (TypeError, ValueError) as err:
        key = next((k for k in OPTIONS if k in str(err)), "fixed")
        raise fail(key, str(err)) from None
    if "dtype" in setting and setting["dtype"] not in ("float32", "float64"):
        raise fail("dtype", f"dtype must be float32 or float64, got {setting['dtype']!r}")
    if "init" in setting:
        from rnnlab.initializers import check_init

        try:
            check_init(setting["init"])
        except ValueError as err:
            raise fail("init", str(err)) from None
    if "optimizer" in setting:
        from rnnlab.optim import OPTIMIZERS

        if setting["optimizer"] not in OPTIMIZERS:
            raise fail("optimizer", f"unknown optimizer {setting['optimizer']!r}; choose one "
                                    f"of {', '.join(OPTIMIZERS)}")  # fmt: skip
    if "backend" in setting:
        try:
            get_backend(setting["backend"])
        except (ImportError, ValueError) as err:
            raise fail("backend", str(err)) from None
    _check_online(setting, name, fail)


def _check_online(setting: dict, task: str, fail) -> None:
    """An online rule (``rnnlab train --online``) needs a stream and a one-layer Elman net."""
    from rnnlab.online import check_online

    if setting.get("online") is None:
        if "update_every" in setting:
            raise fail("update_every", "update_every goes with online")
        return
    if setting.get("dtype", "float64") != "float64":
        raise fail("online", "online rules learn in float64; drop dtype")
    try:
        check_online(task, setting["online"])
    except ValueError as err:
        raise fail("online", str(err)) from None
    elman = setting.get("cell") in (None, "elman") and setting.get("layers") in (None, 1)
    if not elman and (
        setting["online"] not in ("rtrl", "snap1") or setting.get("cell") == "exprnn"
    ):
        raise fail("online", f"{setting['online']} learns one-layer Elman networks (rtrl and "
                             "snap1 also GRU, LSTM and stacked ones)")  # fmt: skip
    if setting.get("update_every", 1) < 1:
        raise fail("update_every", f"update_every must be positive, got {setting['update_every']}")


def task_params(setting: dict) -> dict:
    """The task parameters of a setting (every key that is not an option)."""
    return {k: v for k, v in setting.items() if k not in OPTIONS}


def fit_options(setting: dict) -> dict:
    """The :class:`~rnnlab.train.FitConfig` fields a setting gives (seed aside)."""
    names = ("optimizer", "lr", "batch_size", "max_steps", "truncate", "clip", "patience",
             "epochs", "warmup", "weight_decay", "monitor")  # fmt: skip
    return {k: setting[k] for k in names if k in setting}
