"""Running computations on bit streams: parity and binary addition.

Both score every step with ``bce`` and need only a finite memory (one bit of
parity, one bit of carry), so a solution found on short strings works at
any length.
"""

from __future__ import annotations

import numpy as np

from rnnlab.tasks.base import (
    Task,
    TrainDefaults,
    check_bool,
    draw_lengths,
    last_step_mask,
    padding_mask,
)


class ParityTask(Task):
    """Running XOR: ``y_t = x_1 xor ... xor x_t``.

    ``x (T, B, 1)`` random bits, ``y (T, B, 1)``, every step scored; with ``final``, the
    last step only: the parity of the whole string, as the usual benchmark asks it
    (Deletang et al. 2023 train to length 40 and test to 500).
    """

    name = "parity"
    input_size = 1
    output_size = 1
    loss = "bce"

    def __init__(self, *, final: bool = False):
        self.params = {"final": check_bool(final, "final")}
        self.final = self.params["final"]
        self.description = ("parity of the bit string, labelled at the end" if self.final
                            else "running XOR of the input bits")  # fmt: skip

    def own_defaults(self) -> TrainDefaults:
        if self.final:
            return TrainDefaults(
                hidden_size=16,
                # one label a string: an Elman net found it from 4 of 10 seeds in 5000
                # updates, a GRU from every seed tried in about 300
                cell="gru",
                activation="sigmoid",
                lr=0.01,
                batch_size=32,
                max_steps=5000,
                train_lengths=(1, 40),  # one label a string: its length is all the signal
                test_lengths=(41, 500),
                n_train=5000,
                n_test=500,
            )
        return TrainDefaults(
            hidden_size=16,  # 8 units fail for about 1 seed in 10
            activation="tanh",
            lr=0.02,
            batch_size=32,
            max_steps=3000,  # solved after 150-400 steps
            train_lengths=(2, 20),  # every step is scored: short strings teach XOR fast
            test_lengths=(21, 50),  # strictly longer: one parity bit works at any length
            n_train=1000,
            n_test=200,
        )

    #: solved also means every string up to length 10 right
    exhaustive_length = 10

    def _targets_of(self, words):
        lengths = np.array([len(w) for w in words])  # (B,)
        T = int(lengths.max())
        bits = np.zeros((T, len(words)), dtype=np.int64)  # (T, B)
        for b, w in enumerate(words):
            bits[: len(w), b] = w
        return self._with_parity(bits, lengths)

    def _generate(self, n, rng, lo, hi):
        lengths = draw_lengths(n, rng, lo, hi)  # (B,)
        T = int(lengths.max())
        bits = rng.integers(0, 2, size=(T, n)) * padding_mask(lengths, T).astype(np.int64)
        return self._with_parity(bits, lengths)

    def _with_parity(self, bits, lengths):
        """x, y, mask, lengths of ``bits (T, B)`` (zero past each length)."""
        T = bits.shape[0]
        mask = last_step_mask(lengths, T) if self.final else padding_mask(lengths, T)  # (T, B)
        parity = np.cumsum(bits, axis=0) % 2  # (T, B)
        return bits[..., None].astype(float), parity[..., None].astype(float), mask, lengths


class BinaryAdditionTask(Task):
    """Add two binary numbers fed least significant bit first.

    A sequence of length ``T`` adds two ``(T - 1)``-bit numbers: step ``t``
    carries bit ``t`` of each (``x (T, B, 2)``), and the last step is ``0, 0``
    so the carry out has a step to appear in. ``y_t`` is bit ``t`` of the
    sum (``y (T, B, 1)``), every step scored.
    """

    name = "binary_addition"
    description = "add two binary numbers, least significant bit first"
    input_size = 2
    output_size = 1
    loss = "bce"
    min_length = 2  # one bit each, and the carry-out step

    def own_defaults(self) -> TrainDefaults:
        return TrainDefaults(
            hidden_size=8,  # a carry bit and the sum's XOR
            activation="tanh",
            lr=0.02,
            batch_size=32,
            max_steps=3000,  # solved after 100-250 steps
            train_lengths=(2, 10),  # numbers of up to 9 bits
            test_lengths=(20, 50),  # strictly longer: a carry bit works at any length
            n_train=1000,
            n_test=200,
        )

    def _generate(self, n, rng, lo, hi):
        lengths = draw_lengths(n, rng, lo, hi)  # (B,)
        T = int(lengths.max())
        operand_steps = padding_mask(lengths - 1, T).astype(np.int64)  # (T, B), 0 on the last
        bits = rng.integers(0, 2, size=(T, n, 2)) * operand_steps[..., None]  # (T, B, 2)
        total = np.zeros((T, n), dtype=np.int64)  # (T, B) sum bits
        carry = np.zeros(n, dtype=np.int64)  # (B,)
        for t in range(T):
            s = bits[t, :, 0] + bits[t, :, 1] + carry
            total[t], carry = s % 2, s // 2
        return bits.astype(float), total[..., None].astype(float), padding_mask(lengths, T), lengths
