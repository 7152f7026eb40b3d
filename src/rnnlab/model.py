"""The RNN model: a typed config, named parameters, and the public API.

>>> model = RNN(hidden_size=2, seed=0)
>>> model.predict([[0, 1, 1, 0]])          # one list per sequence
[[...]]

Every output is batch-first, like the inputs: ``logits (B, T, O)``,
``hidden_states`` ``(L, B, T, H)``, and zero past each sequence's length (as
PyTorch's packed sequences give). The forward work runs on a backend (see
:mod:`rnnlab.kernels`), through its protocol only.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnlab import io, kernels
from rnnlab.initializers import init_params
from rnnlab.kernels.embedded import Embedded
from rnnlab.kernels.layout import (
    FlatParams,
    Network,
    network,
    param_name,
    param_shapes,
    parameter_count,
)
from rnnlab.kernels.orthogonal import Orthogonal
from rnnlab.kernels.registry import CELLS, get_cell
from rnnlab.losses import LOSSES, check_reduction, get_loss, loss_value
from rnnlab.resources import check_fits
from rnnlab.sequences import Batch, make_batch, unbatch

DTYPES = {"float64": np.float64, "float32": np.float32}
TARGETS = {"bce": "binary", "softmax": "class", "mse": "real"}
#: every nonlinearity some cell takes, in the registry's order
ACTIVATION_NAMES = tuple(dict.fromkeys(a for spec in CELLS.values() for a in spec.activations))


def dtype_name(dtype) -> str:
    """``"float64"`` or ``"float32"`` from a name, a numpy type or a ``numpy.dtype``.

    ``np.float32``, ``"float32"`` and ``np.dtype("float32")`` are all ``"float32"``;
    anything else is a ValueError.
    """
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    name = None
    if dtype is not None and not isinstance(dtype, bool):
        try:
            name = np.dtype(dtype).name
        except (TypeError, ValueError):
            name = None
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose float64 or float32")
    return name


@dataclass(frozen=True)
class RNNConfig:
    """Everything that defines a model's architecture (saved beside its weights).

    ``dtype`` may be given as ``np.float32``, ``"float32"`` or ``np.dtype("float32")``;
    the config keeps the name (``"float32"``).
    """

    input_size: int = 1  # the notebook feeds one bit per step
    hidden_size: int = 2  # the notebook's two units
    output_size: int = 1  # one bit out per step
    cell: str = "elman"  # "elman", "gru" or "lstm" (the last two: PyTorch's equations)
    activation: str = "sigmoid"  # Elman nonlinearity: the notebook's sigmoid
    num_layers: int = 1
    loss: str = "bce"  # binary cross-entropy on logits, the notebook's log loss
    dtype: str = "float64"  # exact gradient checks need float64
    embedding: int | None = None  # a learned (input_size, D) input table (tokens), or none

    def __post_init__(self):
        for field in ("input_size", "hidden_size", "output_size", "num_layers"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
            object.__setattr__(self, field, int(value))
        if self.embedding is not None:
            e = self.embedding
            if isinstance(e, bool) or not isinstance(e, int | np.integer) or e < 1:
                raise ValueError(f"embedding must be a positive integer or None, got {e!r}")
            object.__setattr__(self, "embedding", int(e))
        if not isinstance(self.cell, str):
            raise ValueError(f"cell must be a name, got {self.cell!r}")
        spec = get_cell(self.cell)
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of "
                f"{', '.join(ACTIVATION_NAMES)}"
            )
        if self.activation not in spec.activations:
            if len(spec.activations) == 1:
                choosers = [s.name for s in CELLS.values() if len(s.activations) > 1]
                raise ValueError(
                    f"activation applies to the {' and '.join(choosers)} cell only; "
                    f"{self.cell!r} has fixed nonlinearities (leave activation at its "
                    f"default, {spec.activations[0]!r})"
                )
            raise ValueError(
                f"activation {self.activation!r} is not one of {self.cell}'s "
                f"({', '.join(spec.activations)})"
            )
        get_loss(self.loss)
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        arrays, numbers = self.parameter_count()
        # its weights, a gradient and an optimizer's two moments, and per array the views,
        # names and layout entries of every layer above (about 4 kB)
        check_fits(4 * numbers * np.dtype(self.dtype).itemsize + 4096 * arrays,
                   f"a model with hidden_size={self.hidden_size}, "
                   f"num_layers={self.num_layers}, input_size={self.input_size} and "
                   f"output_size={self.output_size} ({numbers:.3g} parameters)")  # fmt: skip

    def parameter_count(self) -> tuple[int, int]:
        """(arrays, numbers) of the parameters, counted without listing them."""
        return parameter_count(self.cell, self.input_size, self.hidden_size,
                               self.output_size, self.num_layers, self.embedding)  # fmt: skip

    def to_dict(self) -> dict:
        fields = asdict(self)
        if fields["embedding"] is None:  # (a model without one saves what it always did)
            del fields["embedding"]
        return fields

    @classmethod
    def from_dict(cls, fields: dict) -> RNNConfig:
        """A config from :meth:`to_dict`'s output (as a model file stores it); a
        ValueError names unknown fields or what is invalid."""
        if not isinstance(fields, dict):
            raise ValueError(f"config must be a dict, got {type(fields).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        if set(fields) - known:
            raise ValueError(f"config has unknown fields {sorted(set(fields) - known)}")
        try:
            return cls(**fields)
        except (ValueError, TypeError) as err:
            raise ValueError(f"invalid config: {err}") from None

    @property
    def network(self) -> Network:
        """The :class:`~rnnlab.kernels.layout.Network` every backend takes (cached)."""
        return network(self.cell, self.activation, self.num_layers, self.input_size,
                       self.hidden_size, self.output_size, self.embedding)  # fmt: skip


class HiddenStates(NamedTuple):
    """Every layer's states over a batch, batch-first, zero past each sequence's length.

    ``h (L, B, T, H)``: hidden states; ``c (L, B, T, H)``: cell states for cells
    that have one (LSTM), else None.
    """

    h: np.ndarray
    c: np.ndarray | None


class State(NamedTuple):
    """The recurrent state of a batch between steps (:meth:`RNN.step`).

    ``h (L, B, H)``: every layer's hidden state; ``c (L, B, H)``: cell states for
    cells that have one (LSTM), else None.
    """

    h: np.ndarray
    c: np.ndarray | None


class RNN:
    """A recurrent network with a linear output layer, trained by exact BPTT.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        ``I``, ``H`` and ``O``. The defaults are the notebook's 1-2-1 network.
    activation : {"sigmoid", "tanh", "relu"}, keyword-only
        Nonlinearity of the Elman cell (see :mod:`rnnlab.initializers` for the
        initialisation each one gets). Elman only: ``gru`` and ``lstm`` reject
        any other value than the default.
    cell : {"elman", "gru", "lstm", "exprnn"}
        Cell type; ``gru`` and ``lstm`` follow ``torch.nn.GRU`` / ``nn.LSTM``
        (equations and gate order in :mod:`rnnlab.kernels.reference.gru` and
        :mod:`rnnlab.kernels.reference.lstm`); ``exprnn`` is an orthogonal recurrence
        with modReLU units (:mod:`rnnlab.kernels.reference.exprnn`).
    num_layers : int
        Stacked recurrent layers.
    loss : {"bce", "softmax", "mse"}
        Loss on the output logits; it also fixes what ``predict`` returns.
    seed : int
        Seed of the ``numpy.random.Generator`` that draws the initial weights.
    backend : {"auto", "numpy", "numba"}
        Kernels to run on (``"auto"``: the compiled ones when numba works).
    dtype : float64 or float32, as ``np.float32``, ``"float32"`` or ``np.dtype(...)``
    init : {"default", "irnn", "orthogonal"}
        How the initial weights are drawn (see :mod:`rnnlab.initializers`): the scheme
        of the activation, Le et al.'s IRNN, or orthogonal recurrent weights.
    embedding : int, optional
        A learned input table ``E (I, D)``: inputs pass through ``x -> E^T x`` (for
        one-hot tokens, the token's row, as ``torch.nn.Embedding``) and the first layer
        reads ``D`` numbers (:mod:`rnnlab.kernels.embedded`). ``E`` starts ``N(0, 1)``.

    Attributes
    ----------
    config : RNNConfig
    network : the :class:`~rnnlab.kernels.layout.Network` (sizes and parameter layout)
    params : :class:`~rnnlab.kernels.layout.FlatParams`
        A dict of named views into one flat vector ``params.flat``. Per layer,
        Elman: ``W_xh (H, I)``, ``W_hh (H, H)``, ``b_h (H,)``, ``h0 (H,)``; GRU:
        ``W_xh (3H, I)``, ``W_hh (3H, H)``, ``b_xh (3H,)``, ``b_hh (3H,)``,
        ``h0 (H,)``; LSTM: ``W_xh (4H, I)``, ``W_hh (4H, H)``, ``b_h (4H,)``,
        ``h0 (H,)``, ``c0 (H,)``; expRNN: ``W_xh (H, I)``, ``A_hh (H, H)`` (the
        recurrence is ``expm(A - A^T)`` of its strict upper triangle), ``b_h (H,)``
        (modReLU's bias), ``h0 (H,)``. Layers after the first add ``_l1``, ``_l2``...;
        then ``W_hy (O, H)`` and ``b_y (O,)``; with an embedding, first ``E (I, D)``
        (and the first layer's ``W_xh`` reads ``D``). Editing these arrays in place
        changes the model, on every backend; assigning a name (or
        ``model.params = {...}``) copies the values into the model's arrays (cast
        to its dtype), as ``param.data.copy_`` would. The arrays are made once:
        they stay the model's whatever backend it runs on.
    backend : str
        The backend in use: ``"numba"`` or ``"numpy"``.
    kernels : module
        That backend (it implements the protocol of :mod:`rnnlab.kernels`; for expRNN
        wrapped in :class:`~rnnlab.kernels.orthogonal.Orthogonal`, with an embedding in
        :class:`~rnnlab.kernels.embedded.Embedded`).
    """

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 2,
        output_size: int = 1,
        *,
        activation: str = "sigmoid",
        cell: str = "elman",
        num_layers: int = 1,
        loss: str = "bce",
        seed: int = 0,
        backend: str = "auto",
        dtype="float64",
        init: str = "default",
        embedding: int | None = None,
    ):
        config = RNNConfig(input_size, hidden_size, output_size, cell, activation, num_layers,
                           loss, dtype, embedding)  # fmt: skip
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        params = init_params(
            cell=cell,
            activation=activation,
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            output_size=config.output_size,
            num_layers=config.num_layers,
            rng=np.random.default_rng(seed),
            dtype=DTYPES[config.dtype],
            init=init,
            embedding=config.embedding,
        )
        self._setup(config, params, backend)

    @classmethod
    def from_params(cls, config: RNNConfig, params: dict, backend: str = "auto") -> RNN:
        """A model from a config and a full parameter dict (checked against the config)."""
        expected = param_shapes(
            config.cell, config.input_size, config.hidden_size, config.output_size,
            config.num_layers, config.embedding,
        )  # fmt: skip
        if set(params) != set(expected):
            missing, extra = set(expected) - set(params), set(params) - set(expected)
            raise ValueError(
                f"parameters do not match the config: missing {sorted(missing)}, "
                f"unexpected {sorted(extra)}"
            )
        for name, shape in expected.items():
            value = np.asarray(params[name])
            if value.shape != shape:
                raise ValueError(f"parameter {name} has shape {value.shape}, expected {shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} contains NaN or infinite values")
        model = cls.__new__(cls)
        model._setup(config, params, backend)
        return model

    def _setup(self, config: RNNConfig, params: dict, backend: str) -> None:
        self.config = config
        self.network = config.network
        self._dtype = np.dtype(DTYPES[config.dtype])
        self._params = FlatParams.pack(self.network, params, self._dtype)  # made once, kept
        self.use_backend(backend)

    @property
    def params(self) -> FlatParams:
        return self._params

    @params.setter
    def params(self, values) -> None:
        self._params.update(values)  # copied in: every array a user holds stays the model's

    @property
    def backend(self) -> str:
        """The backend in use: ``"numba"`` or ``"numpy"``."""
        return self.kernels.name

    def use_backend(self, backend: str) -> None:
        """Run on ``backend`` from now on ("auto", "numpy" or "numba").

        Only the kernels change: the parameters (and every array a user holds) stay
        the same objects.
        """
        chosen = kernels.get_backend(backend)
        if get_cell(self.config.cell).orthogonal:
            chosen = Orthogonal(chosen)
        self.kernels = chosen if self.config.embedding is None else Embedded(chosen)

    def __getstate__(self) -> dict:
        """Pickled and deep-copied with its backend's name (a module is not data)."""
        state = self.__dict__.copy()
        state["kernels"] = self.kernels.name
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        backend = state.pop("kernels")
        self.__dict__.update(state)
        self.use_backend(backend)

    def __repr__(self) -> str:
        c = self.config
        layers = f", num_layers={c.num_layers}" if c.num_layers > 1 else ""
        chooses = len(get_cell(c.cell).activations) > 1  # the activation is the cell's own
        activation = f", activation={c.activation!r}" if chooses else ""
        table = "" if c.embedding is None else f", embedding={c.embedding}"
        return (
            f"RNN(input_size={c.input_size}, hidden_size={c.hidden_size}, "
            f"output_size={c.output_size}, cell={c.cell!r}{activation}{layers}, "
            f"loss={c.loss!r}{table})"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Save config and parameters to a safetensors file, atomically (see
        :func:`rnnlab.io.write_model_file`); :func:`load` reads it back exactly."""
        return io.write_model_file(path, self.config.to_dict(), self._params)

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str = "auto") -> RNN:
        """A model saved by :meth:`save` (also ``rnnlab.load``).

        Raises
        ------
        ModelFileError
            For any unreadable or invalid file (one line naming the file and the problem).
        ValueError
            For an unknown or unavailable ``backend``.
        """
        kernels.get_backend(backend)  # a bad backend is the caller's error, not the file's
        fields, params = io.read_model_file(path)
        try:
            config = RNNConfig.from_dict(fields)
            # a config far larger than the file is refused before anything is built from
            # it (a crafted one may claim a billion layers); otherwise the checks below
            # name the parameter that differs
            arrays, numbers = config.parameter_count()
            found = sum(value.size for value in params.values())
            if arrays > 2 * len(params) + 16 or numbers > 2 * found + 1024:
                raise ValueError(f"the config describes {arrays} arrays of {numbers} numbers "
                                 f"in all; the file holds {len(params)} of {found}")  # fmt: skip
            for name, value in params.items():
                if value.dtype.name != config.dtype:
                    raise ValueError(
                        f"parameter {name} is {value.dtype.name}, the config says {config.dtype}"
                    )
            return cls.from_params(config, params, backend)
        except (ValueError, TypeError) as err:
            raise io.model_file_error(path, err) from None

    # -- data ---------------------------------------------------------------------------

    def batch(self, X, Y=None, *, lengths=None, mask=None) -> Batch:
        """Validate and pad user data into a time-major :class:`~rnnlab.sequences.Batch`
        of the model's dtype (a Batch is passed through, cast if needed, once its
        feature sizes are checked; it carries its own targets, lengths and mask)."""
        c = self.config
        if isinstance(X, Batch):
            if Y is not None or lengths is not None or mask is not None:
                raise ValueError("a Batch carries its own targets, lengths and mask; "
                                 "pass Y, lengths and mask with lists or arrays only")  # fmt: skip
            if X.x.shape[-1] != c.input_size:
                raise ValueError(f"the Batch has {X.x.shape[-1]} input features per step; "
                                 f"the model takes {c.input_size}")  # fmt: skip
            if X.y is not None and X.y.shape[-1] != c.output_size:
                raise ValueError(f"the Batch has {X.y.shape[-1]} target features per step; "
                                 f"the model gives {c.output_size}")  # fmt: skip
            return X if X.x.dtype == self._dtype else X.astype(self._dtype)
        return make_batch(
            X,
            Y,
            input_size=c.input_size,
            output_size=c.output_size,
            lengths=lengths,
            mask=mask,
            targets=TARGETS[c.loss],
            dtype=self._dtype,
        )

    # -- inference ----------------------------------------------------------------------

    def _forward(self, x: np.ndarray, states: bool = False, initial: State | None = None):
        """The backend's forward pass of ``x (T, B, I)``: time-major ``logits (T, B, O)``,
        ``h``, ``c``. Weights that are not all finite (edited by hand, or a diverged run)
        are refused: their outputs would be NaN, read as zeros or as one class."""
        flat = self._params.flat
        if not np.isfinite(flat).all():
            bad = [name for name, value in self._params.items() if not np.isfinite(value).all()]
            raise ValueError(f"the model's weights are not all finite ({', '.join(bad)} hold "
                             "NaN or infinity); its outputs would be meaningless")  # fmt: skip
        return self.kernels.forward(self.network, flat, x, states=states, initial=initial)

    def logits(self, X, *, lengths=None) -> np.ndarray:
        """Output logits, batch-first ``(B, T, O)``, zero past each sequence's length.

        ``rnnlab.to_torch(model)(x, lengths)`` returns the same array.
        """
        fast = self._forward_padded(X, lengths, squash=False)
        if fast is not None:
            return fast
        batch = self.batch(X, lengths=lengths)
        logits, _, _ = self._forward(batch.x)
        return _batch_first(logits, batch)

    def _forward_padded(self, X, lengths, squash: bool):
        """Batch-first logits (or bce probabilities, ``squash``) of a padded array, through
        the compiled call that converts and checks it; None where that way does not take
        it (another kind of array or backend, a failed check: the Batch way then says
        what is wrong)."""
        padded = getattr(self.kernels, "forward_padded", None)
        if padded is None or type(X) is not np.ndarray:
            return None
        return padded(self.network, self._params.flat, X, lengths, squash)

    def predict_proba(self, X, *, lengths=None):
        """Output probabilities (``bce``: sigmoid, ``softmax``: softmax; ``mse``: values).

        Lists in, lists out (one list per sequence, one value per step when
        ``O == 1``); a padded ``(B, T[, I])`` array in, a ``(B, T[, O])`` array out.
        """
        if self.config.loss != "softmax":  # (bce: the sigmoid; mse: the values themselves)
            fast = self._forward_padded(X, lengths, squash=self.config.loss == "bce")
            if fast is not None:
                return fast[..., 0] if fast.shape[-1] == 1 else fast
        batch = self.batch(X, lengths=lengths)
        logits, _, _ = self._forward(batch.x)
        if self.config.loss == "bce":
            return unbatch(logits, batch, sigmoid=True)
        return unbatch(LOSSES[self.config.loss].output(logits), batch)

    def predict(self, X, *, lengths=None, threshold: float = 0.5):
        """Predictions: 0/1 bits (``bce``), class indices (``softmax``) or values (``mse``)."""
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float | np.number)
            or not 0.0 <= threshold <= 1.0
        ):  # fmt: skip  (NaN fails the comparison)
            raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
        loss = self.config.loss
        # (B, n, O), zero past each length: there 0 bits (but for a threshold of 0) and
        # class 0; as float64, as the Batch way gives them
        fast = self._forward_padded(X, lengths, squash=loss == "bce")
        if fast is not None:
            if loss == "bce":
                bits = fast >= threshold
                if threshold <= 0.0 and lengths is not None:
                    bits &= (np.arange(bits.shape[1]) < lengths[:, None])[..., None]
                fast = bits.astype(np.float64)
            elif loss == "softmax":
                fast = fast.argmax(axis=-1).astype(np.float64)[..., None]
            return fast[..., 0] if fast.shape[-1] == 1 else fast
        batch = self.batch(X, lengths=lengths)
        logits, _, _ = self._forward(batch.x)
        outputs = LOSSES[self.config.loss].output(logits)  # (T, B, O)
        if loss == "bce":
            outputs = (outputs >= threshold).astype(np.int64)
        elif loss == "softmax":
            outputs = outputs.argmax(axis=-1)[..., None]
        result = unbatch(outputs, batch)
        if batch.as_list and loss != "mse":
            return [[int(v) if np.ndim(v) == 0 else [int(u) for u in v] for v in s] for s in result]
        return result

    def hidden_states(self, X, *, lengths=None) -> HiddenStates:
        """Every layer's states: ``h (L, B, T, H)`` and, for the LSTM, ``c (L, B, T, H)``
        (else None); batch-first, zero past each sequence's length."""
        batch = self.batch(X, lengths=lengths)
        _, h, c = self._forward(batch.x, states=True)
        return HiddenStates(_batch_first(h, batch), None if c is None else _batch_first(c, batch))

    # -- one step at a time ---------------------------------------------------------------

    def initial_state(self, batch_size: int = 1) -> State:
        """The state a sequence starts from (the learned ``h0``, ``c0``), for
        ``batch_size`` sequences: ``h (L, B, H)``, ``c (L, B, H)`` or None (new arrays)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or (
            batch_size < 1
        ):  # fmt: skip
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        L, H, B = self.config.num_layers, self.config.hidden_size, int(batch_size)
        names = [param_name("h0", layer) for layer in range(L)]
        h = np.stack([np.broadcast_to(self._params[n], (B, H)) for n in names])
        if not self.network.spec.cell_state:
            return State(h, None)
        names = [param_name("c0", layer) for layer in range(L)]
        return State(h, np.stack([np.broadcast_to(self._params[n], (B, H)) for n in names]))

    def step(self, x, state: State, *, logits: bool = False) -> tuple[np.ndarray, State]:
        """Feed one input per sequence, from ``state``; forward only.

        ``x``: ``(B, I)`` (or ``(B,)`` when ``I == 1``), one input for each of the
        ``B`` sequences of ``state`` (from :meth:`initial_state` or a previous step).
        Returns the outputs ``(B, O)``, probabilities as :meth:`predict_proba` gives
        them (``logits=True``: the logits), and the new state. Feeding a sequence one
        step at a time gives what :meth:`predict_proba` and :meth:`hidden_states`
        give for the whole of it.
        """
        if not isinstance(state, State):
            raise ValueError("state must be a State (from initial_state or a previous step)")
        c = self.config
        B = np.shape(state.h)[1] if np.ndim(state.h) == 3 else -1
        x = np.asarray(x, dtype=self._dtype)
        if x.ndim == 1 and c.input_size == 1:
            x = x[:, None]
        if x.shape != (B, c.input_size):
            raise ValueError(f"x must be (B, I) = ({B}, {c.input_size}) for a state of {B} "
                             f"sequence(s), got {x.shape}")  # fmt: skip
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        out, h, cs = self._forward(x[None], states=True, initial=state)
        values = out[0] if logits else LOSSES[c.loss].output(out)[0]  # (B, O)
        return values, State(h[:, 0], None if cs is None else cs[:, 0])

    # -- training -----------------------------------------------------------------------

    def loss_and_grad(
        self,
        X,
        Y=None,
        *,
        lengths=None,
        mask=None,
        truncate: int | None = None,
        reduction: str = "mean",
        initial: State | None = None,
    ) -> tuple[float, FlatParams]:
        """The loss and its exact gradient for every parameter (same names and shapes).

        Parameters
        ----------
        X, Y : sequences (see :meth:`predict_proba`), or a prepared ``Batch`` as ``X``.
        mask : which valid steps are scored (same layout as ``Y`` without features).
        truncate : int, optional
            Let each step's loss flow back through at most this many steps;
            ``None`` is full BPTT and ``1`` is the notebook's one-step gradient.
        reduction : {"mean", "sum"}
            The mean over scored terms, or their sum (the notebook's).
        initial : State, optional
            The states to start from (``h (L, B, H)``, ``c``), as :meth:`step` hands them
            on: the next chunk of a stream. They are data: ``h0`` and ``c0`` then get no
            gradient (truncated BPTT across chunks, as min-char-rnn trains).

        Returns
        -------
        loss : float
        grads : FlatParams
            Named views into one flat gradient vector (``grads.flat``), laid out as
            ``model.params.flat``.
        """
        if truncate is not None and (
            isinstance(truncate, bool) or not isinstance(truncate, int | np.integer) or truncate < 1
        ):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        check_reduction(reduction)
        truncate = None if truncate is None else int(truncate)
        padded = getattr(self.kernels, "loss_and_grad_padded", None)
        if (padded is not None and mask is None and initial is None and type(X) is np.ndarray
                and type(Y) is np.ndarray):  # fmt: skip
            # converted and checked in the compiled call (None: of another kind, or wrong)
            found = padded(self.network, self._params.flat, X, Y, lengths, loss=self.config.loss,
                           reduction=reduction, truncate=truncate)  # fmt: skip
            if found is not None:
                return found[0], FlatParams(self.network, found[1])
        batch = self.batch(X, Y, lengths=lengths, mask=mask)
        if batch.y is None:
            raise ValueError("loss_and_grad needs targets Y")
        value, grad = self.kernels.loss_and_grad(
            self.network,
            self._params.flat,
            batch.x,
            batch.y,
            batch.mask,
            loss=self.config.loss,
            reduction=reduction,
            truncate=truncate,
            initial=None if initial is None else tuple(initial),
        )
        return value, FlatParams(self.network, grad)

    def loss(self, X, Y=None, *, lengths=None, mask=None, reduction: str = "mean",
             initial: State | None = None) -> float:  # fmt: skip
        """The loss alone (see :meth:`loss_and_grad`)."""
        batch = self.batch(X, Y, lengths=lengths, mask=mask)
        if batch.y is None:
            raise ValueError("loss needs targets Y")
        logits, _, _ = self._forward(batch.x, initial=initial)
        return loss_value(self.config.loss, logits, batch.y, batch.mask, reduction)


def load(path: str | os.PathLike, backend: str = "auto") -> RNN:
    """A model saved by :meth:`RNN.save` (see :meth:`RNN.load`)."""
    return RNN.load(path, backend)


def _batch_first(values: np.ndarray, batch: Batch) -> np.ndarray:
    """Time-major ``(..., T, B, F)`` as a new batch-first ``(..., B, T, F)`` array, zero
    past each sequence's length."""
    out = np.swapaxes(values, -3, -2).copy(order="C")  # (..., B, T, F)
    T = out.shape[-2]
    padding = np.arange(T)[None, :] >= batch.lengths[:, None]  # (B, T)
    if padding.any():
        out[..., padding, :] = 0.0
    return out
