"""The user paths against PyTorch (``python benchmarks/speed.py --api``).

What a user calls, on padded batch-first arrays ``(B, T)`` with ``lengths``, float32:

- ``fit``: ``rnnlab.fit(model, (X, Y, mask), ...)`` per update (its own clock, over fits
  of 200 updates, as many as fill 50 ms: random mini-batches of B from 4 B sequences,
  Adam, one evaluation at each fit's end) against a
  PyTorch loop doing the same (random mini-batch, forward, masked BCE, backward, Adam);
- ``loss_and_grad``: ``model.loss_and_grad(X, Y, lengths=L)`` against a PyTorch forward
  and backward of the same padded batch, and against rnnlab's own ``TrainStep`` on a
  prepared batch (``lg/step``: what the array path costs beyond the kernel's pass; the
  two called in turn, one call each, for 0.1 s, and their median times compared:
  this machine's speed drifts by up to 2x within minutes, and ratios of times taken
  50 ms apart, three times, moved by 20-40% between runs: 1.33-1.50 at H = 16 where 15
  repeats gave 1.01-1.06);
- ``predict_proba``: ``model.predict_proba(X, lengths=L)`` against PyTorch's ``no_grad``
  forward and sigmoid.

Ratios are rnnlab's speed over PyTorch's (``t1``: one thread; ``tN``: its default
threads), medians of interleaved repeats.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from speed import CELLS, QUIET_SECONDS, rnnlab_step, seconds_per_call

#: (H, B, T): the sizes the README quotes
SIZES = ((2, 32, 10), (16, 32, 100), (64, 32, 100), (256, 256, 100))


def padded_data(B, T, rng):
    """Shift-task arrays ``X, Y (B, T)`` with lengths in ``T/2 .. T`` (one of them T)."""
    X = rng.integers(0, 2, size=(B, T)).astype(np.float32)
    Y = np.zeros_like(X)
    Y[:, 1:] = X[:, :-1]
    lengths = rng.integers(max(1, T // 2), T + 1, size=B)
    lengths[0] = T
    pad = np.arange(T)[None, :] >= lengths[:, None]
    X[pad], Y[pad] = 0.0, 0.0
    return X, Y, lengths


def rnnlab_paths(cell, H, X, Y, lengths):
    import rnnlab

    activation = {} if cell != "elman" else {"activation": "tanh"}
    model = rnnlab.RNN(1, H, 1, cell=cell, dtype="float32", seed=0, **activation)
    T, B = X.shape[1], X.shape[0] // 4
    first = X[:B], Y[:B], lengths[:B]
    time_major = np.swapaxes(first[0], 0, 1)[..., None], np.swapaxes(first[1], 0, 1)[..., None]
    data = (*time_major, (np.arange(T)[:, None] < first[2][None, :]).astype(np.float32))

    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float32)  # padding unscored

    def fit_update(min_time=0.05):
        """Seconds per update of fits of 200 updates (5 at H = 256), as many as fill
        ``min_time`` (as PyTorch's side is timed: one 200-update fit at H = 2 is 3 ms)."""
        updates, seconds, steps = 200 if H <= 64 else 5, 0.0, 0
        while seconds < min_time:
            history = rnnlab.fit(model, (X, Y, mask), batch_size=B, max_steps=updates,
                                 eval_every=updates, lr=1e-3, restore_best=False)  # fmt: skip
            seconds, steps = seconds + history.seconds, steps + history.steps
        return seconds / steps

    return {
        "fit": fit_update,
        "loss_and_grad": lambda: model.loss_and_grad(first[0], first[1], lengths=first[2]),
        "predict_proba": lambda: model.predict_proba(first[0], lengths=first[2]),
        "step": rnnlab_step(cell, H, data, backend="numba", dtype="float32"),
    }


def torch_paths(cell, H, X, Y, lengths, threads):
    import torch

    torch.manual_seed(0)
    rnn = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](
        1, H, batch_first=True
    )
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    x_all, y_all = torch.from_numpy(X)[..., None], torch.from_numpy(Y)[..., None]
    mask_all = torch.from_numpy((np.arange(X.shape[1])[None, :] < lengths[:, None]).astype(
        np.float32))  # fmt: skip
    B = X.shape[0] // 4
    generator = torch.Generator().manual_seed(0)

    def pass_on(x, y, mask):
        out, _ = rnn(x)  # (B, T, H)
        loss = (loss_fn(head(out), y)[..., 0] * mask).sum() / mask.sum()
        loss.backward()

    def update():
        index = torch.randint(0, X.shape[0], (B,), generator=generator)
        opt.zero_grad()
        pass_on(x_all[index], y_all[index], mask_all[index])
        opt.step()

    def loss_and_grad():
        opt.zero_grad()
        pass_on(x_all[:B], y_all[:B], mask_all[:B])

    def predict_proba():
        with torch.no_grad():
            out, _ = rnn(x_all[:B])
            return torch.sigmoid(head(out))[..., 0] * mask_all[:B]

    def threaded(fn):
        def call():
            torch.set_num_threads(threads)
            return fn()

        return call

    return {"fit": threaded(update), "loss_and_grad": threaded(loss_and_grad),
            "predict_proba": threaded(predict_proba)}  # fmt: skip


def measure(cell, H, B, T, repeats, min_time, default_threads):
    X, Y, lengths = padded_data(4 * B, T, np.random.default_rng(0))
    ours = rnnlab_paths(cell, H, X, Y, lengths)
    ours["fit"]()  # (kernels in)
    theirs = {"t1": torch_paths(cell, H, X, Y, lengths, 1)}
    if H >= 256:
        theirs["tN"] = torch_paths(cell, H, X, Y, lengths, default_threads)
    times = {}
    for _ in range(repeats):  # interleaved
        for path in ("fit", "loss_and_grad", "predict_proba"):
            seconds = ours[path]() if path == "fit" else seconds_per_call(ours[path], min_time)
            times.setdefault(("rnnlab", path), []).append(seconds)
            if path == "loss_and_grad":  # (call by call with the step: see lg/step above)
                lg_over_step = time_ratio(ours["loss_and_grad"], ours["step"], 2 * min_time)
                times.setdefault(("rnnlab", "lg/step"), []).append(lg_over_step)
            time.sleep(QUIET_SECONDS)
            for name, impl in theirs.items():
                times.setdefault((name, path), []).append(seconds_per_call(impl[path], min_time))
                time.sleep(QUIET_SECONDS)
    return {key: statistics.median(values) for key, values in times.items()}


def time_ratio(a, b, min_time):
    """How much longer a call of ``a`` takes than one of ``b``: the median time of ``a``
    over that of ``b``, calls alternating one by one for about ``min_time`` seconds (so
    both see the machine as it is at that moment)."""
    a(), b()
    spent, clock = {a: [], b: []}, time.perf_counter
    end = clock() + min_time
    while clock() < end or len(spent[a]) < 5:
        for fn in (a, b):
            start = clock()
            fn()
            spent[fn].append(clock() - start)
    return statistics.median(spent[a]) / statistics.median(spent[b])


def ratio(times, path, who):
    """rnnlab's speed over ``who``'s on ``path``, formatted ("-" where not measured)."""
    if (who, path) not in times:
        return "-"
    return f"{times[(who, path)] / times[('rnnlab', path)]:.1f}"


def main(repeats=3, min_time=0.05):
    import torch

    from speed import machine_line

    default_threads = torch.get_num_threads()
    print(machine_line())
    print(f"# float32, padded arrays; rnnlab speed / PyTorch speed (t1: one thread, tN: "
          f"{default_threads}); lg/step: loss_and_grad time / TrainStep time; median of "
          f"{repeats}")  # fmt: skip
    print(f"{'cell':6} {'H':>4} {'B':>4} {'T':>4} {'fit/t1':>7} {'fit/tN':>7} {'lg/t1':>7} "
          f"{'lg/tN':>7} {'pred/t1':>8} {'pred/tN':>8} {'lg/step':>8} {'fit us':>8}")  # fmt: skip
    for cell in CELLS:
        for H, B, T in SIZES:
            t = measure(cell, H, B, T, repeats, min_time, default_threads)
            print(f"{cell:6} {H:4d} {B:4d} {T:4d} {ratio(t, 'fit', 't1'):>7} "
                  f"{ratio(t, 'fit', 'tN'):>7} {ratio(t, 'loss_and_grad', 't1'):>7} "
                  f"{ratio(t, 'loss_and_grad', 'tN'):>7} {ratio(t, 'predict_proba', 't1'):>8} "
                  f"{ratio(t, 'predict_proba', 'tN'):>8} "
                  f"{t[('rnnlab', 'lg/step')]:8.2f} "
                  f"{t[('rnnlab', 'fit')] * 1e6:8.0f}", flush=True)  # fmt: skip
    return 0
