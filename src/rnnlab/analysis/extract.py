"""The automaton a trained network implements, read from the hidden states it visits.

The method (after Omlin and Giles, 1996): run the network on random strings,
cluster the states it passes through (k-means, ``k = 1, 2, ...``), read the
transitions between clusters with the network's outputs, keep the majority per
(cluster, symbol), minimise (aalpy), and stop at the smallest ``k`` whose machine
gives the network's outputs on every step of every sampled string. The fidelity is
then measured on fresh, longer strings (:func:`fidelity`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.cluster.vq import kmeans2

from rnnlab.analysis import states
from rnnlab.analysis.automaton import Automaton
from rnnlab.analysis.lstar import learn


class Fidelity(NamedTuple):
    """How often an automaton gives the network's outputs: per step and per whole string."""

    step: float
    sequence: float
    n: int  # strings
    length: int  # steps per string


def extract(model, alphabet: Sequence[Hashable] = (0, 1), *, method: str = "quantize",
            kind: str = "mealy", max_states: int = 32, samples: int = 200, length: int = 20,
            seed: int = 0, encode: Callable[[Hashable], Sequence[float]] | None = None,
            empty: bool = True) -> Automaton:  # fmt: skip
    """The Mealy machine of ``model`` over ``alphabet`` (its outputs: ``model.predict``'s),
    or, with ``kind="dfa"``, the DFA of an acceptor (one 0/1 output: is the string so far
    in the language; ``empty``: whether the empty string is, which a network cannot say).

    Parameters
    ----------
    method : ``"quantize"`` (this module's) or ``"lstar"`` (:mod:`.lstar`: exact on
        every string it tried, slower, refused when the network is not a small
        finite machine).
    alphabet : the input symbols (default bits); ``encode(symbol)`` gives the input
        vector (default: the symbol itself for one input, a one-hot vector of the
        symbol's index otherwise).
    max_states : the most clusters tried; a network that needs more (or has not
        learned a finite machine) gives the best machine found, with its agreement
        on the sample in ``automaton.sample_fidelity`` below 1.
    samples, length : the random strings whose states are clustered.

    The machine has ``sample_fidelity``, ``clusters`` (the k used), ``method`` and
    ``seconds`` attributes.
    """
    if model.config.loss == "mse":
        raise ValueError("an automaton needs discrete outputs: a bce or softmax model")
    for name, value in (("max_states", max_states), ("samples", samples), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    start = time.perf_counter()
    alphabet = list(alphabet)
    encode = encode or states.encoding(model, alphabet)
    rng = np.random.default_rng(seed)
    strings = rng.integers(0, len(alphabet), size=(samples, length))  # (B, T) symbol indices
    X = states.inputs(strings, alphabet, encode)  # (B, T, I)
    outputs = _outputs(model, X)  # (B, T) hashable outputs
    if kind not in ("mealy", "dfa"):
        raise ValueError(f"unknown kind {kind!r}; choose 'mealy' or 'dfa'")
    if method == "lstar":
        machine = learn(model, alphabet, encode, lambda p: _output_of(model, p), seed=seed)
        machine.clusters = None
        return _finish(machine, kind, empty, strings, alphabet, outputs)
    if method != "quantize":
        raise ValueError(f"unknown method {method!r}; choose 'quantize' or 'lstar'")
    points = states.along(model, X)  # (B, T, D)
    origin = states.flat(model.initial_state(1))[0]  # (D,)
    flat = points.reshape(-1, points.shape[-1])
    best = None
    for k in range(1, min(max_states, len(flat)) + 1):
        centroids, labels = _cluster(flat, k, rng)
        labels = labels.reshape(strings.shape)  # (B, T)
        first = int(np.argmin(((centroids - origin) ** 2).sum(axis=1)))
        table = _table(model, alphabet, encode, strings, labels, outputs, first, centroids, flat)
        machine = Automaton.from_table(table, first, alphabet)
        agree = _agreement(machine, strings, alphabet, outputs)
        if best is None or (agree, -machine.num_states) > (best[1], -best[0].num_states):
            best = (machine, agree, k)
        if agree == 1.0:
            break
    machine, agree, k = best
    machine.clusters = k
    machine.method = f"k-means quantisation of hidden states (k = {k}) + minimisation (aalpy)"
    machine.seconds = time.perf_counter() - start
    return _finish(machine, kind, empty, strings, alphabet, outputs)


def _finish(machine: Automaton, kind: str, empty: bool, strings, alphabet, outputs):
    if kind == "dfa":
        machine = machine.to_dfa(empty=empty)
    machine.sample_fidelity = _agreement(machine, strings, alphabet, outputs)
    return machine


def fidelity(automaton: Automaton, model, *, n: int = 1000, length: int = 100, seed: int = 1,
             encode: Callable[[Hashable], Sequence[float]] | None = None) -> Fidelity:  # fmt: skip
    """How often ``automaton`` gives ``model``'s outputs on ``n`` fresh random strings."""
    alphabet = automaton.alphabet
    encode = encode or states.encoding(model, alphabet)
    strings = np.random.default_rng(seed).integers(0, len(alphabet), size=(n, length))
    outputs = _outputs(model, states.inputs(strings, alphabet, encode))
    right = np.array([[a == b for a, b in zip(automaton.run(alphabet[i] for i in string), row,
                                              strict=True)]
                      for string, row in zip(strings, outputs, strict=True)])  # fmt: skip
    return Fidelity(float(right.mean()), float(right.all(axis=1).mean()), n, length)


# -- the pieces ---------------------------------------------------------------------------------


def _outputs(model, X: np.ndarray) -> np.ndarray:
    """The network's output symbol at every step: (B, T), ints or tuples of ints."""
    predicted = np.asarray(model.predict(X))
    predicted = predicted.reshape(X.shape[0], X.shape[1], -1)  # (B, T, O')
    if predicted.shape[-1] == 1:
        return np.array(predicted[..., 0].astype(np.int64).tolist(), dtype=object)
    out = np.empty(predicted.shape[:2], dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = tuple(int(v) for v in predicted[index])
    return out


def _cluster(points: np.ndarray, k: int, rng: np.random.Generator):
    if k == 1:
        return points.mean(axis=0, keepdims=True), np.zeros(len(points), dtype=np.int64)
    return kmeans2(points, k, minit="++", seed=rng)


def _table(model, alphabet, encode, strings, labels, outputs, first, centroids, flat):
    """(cluster, symbol) -> (next cluster, output) by majority; a pair never seen is
    stepped from the cluster's centre through the network itself."""
    votes: dict[tuple, Counter] = {}
    previous = np.concatenate([np.full((len(strings), 1), first), labels[:, :-1]], axis=1)
    steps = zip(previous.ravel(), strings.ravel(), labels.ravel(), outputs.ravel(), strict=True)
    for cluster, index, following, output in steps:
        votes.setdefault((int(cluster), alphabet[index]), Counter())[(int(following), output)] += 1
    table = {key: counter.most_common(1)[0][0] for key, counter in votes.items()}
    for cluster in range(len(centroids)):
        for symbol in alphabet:
            if (cluster, symbol) not in table:
                table[cluster, symbol] = _step_from(model, centroids[cluster], symbol, encode,
                                                    centroids)  # fmt: skip
    return table


def _step_from(model, point: np.ndarray, symbol, encode, centroids) -> tuple:
    x = np.asarray(encode(symbol), dtype=np.float64)[None]
    probabilities, state = model.step(x, states.unflat(model, point[None]))
    after = states.flat(state)[0]
    following = int(np.argmin(((centroids - after) ** 2).sum(axis=1)))
    return following, _output_of(model, probabilities[0])


def _output_of(model, probabilities: np.ndarray):
    if model.config.loss == "softmax":
        return int(np.argmax(probabilities))
    bits = tuple(int(p >= 0.5) for p in probabilities)
    return bits[0] if len(bits) == 1 else bits


def _agreement(machine: Automaton, strings, alphabet, outputs) -> float:
    right = total = 0
    for string, row in zip(strings, outputs, strict=True):
        got = machine.run(alphabet[i] for i in string)
        right += sum(a == b for a, b in zip(got, row, strict=True))
        total += len(row)
    return right / total
