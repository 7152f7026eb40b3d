"""Sweeps: many seeds and settings of ``rnnlab train`` in one command.

    >>> rows = rnnlab.sweep("benchmarks/sweeps/shift_seeds.toml", jobs=2)  # doctest: +SKIP
    >>> rnnlab.sweep.summarize("sweeps/shift_seeds/results.sqlite")  # doctest: +SKIP

A spec (:mod:`.spec`) lists settings x seeds; each run is one :func:`rnnlab.fit` (through
:func:`rnnlab.runs.train_task`), run here, on local worker processes or on a Dask
cluster (:mod:`.execute`); results go to one SQLite file per sweep as each run finishes
(:mod:`.store`), and a rerun skips what is there; :mod:`.summary` sums them up.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from rnnlab.sweeps import store
from rnnlab.sweeps.execute import Progress, default_jobs, run_dask, run_local
from rnnlab.sweeps.spec import Run, Spec, SpecError, load_spec, parse_spec
from rnnlab.sweeps.summary import summarize as summarize_rows


def results_path(spec: Spec, out: str | Path = "sweeps") -> Path:
    """Where a sweep keeps its results: ``OUT/NAME/results.sqlite``."""
    return Path(out) / spec.name / "results.sqlite"


def sweep(spec: str | Path | Spec, *, out: str | Path = "sweeps", jobs: int | None = None,
          scheduler: str | None = None, cluster: bool = False, save: bool = True,
          progress: bool = False, on_run=None) -> list[dict]:  # fmt: skip
    """Run every run of ``spec`` (a TOML file or a :class:`Spec`) not yet in its results
    and return all its rows (see :func:`.store.read`).

    ``out``: the sweep's folder is ``OUT/NAME`` (results.sqlite, and runs/ unless
    ``save=False``); ``jobs``: worker processes (default: every core; 1 runs here);
    ``scheduler``: a Dask scheduler's address (``tcp://host:port``) to run on instead;
    ``cluster``: a Dask cluster of ``jobs`` workers on this machine; ``on_run(row)``:
    called in this process after each run is recorded. Interrupted (Ctrl-C, or killed),
    it keeps every finished run: rerun the same call to continue.
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs}")
    if scheduler is not None and cluster:
        raise ValueError("give a scheduler (--scheduler) or a local cluster (--cluster), not both")
    path = results_path(spec, out)
    connection = store.connect(path)
    try:
        done = store.finished(connection)
        todo = [run for run in spec.runs if run.key not in done]
        solved = sum(done.get(run.key, False) for run in spec.runs)
        runs_dir = str(path.parent / "runs") if save else None
        if not todo:
            rows = (row for row in ())  # (closed like the others)
        elif scheduler is not None or cluster:
            rows = run_dask(todo, runs_dir, scheduler, jobs)
        else:  # (its workers start now, before the progress bar's thread)
            rows = run_local(todo, runs_dir, jobs)
        bar = Progress(len(spec.runs), len(spec.runs) - len(todo), solved, progress)
        with closing(rows), bar:
            for row in rows:
                store.write(connection, row)
                bar.advance(bool(row["solved"]))
                if on_run is not None:
                    on_run(row)
    finally:
        connection.close()
    keys = {run.key for run in spec.runs}
    return [row for row in store.read(path) if row["key"] in keys]


def summarize(results: str | Path | list[dict]) -> list[dict]:
    """Per setting: runs, solved, 95% Wilson interval, updates and seconds (median,
    quartiles), held-out accuracies (see :mod:`.summary`). ``results``: a results file,
    or rows."""
    rows = store.read(results) if isinstance(results, str | Path) else results
    return summarize_rows(rows)


sweep.summarize = summarize  # rnnlab.sweep.summarize(...)

__all__ = ["Run", "Spec", "SpecError", "load_spec", "parse_spec", "results_path", "summarize",
           "sweep"]  # fmt: skip
