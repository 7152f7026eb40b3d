"""Training-step throughput: rnnlab (numba, numpy) against PyTorch and the notebook.

One training step = forward, exact BPTT, loss, and an Adam update (the notebook: its
own per-sequence SGD step). Every implementation trains on the same data; within a
configuration they are timed interleaved, several repeats, and the medians are
reported as sequence-steps per second (batch x length / seconds per step).

    python benchmarks/speed.py --quick        # a small subset
    python benchmarks/speed.py                # H in {2,16,64,256}, B in {1,32,256}, T in {10,100}
    python benchmarks/speed.py --startup      # cold (empty cache) and warm start of the kernels
    python benchmarks/speed.py --solve 10     # seconds to solve shift: rnnlab vs PyTorch
    python benchmarks/speed.py --api          # fit, padded arrays, predict_proba vs PyTorch
    python benchmarks/speed.py --text         # a character model's update vs PyTorch

Columns: ``nb32`` the compiled backend in float32 — one ``rnnlab.train.TrainStep``,
the update ``rnnlab.fit`` runs (parameters in one flat vector, compiled clip + Adam);
``nb64`` the same in float64; ``numpy`` the reference (float64, skipped where one
step would take too long); ``torch1`` / ``torchN``
PyTorch float32 with one thread / default threads; ``notebook`` the seed notebook's
pure-Python loop (H=2, batch 1 only). Ratios are nb32 over torch1 and over the
faster torch.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

# OpenBLAS on the machine's own kernels, as MKL runs PyTorch's on its own: an
# OPENBLAS_CORETYPE in the environment would hold rnnlab's products to older ones (this
# project's sandbox pins Haswell's, so that products sum alike on every host it runs on;
# on an AVX-512 machine that halves their speed, and leaves PyTorch's as they are). It
# must go before numpy and scipy load OpenBLAS; the processes this one starts inherit it
# (and the header says what was dropped).
if "OPENBLAS_CORETYPE" in os.environ:
    os.environ["DROPPED_OPENBLAS_CORETYPE"] = os.environ.pop("OPENBLAS_CORETYPE")

import numpy as np

CELLS = ("elman", "gru", "lstm")


def machine_line() -> str:
    """A header line: the CPU and the OpenBLAS kernels the run used."""
    from docs_check import machine

    pinned = os.environ.get("DROPPED_OPENBLAS_CORETYPE")
    dropped = f" (OPENBLAS_CORETYPE={pinned} in the environment: dropped)" if pinned else ""
    return f"# {machine()}{dropped}"


# -- rnnlab -------------------------------------------------------------------------------


def rnnlab_step(cell, H, data, *, backend, dtype, lr=1e-3):
    """A closure doing one training update exactly as ``rnnlab.fit`` does (its TrainStep)."""
    import rnnlab
    from rnnlab.optim import make_optimizer
    from rnnlab.sequences import Batch
    from rnnlab.train import TrainStep

    activation = {} if cell != "elman" else {"activation": "tanh"}
    model = rnnlab.RNN(1, H, 1, cell=cell, backend=backend, dtype=dtype, seed=0, **activation)
    x, y, mask = (a.astype(dtype) for a in data)
    batch = Batch(x, y, mask, lengths=np.full(x.shape[1], x.shape[0]), as_list=False)
    step = TrainStep(model, make_optimizer("adam", lr=lr), reduction="sum")

    def update():
        step(batch)

    return update


# -- PyTorch --------------------------------------------------------------------------------


def torch_step(cell, H, data, *, threads, lr=1e-3):
    import torch

    torch.manual_seed(0)
    rnn = {"elman": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](1, H)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=lr)
    x, y, mask = (torch.from_numpy(a.astype(np.float32)) for a in data)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    def step():
        torch.set_num_threads(threads)
        opt.zero_grad()
        out, _ = rnn(x)  # (T, B, H)
        loss = (loss_fn(head(out), y)[..., 0] * mask).sum()
        loss.backward()
        opt.step()

    return step


# -- the seed notebook's training step (its own code, condensed; batch 1, H = 2) -------------


def notebook_step(data):
    """The notebook's ``RNN.update_weights`` on one sequence: forward, one-step gradients, SGD."""

    def sigmoid(z):
        return 1 / (1 + (math.e**-z))

    random.seed(0)
    w = {k: random.gauss(0, 0.2) for k in "Wy1 Wy2 by W11 W12 b1 W21 W22 b2 Wx1 Wx2".split()}
    xs = [float(v) for v in data[0][:, 0, 0]]
    ys = [float(v) for v in data[1][:, 0, 0]]

    def step(lr=0.01):
        a1 = a2 = 0.0
        g = dict.fromkeys(w, 0.0)
        loss = 0.0
        for x, y in zip(xs, ys, strict=True):
            n1 = sigmoid(w["W11"] * a1 + w["W12"] * a2 + w["Wx1"] * x + w["b1"])
            n2 = sigmoid(w["W21"] * a1 + w["W22"] * a2 + w["Wx2"] * x + w["b2"])
            yh = sigmoid(w["Wy1"] * n1 + w["Wy2"] * n2 + w["by"])
            d = yh - y
            g["by"] += d
            g["Wy1"] += d * n1
            g["Wy2"] += d * n2
            d1 = d * w["Wy1"] * n1 * (1 - n1)
            d2 = d * w["Wy2"] * n2 * (1 - n2)
            g["b1"] += d1
            g["Wx1"] += d1 * x
            g["W11"] += d1 * a1
            g["W12"] += d1 * a2
            g["b2"] += d2
            g["Wx2"] += d2 * x
            g["W21"] += d2 * a1
            g["W22"] += d2 * a2
            loss += -math.log(yh) if y == 1 else -math.log(1 - yh)
            a1, a2 = n1, n2
        for k in w:
            w[k] -= lr * g[k]

    return step


# -- time to solve the shift task -----------------------------------------------------------


def solve_shift_rnnlab(seed):
    """Wall seconds of ``rnnlab.fit`` on shift (task defaults) until solved, and the steps."""
    import rnnlab

    model = rnnlab.RNN(seed=seed)
    history = rnnlab.fit(model, "shift", seed=seed)
    return history.seconds, history.steps, history.solved


def solve_shift_torch(seed, *, threads=1):
    """The same model, data, batches, optimizer, clipping and evaluation in PyTorch."""
    import torch

    import rnnlab
    from rnnlab.interop import to_torch
    from rnnlab.tasks import get_task
    from rnnlab.train import held_out_set, training_set

    torch.set_num_threads(threads)
    task = get_task("shift")
    d = task.defaults
    train = training_set(task, seed)  # (fit's own sets: none of val's strings trained on)
    val = held_out_set(task, seed, 1, train=train)
    module = to_torch(rnnlab.RNN(seed=seed, dtype="float32"))
    opt = torch.optim.Adam(module.parameters(), lr=d.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.swapaxes(0, 1), np.float32))  # noqa: E731
    val_x = as_tensor(val.x)
    rng = np.random.default_rng(seed)  # the fit loop's batch order
    order = np.empty(0, dtype=np.int64)
    start = time.perf_counter()
    for step in range(1, d.max_steps + 1):
        if len(order) < d.batch_size:
            order = np.concatenate([order, rng.permutation(train.size)])
        index, order = order[: d.batch_size], order[d.batch_size :]
        batch = train.take(index)
        x, y, mask = as_tensor(batch.x), as_tensor(batch.y), as_tensor(batch.mask)
        opt.zero_grad()
        loss = (loss_fn(module(x), y)[..., 0] * mask).sum() / mask.sum()  # mean per scored bit
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        if step % 10 == 0:
            with torch.no_grad():
                probs = torch.sigmoid(module(val_x)).numpy().swapaxes(0, 1)  # (T, B, O)
            if task.is_solved(task.evaluate(probs, val)):
                return time.perf_counter() - start, step, True
    return time.perf_counter() - start, d.max_steps, False


def time_to_solve(seeds):
    print(f"# shift, task defaults (2 sigmoid units, Adam 0.05, batch 32, held-out check every "
          f"10 updates); wall seconds of the training loop, {len(seeds)} seeds")  # fmt: skip
    print(f"{'seed':>4} {'rnnlab s':>9} {'steps':>6} {'torch s':>9} {'steps':>6} {'ratio':>7}")
    solve_shift_rnnlab(0), solve_shift_torch(0)  # warm: first calls load kernels, both sides
    ratios = []
    for seed in seeds:
        ours, our_steps, ok = solve_shift_rnnlab(seed)
        theirs, their_steps, their_ok = solve_shift_torch(seed)
        ratios.append(theirs / ours)
        flag = "" if ok and their_ok else "  (not solved)"
        print(f"{seed:4d} {ours:9.4f} {our_steps:6d} {theirs:9.4f} {their_steps:6d} "
              f"{theirs / ours:6.1f}x{flag}", flush=True)  # fmt: skip
    print(f"median ratio torch / rnnlab: {statistics.median(ratios):.1f}x")
    return 0


# -- timing -----------------------------------------------------------------------------------


def best_seconds(fn, rounds=7):
    """The fastest of ``rounds`` calls of ``fn`` (after one that loads it), in seconds."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def seconds_per_call(fn, min_time):
    fn()
    n, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n
        n = max(2 * n, int(n * min_time / max(elapsed, 1e-9)) + 1)


def shift_data(T, B, rng):
    x = rng.integers(0, 2, size=(T, B, 1)).astype(np.float64)
    y = np.zeros_like(x)
    y[1:] = x[:-1]  # the shift task: output the previous input
    return x, y, np.ones((T, B))


def run_config(cell, H, B, T, *, repeats, min_time, numpy_budget):
    rng = np.random.default_rng(0)
    data = shift_data(T, B, rng)
    impls = {
        "nb32": rnnlab_step(cell, H, data, backend="numba", dtype="float32"),
        "nb64": rnnlab_step(cell, H, data, backend="numba", dtype="float64"),
        "torch1": torch_step(cell, H, data, threads=1),
        "torchN": torch_step(cell, H, data, threads=DEFAULT_TORCH_THREADS),
    }
    if H * H * B * T <= numpy_budget:
        impls["numpy"] = rnnlab_step(cell, H, data, backend="numpy", dtype="float64")
    if cell == "elman" and H == 2 and B == 1:
        impls["notebook"] = notebook_step(data)
    times = {name: [] for name in impls}
    for _ in range(repeats):  # interleaved
        for name, fn in impls.items():
            times[name].append(seconds_per_call(fn, min_time))
            time.sleep(QUIET_SECONDS)
    return {name: B * T / statistics.median(ts) for name, ts in times.items()}


#: pause after each measurement: OpenMP worker threads (PyTorch's, numba's) keep spinning
#: on a core for up to ~200 ms after their last parallel region (KMP_BLOCKTIME), which
#: on 2 cores slowed whichever implementation ran next (rnnlab's BLAS calls by up to 5x)
QUIET_SECONDS = 0.25


COLUMNS = ("nb32", "nb64", "numpy", "torch1", "torchN", "notebook")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset of configurations")
    parser.add_argument("--startup", action="store_true", help="time cold and warm kernel start")
    parser.add_argument("--api", action="store_true", help="fit, arrays, predict vs PyTorch")
    parser.add_argument("--text", action="store_true", help="a character model vs PyTorch")
    parser.add_argument(
        "--solve", type=int, metavar="SEEDS", default=0, help="seconds to solve shift vs PyTorch"
    )
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per measurement")
    parser.add_argument("--batches", default="1,32,256", help="batch sizes of the grid")
    parser.add_argument(
        "--compare", nargs=2, metavar=("BEFORE", "AFTER"),
        help="two saved grids: nb32 after / before per configuration, and a summary",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.startup:
        return startup()
    if args.text:
        import speed_text

        return speed_text.main()
    if args.api:
        import speed_api

        return speed_api.main(repeats=args.repeats)
    if args.solve:
        return time_to_solve(range(args.solve))
    import numba
    import torch

    global DEFAULT_TORCH_THREADS
    DEFAULT_TORCH_THREADS = torch.get_num_threads()
    cells = args.cells.split(",")
    if args.quick:
        grid = [(2, 1, 10), (2, 32, 10), (16, 32, 100), (64, 32, 100), (256, 256, 100)]
        cells = cells[:1] if args.cells == ",".join(CELLS) else cells
    else:
        batches = [int(b) for b in args.batches.split(",")]
        grid = [(H, B, T) for H in (2, 16, 64, 256) for B in batches for T in (10, 100)]
    threads = f"numba threads {numba.get_num_threads()}, torch default {DEFAULT_TORCH_THREADS}"
    print(machine_line())
    print(f"# {threads}; sequence-steps per second, median of {args.repeats}")
    header = f"{'cell':6} {'H':>4} {'B':>4} {'T':>4} " + " ".join(f"{c:>11}" for c in COLUMNS)
    print(header + f" {'nb32/t1':>8} {'nb32/tbest':>10}")
    for cell in cells:
        for H, B, T in grid:
            r = run_config(cell, H, B, T, repeats=args.repeats, min_time=args.min_time,
                           numpy_budget=2e6)  # fmt: skip
            cols = " ".join(f"{r[c]:11.3g}" if c in r else f"{'-':>11}" for c in COLUMNS)
            best_torch = max(r["torch1"], r["torchN"])
            print(f"{cell:6} {H:4d} {B:4d} {T:4d} {cols} {r['nb32'] / r['torch1']:8.1f} "
                  f"{r['nb32'] / best_torch:10.1f}", flush=True)  # fmt: skip
    return 0


DEFAULT_TORCH_THREADS = 1


def read_grid(path) -> dict[tuple, dict[str, float]]:
    """A saved grid (this script's output): (cell, H, B, T) -> column -> value."""
    rows = {}
    for line in open(path):
        parts = line.split()
        if not parts or line.startswith("#") or parts[0] == "cell":
            continue
        values = [float("nan") if v == "-" else float(v) for v in parts[4:]]
        names = (*COLUMNS, "nb32/t1", "nb32/tbest")
        rows[(parts[0], *map(int, parts[1:4]))] = dict(zip(names, values, strict=True))
    return rows


def compare(before_path, after_path) -> int:
    """For every configuration both grids hold: nb32 after / before, and the same for
    nb32's ratio to one-thread PyTorch (each grid's PyTorch ran in its own run: the
    ratio takes out how fast the machine was that day); and how many configurations
    rnnlab leads PyTorch in, before and after."""
    before, after = read_grid(before_path), read_grid(after_path)
    shared = [key for key in after if key in before]
    print(f"{'cell':6} {'H':>4} {'B':>4} {'T':>4} {'before':>10} {'after':>10} "
          f"{'after/before':>12} {'vs torch1':>9}")  # fmt: skip
    speed, normalized = [], []
    for key in shared:
        b, a = before[key]["nb32"], after[key]["nb32"]
        n = after[key]["nb32/t1"] / before[key]["nb32/t1"]
        speed.append(a / b)
        normalized.append(n)
        print(f"{key[0]:6} {key[1]:4d} {key[2]:4d} {key[3]:4d} {b:10.3g} {a:10.3g} {a / b:12.2f} "
              f"{n:9.2f}")  # fmt: skip
    for label, ratios in (("after/before", speed), ("vs torch1 after/before", normalized)):
        ratios = sorted(ratios)
        slower, faster = sum(r < 0.8 for r in ratios), sum(r > 1.25 for r in ratios)
        print(f"# {len(shared)} configurations; {label} median "
              f"{statistics.median(ratios):.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}; within "
              f"0.8-1.25: {len(ratios) - slower - faster}, slower than 0.8: {slower}, faster "
              f"than 1.25: {faster}")  # fmt: skip
    for label, grid in (("before", before), ("after", after)):
        t1 = sum(grid[k]["nb32/t1"] > 1 for k in shared)
        best = sum(grid[k]["nb32/tbest"] > 1 for k in shared)
        print(f"# {label}: ahead of one-thread PyTorch in {t1}/{len(shared)}, of the faster "
              f"PyTorch in {best}/{len(shared)}")  # fmt: skip
    return 0


_STARTUP_SNIPPET = """
import time; t0 = time.perf_counter()
import numpy as np
from rnnlab.kernels import compiled
from rnnlab.kernels.layout import network
t1 = time.perf_counter(); rng = np.random.default_rng(0)
for cell, act in (("elman", "tanh"), ("gru", "sigmoid"), ("lstm", "sigmoid")):
    for H, B in ((2, 1), (64, 3)):
        for dtype in (np.float64, np.float32):
            net = network(cell, act, 1, 1, H, 1)
            theta = rng.normal(size=net.size).astype(dtype)
            x = np.ones((5, B, 1), dtype); m = np.ones((5, B), dtype)
            compiled.loss_and_grad(net, theta, x, x, m, loss="bce")
t2 = time.perf_counter()
print(f"import {t1 - t0:.2f} s, first calls (one driver: every cell, lanes and BLAS; "
      f"float64 and float32) {t2 - t1:.2f} s")
"""


def startup():
    """Start the kernels, then ``rnnlab train shift``, in fresh processes: with an empty
    kernel cache, then warm."""
    # (a user's Python keeps the bytecode it compiles: where PYTHONDONTWRITEBYTECODE is set,
    # every start compiles rnnlab's sources again, about 0.3 s)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(base, NUMBA_CACHE_DIR=cache)
        for label in ("cold (empty cache)", "warm (cached)"):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _STARTUP_SNIPPET], env=env, check=True,
                                 capture_output=True, text=True).stdout.strip()  # fmt: skip
            print(f"kernels {label:20} process {time.perf_counter() - start:6.2f} s; {out}")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as runs:
        env = dict(base, NUMBA_CACHE_DIR=cache)
        command = [sys.executable, "-m", "rnnlab", "train", "shift", "--out", runs, "--quiet"]
        for label in ("cold (empty cache)", "warm (cached)", "warm (cached)"):
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            print(f"rnnlab train shift {label:20} {time.perf_counter() - start:6.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
