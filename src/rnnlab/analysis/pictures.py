"""Pictures of what a network learned (matplotlib, no screen, no system packages):
its hidden states in 2-D coloured by automaton state with the fixed points, and the
automaton as a graph."""

from __future__ import annotations

import math
from io import BytesIO
from pathlib import Path

import numpy as np

from rnnlab.io import atomic_write_bytes


def _figure(size):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def _save(fig, path: Path) -> Path:
    png = BytesIO()
    fig.savefig(png, format="png", dpi=110)
    return atomic_write_bytes(path, png.getvalue())


def draw_states(points: np.ndarray, labels: np.ndarray, fixed: list, path: Path, *,
                title: str) -> Path:  # fmt: skip
    """``points (N, D)`` states projected on their first two principal components,
    coloured by ``labels (N,)`` (automaton states); ``fixed`` points (``FixedPoint``)
    overlaid: filled when stable, open when not, one marker per input."""
    centre = points.mean(axis=0)
    _, _, axes = np.linalg.svd(points - centre, full_matrices=False)
    basis = axes[:2].T if axes.shape[0] >= 2 else np.eye(points.shape[1], 2)  # (D, 2)
    flat = (points - centre) @ basis
    fig = _figure((5.6, 4.6))
    ax = fig.subplots()
    for label in np.unique(labels):
        chosen = labels == label
        ax.scatter(flat[chosen, 0], flat[chosen, 1], s=6, alpha=0.5, label=f"state {label}")
    markers = {}
    for point in fixed:
        where = (point.state - centre) @ basis
        marker = markers.setdefault(point.input, "o^sDv"[len(markers) % 5])
        ax.scatter(where[0], where[1], s=90, marker=marker, edgecolors="black",
                   facecolors="black" if point.stable else "none", linewidths=1.5,
                   label=f"fixed point, input {point.input}")  # fmt: skip
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    ax.set(xlabel="principal component 1", ylabel="principal component 2", title=title)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.11, top=0.91)
    return _save(fig, path)


def draw_automaton(machine, path: Path, *, title: str) -> Path:
    """The machine's states on a circle, transitions as labelled arrows (``in / out``)."""
    from matplotlib.patches import Circle, FancyArrowPatch

    n = machine.num_states
    angle = [math.pi / 2 - 2 * math.pi * i / n for i in range(n)]
    where = {i: (math.cos(a), math.sin(a)) if n > 1 else (0.0, 0.0)
             for i, a in enumerate(angle)}  # fmt: skip
    fig = _figure((5.2, 5.2))
    ax = fig.subplots()
    radius = 0.16
    edges: dict[tuple[int, int], list[str]] = {}
    for (state, symbol), (following, output) in machine.table().items():
        edges.setdefault((state, following), []).append(f"{symbol}/{output}")
    for (a, b), labels in sorted(edges.items()):
        text = ", ".join(sorted(labels))
        (x0, y0), (x1, y1) = where[a], where[b]
        if a == b:  # a loop outside the circle of states
            r = math.hypot(x0, y0) or 1.0
            ux, uy = (x0 / r, y0 / r) if r else (0.0, 1.0)
            ax.add_patch(Circle((x0 + ux * 1.6 * radius, y0 + uy * 1.6 * radius), 0.75 * radius,
                                fill=False, lw=1))  # fmt: skip
            ax.text(x0 + ux * 3.2 * radius, y0 + uy * 3.2 * radius, text, ha="center",
                    va="center", fontsize=8)  # fmt: skip
            continue
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12,
                                     connectionstyle="arc3,rad=0.2", shrinkA=22, shrinkB=22,
                                     lw=1))  # fmt: skip
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        ax.text(mx + 0.18 * (y1 - y0), my - 0.18 * (x1 - x0), text, ha="center", va="center",
                fontsize=8)  # fmt: skip
    for state, (x, y) in where.items():
        ax.add_patch(
            Circle((x, y), radius, fill=True, fc="white", ec="black", lw=1.5 + (state == 0))
        )
        ax.text(x, y, str(state), ha="center", va="center", fontsize=11)
    ax.set(xlim=(-1.8, 1.8), ylim=(-1.8, 1.8), aspect="equal", title=title)
    ax.axis("off")
    return _save(fig, path)
