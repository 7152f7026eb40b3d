"""Copy memory (Arjovsky, Shah & Bengio 2016), scaled down.

A sequence of length ``T`` with ``S`` symbols and delay ``d = T - 2S - 1``::

    input   s_1 .. s_S  blank x d  delimiter  blank x S
    target  (unscored)                         s_1 .. s_S

Inputs are one-hot over ``alphabet`` symbols plus a blank and a delimiter
channel (``I = alphabet + 2``); targets are one-hot over the symbols
(``O = alphabet``), scored by softmax cross-entropy on the ``S`` recall steps
only. The paper uses 10 symbols from an alphabet of 8 and delays of 100 and
more; the defaults here (3 symbols from 4, delays 5–10) train in seconds.
``lengths`` are total lengths ``T``, so longer sequences mean longer delays.

``blank_class=True`` is the paper's own form: the targets gain a blank class
(``O = alphabet + 1``), due at every step before the recall, and every step is
scored, so the loss of a net that answers blank and then guesses is the paper's
baseline ``S ln(alphabet) / T`` (:meth:`CopyTask.baseline_loss`), and its evaluation
adds ``symbol_accuracy``, the symbols recalled right (the recall steps alone: the
blanks are easy). The paper's ``T``
is the delay plus one: ``rnnlab train copy --param symbols=10 --param alphabet=8
--param blank_class=true --length 120`` is its ``T = 100``.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.tasks.base import Task, TrainDefaults, check_bool, check_int, draw_lengths, one_hot


class CopyTask(Task):
    """Remember ``symbols`` symbols across a blank delay and recall them after a delimiter."""

    name = "copy"
    loss = "softmax"

    def __init__(self, *, symbols: int = 3, alphabet: int = 4, delay: int = 10,
                 blank_class: bool = False):  # fmt: skip
        self.params = {
            "symbols": check_int(symbols, "symbols", minimum=1),
            "alphabet": check_int(alphabet, "alphabet", minimum=2),
            "delay": check_int(delay, "delay", minimum=1),
            "blank_class": check_bool(blank_class, "blank_class"),
        }
        S, A = self.symbols, self.alphabet = self.params["symbols"], self.params["alphabet"]
        self.delay, self.blank_class = self.params["delay"], self.params["blank_class"]
        self.input_size = A + 2  # symbols, blank, delimiter
        self.output_size = A + 1 if self.blank_class else A  # (+ blank, the last class)
        self.min_length = 2 * S + 1  # delay 0
        self.description = f"recall {S} symbols (of {A}) after a blank delay and a delimiter"
        if self.blank_class:
            self.description += "; blank due before, every step scored"

    def baseline_loss(self, length: int) -> float:
        """The mean loss per scored step, at sequences of ``length``, of a net that answers
        blank until the recall and then guesses uniformly: the paper's baseline
        ``S ln(A) / T`` with ``blank_class``; ``ln A`` (recall steps only) without."""
        if not self.blank_class:
            return math.log(self.alphabet)
        length = check_int(length, "length", minimum=self.min_length)
        return self.symbols * math.log(self.alphabet) / length

    def evaluate(self, outputs: np.ndarray, batch) -> dict[str, float]:
        """The base metrics; with ``blank_class`` also ``symbol_accuracy``: right answers
        at the recall steps (where a symbol, not the blank, is due) over all of them."""
        metrics = super().evaluate(outputs, batch)
        recall = (batch.mask > 0) & (batch.y[..., self.alphabet] == 0) if self.blank_class else None
        if recall is not None and recall.any():  # (T, B)
            right = outputs.argmax(axis=-1) == batch.y.argmax(axis=-1)  # (T, B)
            metrics["symbol_accuracy"] = float(right[recall].mean())
        return metrics

    def own_defaults(self) -> TrainDefaults:
        base = 2 * self.symbols + 1  # T = base + delay
        lengths = (base + max(1, self.delay // 2), base + self.delay)  # delays delay/2..delay
        return TrainDefaults(
            hidden_size=64,  # room for S symbols at once; 32 units learn far slower
            activation="tanh",  # orthogonal init carries the symbols through the delay
            lr=0.003,  # 0.01 diverges
            batch_size=32,
            max_steps=3000,  # solved after 1150-2150 steps (8 seeds)
            train_lengths=lengths,
            # fresh sequences at the trained delays: an Elman net's memory fades past
            # the delays it was trained on, so longer delays are a stretch test, not the bar
            test_lengths=lengths,
            n_train=10000,  # 4**3 symbol triples x 6 delays; 2000 are memorised, not learnt
            n_test=500,
        )

    def _generate(self, n, rng, lo, hi):
        S, A = self.symbols, self.alphabet
        lengths = draw_lengths(n, rng, lo, hi)  # (B,)
        symbols = rng.integers(0, A, size=(S, n))  # (S, B)
        T, cols = int(lengths.max()), np.arange(n)
        delimiter_at = lengths - S - 1  # (B,) = S + delay
        tokens = np.full((T, n), A)  # (T, B) blank everywhere
        tokens[:S] = symbols
        tokens[delimiter_at, cols] = A + 1
        y = np.zeros((T, n, self.output_size))  # (T, B, O)
        mask = np.zeros((T, n))  # (T, B)
        if self.blank_class:  # blank due until the recall, every step scored
            y[..., A] = 1.0
            mask[...] = 1.0
        for j in range(S):
            y[delimiter_at + 1 + j, cols] = 0.0
            y[delimiter_at + 1 + j, cols, symbols[j]] = 1.0
            mask[delimiter_at + 1 + j, cols] = 1.0
        return one_hot(tokens, A + 2), y, mask, lengths
