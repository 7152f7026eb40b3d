"""Running a sweep's runs: in this process, on local worker processes (joblib's loky,
reused from run to run), or on a Dask cluster. Whatever runs them, results come back
here, where they are written as each run finishes."""

from __future__ import annotations

import gc
import json
import os
import time
from collections import deque
from collections.abc import Iterator

from rnnlab.sweeps.spec import Run, fit_options, task_params


def run_one(setting: dict, seed: int, out: str | None, threads: int | None = None) -> dict:
    """Train one run (``rnnlab train`` with ``setting`` and ``seed``) and return its row
    (see :mod:`rnnlab.sweeps.store`). ``out``: the directory for its run directory, or
    None to save nothing; ``threads``: numba threads for this process."""
    import rnnlab
    from rnnlab.runs import train_online
    from rnnlab.tasks import get_task
    from rnnlab.train import FitConfig

    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    tick = time.perf_counter()
    task = get_task(setting.get("task", "shift"), **task_params(setting))
    if setting.get("online") is not None:  # a stream, an update every few steps
        result = train_online(task, setting["online"], hidden_size=setting.get("hidden"),
                              activation=setting.get("activation"), cell=setting.get("cell"),
                              num_layers=setting.get("layers"),
                              backend=setting.get("backend", "auto"),
                              init=setting.get("init", "default"), seed=seed, out=out,
                              plot=False, fit_config=FitConfig(seed=seed, **fit_options(setting)),
                              update_every=setting.get("update_every", 1))  # fmt: skip
    else:
        result = _trained(task, setting, seed, out)
    history = result.history
    # Ctrl-C: not a finished run, or one that ended as it came (the sweep stops; a rerun
    # redoes it)
    if history.interrupted or history.ctrl_c_at_end:
        raise KeyboardInterrupt
    curve = [[row["step"], row["val_sequence_accuracy"]] for row in history.rows]
    run = Run(setting, seed)
    return {
        "key": run.key,
        "setting": run.setting_key,
        "seed": seed,
        "solved": int(history.solved),
        "updates": history.steps,
        "seconds": history.seconds,
        "wall": time.perf_counter() - tick,
        "metrics": _json(result.metrics),
        "stop_reason": history.stop_reason,
        "run_dir": None if result.run_dir is None else str(result.run_dir),
        "curve": _json(curve),
        "version": rnnlab.__version__,
    }


def _trained(task, setting: dict, seed: int, out: str | None):
    """:func:`rnnlab.runs.train_task` with a setting's options."""
    from rnnlab.runs import train_task
    from rnnlab.train import FitConfig

    return train_task(
        task,
        hidden_size=setting.get("hidden"),
        activation=setting.get("activation"),
        cell=setting.get("cell"),
        num_layers=setting.get("layers"),
        init=setting.get("init", "default"),
        dtype=setting.get("dtype", "float64"),
        seed=seed,
        backend=setting.get("backend", "auto"),
        out=out,
        plot=False,
        fit_config=FitConfig(seed=seed, **fit_options(setting)),
    )


def _json(value) -> str:
    from rnnlab.runs import strict_json

    return json.dumps(strict_json(value), allow_nan=False)  # (keys in order: test sets)


class WorkerDied(RuntimeError):
    """A worker process died during a run (killed, out of memory): the sweep stops."""


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: each worker process runs one run at a time on one core: BLAS and OpenMP pools of
#: one thread (two processes with two spinning BLAS threads each on two cores made an
#: LSTM run at H = 64 25x slower)
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}  # fmt: skip


def run_local(runs: list[Run], out: str | None, jobs: int) -> Iterator[dict]:
    """Rows of ``runs`` as they finish: in this process for one job, else on ``jobs``
    worker processes, each fed its next run the moment it finishes one. The workers are
    forked from this process where that is safe (:func:`fork_is_safe`): they start in
    milliseconds with its modules and kernels loaded; elsewhere they are joblib's loky
    processes (started once, reused by later sweeps), which import everything anew. The
    workers start now, before the caller starts a thread (a progress bar's)."""
    if jobs == 1 or len(runs) == 1:
        return (run_one(run.setting, run.seed, out) for run in runs)
    if fork_is_safe():
        return _run_forked(runs, out, min(jobs, len(runs)))
    return _run_loky(runs, out, jobs)


def fork_is_safe() -> bool:
    """Whether worker processes may be forked from this one: on Linux, from a process
    with no other Python thread and no OpenMP pool of numba's running (neither survives a
    fork); numba's other threading layers are fork-safe."""
    import sys
    import threading

    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    try:
        import numba

        return numba.threading_layer() != "omp"
    except ValueError:  # no parallel kernel has run: no pool yet
        return True
    except ImportError:
        return True


def _run_forked(runs: list[Run], out: str | None, jobs: int) -> Iterator[dict]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:  # numba's compiler target, loaded once here rather than in every worker
        from rnnlab.kernels import compiled

        compiled.load()
    except ImportError:
        pass
    gc.freeze()  # (the workers' collections leave this process's objects, and pages, alone)
    try:
        fork = multiprocessing.get_context("fork")
        executor = ProcessPoolExecutor(jobs, mp_context=fork, initializer=_forked_worker,
                                       initargs=(os.getpid(),))  # fmt: skip
        executor.submit(int).result()  # (forks every worker now, from this thread alone)
    finally:
        gc.unfreeze()
    stop = lambda: _stop(executor)  # noqa: E731
    return _Rows(_executor_rows(executor, runs, out, jobs, stop), stop)


class _Rows:
    """Rows as they come, and ``close()`` stops their workers even before the first."""

    def __init__(self, rows: Iterator[dict], stop):
        self._rows, self._stop = rows, stop

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return next(self._rows)

    def close(self) -> None:
        self._rows.close()
        self._stop()


def _stop(executor) -> None:
    """Stop a forked executor's workers at once (a run in progress is dropped); again:
    nothing."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()  # (ProcessPoolExecutor has no public way before Python 3.14)
    executor.shutdown(wait=True, cancel_futures=True)


def _forked_worker(parent: int) -> None:
    """A forked worker: it dies with the sweep's process, even one killed with SIGKILL
    (else it would wait for work forever); Ctrl-C is the sweep's to handle (it stops the
    workers); its one run at a time gets one BLAS thread (see :data:`WORKER_ENV`)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # (gone before the line above)
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from rnnlab.kernels.compiled import blas

        blas.limit(1)  # (this thread's setting: the worker computes on it alone)
    except ImportError:
        pass


#: Linux's prctl option: the signal a process gets when its parent dies
_PR_SET_PDEATHSIG = 1


def _run_loky(runs: list[Run], out: str | None, jobs: int) -> Iterator[dict]:
    from joblib.externals.loky import get_reusable_executor

    executor = get_reusable_executor(max_workers=jobs, env=WORKER_ENV)
    return _executor_rows(executor, runs, out, jobs,
                          lambda: executor.shutdown(wait=False, kill_workers=True))  # fmt: skip


def _executor_rows(executor, runs: list[Run], out: str | None, jobs: int,
                   stop) -> Iterator[dict]:  # fmt: skip
    """Rows of ``runs`` on ``executor``'s ``jobs`` workers as they finish; ``stop()``
    stops the workers when the rows stop early (Ctrl-C, an error)."""
    import queue
    import threading
    from concurrent.futures.process import BrokenProcessPool

    pending, lock, done = deque(runs), threading.Lock(), queue.Queue()
    running = set()

    def submit() -> None:  # (under ``lock``) each worker: one run and one queued
        while pending and len(running) < 2 * jobs:
            run = pending.popleft()
            future = executor.submit(run_one, run.setting, run.seed, out, 1)
            running.add(future)
            future.add_done_callback(finish)

    def finish(future) -> None:  # (on the executor's thread) the next run, at once
        with lock:
            running.discard(future)
            done.put(future)
            submit()

    finished = False
    try:
        with lock:
            submit()
        for _ in range(len(runs)):
            while True:
                try:  # (a timeout: Ctrl-C is seen at once)
                    future = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    continue
            try:
                row = future.result()
            except BrokenProcessPool:
                raise WorkerDied("a worker process died in a run (killed, or out of memory); "
                                 "the finished runs are saved: run the sweep again to "
                                 "continue") from None  # fmt: skip
            yield row
        finished = True
    finally:
        if not finished:  # stopped (Ctrl-C, an error): drop what is queued, stop the workers
            with lock:
                pending.clear()
                for future in list(running):
                    future.cancel()
            stop()


def run_dask(runs: list[Run], out: str | None, scheduler: str | None, jobs: int
             ) -> Iterator[dict]:  # fmt: skip
    """Rows of ``runs`` as they finish on the Dask cluster at ``scheduler``
    (``tcp://host:port``), or on a local cluster of ``jobs`` worker processes when
    ``scheduler`` is None."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
    try:
        with Client(cluster if cluster is not None else scheduler, timeout="30s") as client:
            futures = [client.submit(run_one, r.setting, r.seed, out, 1, pure=False)
                       for r in runs]  # fmt: skip
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                client.cancel(futures)
    except OSError as err:
        raise ValueError(f"cannot reach the Dask scheduler {scheduler}: {err}") from None
    finally:
        if cluster is not None:
            cluster.close()


class Progress:
    """A rich progress bar for a sweep: runs done, solved so far, time left."""

    def __init__(self, total: int, done: int, solved: int, enabled: bool):
        self.solved, self._bar = solved, None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("runs, {task.fields[solved]} solved"),
                            TimeElapsedColumn(), TextColumn("elapsed,"), TimeRemainingColumn(),
                            TextColumn("left"),
                            transient=False)  # fmt: skip
            self._task = self._bar.add_task("sweep", total=total, completed=done, solved=solved)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def advance(self, solved: bool) -> None:
        self.solved += solved
        if self._bar is not None:
            self._bar.update(self._task, advance=1, solved=self.solved)
