"""Fuzz the model-file loader: random changes to valid files, timed and measured.

    python benchmarks/fuzz_loader.py --cases 10000

Each case takes a valid model file (one of several shapes and cells), changes it
(random bytes anywhere, a truncation, a rewritten header length, or bytes appended),
and loads it with ``rnnlab.load``. Every case must end in a model or a one-line
``ModelFileError``; the script reports the outcomes, the slowest case and the largest
peak of memory allocated while loading one file (tracemalloc, numpy included).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["bytes", "bytes", "truncate", "length", "append", "header"])
    if kind == "bytes":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "length":
        data[:8] = rng.choice([0, 1, 7, 2**31, 2**63 - 1, rng.randrange(2**64)]).to_bytes(
            8, "little"
        )
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:  # a byte of the JSON header
        end = 8 + int.from_bytes(data[:8], "little")
        data[rng.randrange(8, min(end, len(data)))] = rng.choice(b'{}[]":,0123456789-e ')
    return bytes(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import rnnlab
    from rnnlab.io import ModelFileError

    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-"))
    originals = []
    for i, (cell, layers, hidden) in enumerate([("elman", 1, 2), ("gru", 2, 3), ("lstm", 1, 8)]):
        model = rnnlab.RNN(2, hidden, 1, cell=cell, num_layers=layers, seed=i, backend="numpy")
        originals.append(model.save(folder / f"valid{i}.safetensors").read_bytes())
    path = folder / "case.safetensors"
    outcomes = {"loaded": 0, "refused": 0}
    slowest, largest = 0.0, 0
    tracemalloc.start()
    for _ in range(args.cases):
        path.write_bytes(mutate(rng.choice(originals), rng))
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rnnlab.load(path, backend="numpy")
                outcomes["loaded"] += 1
            except ModelFileError as err:
                message = str(err)
                assert message.startswith(str(path)) and "\n" not in message, message
                outcomes["refused"] += 1
        slowest = max(slowest, time.perf_counter() - start)
        largest = max(largest, tracemalloc.get_traced_memory()[1] - before)
    print(f"{args.cases} cases: {outcomes['loaded']} loaded, {outcomes['refused']} refused "
          f"with one line, 0 crashed; slowest {slowest * 1e3:.1f} ms, largest peak "
          f"{largest / 1e3:.0f} kB (valid files {min(map(len, originals))}-"
          f"{max(map(len, originals))} bytes)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
