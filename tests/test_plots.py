"""Training curves: drawn in this process, or by a worker that imported matplotlib early."""

from __future__ import annotations

import subprocess
import sys

from rnnlab import plots

ROWS = [
    {"step": s, "train_loss": 1.0 / s, "val_loss": 1.2 / s, "val_step_accuracy": s / 40,
     "val_sequence_accuracy": s / 50}
    for s in (10, 20, 30, 40)
]  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_history_writes_a_png(tmp_path):
    path = plots.plot_history(ROWS, tmp_path / "curves.png", title="t")
    assert path.read_bytes().startswith(PNG)


def test_worker_draws_the_same_file_in_another_process(tmp_path):
    with plots.PlotWorker() as worker:
        process = worker._process
        path = worker.plot(ROWS, tmp_path / "curves.png", title="t")
    assert process.returncode == 0  # it was the worker that drew
    assert path.read_bytes().startswith(PNG)


def _draw_here_fails(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("drawn in this process")

    monkeypatch.setattr(plots, "plot_history", fail)


def test_a_started_worker_draws_while_the_caller_goes_on(tmp_path, monkeypatch):
    rows = [*ROWS, dict(ROWS[-1], step=50, train_loss=float("nan"))]  # (NaN: still equal)
    _draw_here_fails(monkeypatch)
    with plots.PlotWorker() as worker:
        worker.start(rows, title="t")  # returns before the drawing is done
        worker.start(ROWS[:1], title="other")  # once only: this one is not drawn
        path = worker.plot(rows, tmp_path / "curves.png", title="t")
    assert path.read_bytes() == plots.history_png(rows, title="t")


def test_a_worker_started_on_other_rows_is_not_used_for_these(tmp_path):
    with plots.PlotWorker() as worker:
        worker.start(ROWS, title="t")
        other = worker.plot(ROWS[:2], tmp_path / "other.png", title="t").read_bytes()
    assert other == plots.history_png(ROWS[:2], title="t") != plots.history_png(ROWS, title="t")


def test_a_failed_worker_falls_back_to_drawing_here(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", sys.executable + "-missing")  # cannot start
    worker = plots.PlotWorker()
    assert worker._process is None
    assert worker.plot(ROWS, tmp_path / "a.png", title="t").read_bytes().startswith(PNG)
    monkeypatch.undo()
    broken = plots.PlotWorker()
    broken._process.kill()  # dies before the request
    broken._process.wait()
    assert broken.plot(ROWS, tmp_path / "b.png", title="t").read_bytes().startswith(PNG)


def test_an_unused_worker_is_stopped():
    worker = plots.PlotWorker()
    process = worker._process
    worker.close()
    assert process.poll() is not None
    worker.close()  # twice is fine


def test_worker_with_no_request_exits_cleanly():
    done = subprocess.run([sys.executable, "-m", "rnnlab.plots"], input=b"", timeout=60,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
