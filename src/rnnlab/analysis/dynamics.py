"""Fixed and slow points of a network's state map, and the Jacobian's eigenvalues there.

For a constant input ``x`` the network is a map ``s -> F(s, x)`` of its whole state
``s`` (every layer's ``h``, and ``c`` for the LSTM, side by side). Following Sussillo
and Barak (2013), the fixed and slow points are the minima of
``q(s) = 1/2 ||F(s, x) - s||^2``, searched (scipy's ``least_squares``) from states the
network visits; the Jacobian ``dF/ds`` (central differences through one batched
forward step) gives their stability.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import least_squares

from rnnlab.analysis import states

#: a point is fixed when q is below this, slow below SLOW
FIXED, SLOW = 1e-12, 1e-4


class FixedPoint(NamedTuple):
    """A fixed (``q < 1e-12``) or slow (``q < 1e-4``) point of the state map for one input."""

    input: Hashable
    state: np.ndarray  # (D,) every layer's h (and c), side by side
    q: float  # 1/2 ||F(s) - s||^2
    eigenvalues: np.ndarray  # of dF/ds, largest modulus first
    stable: bool  # every eigenvalue inside the unit circle
    kind: str  # "fixed" or "slow"


def fixed_points(model, inputs: Sequence[Hashable] = (0, 1), *, starts: int = 64,
                 length: int = 20, seed: int = 0,
                 encode: Callable[[Hashable], Sequence[float]] | None = None,
                 ) -> list[FixedPoint]:  # fmt: skip
    """The fixed and slow points of ``model`` for each constant input in ``inputs``.

    Searches from ``starts`` states on trajectories of random strings of ``length``
    (and the initial state), keeps minima with ``q < 1e-4``, and merges points closer
    than 1e-3 (relative to the states' spread). Works for every cell and depth.
    """
    inputs = list(inputs)
    encode = encode or states.encoding(model, inputs)
    rng = np.random.default_rng(seed)
    strings = rng.integers(0, len(inputs), size=(max(1, starts // length + 1), length))
    visited = states.along(model, states.inputs(strings, inputs, encode))
    visited = visited.reshape(-1, visited.shape[-1])  # (B T, D)
    initial = states.flat(model.initial_state(1))
    chosen = visited[rng.choice(len(visited), size=min(starts, len(visited)), replace=False)]
    origins = np.concatenate([initial, chosen])
    spread = max(float(np.ptp(visited, axis=0).max()), 1e-6)
    found: list[FixedPoint] = []
    for symbol in inputs:
        x = np.asarray(encode(symbol), dtype=np.float64)
        F = _state_map(model, x)
        candidates = []
        for origin in origins:
            fit = _minimise(F, origin)
            q = 0.5 * float(np.sum(fit.fun**2))
            if q < SLOW:
                candidates.append((q, fit.x))
        for q, state in sorted(candidates, key=lambda c: c[0]):
            if any(p.input == symbol and np.abs(p.state - state).max() < 1e-3 * spread
                   for p in found):  # fmt: skip
                continue
            eigenvalues = np.linalg.eigvals(_jacobian(F, state))
            eigenvalues = eigenvalues[np.argsort(-np.abs(eigenvalues))]
            found.append(FixedPoint(symbol, state, q, eigenvalues,
                                    bool(np.abs(eigenvalues).max() < 1.0),
                                    "fixed" if q < FIXED else "slow"))  # fmt: skip
    return found


def _minimise(F, origin: np.ndarray):
    """least_squares on F(s) - s from ``origin``, with the differenced Jacobian."""
    D = len(origin)
    return least_squares(lambda s: F(s[None])[0] - s, origin,
                         jac=lambda s: _jacobian(F, s) - np.eye(D),
                         xtol=1e-14, ftol=1e-14, gtol=1e-14, max_nfev=200)  # fmt: skip


def _state_map(model, x: np.ndarray):
    """F: (B, D) states -> (B, D) states one step later, for the input ``x`` (I,)."""

    def F(s: np.ndarray) -> np.ndarray:
        batch = np.broadcast_to(x, (s.shape[0], x.shape[0]))
        _, state = model.step(batch, states.unflat(model, s))
        return states.flat(state)

    return F


def _jacobian(F, s: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """dF/ds (D, D) by central differences, all 2D evaluations in one batched step."""
    D = s.shape[0]
    steps = np.concatenate([s + eps * np.eye(D), s - eps * np.eye(D)])  # (2D, D)
    out = F(steps)
    return ((out[:D] - out[D:]) / (2 * eps)).T
