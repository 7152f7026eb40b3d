"""Interrupt real training runs and count what they leave: ``rnnlab train`` killed with
SIGKILL (kill -9) or interrupted with SIGINT (Ctrl-C) at random moments.

    python benchmarks/trials.py --kills 30 --interrupts 30

For each run: a short ``rnnlab train copy`` (300 updates of a 4-unit network; the
signal comes at a uniform time within one whole run, so it lands in start-up,
training, evaluation and saving alike) and one signal. Then it counts, over
everything the runs left in their output directory:

* corrupt: published run directories whose config.json or model does not load;
* lost: interrupted (SIGINT) runs that had trained a step but published nothing;
* leftovers: hidden staging directories and temporary files once a later run has
  started (a run removes what dead runs left).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def one_run(out: Path, sig: int, delay: float, backend: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "rnnlab", "train", "copy", "--hidden", "4", "--quiet",
               "--no-plot", "--max-steps", "300", "--backend", backend,
               "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    time.sleep(delay)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def inspect(out: Path) -> tuple[int, list[Path]]:
    """(corrupt published runs, leftovers)."""
    from rnnlab import load

    corrupt = 0
    for run in out.iterdir():
        if run.name.startswith("."):
            continue
        try:
            config = json.loads((run / "config.json").read_text())
            if config["trained"]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    load(run / "model.safetensors", backend="numpy")
        except Exception:  # anything wrong is a corrupt run
            corrupt += 1
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    return corrupt, leftovers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--interrupts", type=int, default=30)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    out = Path(tempfile.mkdtemp(prefix="rnnlab-trials-"))
    start = time.perf_counter()
    one_run(Path(tempfile.mkdtemp()), signal.SIGCONT, 0.0, args.backend)  # a whole run's time
    whole = time.perf_counter() - start
    trials = [signal.SIGKILL] * args.kills + [signal.SIGINT] * args.interrupts
    rng.shuffle(trials)
    lost, outcomes = 0, {}
    for sig in trials:
        before = {p.name for p in out.iterdir()} if out.exists() else set()
        code, err = one_run(out, sig, rng.uniform(0.0, whole), args.backend)
        published = {p.name for p in out.iterdir() if not p.name.startswith(".")} - before
        key = f"{signal.Signals(sig).name} exit {code}"
        outcomes[key] = outcomes.get(key, 0) + 1
        if sig == signal.SIGINT and "interrupted after step" in err and not published:
            lost += 1
    # one more run in the same directory: it removes what killed runs left
    one_run(out, signal.SIGCONT, 0.0, args.backend)
    corrupt, leftovers = inspect(out)
    print(f"runs: {len(trials)} ({args.kills} kill -9, {args.interrupts} Ctrl-C), "
          f"a whole run {whole:.1f} s, signals at uniform times in it")  # fmt: skip
    print("outcomes: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    print(f"corrupt runs: {corrupt}; lost interrupted work: {lost}; leftovers: {len(leftovers)}")
    for path in leftovers[:5]:
        print(f"  left: {path}")
    return 0 if corrupt == lost == len(leftovers) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
