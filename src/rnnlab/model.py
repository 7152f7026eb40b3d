"""The RNN model: a typed config, named parameters, and the public API.

>>> model = RNN(hidden_size=2, seed=0)
>>> model.predict([[0, 1, 1, 0]])          # one list per sequence
[[...]]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rnnlab import kernels
from rnnlab.functional import ACTIVATIONS
from rnnlab.initializers import init_params
from rnnlab.kernels.layout import CELLS, param_shapes
from rnnlab.losses import LOSSES, check_reduction, get_loss, loss_and_dlogits
from rnnlab.sequences import Batch, make_batch, unbatch

DTYPES = {"float64": np.float64, "float32": np.float32}
TARGETS = {"bce": "binary", "softmax": "class", "mse": "real"}


@dataclass(frozen=True)
class RNNConfig:
    """Everything that defines a model's architecture (saved beside its weights)."""

    input_size: int = 1  # the notebook feeds one bit per step
    hidden_size: int = 2  # the notebook's two units
    output_size: int = 1  # one bit out per step
    cell: str = "elman"  # "elman", "gru" or "lstm" (the last two: PyTorch's equations)
    activation: str = "sigmoid"  # Elman nonlinearity: the notebook's sigmoid
    num_layers: int = 1
    loss: str = "bce"  # binary cross-entropy on logits, the notebook's log loss
    dtype: str = "float64"  # exact gradient checks need float64

    def __post_init__(self):
        for field in ("input_size", "hidden_size", "output_size", "num_layers"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.cell != "elman" and self.activation != "sigmoid":
            raise ValueError(
                f"activation applies to the Elman cell only; {self.cell!r} has fixed sigmoid "
                "gates and tanh candidates (leave activation at its default)"
            )
        get_loss(self.loss)
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose float64 or float32")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def network(self) -> dict:
        """The keyword arguments every kernel takes to know the network."""
        return {"cell": self.cell, "activation": self.activation, "num_layers": self.num_layers}


class RNN:
    """A recurrent network with a linear output layer, trained by exact BPTT.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        ``I``, ``H`` and ``O``. The defaults are the notebook's 1-2-1 network.
    activation : {"sigmoid", "tanh", "relu"}
        Nonlinearity of the Elman cell (see :mod:`rnnlab.initializers` for the
        initialisation each one gets). Elman only: ``gru`` and ``lstm`` reject
        any other value than the default.
    cell : {"elman", "gru", "lstm"}
        Cell type; ``gru`` and ``lstm`` follow ``torch.nn.GRU`` / ``nn.LSTM``
        (equations and gate order in :mod:`rnnlab.kernels.gru` and
        :mod:`rnnlab.kernels.lstm`).
    num_layers : int
        Stacked recurrent layers.
    loss : {"bce", "softmax", "mse"}
        Loss on the output logits; it also fixes what ``predict`` returns.
    seed : int
        Seed of the ``numpy.random.Generator`` that draws the initial weights.
    backend : {"auto", "numpy", "numba"}
        Kernels to run on.
    dtype : {"float64", "float32"}

    Attributes
    ----------
    params : dict of str to ndarray
        Per layer, Elman: ``W_xh (H, I)``, ``W_hh (H, H)``, ``b_h (H,)``,
        ``h0 (H,)``; GRU: ``W_xh (3H, I)``, ``W_hh (3H, H)``, ``b_xh (3H,)``,
        ``b_hh (3H,)``, ``h0 (H,)``; LSTM: ``W_xh (4H, I)``, ``W_hh (4H, H)``,
        ``b_h (4H,)``, ``h0 (H,)``, ``c0 (H,)``. Layers after the first add
        ``_l1``, ``_l2``...; then ``W_hy (O, H)`` and ``b_y (O,)``. Editing
        these arrays in place changes the model. On the compiled backend they are
        views into one vector (``params.flat``): assigning a name copies the values
        into the model's array (cast to its dtype), as ``param.data.copy_`` would.
    """

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 2,
        output_size: int = 1,
        activation: str = "sigmoid",
        *,
        cell: str = "elman",
        num_layers: int = 1,
        loss: str = "bce",
        seed: int = 0,
        backend: str = "auto",
        dtype: str = "float64",
    ):
        config = RNNConfig(
            input_size, hidden_size, output_size, cell, activation, num_layers, loss, dtype
        )
        params = init_params(
            cell=cell,
            activation=activation,
            input_size=input_size,
            hidden_size=hidden_size,
            output_size=output_size,
            num_layers=num_layers,
            gates=CELLS[cell].gates,
            rng=np.random.default_rng(seed),
            dtype=DTYPES[dtype],
        )
        self._setup(config, params, backend)

    @classmethod
    def from_params(cls, config: RNNConfig, params: dict, backend: str = "auto") -> RNN:
        """A model from a config and a full parameter dict (checked against the config)."""
        model = cls.__new__(cls)
        expected = param_shapes(
            config.cell, config.input_size, config.hidden_size, config.output_size,
            config.num_layers,
        )  # fmt: skip
        if set(params) != set(expected):
            missing, extra = set(expected) - set(params), set(params) - set(expected)
            raise ValueError(
                f"parameters do not match the config: missing {sorted(missing)}, "
                f"unexpected {sorted(extra)}"
            )
        dtype = DTYPES[config.dtype]
        checked = {}
        for name, shape in expected.items():
            value = np.asarray(params[name])
            if value.shape != shape:
                raise ValueError(f"parameter {name} has shape {value.shape}, expected {shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} contains NaN or infinite values")
            checked[name] = np.array(value, dtype=dtype)
        model._setup(config, checked, backend)
        return model

    def _setup(self, config: RNNConfig, params: dict, backend: str) -> None:
        self.config = config
        self.params = params
        self.use_backend(backend)

    def use_backend(self, backend: str) -> None:
        """Run on ``backend`` from now on ("auto", "numpy" or "numba"); weights are kept.

        The compiled backend keeps every parameter as a view into one flat vector
        (``model.params.flat``), which its training step updates in one go.
        """
        chosen = kernels.get_backend(backend)
        pack = getattr(chosen, "pack", None)
        c = self.config
        if pack is not None and not hasattr(self.params, "flat"):  # packed once, then kept
            self.params = pack(self.params, cell=c.cell, num_layers=c.num_layers)
        elif pack is None and hasattr(self.params, "flat"):
            self.params = dict(self.params)  # the same arrays, as a plain dict
        self.backend = backend
        self._kernels = chosen

    def __repr__(self) -> str:
        c = self.config
        layers = f", num_layers={c.num_layers}" if c.num_layers > 1 else ""
        activation = f", activation={c.activation!r}" if c.cell == "elman" else ""
        return (
            f"RNN(input_size={c.input_size}, hidden_size={c.hidden_size}, "
            f"output_size={c.output_size}, cell={c.cell!r}{activation}{layers}, loss={c.loss!r})"
        )

    def save(self, path):
        """Save config and parameters to a safetensors file (see :func:`rnnlab.io.save_model`)."""
        from rnnlab.io import save_model  # io builds models: imported here to avoid a cycle

        return save_model(self, path)

    # -- data ---------------------------------------------------------------------------

    def batch(self, X, Y=None, *, lengths=None, mask=None) -> Batch:
        """Validate and pad user data into a time-major :class:`~rnnlab.sequences.Batch`."""
        if isinstance(X, Batch):
            return X
        c = self.config
        return make_batch(
            X,
            Y,
            input_size=c.input_size,
            output_size=c.output_size,
            lengths=lengths,
            mask=mask,
            targets=TARGETS[c.loss],
            dtype=DTYPES[c.dtype],
        )

    # -- inference ----------------------------------------------------------------------

    def logits(self, X, *, lengths=None) -> np.ndarray:
        """Output logits, time-major ``(T, B, O)``."""
        batch = self.batch(X, lengths=lengths)
        logits, *_ = self._kernels.forward(self.params, batch.x, **self.config.network)
        return logits

    def predict_proba(self, X, *, lengths=None):
        """Output probabilities (``bce``: sigmoid, ``softmax``: softmax; ``mse``: values).

        Lists in, lists out (one list per sequence, one value per step when
        ``O == 1``); a padded ``(B, T[, I])`` array in, a ``(B, T[, O])`` array out.
        """
        batch = self.batch(X, lengths=lengths)
        return unbatch(LOSSES[self.config.loss].output(self.logits(batch)), batch)

    def predict(self, X, *, lengths=None, threshold: float = 0.5):
        """Predictions: 0/1 bits (``bce``), class indices (``softmax``) or values (``mse``)."""
        batch = self.batch(X, lengths=lengths)
        outputs = LOSSES[self.config.loss].output(self.logits(batch))  # (T, B, O)
        if self.config.loss == "bce":
            outputs = (outputs >= threshold).astype(np.int64)
        elif self.config.loss == "softmax":
            outputs = outputs.argmax(axis=-1)[..., None]
        result = unbatch(outputs, batch)
        if batch.as_list and self.config.loss != "mse":
            return [[int(v) if np.ndim(v) == 0 else [int(u) for u in v] for v in s] for s in result]
        return result

    def hidden_states(self, X, *, lengths=None) -> list[np.ndarray]:
        """Every layer's hidden sequence, time-major ``(T, B, H)`` each."""
        batch = self.batch(X, lengths=lengths)
        return self._kernels.hidden_states(self.params, batch.x, **self.config.network)

    # -- training -----------------------------------------------------------------------

    def loss_and_grad(
        self,
        X,
        Y=None,
        *,
        lengths=None,
        mask=None,
        truncate: int | None = None,
        reduction: str = "sum",
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its exact gradient for every parameter (same names and shapes).

        Parameters
        ----------
        X, Y : sequences (see :meth:`predict_proba`), or a prepared ``Batch`` as ``X``.
        mask : which valid steps are scored (same layout as ``Y`` without features).
        truncate : int, optional
            Let each step's loss flow back through at most this many steps;
            ``None`` is full BPTT and ``1`` is the notebook's one-step gradient.
        reduction : {"sum", "mean"}
            Sum over scored terms (the notebook's), or their mean.
        """
        batch = self.batch(X, Y, lengths=lengths, mask=mask)
        if batch.y is None:
            raise ValueError("loss_and_grad needs targets Y")
        if truncate is not None and (
            isinstance(truncate, bool) or not isinstance(truncate, int | np.integer) or truncate < 1
        ):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        check_reduction(reduction)
        return self._kernels.loss_and_grad(
            self.params,
            batch.x,
            batch.y,
            batch.mask,
            **self.config.network,
            loss=self.config.loss,
            truncate=truncate,
            reduction=reduction,
        )

    def loss(self, X, Y=None, *, lengths=None, mask=None, reduction: str = "sum") -> float:
        """The loss alone (see :meth:`loss_and_grad`)."""
        batch = self.batch(X, Y, lengths=lengths, mask=mask)
        if batch.y is None:
            raise ValueError("loss needs targets Y")
        logits = self.logits(batch)
        return loss_and_dlogits(self.config.loss, logits, batch.y, batch.mask, reduction)[0]
