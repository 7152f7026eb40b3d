"""The notebook's task: repeat the input bit stream ``k`` steps later.

``y_t = x_{t-k}`` for ``t >= k`` and ``y_t = 0`` before, every step scored.
With ``k = 1`` and lengths 4–10 this is exactly the notebook's data, and a
2-unit sigmoid network solves it at any length (:meth:`ShiftTask.solution`).
"""

from __future__ import annotations

import numpy as np

from rnnlab.tasks.base import Task, TrainDefaults, check_int, padding_mask


def shift_data(
    n: int, rng: np.random.Generator, lengths: tuple[int, int] = (4, 10), delay: int = 1
) -> tuple[list[list[int]], list[list[int]]]:
    """The notebook's data: ``n`` random bit strings and their right shifts by ``delay``.

    For each sequence, draws its length uniformly on ``lengths`` (inclusive),
    then its bits. Returns ``X, y``: lists of lists of 0/1, as the notebook
    builds them (``y = [0] * delay + x[:-delay]``, cut to the length of ``x``).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    lo, hi = lengths
    if not 1 <= lo <= hi:
        raise ValueError(f"lengths must satisfy 1 <= lo <= hi, got {lengths!r}")
    X, y = [], []
    for _ in range(n):
        length = int(rng.integers(lo, hi + 1))
        bits = rng.integers(0, 2, size=length).tolist()
        X.append(bits)
        y.append(([0] * delay + bits)[:length])
    return X, y


class ShiftTask(Task):
    """Output the input bit from ``delay`` steps ago (0 before that).

    ``x (T, B, 1)`` random bits, ``y (T, B, 1)`` with ``y_t = x_{t-delay}``,
    ``bce`` on every step.
    """

    name = "shift"
    input_size = 1
    output_size = 1
    loss = "bce"

    def __init__(self, *, delay: int = 1):
        self.params = {"delay": check_int(delay, "delay", minimum=1)}
        self.delay = self.params["delay"]
        steps = "1 step" if self.delay == 1 else f"{self.delay} steps"
        self.description = f"repeat the input bit {steps} later (the notebook's task)"

    def own_defaults(self) -> TrainDefaults:
        k = self.delay
        return TrainDefaults(
            hidden_size=2 if k == 1 else 2 * k + 2,  # the notebook's 2 units suffice for k=1
            activation="sigmoid" if k == 1 else "tanh",  # the notebook's units; tanh for k>1
            lr=0.05,  # Adam at 0.05 solved 40 of 40 seeds (median 75 updates)
            batch_size=32,
            max_steps=2000,  # solved after 20-520 steps on 40 seeds
            train_lengths=(4, 10),  # the notebook's lengths
            test_lengths=(1000, 1000),  # a memory of k bits works at any length
            n_train=1000,  # the notebook's 1000 sequences
            n_test=1000,  # held-out strings: 100% of 1000 is the bar
        )

    def _generate(self, n, rng, lo, hi):
        # the draws of shift_data, in its order (the notebook's data), without its lists
        lengths = np.empty(n, dtype=np.int64)  # (B,)
        x = np.zeros((hi, n, 1))  # (T, B, 1)
        for b in range(n):
            lengths[b] = rng.integers(lo, hi + 1)
            x[: lengths[b], b, 0] = rng.integers(0, 2, size=lengths[b])
        T = int(lengths.max())
        x = x[:T]
        mask = padding_mask(lengths, T)  # (T, B)
        y = np.zeros_like(x)  # (T, B, 1)
        if self.delay < T:
            y[self.delay :] = x[: T - self.delay] * mask[self.delay :, :, None]
        return x, y, mask, lengths

    def solution(self) -> dict[str, np.ndarray]:
        """The notebook's hand-built 2-unit sigmoid network, as rnnlab parameters.

        Unit 0 copies the input (``sigmoid(10 x - 5)``), unit 1 copies unit 0
        one step later, the output reads unit 1. The notebook's weights with
        its slip fixed (``ba_first = -5``, as its comment says). Load with
        ``RNN.from_params(RNNConfig(), task.solution())``.
        """
        if self.delay != 1:
            raise ValueError(
                f"the hand-built solution is for delay=1 only (this task has delay={self.delay})"
            )
        return {
            "W_xh": np.array([[10.0], [0.0]]),  # Wax_first, Wax_second
            "W_hh": np.array([[0.0, 0.0], [10.0, 0.0]]),  # Waa_first_1/2, Waa_second_1/2
            "b_h": np.array([-5.0, -5.0]),  # ba_first (the notebook's slip: +5), ba_second
            "h0": np.array([0.0, 0.0]),  # a_first, a_second
            "W_hy": np.array([[0.0, 10.0]]),  # Wy_first, Wy_second
            "b_y": np.array([-5.0]),  # by
        }
