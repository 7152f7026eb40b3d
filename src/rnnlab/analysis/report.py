"""``rnnlab inspect``: the automaton of a saved model, its fidelity, files beside it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rnnlab.analysis.extract import extract, fidelity
from rnnlab.io import atomic_write_text

#: fresh strings per fidelity measurement
FIDELITY_STRINGS = 1000


def inspect_model(path: str | Path, *, method: str = "quantize", seed: int = 0) -> dict:
    """Extract the automaton of the model at ``path`` (a run directory or a model file),
    measure its fidelity at the training length and at 10x, and write
    ``automaton.dot`` and ``inspect.json`` beside the model. Returns what
    ``inspect.json`` holds."""
    from rnnlab.model import load
    from rnnlab.tasks import get_task

    start = time.perf_counter()
    path = Path(path)
    model_path = path / "model.safetensors" if path.is_dir() else path
    model = load(model_path)
    task = _recorded_task(model_path.parent)
    I = model.config.input_size
    alphabet = [0, 1] if I == 1 else list(range(I))  # bits, or one-hot symbols
    length = get_task(task).defaults.train_lengths[1] if task else 20
    machine = extract(model, alphabet, method=method, length=length, seed=seed)
    fidelities = {}
    for steps in (length, 10 * length):
        n = max(1, min(FIDELITY_STRINGS, 200_000 // steps))
        f = fidelity(machine, model, n=n, length=steps, seed=seed + 1)
        fidelities[str(steps)] = {"strings": n, "step": f.step, "sequence": f.sequence}
    report = {
        "model": str(model_path),
        "task": task,
        "kind": machine.kind,
        "states": machine.num_states,
        "alphabet": alphabet,
        "transitions": [
            {"from": s, "input": a, "to": t, "output": o}
            for (s, a), (t, o) in sorted(machine.table().items())
        ],
        "method": machine.method,
        "sample_fidelity": machine.sample_fidelity,
        "fidelity": fidelities,
        "seconds": round(time.perf_counter() - start, 3),
    }
    folder = model_path.parent
    atomic_write_text(folder / "automaton.dot", machine.to_dot())
    atomic_write_text(folder / "inspect.json", json.dumps(report, indent=2) + "\n")
    return report


def _recorded_task(folder: Path) -> str | None:
    try:
        task = json.loads((folder / "config.json").read_text())["task"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return task if isinstance(task, str) else None
