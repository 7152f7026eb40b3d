"""A network's whole state as one vector, and symbols as inputs: what the analyses share.

The state vector of a batch is ``(B, D)``: every layer's ``h`` side by side, then (LSTM)
every layer's ``c``; ``D = L H`` or ``2 L H``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np


def flat(state) -> np.ndarray:
    """A :class:`~rnnlab.State` (``h``, ``c`` of shape (L, B, H)) as ``(B, D)``."""
    parts = [state.h] if state.c is None else [state.h, state.c]
    return np.concatenate([np.concatenate(list(p), axis=-1) for p in parts], axis=-1)


def unflat(model, s: np.ndarray):
    """``(B, D)`` state vectors as the model's :class:`~rnnlab.State`."""
    from rnnlab.model import State

    L, H, B = model.config.num_layers, model.config.hidden_size, s.shape[0]
    h = np.ascontiguousarray(s[:, : L * H].reshape(B, L, H).transpose(1, 0, 2))
    if not model.network.spec.cell_state:
        return State(h, None)
    return State(h, np.ascontiguousarray(s[:, L * H :].reshape(B, L, H).transpose(1, 0, 2)))


def along(model, X: np.ndarray) -> np.ndarray:
    """``(B, T, D)``: the state after each step of ``X (B, T, I)``."""
    h, c = model.hidden_states(X)  # (L, B, T, H) each
    parts = [h] if c is None else [h, c]
    return np.concatenate([np.concatenate(list(p), axis=-1) for p in parts], axis=-1)


def encoding(model, alphabet: Sequence[Hashable]) -> Callable[[Hashable], Sequence[float]]:
    """Symbol -> input vector: the symbol itself for one input, else a one-hot vector of
    its index in ``alphabet``."""
    size = model.config.input_size
    if size == 1:
        return lambda symbol: [float(symbol)]
    if len(alphabet) != size:
        raise ValueError(f"the model takes {size} inputs per step: give encode= for an "
                         f"alphabet of {len(alphabet)} symbols")  # fmt: skip
    eye = np.eye(size)
    index = {symbol: i for i, symbol in enumerate(alphabet)}
    return lambda symbol: eye[index[symbol]]


def inputs(strings: np.ndarray, alphabet: Sequence[Hashable], encode) -> np.ndarray:
    """``(B, T, I)`` inputs of ``strings (B, T)`` (indices into ``alphabet``)."""
    table = np.array([encode(symbol) for symbol in alphabet], dtype=np.float64)  # (A, I)
    return table[strings]
