"""Train shift and parity with their defaults, inspect them, and keep the pictures the
README shows (docs/inspect_<task>_states.png, docs/inspect_<task>_automaton.png).

    python benchmarks/inspect_examples.py

Prints each network's automaton, its fidelity and its fixed points with eigenvalues.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from rnnlab.analysis import inspect_model
    from rnnlab.runs import train_task

    out = Path(tempfile.mkdtemp(prefix="rnnlab-inspect-"))
    for task in ("shift", "parity"):
        result = train_task(task, out=out, plot=False)
        report = inspect_model(result.run_dir)
        for picture in ("states", "automaton"):
            shutil.copy(result.run_dir / f"{picture}.png",
                        ROOT / "docs" / f"inspect_{task}_{picture}.png")  # fmt: skip
        fidelity = ", ".join(f"length {k}: {v['sequence']:.1%} of strings"
                             for k, v in report["fidelity"].items())  # fmt: skip
        print(
            f"{task}: {result.history.stop_reason}; {report['states']}-state "
            f"{report['kind']} machine ({fidelity}); inspect {report['seconds']:.2f} s"
        )
        for p in report["fixed_points"]:
            eigenvalues = sorted((complex(*e) for e in p["eigenvalues"]), key=abs, reverse=True)
            shown = ", ".join(f"{e.real:+.3f}{e.imag:+.3f}j" if abs(e.imag) > 1e-9
                              else f"{e.real:+.3f}" for e in eigenvalues[:3])  # fmt: skip
            state = np.array2string(np.array(p["state"][:4]), precision=3)
            print(f"  input {p['input']}: {p['kind']}, {'stable' if p['stable'] else 'unstable'}, "
                  f"state {state}{'...' if len(p['state']) > 4 else ''}, largest eigenvalues "
                  f"{shown}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
