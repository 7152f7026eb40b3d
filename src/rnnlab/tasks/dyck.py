"""Dyck-1: balanced parentheses, as next-symbol-set prediction.

The input is a balanced string, one-hot (``x (T, B, 2)``: channel 0 for
"(", 1 for ")"). After each prefix the model predicts which continuations
are legal, as independent bits (``y (T, B, 2)``, ``bce``, every step scored):

- ``y[..., 0]``: ")" may come next — the depth is above 0;
- ``y[..., 1]``: the string may end here — the depth is 0.

"(" may always come next, so it is not predicted. The targets describe the
unbounded Dyck-1 language; ``max_depth`` only bounds the strings generated
(the nesting the model must count to), so a test set with a larger
``max_depth`` asks whether it learnt to count. Strings are balanced, so
only even lengths occur; each length is uniform over the even lengths in
range and the string uniform over the Dyck words of that length and depth.
"""

from __future__ import annotations

import numpy as np

from rnnlab.tasks.automata import DFA
from rnnlab.tasks.base import Task, TrainDefaults, check_int, one_hot, padding_mask


def depth_automaton(max_depth: int) -> DFA:
    """States ``0..D`` are depths, ``D + 1`` is dead; accepts depth 0."""
    dead = max_depth + 1
    rows = [(d + 1 if d < max_depth else dead, d - 1 if d > 0 else dead) for d in range(dead)]
    return DFA((*rows, (dead, dead)), frozenset({0}))


class DyckTask(Task):
    """Predict, after each prefix of a balanced string, whether ")" and the end are legal."""

    name = "dyck1"
    input_size = 2
    output_size = 2
    loss = "bce"
    min_length = 2

    def __init__(self, *, max_depth: int = 4, test_depth: int | None = None):
        max_depth = check_int(max_depth, "max_depth", minimum=1)
        if test_depth is not None:  # (None: the trained depth, whatever it is)
            test_depth = check_int(test_depth, "test_depth", minimum=max_depth)
        self.params = {"max_depth": max_depth, "test_depth": test_depth}
        self.max_depth = max_depth
        self.test_depth = max_depth if test_depth is None else test_depth
        self.dfa = depth_automaton(self.max_depth)
        deeper = f", tested to depth {test_depth}" if test_depth != max_depth else ""
        self.description = (
            f"balanced parentheses, depth <= {max_depth}: may ')' or the end come next?{deeper}"
        )

    def test_task(self) -> Task:
        """Strings of depth up to ``test_depth`` (counting beyond the trained depth)."""
        if self.test_depth == self.max_depth:
            return self
        return self._rebuild(**{**self.params, "max_depth": self.test_depth, "test_depth": None})

    def own_defaults(self) -> TrainDefaults:
        return TrainDefaults(
            hidden_size=16,  # a depth counter up to max_depth
            activation="tanh",
            lr=0.01,
            batch_size=32,
            max_steps=3000,  # solved after 100-650 steps
            train_lengths=(2, 20),  # every step is scored, so short strings suffice
            test_lengths=(22, 50),  # strictly longer; depth bound test_depth
            n_train=1000,
            n_test=200,
        )

    def check_lengths(self, lengths) -> tuple[int, int]:
        lo, hi = super().check_lengths(lengths)
        if lo == hi and lo % 2:
            raise ValueError(f"balanced strings have even lengths; lengths {lo}..{hi} has none")
        return lo, hi

    #: solved also means every balanced string up to length 10 right
    exhaustive_length = 10

    def _is_example(self, word) -> bool:
        return self.dfa.accepts(word)

    def _generate(self, n, rng, lo, hi):
        counts = self.dfa.completions(hi, accept=True)
        even = np.arange(lo + lo % 2, hi + 1, 2)
        words = [self.dfa.sample(int(L), True, rng, counts) for L in rng.choice(even, size=n)]
        return self._targets_of(words)

    def _targets_of(self, words):
        n = len(words)
        lengths = np.array([len(w) for w in words])  # (B,)
        T = int(lengths.max())
        symbols = np.zeros((T, n), dtype=np.int64)  # (T, B) 0 "(", 1 ")"
        for b, w in enumerate(words):
            symbols[: len(w), b] = w
        steps = 1 - 2 * symbols  # (T, B) +1 "(", -1 ")"
        depth = np.cumsum(steps * padding_mask(lengths, T).astype(np.int64), axis=0)  # (T, B)
        y = np.stack([depth > 0, depth == 0], axis=-1).astype(float)  # (T, B, 2)
        return one_hot(symbols, 2), y, padding_mask(lengths, T), lengths
