"""Training curves as a PNG (matplotlib, no screen needed).

Importing matplotlib takes about half a second, longer than training a small model,
so :class:`PlotWorker` can do it in a second process while the caller trains and
draw when asked (``python -m rnnlab.plots`` is that process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import weakref
from io import BytesIO
from pathlib import Path

from rnnlab.io import atomic_write_bytes


def plot_history(rows: list[dict], path: Path, *, title: str) -> Path:
    """Loss (log scale) and held-out accuracy against training steps, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(9, 3.6))
    # fixed margins: an automatic layout measures every label first (~0.3 s of a 2 s run)
    fig.subplots_adjust(left=0.1, right=0.985, bottom=0.14, top=0.8, wspace=0.25)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(steps, [r["train_loss"] for r in rows], label="training (mean since last eval)")
    loss_ax.plot(steps, [r["val_loss"] for r in rows], label="held-out")
    loss_ax.set(xlabel="update step", ylabel="loss per scored output", yscale="log", title="loss")
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
    atomic_write_bytes(path, png.getvalue())
    return path


class PlotWorker:
    """A process that imports matplotlib now and draws :func:`plot_history` later.

    >>> worker = PlotWorker()          # starts importing, in parallel with the caller
    >>> worker.plot(rows, path, title="shift")  # doctest: +SKIP

    ``plot`` returns once the file is written; if the worker failed for any reason it
    draws in this process instead, so a file is always written. ``close`` (or leaving
    a ``with`` block) stops a worker that was never asked to draw.
    """

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "rnnlab.plots"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        except OSError:
            self._process = None
        else:  # a worker nobody closes is stopped when this object goes away
            self._finalizer = weakref.finalize(self, _stop, self._process)

    def plot(self, rows: list[dict], path: Path, *, title: str) -> Path:
        path = Path(path).resolve()  # the worker may not share our working directory
        process, self._process = self._process, None
        if process is not None:
            try:
                request = json.dumps({"rows": rows, "path": str(path), "title": title})
                process.communicate(request.encode(), timeout=self.timeout)
                if process.returncode == 0 and path.exists():
                    return path
            except (OSError, ValueError, TypeError, subprocess.SubprocessError):
                pass  # drawn here instead
            finally:
                _stop(process)
        return plot_history(rows, path, title=title)

    def close(self) -> None:
        if self._process is not None:
            _stop(self._process)
            self._process = None

    def __enter__(self) -> PlotWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stop(process: subprocess.Popen) -> None:
    """Kill ``process`` if it still runs, reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    try:
        process.communicate(timeout=10)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass


def _serve() -> None:
    """The worker's side: import, then draw the one request that arrives on stdin."""
    import matplotlib.figure  # noqa: F401  the slow part, done before the request comes

    request = json.loads(sys.stdin.buffer.read() or b"null")
    if request is not None:
        plot_history(request["rows"], Path(request["path"]), title=request["title"])


if __name__ == "__main__":
    _serve()
