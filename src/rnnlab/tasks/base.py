"""What every task shares: training defaults, the ``Task`` interface, metrics, padding.

A task turns a ``numpy.random.Generator`` into a padded, time-major
:class:`~rnnlab.sequences.Batch` whose ``mask`` is 1 exactly on the steps the
task scores (0 on padding and on unscored steps), and knows how to score a
model's outputs on it.

Metrics (one definition for every task, over scored steps only):

- a step is right when every output bit is right at threshold 0.5 (``bce``),
  when the argmax is the target class (``softmax``), or when every output is
  within ``task.tolerance`` of its target (``mse``); non-finite outputs are wrong;
- ``step_accuracy``: right scored steps / scored steps, pooled over the batch;
- ``sequence_accuracy``: fraction of sequences whose scored steps are all right.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rnnlab.sequences import Batch

LOSS_NAMES = ("bce", "softmax", "mse")


@dataclass(frozen=True, kw_only=True)
class TrainDefaults:
    """How a task trains by default: small enough for seconds on one CPU core."""

    hidden_size: int  # units per layer: the smallest that trains reliably
    cell: str = "elman"  # the one cell every backend has
    activation: str  # Elman nonlinearity
    num_layers: int = 1  # every built-in task is solvable by one layer
    optimizer: str = "adam"  # robust to the scale of the loss, no tuning per task
    lr: float  # Adam step size
    batch_size: int  # sequences per gradient step
    max_steps: int  # gradient steps before giving up (the fit loop may stop earlier)
    train_lengths: tuple[int, int]  # (lo, hi) sequence lengths T to train on, inclusive
    test_lengths: tuple[int, int]  # (lo, hi) longer lengths: does the solution generalise?
    n_train: int  # size of the fixed training set
    n_test: int  # size of the test set that decides "solved"


class Task:
    """A sequence task: data generator, loss, metrics and the meaning of "solved".

    Subclasses set the class attributes and ``defaults``, store their
    parameters in ``self.params`` (the keyword arguments of their
    ``__init__``), and implement :meth:`_generate`.

    Attributes
    ----------
    name, description : str
        Registry name and a one-line description.
    input_size, output_size : int
        ``I`` and ``O``.
    loss : {"bce", "softmax", "mse"}
        Loss on the model's logits (see :mod:`rnnlab.losses`).
    min_length : int
        Shortest sequence the task can make.
    solved_at : float
        ``sequence_accuracy`` at which the task counts as solved.
    tolerance : float or None
        Largest absolute error that counts as right (``mse`` tasks only).
    """

    name: str
    description: str
    input_size: int
    output_size: int
    loss: str
    min_length: int = 1
    solved_at: float = 1.0
    tolerance: float | None = None

    #: the sizes of a task's data set by :data:`SIZES` parameters (the rest: its own)
    _sizes: dict[str, Any] | None = None

    def __init__(self):
        self.params: dict[str, Any] = {}

    def own_defaults(self) -> TrainDefaults:
        """How the task trains with its own parameters (:attr:`defaults` adds the sizes)."""
        raise NotImplementedError

    @property
    def defaults(self) -> TrainDefaults:
        """How the task trains: :meth:`own_defaults`, with the lengths and set sizes that
        were set (``get_task("adding", train_lengths=100)``); a task that tests at its
        training lengths (copy, adding) keeps doing so when only those are set."""
        own = self.own_defaults()
        if not self._sizes:
            return own
        sizes = dict(self._sizes)
        if own.test_lengths == own.train_lengths and "test_lengths" not in sizes:
            sizes.setdefault("test_lengths", sizes.get("train_lengths", own.train_lengths))
        return replace(own, **sizes)

    def test_task(self) -> Task:
        """The task whose data tests at the test lengths: this one, unless the task
        tests beyond its training distribution otherwise too (Dyck-1 at greater depth)."""
        return self

    def parameters(self) -> dict[str, Any]:
        """Every parameter the task takes, with its value: its own and :data:`SIZES`."""
        d = self.defaults
        return {**self.params, **{name: getattr(d, name) for name in SIZES}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def with_params(self, **params: Any) -> Task:
        """The same task with some parameters changed (a ``ValueError`` names the valid ones)."""
        unknown = sorted(set(params) - set(self.parameters()))
        if unknown:
            valid = ", ".join(self.parameters())
            raise ValueError(
                f"task {self.name!r} has no parameter {', '.join(unknown)}; its parameters: {valid}"
            )
        return self._rebuild(**{**self.params, **params})

    def _rebuild(self, **params: Any) -> Task:
        sizes = {name: params.pop(name) for name in SIZES if name in params}
        task = self._make(**params)
        if sizes:
            task._sizes = task._check_sizes(sizes)
            task.params = {**task.params, **task._sizes}
        return task

    def _make(self, **params: Any) -> Task:
        return type(self)(**params)

    def _check_sizes(self, sizes: dict[str, Any]) -> dict[str, Any]:
        """:data:`SIZES` parameters checked: lengths as ``(lo, hi)`` pairs (from a length,
        a pair or ``"lo-hi"``), set sizes as positive integers."""
        checked = {}
        for name, value in sizes.items():
            if name.endswith("lengths"):
                lo, hi = parse_lengths(value)
                lo = check_int(lo, name, minimum=self.min_length)
                pair = lo, check_int(hi, f"the longest of {name}", minimum=lo)
                try:  # (a task's own rules: Dyck-1's even lengths...)
                    checked[name] = self.check_lengths(pair)
                except ValueError as err:
                    raise ValueError(f"{name}: {err}") from None
            else:
                checked[name] = check_int(value, name, minimum=1)
        return checked

    # -- data ---------------------------------------------------------------------------

    def generate(
        self, n: int, rng: np.random.Generator, lengths: tuple[int, int] | None = None
    ) -> Batch:
        """``n`` fresh sequences with lengths drawn from ``lengths`` (default: training's).

        Parameters
        ----------
        n : int
            Number of sequences ``B``.
        rng : numpy.random.Generator
            The only source of randomness: the same state gives the same batch.
        lengths : (lo, hi), optional
            Inclusive range of sequence lengths ``T_b``; defaults to
            ``self.defaults.train_lengths``.

        Returns
        -------
        Batch
            ``x (T, B, I)``, ``y (T, B, O)`` (one-hot rows for ``softmax``),
            ``mask (T, B)`` (1 on scored steps only), ``lengths (B,)``, with
            ``T = max(lengths)`` and zeros on padding.
        """
        n = check_int(n, "n", minimum=1)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                f"got {type(rng).__name__}"
            )
        lo, hi = self.check_lengths(self.defaults.train_lengths if lengths is None else lengths)
        x, y, mask, seq_lengths = self._generate(n, rng, lo, hi)
        valid = padding_mask(seq_lengths, x.shape[0])  # (T, B)
        return Batch(
            x=x * valid[..., None],
            y=y * valid[..., None],
            mask=mask * valid,
            lengths=seq_lengths,
            as_list=True,
        )

    def held_out(self, n: int, rng: np.random.Generator, lengths: tuple[int, int],
                 training: frozenset[bytes]) -> Batch:  # fmt: skip
        """``n`` fresh sequences of ``lengths``, none of them a training sequence (its
        inputs are not in ``training``, from :func:`input_keys`): the data "solved" and
        the held-out test are judged on. It draws again for the ones it dropped, up to
        eight times, and stops at a draw with none fresh: lengths with too few strings
        outside the training set give a smaller set, and lengths with none (every string
        trained on: copy's defaults, 384 strings) the usual draw."""
        found, kept, m = [], 0, n
        for _ in range(8):
            batch = self.generate(m, rng, lengths)
            fresh = np.flatnonzero([key not in training for key in _keys(batch)])
            if not len(fresh):  # (what is left to draw is all but exhausted)
                break
            found.append(batch.take(fresh[: n - kept]))
            kept += min(len(fresh), n - kept)
            if kept == n:
                break
            m = int(np.ceil((n - kept) * m / len(fresh) * 1.25))  # (the expected need)
            m = min(m, 64 * n)
        if not found:
            return self.generate(n, rng, lengths)
        return found[0] if len(found) == 1 else join(found)

    #: a regular language's task: "solved" also needs every string up to this length right
    exhaustive_length: int | None = None
    #: scored at the end only, on whether the string is in a language (read out as a DFA)
    acceptor: bool = False

    def every_string(self) -> Batch | None:
        """Every input string of length 1 .. :attr:`exhaustive_length` with its targets
        (None for tasks without that check); made once."""
        if self.exhaustive_length is None:
            return None
        cached = getattr(self, "_every_string", None)
        if cached is None:
            every = (w for n in range(1, self.exhaustive_length + 1)
                     for w in itertools.product((0, 1), repeat=n))  # fmt: skip
            words = [w for w in every if self._is_example(w)]
            x, y, mask, lengths = self._targets_of(words)
            valid = padding_mask(lengths, x.shape[0])  # (T, B)
            cached = self._every_string = Batch(x * valid[..., None], y * valid[..., None],
                                                mask * valid, lengths, as_list=True)  # fmt: skip
        return cached

    def _is_example(self, word: tuple[int, ...]) -> bool:
        """Whether ``word`` is one of the task's inputs (every binary word, by default)."""
        return True

    def _targets_of(self, words: list[tuple[int, ...]]):
        """``x, y, mask, lengths`` of given binary words (tasks with exhaustive_length)."""
        raise NotImplementedError

    def _generate(
        self, n: int, rng: np.random.Generator, lo: int, hi: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``x (T, B, I)``, ``y (T, B, O)``, ``mask (T, B)``, ``lengths (B,)``."""
        raise NotImplementedError

    def check_lengths(self, lengths) -> tuple[int, int]:
        """``lengths`` as a valid ``(lo, hi)`` pair for this task, or a clear ``ValueError``."""
        try:
            lo, hi = lengths
        except (TypeError, ValueError):
            raise ValueError(f"lengths must be a pair (lo, hi), got {lengths!r}") from None
        lo = check_int(lo, "lengths[0]", minimum=self.min_length)
        hi = check_int(hi, "lengths[1]", minimum=lo)
        return lo, hi

    # -- scoring ------------------------------------------------------------------------

    def evaluate(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """Step and sequence accuracy of ``outputs`` on the scored steps of ``batch``.

        Parameters
        ----------
        outputs : ndarray of shape (T, B, O)
            Probabilities (``bce``: sigmoid, ``softmax``: softmax) or values (``mse``).
        batch : Batch
            A batch made by :meth:`generate` (or any batch with this task's targets).
        """
        return evaluate_outputs(outputs, batch, self.loss, tolerance=self.tolerance)

    def is_solved(self, metrics: dict[str, float]) -> bool:
        """Whether ``metrics`` (from :meth:`evaluate`) reach ``solved_at``."""
        return metrics["sequence_accuracy"] >= self.solved_at


def evaluate_outputs(
    outputs: np.ndarray, batch: Batch, loss: str, *, tolerance: float | None = None
) -> dict[str, float]:
    """``step_accuracy`` and ``sequence_accuracy`` over the scored steps (``mask > 0``).

    Parameters
    ----------
    outputs : ndarray of shape (T, B, O)
        Sigmoid probabilities (``bce``), softmax probabilities (``softmax``) or
        values (``mse``).
    batch : Batch
        Targets ``y (T, B, O)`` and the scoring ``mask (T, B)``.
    tolerance : float, optional
        Largest absolute error that counts as right; needed for ``mse``.
    """
    outputs = np.asarray(outputs)
    if batch.y is None or outputs.shape != batch.y.shape:
        want = None if batch.y is None else batch.y.shape
        raise ValueError(f"outputs have shape {outputs.shape}, the batch's targets {want}")
    right = step_correct(loss, outputs, batch.y, tolerance)  # (T, B)
    scored = batch.mask > 0  # (T, B)
    if not scored.any():
        raise ValueError("the batch has no scored steps")
    return {
        "step_accuracy": float(right[scored].mean()),
        "sequence_accuracy": float((right | ~scored).all(axis=0).mean()),
    }


def step_correct(
    loss: str, outputs: np.ndarray, targets: np.ndarray, tolerance: float | None = None
) -> np.ndarray:
    """``(T, B)`` bool: is each step's output right? (``outputs``, ``targets``: ``(T, B, O)``)."""
    finite = np.isfinite(outputs).all(axis=-1)  # (T, B)
    if loss == "bce":
        right = ((outputs >= 0.5) == (targets >= 0.5)).all(axis=-1)
    elif loss == "softmax":
        right = outputs.argmax(axis=-1) == targets.argmax(axis=-1)
    elif loss == "mse":
        if tolerance is None:
            raise ValueError("mse accuracy needs a tolerance")
        with np.errstate(invalid="ignore"):
            right = (np.abs(outputs - targets) < tolerance).all(axis=-1)
    else:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSS_NAMES)}")
    return right & finite


# -- helpers for task modules ---------------------------------------------------------


def input_keys(batch: Batch) -> frozenset[bytes]:
    """The input strings a batch holds, as bytes (to tell data sets apart)."""
    return frozenset(_keys(batch))


def _keys(batch: Batch) -> list[bytes]:
    x = batch.x  # (T, B, I)
    return [x[:length, b].tobytes() for b, length in enumerate(batch.lengths.tolist())]


def join(batches: list[Batch]) -> Batch:
    """Batches of one task as one (padded to the longest)."""
    T = max(b.x.shape[0] for b in batches)

    def padded(a):  # (T_i, B_i, ...) -> (T, B_i, ...)
        return np.concatenate([a, np.zeros((T - a.shape[0], *a.shape[1:]), a.dtype)])

    return Batch(
        x=np.concatenate([padded(b.x) for b in batches], axis=1),
        y=np.concatenate([padded(b.y) for b in batches], axis=1),
        mask=np.concatenate([padded(b.mask) for b in batches], axis=1),
        lengths=np.concatenate([b.lengths for b in batches]),
        as_list=batches[0].as_list,
    )


#: the parameters every task takes: its data's lengths and set sizes (see TrainDefaults)
SIZES = ("train_lengths", "test_lengths", "n_train", "n_test")


def parse_lengths(value) -> tuple[int, int]:
    """Sequence lengths as ``(lo, hi)``: a length ``n`` is ``(n, n)``; a pair stays; text
    ``"lo-hi"`` or ``"n"`` is read (a ``ValueError`` for anything else)."""
    if isinstance(value, str):
        lo, sep, hi = value.strip().partition("-")
        try:
            return (int(lo), int(hi)) if sep else (int(lo), int(lo))
        except ValueError:
            raise ValueError(f"lengths are a length or LO-HI (e.g. 100 or 50-100), got "
                             f"{value!r}") from None  # fmt: skip
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[0], value[1]
    raise ValueError(f"lengths are a length or a pair (lo, hi), got {value!r}")


def check_bool(value, name: str) -> bool:
    """``value`` as a bool (``true``/``false`` as text too, as the CLI's --param gives
    it), or a ``ValueError``."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = {"true": True, "false": False, "1": True, "0": False}.get(str(value).strip().lower())
    if text is None:
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return text


def check_int(value, name: str, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, or a ``ValueError`` saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def draw_lengths(n: int, rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
    """``(B,)`` lengths uniform on ``lo..hi``."""
    return rng.integers(lo, hi + 1, size=n)


def padding_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """``(T, B)`` float mask: 1 on the first ``lengths[b]`` steps of each column."""
    return (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)


def last_step_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """``(T, B)`` float mask: 1 on each sequence's last step only."""
    mask = np.zeros((T, len(lengths)))
    mask[lengths - 1, np.arange(len(lengths))] = 1.0
    return mask


def one_hot(indices: np.ndarray, size: int, dtype=np.float64) -> np.ndarray:
    """``indices (...)`` of ints in ``0..size-1`` as float one-hot rows ``(..., size)``
    (no ``size x size`` identity is made: a vocabulary may be large)."""
    indices = np.asarray(indices)
    out = np.zeros((*indices.shape, size), dtype)
    np.put_along_axis(out, indices[..., None], 1.0, axis=-1)
    return out
