"""A sweep's results per setting: success rate with a Wilson interval, updates and
seconds (median and quartiles), held-out accuracy; as rows, a rich table, CSV,
Markdown, and two plots (success rates, learning curves)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from rnnlab.sweeps.spec import canonical

#: the columns of the summary tables (CSV and Markdown); "seconds" is a measurement,
#: the rest follows from the code and the seeds
COLUMNS = ("setting", "runs", "solved", "95% interval", "updates to solve", "seconds",
           "held-out", "test", "worst test")  # fmt: skip


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a success rate (``z``: the normal quantile)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(rows: list[dict]) -> list[dict]:
    """One summary per setting, in the order the settings first appear in ``rows``
    (see :func:`rnnlab.sweeps.store.read`)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(canonical(row["setting"]), []).append(row)
    settings = [runs[0]["setting"] for runs in groups.values()]
    varying = sorted(
        {k for s in settings for k in s if any(t.get(k) != s.get(k) for t in settings)}
    )
    out = []
    for setting, runs in zip(settings, groups.values(), strict=True):
        shown = varying or sorted(setting)
        solved = sum(r["solved"] for r in runs)
        low, high = wilson(solved, len(runs))
        sets = list(runs[0]["metrics"]) if runs[0]["metrics"] else []
        out.append({
            "setting": setting,
            "label": _label(setting, shown),
            "runs": len(runs),
            "solved": solved,
            "interval": (low, high),
            "updates": _quartiles([r["updates"] for r in runs if r["solved"]]),
            "seconds": _quartiles([r["seconds"] for r in runs]),
            "held_out": _median_accuracy(runs, sets[0] if sets else None),
            "test": _median_accuracy(runs, sets[-1] if sets else None),
            "test_worst": _worst_accuracy(runs, sets[-1] if sets else None),
            "test_set": sets[-1] if sets else None,
            "curves": [r["curve"] for r in runs],
        })  # fmt: skip
    return out


def _label(setting: dict, shown: list[str]) -> str:
    """``key=value`` of the keys that tell settings apart: the ones this setting has, or
    (where it has none of them: the defaults) each as ``key=none``."""
    own = [k for k in shown if k in setting]
    return ", ".join(f"{k}={setting.get(k, 'none')}" for k in own or shown)


def _quartiles(values: list[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q1), float(q3)


def _accuracies(runs: list[dict], label: str | None) -> list[float]:
    return [r["metrics"][label]["sequence_accuracy"] for r in runs
            if label is not None and label in r["metrics"]]  # fmt: skip


def _median_accuracy(runs: list[dict], label: str | None) -> float | None:
    values = _accuracies(runs, label)
    return float(np.median(values)) if values else None


def _worst_accuracy(runs: list[dict], label: str | None) -> float | None:
    values = _accuracies(runs, label)
    return float(min(values)) if values else None


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.2g}"


def _spread(q, seconds: bool = False) -> str:
    if q is None:
        return "-"
    median, q1, q3 = q
    if seconds:
        return f"{median:.2f} [{q1:.2f}-{q3:.2f}]"
    return f"{_number(median)} [{_number(q1)}-{_number(q3)}]"


def cells(summary: dict) -> list[str]:
    """One summary as the strings of :data:`COLUMNS`."""
    low, high = summary["interval"]
    test = summary["test"]
    return [
        summary["label"],
        str(summary["runs"]),
        f"{summary['solved']}/{summary['runs']}",
        f"{low:.0%}-{high:.0%}",
        _spread(summary["updates"]),
        _spread(summary["seconds"], seconds=True),
        "-" if summary["held_out"] is None else f"{summary['held_out']:.1%}",
        "-" if test is None else f"{test:.1%} ({summary['test_set']})",
        "-" if summary["test_worst"] is None else f"{summary['test_worst']:.1%}",
    ]


def to_markdown(summaries: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(s)) + " |" for s in summaries]
    return "\n".join(lines) + "\n"


def to_csv(summaries: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["setting", "runs", "solved", "rate", "low", "high", "updates_median",
                     "updates_q1", "updates_q3", "seconds_median", "seconds_q1", "seconds_q3",
                     "held_out", "test", "test_set", "test_worst"])  # fmt: skip
    for s in summaries:
        updates, seconds = s["updates"] or (None,) * 3, s["seconds"] or (None,) * 3
        writer.writerow([canonical(s["setting"]), s["runs"], s["solved"],
                         s["solved"] / s["runs"], *s["interval"], *updates, *seconds,
                         s["held_out"], s["test"], s["test_set"], s["test_worst"]])  # fmt: skip
    return out.getvalue()


def to_table(summaries: list[dict], title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "setting" else "right")
    for s in summaries:
        table.add_row(*cells(s))
    return table


def plot(summaries: list[dict], folder: Path, title: str) -> list[Path]:
    """``success.png`` (success rate per setting, 95% intervals) and ``curves.png``
    (median and quartiles of held-out accuracy over updates, per setting) in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    labels = [s["label"] for s in summaries]
    rates = np.array([s["solved"] / s["runs"] for s in summaries])
    low = rates - np.array([s["interval"][0] for s in summaries])
    high = np.array([s["interval"][1] for s in summaries]) - rates
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(summaries) + 1.5))
    ax.errorbar(rates, np.arange(len(summaries)), xerr=[low, high], fmt="o", capsize=4)
    ax.set_yticks(np.arange(len(summaries)), labels)
    ax.invert_yaxis()
    ax.set_xlim(-0.05, 1.05)
    ax.set_xlabel("runs solved (95% Wilson interval)")
    ax.set_title(title)
    fig.tight_layout()
    success = folder / "success.png"
    fig.savefig(success, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for s in summaries:
        steps, median, q1, q3 = _curve_band(s["curves"])
        if len(steps):
            (line,) = ax.plot(steps, median, label=s["label"])
            ax.fill_between(steps, q1, q3, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("updates")
    ax.set_ylabel("held-out whole-sequence accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{title}: median and quartiles over seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    curves = folder / "curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)
    return [success, curves]


def _curve_band(curves: list[list]) -> tuple[np.ndarray, ...]:
    """Median and quartiles over runs of accuracy at every evaluated update; a run that
    stopped keeps its last accuracy."""
    steps = np.array(sorted({step for c in curves for step, _ in c}))
    if not len(steps):
        return steps, steps, steps, steps
    values = np.empty((len(curves), len(steps)))
    for i, curve in enumerate(curves):
        at = np.array([s for s, _ in curve]) if curve else np.zeros(0)
        acc = np.array([np.nan if a is None else a for _, a in curve]) if curve else np.zeros(0)
        index = np.searchsorted(at, steps, side="right") - 1  # last evaluation at or before
        values[i] = np.where(index >= 0, acc[np.maximum(index, 0)] if len(acc) else 0.0, 0.0)
    q1, median, q3 = np.nanpercentile(values, [25, 50, 75], axis=0)
    return steps, median, q1, q3
