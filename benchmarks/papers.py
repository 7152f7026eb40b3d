"""The classic tasks at the papers' scale, each beside the published figure it reproduces.

    python benchmarks/papers.py [OUT [--tables]]   (default runs/papers; make papers)

Runs the paper-scale sweeps of ``benchmarks/sweeps/`` (``regular``, ``adding_le``,
``copy_arjovsky``) into ``OUT/sweeps`` (a rerun skips finished runs, so an interrupted
one continues) and prints, per sweep, what the paper reports and the training time of
its runs; for copy memory a table of losses beside the baseline; with ``--tables`` the
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
    "10 ln 8 / (T + 20) at T = 100 and 200 (only the unitary RNN goes below it)",
}


def copy_table(rows: list[dict]) -> str:
    """Copy memory per setting: held-out loss (median, worst) beside the baseline."""
    lines = ["| setting | runs | T | held-out loss: median [best-worst] | baseline | "
             "steps right | seconds a run |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for summary in rnnlab.sweep.summarize(rows):
        runs = [r for r in rows if r["setting"] == summary["setting"]]
        setting = summary["setting"]
        task = get_task("copy", symbols=setting["symbols"], alphabet=setting["alphabet"],
                        blank_class=True)  # fmt: skip
        length = int(setting["train_lengths"])
        label = next(iter(runs[0]["metrics"]))
        losses = [r["metrics"][label]["loss"] for r in runs]
        steps = np.median([r["metrics"][label]["step_accuracy"] for r in runs])
        seconds = np.median([r["seconds"] for r in runs])
        lines.append(
            f"| {setting['cell']} {setting['hidden']} | {len(runs)} | {length - 20} | "
            f"{np.median(losses):.4f} [{min(losses):.4f}-{max(losses):.4f}] | "
            f"{task.baseline_loss(length):.4f} | {steps:.1%} | {seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "papers"
    for name in ("regular", "adding_le", "copy_arjovsky"):
        spec = load_spec(ROOT / "benchmarks" / "sweeps" / f"{name}.toml")
        tick = time.perf_counter()
        rows = rnnlab.sweep(spec, out=out / "sweeps", save=False)
        wall = time.perf_counter() - tick
        run_seconds = sum(r["seconds"] for r in rows)
        print(f"## {name}: {len(rows)} runs, {run_seconds / 60:.1f} min of training "
              f"({wall / 60:.1f} min wall here)\n")  # fmt: skip
        print(f"Published: {PUBLISHED[name]}.\n")
        if name == "copy_arjovsky":
            print(copy_table(rows))
        elif "--tables" in sys.argv[2:]:  # (the README quotes these from the sweeps)
            print(to_markdown(rnnlab.sweep.summarize(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
