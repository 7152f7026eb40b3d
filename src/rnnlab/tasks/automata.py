"""Deterministic finite automata, and sampling their words uniformly.

Used by the Tomita grammars (accept / reject strings) and by bounded-depth
Dyck-1 (a counter up to the depth bound is a finite automaton). To draw a
string of length ``n`` uniformly among those the automaton accepts (or
rejects), count the completions from every state with exact Python integers,
then walk forward choosing each symbol with probability proportional to its
completions — no rejection sampling, so rare classes (e.g. ``1*``) cost
nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DFA:
    """A complete DFA over symbols ``0..K-1``.

    Attributes
    ----------
    transitions : tuple of tuples of int
        ``transitions[state][symbol]`` is the next state.
    accepting : frozenset of int
    start : int
    """

    transitions: tuple[tuple[int, ...], ...]
    accepting: frozenset[int]
    start: int = 0

    @property
    def num_symbols(self) -> int:
        return len(self.transitions[0])

    def states(self, word) -> list[int]:
        """The state after each symbol of ``word`` (not including the start state)."""
        state, out = self.start, []
        for symbol in word:
            state = self.transitions[state][symbol]
            out.append(state)
        return out

    def accepts(self, word) -> bool:
        state = self.start
        for symbol in word:
            state = self.transitions[state][symbol]
        return state in self.accepting

    def completions(self, length: int, accept: bool) -> list[list[int]]:
        """``counts[k][s]``: words of length ``k`` leading from ``s`` to an accepting
        (``accept=True``) or a rejecting state, for ``k = 0..length``; exact ints."""
        ends = [int((s in self.accepting) == accept) for s in range(len(self.transitions))]
        counts = [ends]
        for _ in range(length):
            prev = counts[-1]
            counts.append([sum(prev[t] for t in row) for row in self.transitions])
        return counts

    def sample(
        self, length: int, accept: bool, rng: np.random.Generator, counts: list[list[int]]
    ) -> list[int]:
        """A word of ``length`` symbols, uniform among those accepted (or rejected).

        ``counts`` is ``self.completions(L, accept)`` for some ``L >= length``;
        there must be at least one such word (``counts[length][start] > 0``).
        """
        state = self.start
        if counts[length][state] == 0:
            kind = "accepted" if accept else "rejected"
            raise ValueError(f"no word of length {length} is {kind}")
        word = []
        for k, u in zip(range(length, 0, -1), rng.random(length), strict=True):
            total, acc = counts[k][state], 0
            for symbol, nxt in enumerate(self.transitions[state]):  # noqa: B007
                acc += counts[k - 1][nxt]
                if u < acc / total:  # exact even for huge ints
                    break
            word.append(symbol)
            state = nxt
        return word
