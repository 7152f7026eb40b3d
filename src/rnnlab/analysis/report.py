"""``rnnlab inspect``: the automaton of a saved model, its fidelity, files beside it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rnnlab.analysis import states
from rnnlab.analysis.dynamics import fixed_points
from rnnlab.analysis.extract import extract, fidelity
from rnnlab.analysis.pictures import draw_automaton, draw_states
from rnnlab.io import atomic_write_text

#: fresh strings per fidelity measurement
FIDELITY_STRINGS = 1000


def inspect_model(path: str | Path, *, method: str = "quantize", seed: int = 0) -> dict:
    """Extract the automaton of the model at ``path`` (a run directory or a model file),
    measure its fidelity at the training length and at 10x, find its fixed points,
    and write ``automaton.dot``, ``automaton.png``, ``states.png``,
    ``fixed_points.json`` and ``inspect.json`` beside the model. Returns what
    ``inspect.json`` holds."""
    from rnnlab.model import load
    from rnnlab.runs import recorded_task

    start = time.perf_counter()
    path = Path(path)
    model_path = path / "model.safetensors" if path.is_dir() else path
    model = load(model_path)
    task_obj = recorded_task(model_path.parent)
    task = task_obj.name if task_obj is not None else None
    I = model.config.input_size
    alphabet = [0, 1] if I == 1 else list(range(I))  # bits, or one-hot symbols
    length = task_obj.defaults.train_lengths[1] if task_obj else 20
    acceptor = getattr(task_obj, "dfa", None) if getattr(task_obj, "acceptor", False) else None
    machine = extract(model, alphabet, method=method, length=length, seed=seed,
                      kind="dfa" if acceptor else "mealy",
                      empty=bool(acceptor.accepts(())) if acceptor else True)  # fmt: skip
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
        "accepting": sorted(
            s.state_id for s in machine.machine.states if getattr(s, "is_accepting", False)
        ),  # (DFA; empty otherwise)
        "method": machine.method,
        "sample_fidelity": machine.sample_fidelity,
        "fidelity": fidelities,
        "seconds": round(time.perf_counter() - start, 3),
    }
    folder = model_path.parent
    points = fixed_points(model, alphabet, seed=seed)
    report["fixed_points"] = [
        {"input": p.input, "kind": p.kind, "stable": p.stable, "q": p.q,
         "state": p.state.tolist(),
         "eigenvalues": [[float(e.real), float(e.imag)] for e in p.eigenvalues]}
        for p in points
    ]  # fmt: skip
    _pictures(model, machine, points, alphabet, length, folder, seed, task)
    report["seconds"] = round(time.perf_counter() - start, 3)
    atomic_write_text(folder / "automaton.dot", machine.to_dot())
    atomic_write_text(folder / "fixed_points.json",
                      json.dumps(report["fixed_points"], indent=2) + "\n")  # fmt: skip
    atomic_write_text(folder / "inspect.json", json.dumps(report, indent=2) + "\n")
    return report


def _pictures(model, machine, points, alphabet, length, folder: Path, seed, task) -> None:
    """states.png and automaton.png (fifty random strings' trajectories)."""
    import numpy as np

    strings = np.random.default_rng(seed + 2).integers(0, len(alphabet), size=(50, length))
    encode = states.encoding(model, alphabet)
    visited = states.along(model, states.inputs(strings, alphabet, encode))
    labels = np.array([machine.states_along(alphabet[i] for i in s) for s in strings])
    name = task or Path(folder).name
    flat = visited.reshape(-1, visited.shape[-1])
    title = f"{name}: hidden states by automaton state"
    draw_states(flat, labels.ravel(), points, folder / "states.png", title=title)
    title = f"{name}: {machine.num_states}-state machine (input / output)"
    draw_automaton(machine, folder / "automaton.png", title=title)
