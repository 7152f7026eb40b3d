"""The classic tasks at the papers' scale, each beside the published figure it reproduces.

    python benchmarks/papers.py [OUT [--tables]]   (default runs/papers; make papers)

Runs the paper-scale sweeps of ``benchmarks/sweeps/`` (``regular``, ``adding_le``,
``copy_arjovsky``) into ``OUT/sweeps`` (a rerun skips finished runs, so an interrupted
one continues) and prints, per sweep, what the paper reports and the training time of
its runs; for the adding problem and copy memory the held-out losses (the mean squared
error, and the cross-entropy beside the baseline); with ``--tables`` the
other sweeps' summaries too (the README quotes those from the sweeps themselves, and
``make docs-check`` / ``make docs-check-all`` check them).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import rnnlab
from rnnlab.sweeps import load_spec
from rnnlab.sweeps.summary import to_markdown
from rnnlab.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent

#: what each paper reports, per sweep
PUBLISHED = {
    "regular": "Deletang et al. (2023), Table 2: parity, RNN and LSTM 100% on lengths 41-500; "
    "Weiss et al. (2018): Tomita 1-7 learnt exactly by small LSTMs and GRUs",
    "adding_le": "Le, Jaitly & Hinton (2015), Fig. 3: the IRNN and the LSTM reach MSE < 0.01 at "
    "T = 150-400 (after up to 10^6 examples); tanh RNNs fail from T = 150",
    "copy_arjovsky": "Arjovsky, Shah & Bengio (2016), Fig. 1: the LSTM stays at the baseline "
    "10 ln 8 / (T + 20) at T = 100 and 200 (only the unitary RNN goes below it); "
    "Lezcano-Casado & Martinez-Rubio (2019), Fig. 1: expRNN goes to a loss near 0 at T = 1000 "
    "and 2000",
}


def loss_table(rows: list[dict], baseline=None) -> str:
    """Per setting: runs solved and the updates they took (median [fewest-most]), the
    held-out loss (median [best-worst]) beside the ``baseline(setting)`` loss when given
    (copy memory: blank, then a guess), and where the task reports it the share of
    symbols recalled right (median [worst-best])."""
    symbols = any("symbol_accuracy" in m for r in rows for m in r["metrics"].values())
    head = ["setting", "solved", "updates to solve", "held-out loss: median [best-worst]",
            "baseline", *(["symbols right: median [worst-best]"] if symbols else []),
            "seconds a run"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for summary in rnnlab.sweep.summarize(rows):
        runs = [r for r in rows if r["setting"] == summary["setting"]]
        label = next(iter(runs[0]["metrics"]))
        losses = [r["metrics"][label]["loss"] for r in runs]
        solved_in = [r["updates"] for r in runs if r["solved"]]
        cells = [
            summary["label"],
            f"{summary['solved']}/{summary['runs']}",
            f"{np.median(solved_in):.0f} [{min(solved_in)}-{max(solved_in)}]" if solved_in else "-",
            f"{np.median(losses):.4f} [{min(losses):.4f}-{max(losses):.4f}]",
            "-" if baseline is None else f"{baseline(summary['setting']):.4f}",
        ]
        if symbols:
            right = [100 * r["metrics"][label]["symbol_accuracy"] for r in runs]
            cells.append(f"{np.median(right):.1f}% [{min(right):.1f}-{max(right):.1f}]")
        cells.append(f"{np.median([r['seconds'] for r in runs]):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def copy_baseline(setting: dict) -> float:
    """The paper's baseline loss for a copy setting: 10 ln 8 / (T + 20)."""
    task = get_task("copy", symbols=setting["symbols"], alphabet=setting["alphabet"],
                    blank_class=True)  # fmt: skip
    return task.baseline_loss(int(setting["train_lengths"]))


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "papers"
    for name in ("regular", "adding_le", "copy_arjovsky"):
        spec = load_spec(ROOT / "benchmarks" / "sweeps" / f"{name}.toml")
        tick = time.perf_counter()
        rows = rnnlab.sweep(spec, out=out / "sweeps", save=False)
        wall = time.perf_counter() - tick
        run_seconds = sum(r["seconds"] for r in rows)
        ran = f" (this call ran the missing ones in {wall / 60:.1f} min)" if wall > 5 else ""
        print(f"**{name}**: {len(rows)} runs, {run_seconds / 60:.1f} min of training{ran}.\n")
        print(f"Published: {PUBLISHED[name]}.\n")
        if name == "copy_arjovsky":
            print(loss_table(rows, copy_baseline))
        elif name == "adding_le":  # (Le et al. judge by the mean squared error: the loss)
            print(loss_table(rows))
        if "--tables" in sys.argv[2:]:  # (the README quotes these from the sweeps)
            print(to_markdown(rnnlab.sweep.summarize(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
