"""What the LSTM's products and nonlinearities alone cost, against PyTorch's LSTM.

    python benchmarks/lstm_floor.py

At the sizes of ``speed.py --api`` (float32, B = 32, T = 100, one input, one output) for
H = 16 and 64, it times the parts rnnlab's way of running the LSTM (a BLAS call per
product and step, its own vectorized nonlinearities) cannot skip, each on its own, best
of several:

- the products of a step, through the BLAS rnnlab's kernels call: the forward pass's
  ``W_hh h`` (4H x H by H x m), and an update's two more (``W_hh^T da`` and the weight
  gradient ``da h^T``), for m = 32 sequences on one core and m = 16 on each of two;
- the nonlinearities of a step: 5 H m values (three sigmoids, two tanh) through rnnlab's
  vectorized float32 sigmoid (its tanh costs the same);
- waking a second core: a pool thread's ``submit(...).result()`` of nothing (median);

and, in the same run, PyTorch's ``no_grad`` forward pass and its update (one thread) as
``speed.py --api`` times them. It prints each bar of the issue's Must-show (``fit``
10x / 3x, ``predict_proba`` 5x / 2x) as the time it leaves rnnlab, beside the sum of the
parts on one core and on two (each core half the sequences, plus the wake). Everything
else a pass does (the cell's other arithmetic, the input and output layers, the loss,
Adam) is left out: the sums are lower bounds for this machine and this BLAS.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import speed  # (first: OpenBLAS on this machine's own kernels, before numpy loads it)

# isort: split
import numpy as np

from speed_api import padded_data, torch_paths

B, T = 32, 100
#: H: (fit bar, predict bar), from the issue
BARS = {16: (10.0, 5.0), 64: (3.0, 2.0)}


def _kernels():
    from numba import njit

    from rnnlab.kernels.compiled.math import kernel, sigmoid

    @njit(nogil=True)
    def products(W, h, da, dh, grad, steps, backward):
        for _ in range(steps):
            np.dot(W, h, da)  # forward: W_hh h (4H, m)
            if backward:
                np.dot(W.T, da, dh)  # W_hh^T da (H, m)
                np.dot(da, h.T, grad)  # da h^T (4H, H)

    @kernel
    def nonlinearities(a, out, steps):
        for _ in range(steps):
            for q in range(a.shape[0]):
                for b in range(a.shape[1]):
                    out[q, b] = sigmoid(a[q, b])

    return products, nonlinearities


def pass_parts(H, m, products, nonlinearities):
    """Seconds per pass of T steps over ``m`` sequences: (forward products, update
    products, nonlinearities)."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4 * H, H)).astype(np.float32)
    h = rng.standard_normal((H, m)).astype(np.float32)
    da, dh = np.empty((4 * H, m), np.float32), np.empty((H, m), np.float32)
    grad = np.empty((4 * H, H), np.float32)
    forward = speed.best_seconds(lambda: products(W, h, da, dh, grad, T, False))
    update = speed.best_seconds(lambda: products(W, h, da, dh, grad, T, True))
    values = rng.standard_normal((5 * H, m)).astype(np.float32)
    out = np.empty_like(values)
    nonlinear = speed.best_seconds(lambda: nonlinearities(values, out, T))
    return forward, update, nonlinear


def wake_seconds(calls=200):
    with ThreadPoolExecutor(1) as pool:
        pool.submit(int).result()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            pool.submit(int).result()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():

    products, nonlinearities = _kernels()
    wake = wake_seconds()
    print(speed.machine_line())
    print(f"# float32, B={B}, T={T}; ms; a second core's wake {wake * 1e6:.0f} us (median)")
    print("# budget: PyTorch's time / the bar; floor: the products and nonlinearities alone "
          "(two cores: half the sequences each, plus the wake)")  # fmt: skip
    print(f"{'H':>3} {'path':14} {'torch1':>7} {'bar':>5} {'budget':>7} {'floor1':>7} "
          f"{'floor2':>7}  below both floors?")  # fmt: skip
    for H, (fit_bar, predict_bar) in BARS.items():
        X, Y, lengths = padded_data(4 * B, T, np.random.default_rng(0))
        theirs = torch_paths("lstm", H, X, Y, lengths, 1)
        their_fit = statistics.median(speed.seconds_per_call(theirs["fit"], 0.05) for _ in range(3))
        their_predict = statistics.median(
            speed.seconds_per_call(theirs["predict_proba"], 0.05) for _ in range(3)
        )
        one = pass_parts(H, B, products, nonlinearities)
        two = pass_parts(H, B // 2, products, nonlinearities)
        rows = (
            ("fit", their_fit, fit_bar, one[1] + one[2], wake + two[1] + two[2]),
            ("predict_proba", their_predict, predict_bar, one[0] + one[2], wake + two[0] + two[2]),
        )
        for path, theirs_s, bar, floor1, floor2 in rows:
            budget = theirs_s / bar
            verdict = "yes" if budget < min(floor1, floor2) else "no"
            print(f"{H:>3} {path:14} {theirs_s * 1e3:7.3f} {bar:4.0f}x {budget * 1e3:7.3f} "
                  f"{floor1 * 1e3:7.3f} {floor2 * 1e3:7.3f}  {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
