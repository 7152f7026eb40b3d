"""Training curves as a PNG (matplotlib, no screen needed).

Importing matplotlib takes about half a second, longer than training a small model,
so :class:`PlotWorker` can do it in a second process while the caller trains, and
draw while the caller tests the model (``python -m rnnlab.plots`` is that process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import weakref
from io import BytesIO
from pathlib import Path

from rnnlab.io import atomic_write_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plot_history(rows: list[dict], path: Path, *, title: str) -> Path:
    """Loss (log scale) and held-out accuracy against training steps, side by side."""
    atomic_write_bytes(path, history_png(rows, title=title))
    return path


def history_png(rows: list[dict], *, title: str) -> bytes:
    """The bytes of :func:`plot_history`'s PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(9, 3.6))
    # fixed margins: an automatic layout measures every label first (~0.3 s of a 2 s run)
    fig.subplots_adjust(left=0.1, right=0.985, bottom=0.14, top=0.8, wspace=0.25)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(steps, [r["train_loss"] for r in rows], label="training (mean since last eval)")
    loss_ax.plot(steps, [r["val_loss"] for r in rows], label="held-out")
    loss_ax.set(xlabel="update step", ylabel="loss per scored output", yscale="log", title="loss")
    # plain labels (0.1, 1e-05): the default ones are math text, whose first use costs
    # about 0.4 s, longer than training a small model
    loss_ax.yaxis.set_major_formatter(LogFormatter())
    loss_ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    loss_ax.legend()
    acc_ax.plot(steps, [r["val_step_accuracy"] for r in rows], label="bits / steps")
    acc_ax.plot(steps, [r["val_sequence_accuracy"] for r in rows], label="whole sequences")
    acc_ax.set(xlabel="update step", ylabel="held-out accuracy", ylim=(-0.02, 1.02))
    acc_ax.set_title("accuracy")
    acc_ax.legend(loc="lower right")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    png = BytesIO()
    fig.savefig(png, format="png", dpi=110)
    return png.getvalue()


class PlotWorker:
    """A process that imports matplotlib now and draws :func:`plot_history` later.

    >>> worker = PlotWorker()          # starts importing, in parallel with the caller
    >>> worker.start(rows, title="shift")  # doctest: +SKIP
    >>> worker.plot(rows, path, title="shift")  # doctest: +SKIP

    ``start`` hands the worker its drawing and returns at once; ``plot`` returns once
    the file is written (it starts the drawing itself if ``start`` was not called with
    the same rows and title). If the worker failed for any reason ``plot`` draws in
    this process instead, so a file is always written. ``close`` (or leaving a
    ``with`` block) stops a worker that was never asked to draw.
    """

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self._request = None  # what was handed to the worker
        self._reply = None  # the thread that waits for its PNG, and what came back
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "rnnlab.plots"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        except OSError:
            self._process = None
        else:  # a worker nobody closes is stopped when this object goes away
            self._finalizer = weakref.finalize(self, _stop, self._process)

    def start(self, rows: list[dict], *, title: str) -> None:
        """Hand the worker its drawing and return (once; later calls do nothing)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            self._request = _request(rows, title)
        except (TypeError, ValueError):
            _stop(process)
            return
        reply = {}

        def wait():  # a thread: the request can outgrow the pipe before the worker reads
            try:
                reply["png"], _ = process.communicate(self._request, timeout=self.timeout)
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            finally:
                _stop(process)

        self._reply = (threading.Thread(target=wait, daemon=True), reply, process)
        self._reply[0].start()

    def plot(self, rows: list[dict], path: Path, *, title: str) -> Path:
        if self._request is None:
            self.start(rows, title=title)
        if self._reply is not None and self._request == _request(rows, title):
            thread, reply, process = self._reply
            thread.join()
            png = reply.get("png")
            if process.returncode == 0 and png and png.startswith(PNG_SIGNATURE):
                atomic_write_bytes(path, png)
                return path
        return plot_history(rows, path, title=title)  # drawn here instead

    def close(self) -> None:
        if self._process is not None:
            _stop(self._process)
            self._process = None
        if self._reply is not None:
            thread, _, process = self._reply
            if process.poll() is None:
                process.kill()
            thread.join()

    def __enter__(self) -> PlotWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _request(rows: list[dict], title: str) -> bytes:
    return json.dumps({"rows": rows, "title": title}).encode()


def _stop(process: subprocess.Popen) -> None:
    """Kill ``process`` if it still runs, reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    try:
        process.communicate(timeout=10)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass


def _serve() -> None:
    """The worker's side: import, then draw the one request that arrives on stdin and
    write its PNG to stdout."""
    import matplotlib.figure  # noqa: F401  the slow part, done before the request comes

    request = json.loads(sys.stdin.buffer.read() or b"null")
    if request is not None:
        sys.stdout.buffer.write(history_png(request["rows"], title=request["title"]))
    sys.stdout.flush()
    os._exit(0)  # (the caller waits for the exit: skip the interpreter's teardown)


if __name__ == "__main__":
    _serve()
