"""A character-level model's update against PyTorch (``python benchmarks/speed.py --text``).

What ``rnnlab train text`` runs per update (:class:`rnnlab.text.StreamStep`: truncated
BPTT over a chunk from the carried states, Adam, the gradient's norm clipped to 5, the
states the chunk leaves) against the same loop in PyTorch (``nn.RNN``/``nn.GRU``/
``nn.LSTM`` and a linear head, the hidden state carried and detached, cross-entropy,
``clip_grad_norm_``, Adam), float32, one PyTorch thread: ``V = 70`` characters, ``H =
128``, 32 tracks, chunks of 50. Medians of interleaved repeats; ratio: rnnlab's updates
per second over PyTorch's.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from speed import CELLS, QUIET_SECONDS, seconds_per_call

V, H, B, T = 70, 128, 32, 50


def chunks(rng, count=8):
    """One-hot ``x, y (T, B, V)`` chunks of random text, float32."""
    ids = rng.integers(0, V, size=(count, T + 1, B))
    eye = np.eye(V, dtype=np.float32)
    return [(eye[c[:-1]], eye[c[1:]]) for c in ids]


def rnnlab_update(cell, data):
    import rnnlab
    from rnnlab.optim import make_optimizer
    from rnnlab.text import StreamStep

    activation = {"activation": "tanh"} if cell == "elman" else {}
    model = rnnlab.RNN(V, H, V, cell=cell, loss="softmax", dtype="float32", seed=0,
                       **activation)  # fmt: skip
    step, at = StreamStep(model, make_optimizer("adam", lr=3e-3), clip=5.0), [0]

    def update():
        x, y = data[at[0] % len(data)]
        at[0] += 1
        step(x, y)

    return update


def torch_update(cell, data):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    rnn = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](V, H)
    head = torch.nn.Linear(H, V)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    tensors = [(torch.from_numpy(x), torch.from_numpy(y.argmax(-1))) for x, y in data]
    state, at = [None], [0]

    def update():
        torch.set_num_threads(1)
        x, y = tensors[at[0] % len(tensors)]
        at[0] += 1
        opt.zero_grad()
        out, hidden = rnn(x, state[0])  # (T, B, H)
        loss = loss_fn(head(out).reshape(T * B, V), y.reshape(T * B))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        state[0] = tuple(h.detach() for h in hidden) if cell == "lstm" else hidden.detach()

    return update


def main(repeats=3, min_time=0.3):
    data = chunks(np.random.default_rng(0))
    print(f"# character model, float32: V={V} H={H} tracks={B} chunk={T}; us per update; "
          f"ratio: rnnlab's updates/s over PyTorch's (one thread); median of "
          f"{repeats}")  # fmt: skip
    print(f"{'cell':6} {'rnnlab us':>10} {'torch1 us':>10} {'ratio':>6}")
    for cell in CELLS:
        ours, theirs = rnnlab_update(cell, data), torch_update(cell, data)
        ours()  # (kernels in)
        times = {"ours": [], "theirs": []}
        for _ in range(repeats):  # interleaved
            times["ours"].append(seconds_per_call(ours, min_time))
            time.sleep(QUIET_SECONDS)
            times["theirs"].append(seconds_per_call(theirs, min_time))
            time.sleep(QUIET_SECONDS)
        a, b = (statistics.median(times[k]) for k in ("ours", "theirs"))
        print(f"{cell:6} {a * 1e6:10.0f} {b * 1e6:10.0f} {b / a:6.1f}")
    return 0
