"""Character-level language models: a text file as one stream, as min-char-rnn trains them.

The text's characters are the vocabulary (one-hot inputs, a softmax over the next
character). The training text is cut into ``batch_size`` contiguous tracks, read side
by side in chunks of ``seq_length`` characters: each update is truncated BPTT over one
chunk, starting from the states the previous chunk left (:meth:`rnnlab.RNN.loss_and_grad`'s
``initial``: data, so no gradient crosses a chunk's start), and the tracks start again
from ``h0`` when they run out. The last ``held_out`` share of the text is scored the
same way, in bits per character, beside what a character unigram and bigram model
(add-one smoothed counts of the training text) give. :func:`sample` draws text one
character at a time with the state carried (:meth:`rnnlab.RNN.step`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.fit_state import FitState
from rnnlab.io import atomic_write_text, publish_run_dir, staging_dir
from rnnlab.losses import LOSSES
from rnnlab.model import RNN, State
from rnnlab.optim import make_optimizer
from rnnlab.resources import check_fits
from rnnlab.sequences import Batch
from rnnlab.tasks.base import one_hot
from rnnlab.train import TrainStep

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, sorted; a character's id is its place."""

    chars: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Character ids (int64); ``ValueError`` naming a character it does not hold."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as err:
            raise ValueError(f"{err.args[0]!r} is not in the model's vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            chars = json.loads(path.read_text())["chars"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a vocabulary file ({err})") from None
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"{path}: not a vocabulary file (no characters)")
        return cls(chars)


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; ``ValueError`` (one line) for a missing, empty, binary
    or too large file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror})") from None
    check_fits(8 * size, f"{path} ({size} bytes)")  # (ids and one-hot chunks: ~8 bytes a char)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start} is not); a text model "
                         "reads characters") from None  # fmt: skip
    if "\x00" in text:
        raise ValueError(f"{path}: holds NUL bytes; a binary file, not text")
    if len(text) < 2:
        raise ValueError(f"{path}: the text is empty (a model learns from two characters on)")
    return text


def tracks(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """``ids (N,)`` cut into ``batch_size`` contiguous tracks ``(B, N // B)`` (the rest
    dropped)."""
    length = len(ids) // batch_size
    if length < 2:
        raise ValueError(f"{len(ids)} characters cannot fill {batch_size} tracks of 2 or more")
    return ids[: length * batch_size].reshape(batch_size, length)


def chunk(tracks_: np.ndarray, start: int, seq_length: int, vocabulary: int, dtype):
    """One-hot inputs ``x (T, B, V)`` from column ``start`` on and targets ``y`` (the next
    characters), ``T <= seq_length`` (the tracks' end cuts the last chunk short)."""
    T = min(seq_length, tracks_.shape[1] - 1 - start)
    x = one_hot(tracks_[:, start : start + T].T, vocabulary, dtype)  # (T, B, V)
    y = one_hot(tracks_[:, start + 1 : start + T + 1].T, vocabulary, dtype)  # (T, B, V)
    return x, y


def bits_per_char(model: RNN, ids: np.ndarray, *, seq_length: int = 50,
                  batch_size: int = 32) -> float:  # fmt: skip
    """The model's mean cross-entropy on ``ids``, in bits per character: the text read
    as ``batch_size`` tracks (fewer if it is short), chunk by chunk, the state carried."""
    B = max(1, min(batch_size, len(ids) // (seq_length + 1)))
    data, V = tracks(ids, B), model.config.output_size
    nats, count, state = 0.0, 0, None  # (the softmax loss per character: nats)
    for start in range(0, data.shape[1] - 1, seq_length):
        x, y = chunk(data, start, seq_length, V, model.params.flat.dtype)
        logits, h, c = model._forward(x, states=True, initial=state)
        nats += float(LOSSES["softmax"].step_loss(logits, y).sum())
        count += x.shape[0] * x.shape[1]
        state = State(h[:, -1], None if c is None else c[:, -1])
    return nats / count / LN2


def ngram_bits(train: np.ndarray, held_out: np.ndarray, vocabulary: int) -> tuple[float, float]:
    """(unigram, bigram) bits per character on ``held_out`` of add-one smoothed character
    counts of ``train``."""
    uni = np.bincount(train, minlength=vocabulary) + 1.0
    unigram = -np.log2(uni[held_out] / uni.sum()).mean()
    # pairs counted by code a V + b (no V x V table): (count(a, b) + 1) / (count(a) + V)
    codes, counts = np.unique(train[:-1] * vocabulary + train[1:], return_counts=True)
    wanted = held_out[:-1] * vocabulary + held_out[1:]
    at = np.minimum(np.searchsorted(codes, wanted), len(codes) - 1)
    pair = np.where(codes[at] == wanted, counts[at], 0) + 1.0
    first = np.bincount(train[:-1], minlength=vocabulary)[held_out[:-1]] + vocabulary
    bigram = -np.log2(pair / first).mean()
    return float(unigram), float(bigram)


class StreamStep:
    """One update of truncated BPTT on the next chunk of a stream of tracks, from the
    states the last chunk left (``reset()``: from ``h0`` again). Calling it with
    ``x, y (T, B, V)`` returns the chunk's mean loss per character (nats)."""

    def __init__(self, model: RNN, optimizer, clip: float | None = 5.0):
        self.model, self.step = model, TrainStep(model, optimizer, clip=clip)
        self.carry(None)

    def reset(self) -> None:
        self.carry(None)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> float:
        T, B = x.shape[0], x.shape[1]
        c = self.model.config
        batch = Batch(x, y, np.ones((T, B), x.dtype), np.full(B, T), False)
        # the pass writes the states it ends in (before the update, as min-char-rnn keeps
        # its forward pass's): the next chunk starts there
        final = np.zeros((2, c.num_layers, B, c.hidden_size), self.model.params.flat.dtype)
        loss, _ = self.step(batch, self.state, final)
        self.carry(final)
        return loss

    @property
    def carried(self) -> np.ndarray | None:
        """The states the next chunk starts from, ``(2, L, B, H)`` (h; c or zeros), or
        None (from ``h0``)."""
        return self._carried

    def carry(self, states: np.ndarray | None) -> None:
        """Start the next chunk from ``states`` (:attr:`carried`'s form; None: ``h0``)."""
        self._carried = states
        cell_state = self.model.network.spec.cell_state
        self.state = None if states is None else State(states[0], states[1] if cell_state
                                                       else None)  # fmt: skip


@dataclass
class TextRun:
    """A trained text model, its vocabulary, how training went and where it was saved."""

    model: RNN
    vocabulary: Vocabulary
    history: list[dict]
    bits: float | None  # held-out bits per character at the last evaluation (None: none)
    baselines: dict[str, float]  # unigram, bigram
    seconds: float  # training time (updates and evaluations)
    steps: int = 0  # updates made, in all (a resumed run's included)
    interrupted: bool = False  # stopped by Ctrl-C: resumable (train_text's ``resume``)
    #: a Ctrl-C came during the last update: the run is whole (as History's)
    ctrl_c_at_end: bool = False
    run_dir: Path | None = None


#: train_text's settings a run records (and a resumed run takes from it)
SETTINGS = ("hidden_size", "cell", "num_layers", "seq_length", "batch_size", "optimizer",
            "lr", "clip", "max_steps", "eval_every", "held_out", "dtype", "seed",
            "embedding")  # fmt: skip


def train_text(path: str | Path | None = None, *, hidden_size: int = 128, cell: str = "elman",
               num_layers: int = 1, seq_length: int = 50, batch_size: int = 32,
               optimizer: str = "adam", lr: float = 0.003, clip: float | None = 5.0,
               max_steps: int = 2000, eval_every: int = 250, held_out: float = 0.1,
               dtype: str = "float32", seed: int = 0, backend: str = "auto",
               out: str | Path | None = "runs", progress=None,
               resume: str | Path | None = None, embedding: int | None = None
               ) -> TextRun:  # fmt: skip
    """Train a character-level model on the text file ``path`` (see the module's
    docstring): ``max_steps`` updates of truncated BPTT over ``seq_length`` characters of
    ``batch_size`` tracks, the state carried; the held-out bits per character every
    ``eval_every`` updates and at the end. ``progress(row)`` is called with each history
    row. ``embedding``: a learned table of that size between the characters and the
    first layer (default: one-hot straight in, ``W_xh``'s columns being the characters'
    vectors). Saved to ``out/text-<time>/`` (model, vocabulary, config, history, checkpoint)
    unless ``out`` is None. Ctrl-C stops after the current update and saves the run;
    ``resume`` (its directory) continues it exactly, on its own file and settings."""
    state = None
    if resume is not None:
        settings, state, model = _resumed(Path(resume), backend)
        path = settings["data"]
        hidden_size, cell, num_layers, seq_length, batch_size, optimizer, lr, clip = (
            settings[k] for k in SETTINGS[:8])  # fmt: skip
        max_steps, eval_every, held_out, dtype, seed, embedding = (
            settings[k] for k in SETTINGS[8:])  # fmt: skip
    if path is None:
        raise ValueError("train_text needs a text file (or a run to resume)")
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be a share between 0 and 1, got {held_out!r}")
    for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers),
                        ("seq_length", seq_length), ("batch_size", batch_size),
                        ("max_steps", max_steps), ("eval_every", eval_every)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    text = read_text(path)
    digest = hashlib.sha256(text.encode()).hexdigest()
    if resume is not None and digest != settings["sha256"]:
        raise ValueError(f"--resume {resume}: {path} changed since the run trained on it; a "
                         "run continues on its own text")  # fmt: skip
    if out is not None:  # refused now, not after training
        from rnnlab.runs import check_writable

        check_writable(Path(out))
    vocabulary = Vocabulary.of(text)
    # one-hot chunks (inputs, targets, logits and their gradients) of the vocabulary's width
    check_fits(
        4 * seq_length * batch_size * len(vocabulary) * 8,
        f"chunks of {seq_length} x {batch_size} one-hot over {len(vocabulary)} characters",
    )
    ids = vocabulary.encode(text)
    cut = int(len(ids) * (1.0 - held_out))
    train_ids, val_ids = ids[:cut], ids[cut:]
    if len(val_ids) < 2:
        raise ValueError(f"{path}: too short to hold out {held_out:.0%} of it")
    data = tracks(train_ids, batch_size)
    V = len(vocabulary)
    if state is None:
        activation = {"activation": "tanh"} if cell == "elman" else {}
        model = RNN(V, hidden_size, V, cell=cell, num_layers=num_layers, loss="softmax",
                    dtype=dtype, seed=seed, backend=backend, embedding=embedding,
                    **activation)  # fmt: skip
    step = StreamStep(model, make_optimizer(optimizer, lr), clip=clip)
    if state is None:
        state = FitState(initial=model.params.flat.copy())
    else:
        state = state.put_back(model, step.step.optimizer, max_steps)
        step.carry(state.carried)
    baselines = dict(zip(("unigram", "bigram"), ngram_bits(train_ids, val_ids, V), strict=True))
    ctrl_c = _read(
        model,
        step,
        state,
        data,
        val_ids,
        max_steps=max_steps,
        eval_every=eval_every,
        seq_length=seq_length,
        batch_size=batch_size,
        progress=progress,
    )
    rows = state.rows
    interrupted = state.step < max_steps
    result = TextRun(model, vocabulary, rows, rows[-1]["val_bits"] if rows else None,
                     baselines, state.seconds, steps=state.step, interrupted=interrupted,
                     ctrl_c_at_end=ctrl_c and not interrupted)  # fmt: skip
    if out is not None:
        settings = dict(zip(SETTINGS, (hidden_size, cell, num_layers, seq_length, batch_size,
                                       optimizer, lr, clip, max_steps, eval_every, held_out,
                                       dtype, seed, embedding), strict=True))  # fmt: skip
        result.run_dir = _save(result, state, Path(out), {
            "data": str(Path(path).resolve()), "sha256": digest, "characters": len(text),
            "vocabulary": V, **settings,
        })  # fmt: skip
    return result


def _read(model: RNN, step: StreamStep, state: FitState, data: np.ndarray,
          val_ids: np.ndarray, *, max_steps: int, eval_every: int, seq_length: int,
          batch_size: int, progress) -> bool:  # fmt: skip
    """The training loop: updates from where ``state`` stands to ``max_steps`` (or Ctrl-C),
    ``state`` kept up to date (weights, optimizer, stream position and carried states).
    Returns whether a Ctrl-C came (during the last update too, which ends the loop)."""
    from rnnlab.train import StopOnInterrupt

    tick = time.perf_counter() - state.seconds
    V = model.config.output_size
    with StopOnInterrupt() as interrupt:
        while state.step < max_steps and not interrupt.requested:
            if state.position >= data.shape[1] - 1:  # the tracks ran out: again from h0
                state.position = 0
                step.reset()
            x, y = chunk(data, state.position, seq_length, V, model.params.flat.dtype)
            loss = step(x, y)
            if not math.isfinite(loss):
                raise ValueError(f"training diverged at update {state.step + 1} (loss {loss}); "
                                 "lower --lr")  # fmt: skip
            state.position += x.shape[0]
            state.step += 1
            state.running_loss += loss
            state.seen += 1
            if state.step % eval_every == 0 or state.step == max_steps:
                bits = bits_per_char(model, val_ids, seq_length=seq_length,
                                     batch_size=batch_size)  # fmt: skip
                row = {"step": state.step, "seconds": round(time.perf_counter() - tick, 6),
                       "train_bits": state.running_loss / state.seen / LN2, "val_bits": bits,
                       "val_perplexity": 2.0**bits}  # fmt: skip
                state.rows.append(row)
                state.running_loss, state.seen = 0.0, 0
                if progress is not None:
                    progress(row)
    state.seconds = time.perf_counter() - tick
    state.weights, state.carried = model.params.flat.copy(), step.carried
    state.take_optimizer(step.step.optimizer)
    return interrupt.requested


def _resumed(run: Path, backend: str) -> tuple[dict, FitState, RNN]:
    """A stopped text run's settings, checkpoint and model."""
    from rnnlab.model import load
    from rnnlab.runs import interrupted_run

    saved = interrupted_run(run)
    try:
        settings = {k: saved[k] for k in (*SETTINGS, "data", "sha256")}
        state = FitState.load(run / "checkpoint.safetensors")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--resume {run}: not a text run rnnlab can continue ({err})"
                         ) from None  # fmt: skip
    return settings, state, load(run / "model.safetensors", backend=backend)


def _save(result: TextRun, state: FitState, out: Path, settings: dict) -> Path:
    """The run directory, written whole, then published (:func:`rnnlab.io.staging_dir`)."""
    from rnnlab import __version__
    from rnnlab.runs import strict_json

    run_dir = staging_dir(out, "text")
    result.model.save(run_dir / "model.safetensors")
    result.vocabulary.save(run_dir / "vocabulary.json")
    state.save(run_dir / "checkpoint.safetensors")
    config = {"task": "text", **settings, "model": result.model.config.to_dict(),
              "rnnlab_version": __version__, "steps": result.steps,
              "interrupted": result.interrupted, "val_bits": result.bits,
              "baselines": result.baselines, "seconds": result.seconds}  # fmt: skip
    text = json.dumps(strict_json(config), indent=2, allow_nan=False)
    atomic_write_text(run_dir / "config.json", text + "\n")
    fields = ("step", "seconds", "train_bits", "val_bits", "val_perplexity")
    rows = [",".join(fields)] + [",".join(str(row[k]) for k in fields)
                                 for row in result.history]  # fmt: skip
    atomic_write_text(run_dir / "history.csv", "\n".join(rows) + "\n")
    return publish_run_dir(run_dir, "text")


def sample(model: RNN, vocabulary: Vocabulary, length: int, *, temperature: float = 1.0,
           prime: str = "", rng: np.random.Generator) -> str:  # fmt: skip
    """``length`` characters drawn one at a time from the model's softmax at
    ``temperature`` (lower: surer), after reading ``prime`` (default: one character
    drawn from the vocabulary), the state carried from step to step."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    if not (isinstance(temperature, int | float) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    V = len(vocabulary)
    if model.config.input_size != V or model.config.output_size != V:
        raise ValueError(f"the model reads {model.config.input_size} symbols; the vocabulary "
                         f"holds {V}")  # fmt: skip
    start = vocabulary.encode(prime) if prime else rng.integers(0, V, size=1)
    state = model.initial_state(1)
    for i in start[:-1]:
        _, state = model.step(one_hot(np.array([i]), V, np.float64), state)
    current, drawn = int(start[-1]), []
    for _ in range(length):
        logits, state = model.step(one_hot(np.array([current]), V, np.float64), state,
                                   logits=True)  # fmt: skip
        z = logits[0].astype(np.float64)  # (float32 would round a tiny temperature to 0)
        with np.errstate(over="ignore", under="ignore"):  # (a tiny temperature: argmax)
            p = np.exp((z - z.max()) / temperature)  # (the exponents are <= 0)
        current = int(rng.choice(V, p=p / p.sum()))
        drawn.append(current)
    return vocabulary.decode(drawn)
