"""Sweeps: specs checked up front, runs equal to ``fit`` run for run on every executor,
results kept across kills and reruns, summaries and their intervals."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rnnlab
from rnnlab.runs import train_task
from rnnlab.sweeps import SpecError, execute, load_spec, parse_spec, results_path, summarize
from rnnlab.sweeps.summary import plot, to_csv, to_markdown, wilson
from rnnlab.train import FitConfig

TINY = """
name = "tiny"
seeds = 2

[fixed]
task = "shift"
max_steps = 60

[grid]
truncate = ["none", 1]
"""
#: what a row must equal between executors and reruns (seconds are measurements)
SAME = ("key", "setting", "seed", "solved", "updates", "metrics", "stop_reason", "curve")


def same(rows):
    return sorted(tuple(str(r[k]) for k in SAME) for r in rows)


def test_spec_expands_grid_list_and_seeds():
    spec = parse_spec("""
        seeds = [3, 5]
        [fixed]
        task = "copy"
        delay = 7
        [grid]
        lr = [0.01, 0.02]
        [[list]]
        cell = "gru"
        [[list]]
        cell = "elman"
        truncate = "none"
    """)
    assert spec.seeds == (3, 5)
    assert [s["cell"] for s in spec.settings] == ["gru", "gru", "elman", "elman"]
    assert all(s["delay"] == 7 and s["task"] == "copy" for s in spec.settings)
    assert "truncate" not in spec.settings[2]  # "none": the option's default
    assert len(spec.runs) == 8 and len({r.key for r in spec.runs}) == 8
    assert parse_spec("seeds = 3").runs[2].setting == {}  # shift, all defaults


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('[fixed]\ntask = "shift"\nhiden = 3', 3, "unknown option 'hiden'"),
        ('[grid]\nlr = [0.1, "fast"]', 2, "lr must be float"),
        ("[grid]\nlr = []", 2, "the grid is empty"),
        ('[fixed]\ntask = "copy"\n\ndealy = 3', 4, "nor a parameter of task 'copy'"),
        ('[fixed]\ntask = "copy"\ndelay = 0', 3, "delay must be at least 1"),
        ("seeds = 0", 1, "seeds must be"),
        ('[fixed]\ncell = "gruu"', 2, "unknown cell"),
        ("[fixed]\ntruncate = 0", 2, "truncate must be a positive integer"),
        ('task = "shift"', 1, "must sit in [fixed]"),
        ('[fixed]\noptimizer = "adamw"', 2, "unknown optimizer"),
        ('[fixed]\ntask = "shfit"', 2, "unknown task"),
        ("[[list]]\nhidden = -1", 2, "hidden"),
        ('[fixed]\ntask = "adding"\n[grid]\ntrain_lengths = [50, 1]', 4, "at least 2"),
        ('[fixed]\ntask = "parity"\ntest_lengths = "9-x"', 3, "a length or LO-HI"),
        ('[grid]\ninit = ["irnn", "he"]', 2, "unknown init 'he'"),
        ('[grid]\nonline = ["rtrl", "bptt"]', 2, "unknown online rule 'bptt'"),
        ('[fixed]\ntask = "copy"\nonline = "rtrl"', 3, "'copy' has no stream"),
        ('[fixed]\nonline = "uoro"\ncell = "gru"', 2, "uoro learns one-layer Elman"),
        ("[fixed]\nupdate_every = 4", 2, "update_every goes with online"),
        ('[fixed]\nonline = "rtrl"\ndtype = "float32"', 2, "online rules learn in float64"),
    ],
)
def test_bad_specs_name_their_line(body, line, words):
    with pytest.raises(SpecError) as err:
        parse_spec(body, source="spec.toml")
    assert f"spec.toml, line {line}:" in str(err.value)
    assert words in str(err.value)


def test_a_spec_sets_the_tasks_lengths_and_set_sizes(tmp_path):
    spec = parse_spec('name = "sized"\nseeds = 1\n[fixed]\ntask = "parity"\nmax_steps = 2\n'
                      'train_lengths = "6-7"\ntest_lengths = 40\nn_test = 12\n')  # fmt: skip
    (row,) = rnnlab.sweep(spec, out=tmp_path, jobs=1, save=False)
    assert set(row["metrics"]) == {"lengths 6-7", "length 40"}
    assert row["metrics"]["lengths 6-7"]["n"] == 12


def test_a_sweep_varies_the_online_rule_and_a_run_is_train_online(tmp_path):
    """``online`` in a spec learns the task's stream with that rule, as
    ``rnnlab train shift --online RULE`` does; "none" trains by BPTT as usual."""
    from rnnlab.runs import train_online
    from rnnlab.tasks import get_task
    from rnnlab.train import FitConfig

    spec = parse_spec('seeds = 1\n[fixed]\nmax_steps = 300\n[grid]\n'
                      'online = ["rtrl", "tbptt", "none"]\n')  # fmt: skip
    rows = {r["setting"].get("online"): r for r in rnnlab.sweep(spec, out=tmp_path, jobs=1,
                                                                save=False)}  # fmt: skip
    assert set(rows) == {"rtrl", "tbptt", None}
    alone = train_online(get_task("shift"), "rtrl", seed=0, out=None, plot=False,
                         fit_config=FitConfig(seed=0, max_steps=300))  # fmt: skip
    assert rows["rtrl"]["updates"] == alone.history.steps
    for label, metrics in alone.metrics.items():
        assert rows["rtrl"]["metrics"][label] == pytest.approx(metrics, rel=1e-12)
    assert rows["tbptt"]["metrics"] != rows["rtrl"]["metrics"]
    assert rows[None]["solved"]  # (BPTT solves the shift task within 300 updates)


def test_sweep_equals_fit_run_for_run(tmp_path):
    """Every run is `train_task` with its setting and seed: same steps, same metrics,
    in this process and on two worker processes."""
    spec = parse_spec(TINY)
    here = rnnlab.sweep(spec, out=tmp_path / "one", jobs=1, save=False)
    assert len(here) == 4 and len({r["key"] for r in here}) == 4
    for row in here:
        truncate = row["setting"].get("truncate")
        serial = train_task("shift", seed=row["seed"], out=None, plot=False,
                            fit_config=FitConfig(seed=row["seed"], max_steps=60,
                                                 truncate=truncate))  # fmt: skip
        assert row["updates"] == serial.history.steps
        assert row["solved"] == serial.history.solved
        assert row["metrics"] == serial.metrics
        assert row["run_dir"] is None
    workers = rnnlab.sweep(spec, out=tmp_path / "two", jobs=2, save=True)
    assert same(workers) == same(here)
    assert all(Path(r["run_dir"], "model.safetensors").is_file() for r in workers)


def test_forked_workers_from_the_cli_and_loky_workers_give_the_same_runs(tmp_path, monkeypatch):
    """A fresh ``rnnlab sweep --jobs 2`` forks its workers; a process whose numba
    threads or other Python threads run uses loky's: both give the runs of one process."""
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    assert _cli("sweep", str(spec), "--out", str(tmp_path / "fork"), "--jobs", "2",
                "--no-plots").returncode == 0  # fmt: skip
    forked = rnnlab.sweep(spec, out=tmp_path / "fork", jobs=1)  # (read back: all done)
    here = rnnlab.sweep(spec, out=tmp_path / "here", jobs=1, save=False)
    assert same(forked) == same(here)
    assert all(Path(r["run_dir"], "model.safetensors").is_file() for r in forked)
    monkeypatch.setattr(execute, "fork_is_safe", lambda: False)
    assert same(rnnlab.sweep(spec, out=tmp_path / "loky", jobs=2, save=False)) == same(here)


def test_workers_are_forked_only_where_that_is_safe():
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not execute.fork_is_safe()  # (a thread would be copied mid-work)
    finally:
        stop.set()
        other.join()
    code = ("import numba; from rnnlab.sweeps.execute import fork_is_safe; a = fork_is_safe()\n"
            "numba.config.THREADING_LAYER = 'omp'\n"
            "from numba.np.ufunc import parallel; parallel._launch_threads()\n"
            "print(a, fork_is_safe())")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    if result.returncode != 0:  # (no OpenMP here)
        assert "omp" in result.stderr.lower() or "threading layer" in result.stderr.lower()
        pytest.skip("numba's OpenMP layer is not available")
    assert result.stdout.split() == ["True", "False"]


def test_a_rerun_skips_finished_runs_and_a_grown_spec_runs_only_the_new(tmp_path):
    spec = parse_spec(TINY)
    first = rnnlab.sweep(spec, out=tmp_path, jobs=1, save=False)
    ran = []
    again = rnnlab.sweep(spec, out=tmp_path, jobs=1, save=False, on_run=ran.append)
    assert ran == [] and same(again) == same(first)
    grown = parse_spec(TINY.replace("seeds = 2", "seeds = 3"))
    rows = rnnlab.sweep(grown, out=tmp_path, jobs=1, save=False, on_run=ran.append)
    assert sorted(r["seed"] for r in ran) == [2, 2] and len(rows) == 6


def test_wilson_interval():
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] == pytest.approx(0.1611, abs=1e-4)
    assert wilson(20, 20)[0] == pytest.approx(0.8389, abs=1e-4) and wilson(20, 20)[1] == 1.0
    low, high = wilson(2, 20)
    assert low == pytest.approx(0.0279, abs=1e-4) and high == pytest.approx(0.3010, abs=1e-4)


def test_summary_tables_and_plots(tmp_path):
    rows = rnnlab.sweep(parse_spec(TINY), out=tmp_path, jobs=1, save=False)
    summaries = summarize(results_path(parse_spec(TINY), tmp_path))
    assert summaries == rnnlab.sweep.summarize(rows)
    exact, truncated = summaries
    assert exact["label"] == "truncate=none" and truncated["label"] == "truncate=1"
    assert exact["runs"] == 2 and exact["solved"] == sum(
        r["solved"] for r in rows if "truncate" not in r["setting"]
    )
    steps = sorted(r["updates"] for r in rows if r["solved"] and "truncate" not in r["setting"])
    if steps:
        assert exact["updates"][0] == pytest.approx(sum(steps) / len(steps))  # median of 2
    markdown = to_markdown(summaries).splitlines()
    assert markdown[0].startswith("| setting | runs | solved | 95% interval")
    assert markdown[2].startswith(f"| truncate=none | 2 | {exact['solved']}/2 |")
    assert to_csv(summaries).count("\n") == 3
    for path in plot(summaries, tmp_path / "plots", "tiny"):
        assert path.stat().st_size > 1000


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "rnnlab", *args], capture_output=True,
                          text=True, timeout=600, **kw)  # fmt: skip


def test_cli_bad_spec_is_one_line_and_exit_2(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('seeds = 2\n[fixed]\ntask = "copy"\ndealy = 3\n')
    result = _cli("sweep", str(spec), "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "bad.toml, line 4" in result.stderr
    assert not (tmp_path / "bad").exists()  # refused before any run
    result = _cli("sweep", str(tmp_path / "none.toml"))
    assert result.returncode == 2 and "cannot read the spec" in result.stderr


def test_cli_sweep_and_summary(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    result = _cli("sweep", str(spec), "--out", str(tmp_path), "--jobs", "1", "--no-save",
                  "--markdown", str(tmp_path / "t.md"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tiny: 4 runs" in result.stdout
    assert (tmp_path / "t.md").read_text().startswith("| setting |")
    assert (tmp_path / "tiny" / "curves.png").is_file()
    summary = _cli("sweep", str(spec), "--out", str(tmp_path), "--summary", "--csv",
                   str(tmp_path / "t.csv"), "--no-plots")  # fmt: skip
    assert summary.returncode == 0 and "runs" not in summary.stdout.split("\n")[0]
    assert (tmp_path / "t.csv").read_text().count("\n") == 3


def test_killed_sweeps_lose_no_run_and_double_none(tmp_path):
    """SIGKILL at random moments, ten times, then a rerun: every run once, the file sound."""
    spec = tmp_path / "kill.toml"
    spec.write_text('name = "kill"\nseeds = 8\n[fixed]\ntask = "shift"\nmax_steps = 300\n'
                    'truncate = 1\n')  # fmt: skip
    db = tmp_path / "kill" / "results.sqlite"
    command = [sys.executable, "-m", "rnnlab", "sweep", str(spec), "--out", str(tmp_path),
               "--jobs", "1", "--no-plots", "--quiet"]  # fmt: skip
    chance = random.Random(0)
    counts = []
    for _ in range(10):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if db.exists():
            connection = sqlite3.connect(db)
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            keys = [k for (k,) in connection.execute("SELECT key FROM runs")]
            connection.close()
            assert len(keys) == len(set(keys))
            counts.append(len(keys))
    assert counts == sorted(counts)  # nothing recorded is ever lost
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    connection = sqlite3.connect(db)
    keys = [k for (k,) in connection.execute("SELECT key FROM runs")]
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    connection.close()
    assert sorted(keys) == sorted(r.key for r in load_spec(spec).runs)


def _recorded(db: Path) -> int:
    """Runs recorded in a results file so far (0 while it is being made)."""
    if not db.exists():  # (connecting would make it)
        return 0
    try:
        return sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # (not there yet, or its table not yet made)
        return 0


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:  # (field 4: the parent)
                found.append(int(entry.name))
    return found


def _group(pgid: int) -> list[int]:
    """The processes of a process group (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux")
def test_workers_die_with_a_killed_sweep(tmp_path):
    """SIGKILL to the sweep's process: its workers go at once, mid-run, silently."""
    spec = tmp_path / "long.toml"
    # runs that last (an Elman net does not learn copy at delay 30): both workers busy,
    # with a warm kernel cache or a cold one
    spec.write_text('name = "long"\nseeds = 4\n[fixed]\ntask = "copy"\ndelay = 30\n'
                    'max_steps = 100000\n')  # fmt: skip
    command = [sys.executable, "-m", "rnnlab", "sweep", str(spec), "--out", str(tmp_path),
               "--jobs", "2", "--no-plots", "--no-save", "--quiet"]  # fmt: skip
    with open(tmp_path / "err.txt", "w") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)  # fmt: skip
        group = []
        for _ in range(600):  # until both workers run
            time.sleep(0.1)
            group = _group(process.pid)
            if len(group) == 3:
                break
        assert len(group) == 3
        time.sleep(1.0)
        process.kill()
        process.wait()
        for _ in range(20):
            time.sleep(0.1)
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
        else:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError("worker processes outlived the killed sweep")
    assert "Traceback" not in (tmp_path / "err.txt").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux")
def test_a_worker_that_dies_stops_the_sweep_with_one_line(tmp_path):
    """A worker killed mid-run (as the out-of-memory killer would): the sweep says so and
    exits; it does not wait for the lost run forever."""
    spec = tmp_path / "long.toml"
    # runs that last (an Elman net does not learn copy at delay 30): both workers busy,
    # with a warm kernel cache or a cold one
    spec.write_text('name = "long"\nseeds = 4\n[fixed]\ntask = "copy"\ndelay = 30\n'
                    'max_steps = 100000\n')  # fmt: skip
    command = [sys.executable, "-m", "rnnlab", "sweep", str(spec), "--out", str(tmp_path),
               "--jobs", "2", "--no-plots", "--no-save", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    killed = False
    try:
        for _ in range(600):  # a worker: a child that stays (not a passing helper process)
            time.sleep(0.2)
            workers = set(_children(process.pid))
            time.sleep(0.5)
            steady = sorted(workers & set(_children(process.pid)))
            if len(steady) == 2:
                try:
                    os.kill(steady[0], signal.SIGKILL)
                    killed = True
                    break
                except ProcessLookupError:
                    continue
        _, err = process.communicate(timeout=60)
    finally:  # (whatever happened above: nothing of it left running)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert killed
    assert process.returncode == 1
    assert "a worker process died in a run" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_same_results_on_a_dask_cluster(tmp_path):
    """A scheduler and two workers started here, as a user would: identical runs."""
    pytest.importorskip("distributed")
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command is not installed")
    address_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [str(dask), "scheduler", "--scheduler-file", str(address_file), "--port", "0",
                 "--no-dashboard"]  # fmt: skip
    processes = [subprocess.Popen(scheduler, **quiet)]
    try:
        for _ in range(600):
            if address_file.exists() and address_file.stat().st_size > 0:
                break
            time.sleep(0.1)
        import json

        address = json.loads(address_file.read_text())["address"]
        for _ in range(2):
            worker = [str(dask), "worker", address, "--nworkers", "1", "--nthreads", "1",
                      "--no-dashboard"]  # fmt: skip
            processes.append(subprocess.Popen(worker, **quiet))
        spec = parse_spec(TINY)
        on_cluster = rnnlab.sweep(spec, out=tmp_path / "dask", scheduler=address, save=False)
        here = rnnlab.sweep(spec, out=tmp_path / "here", jobs=1, save=False)
        assert same(on_cluster) == same(here)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_readme_spec_and_the_benchmark_specs_are_valid():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_spec(example)
    assert len(spec.settings) == 6 and len(spec.runs) == 18
    for path in sorted((Path(__file__).parent.parent / "benchmarks" / "sweeps").glob("*.toml")):
        assert load_spec(path).runs, path


#: ``rnnlab ARGS...`` with Python's own SIGINT handler, as an interactive process has it: a
#: runner started in the background (``make test &`` in a script) hands its children
#: SIGINT ignored, and the sweep then ran through all its runs and exited 0
INTERRUPTIBLE_CLI = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from rnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_keeps_finished_runs_and_says_how_to_continue(tmp_path, jobs):
    """Ctrl-C as a terminal sends it (to the whole process group, workers included)."""
    spec = tmp_path / "long.toml"
    spec.write_text('name = "long"\nseeds = 30\n[fixed]\ntask = "shift"\ntruncate = 1\n')
    arguments = ["sweep", str(spec), "--out", str(tmp_path), "--jobs", str(jobs), "--no-plots",
                 "--no-save"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE_CLI, *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    db = tmp_path / "long" / "results.sqlite"
    deadline = time.monotonic() + 600  # (run alone on a cold cache, it compiles for minutes)
    while time.monotonic() < deadline and not _recorded(db):  # until a run or two are recorded
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "every finished run is saved" in err and "continue with: rnnlab sweep" in err
    assert "Traceback" not in err
    kept = sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0]
    assert 1 <= kept < 60
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker left running
        os.killpg(process.pid, 0)
