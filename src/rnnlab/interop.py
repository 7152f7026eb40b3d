"""Moving networks between rnnlab and PyTorch, exactly.

>>> module = to_torch(model)                  # a torch.nn.Module, same numbers
>>> logits = module(x, lengths)               # (B, T, I) -> (B, T, O), as model.logits(...)
>>> model2 = from_torch(module)               # back: exactly the same parameters
>>> model3 = from_torch(nn_lstm, nn_linear, h0=h0, c0=c0, loss="bce")   # plain modules

:func:`to_torch` builds a :class:`TorchRNN`: the recurrent layers as
``torch.nn.RNN`` (tanh / relu Elman), ``nn.GRU`` or ``nn.LSTM`` — or
:class:`SigmoidRNN`, a small module with ``nn.RNN``'s interface and parameter
names for the sigmoid Elman cell, which ``nn.RNN`` lacks — all
``batch_first``, plus an ``nn.Linear`` head and the learnable initial states
``h0`` (and ``c0``) as one parameter per layer, shared by the whole batch.
It has the model's dtype (float64 by default).

Parameter layout (:func:`torch_names` gives it name by name). Layer ``l``:

=============  ======================================  =========================
rnnlab         torch                                   note
=============  ======================================  =========================
``W_xh``       ``rnn.weight_ih_l{l}``                  gate blocks in torch order
``W_hh``       ``rnn.weight_hh_l{l}``
``b_h``        ``rnn.bias_ih_l{l} + rnn.bias_hh_l{l}``  Elman and LSTM
``b_xh``       ``rnn.bias_ih_l{l}``                    GRU (``b_hn`` sits inside
``b_hh``       ``rnn.bias_hh_l{l}``                    ``r * (...)``: not summable)
``h0``, ``c0``  ``h0.{l}``, ``c0.{l}``
``W_hy``       ``head.weight``
``b_y``        ``head.bias``
=============  ======================================  =========================

Where one rnnlab parameter is the sum of two torch ones, :func:`to_torch`
puts the value in the first and zero in the second, so
``from_torch(to_torch(model))`` returns the very same numbers; the gradient of
the rnnlab parameter equals the gradient of either torch one.

Not convertible (``ValueError``): bidirectional layers, ``proj_size > 0``,
``dropout > 0`` (rnnlab has no dropout) and initial states that differ between
batch rows. ``batch_first`` does not matter to :func:`from_torch` (the layout
of the weights is the same). PyTorch is optional: ``import rnnlab`` never
imports it, and these functions raise ``ImportError`` when it is missing.
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np

from rnnlab.kernels.layout import param_name, param_shapes
from rnnlab.kernels.registry import CELLS, CellSpec, get_cell
from rnnlab.model import RNN, RNNConfig

TORCH_MISSING = "rnnlab.interop needs PyTorch: pip install torch==2.13.0"


def _torch_bases(spec: CellSpec) -> dict[str, tuple[str, ...]]:
    """A cell's base names -> the torch recurrent parameter bases whose sum each is."""
    bases = {"W_xh": ("weight_ih",), "W_hh": ("weight_hh",)}
    if spec.recurrent_bias is None:  # one bias for both sides: the sum of torch's two
        bases[spec.input_bias] = ("bias_ih", "bias_hh")
    else:
        bases[spec.input_bias] = ("bias_ih",)
        bases[spec.recurrent_bias] = ("bias_hh",)
    return bases


def torch_names(cell: str, num_layers: int) -> dict[str, tuple[str, ...]]:
    """rnnlab parameter name -> the :class:`TorchRNN` parameter names whose sum it is."""
    spec = get_cell(cell)
    torch_bases = _torch_bases(spec)
    names: dict[str, tuple[str, ...]] = {}
    for layer in range(num_layers):
        for base in spec.bases:
            if base in ("h0", "c0"):
                sources = (f"{base}.{layer}",)
            else:
                sources = tuple(f"rnn.{t}_l{layer}" for t in torch_bases[base])
            names[param_name(base, layer)] = sources
    names["W_hy"] = ("head.weight",)
    names["b_y"] = ("head.bias",)
    return names


def to_torch(model: RNN):
    """The model as a :class:`TorchRNN` (a ``torch.nn.Module``) with the same parameters.

    Its ``forward(x, lengths=None)`` takes a padded batch-first ``x (B, T, I)``
    and returns logits ``(B, T, O)``; with ``lengths`` it runs on packed
    sequences and the logits on padding are zero. ``model.logits(x, lengths=...)``
    returns the same array: same layout, same values, padding included.
    """
    torch = _import_torch()
    classes = _torch_classes()
    if not isinstance(model, RNN):
        raise ValueError(f"to_torch needs an rnnlab.RNN, got {type(model).__name__}")
    c = model.config
    if not get_cell(c.cell).torch_class:
        raise ValueError(f"to_torch: PyTorch has no module for the {c.cell} cell")
    if c.embedding is not None:
        raise ValueError("to_torch gives (rnn, linear); a model with an input embedding "
                         "also needs torch.nn.Embedding(weight=params['E'])")  # fmt: skip
    I, H, O, L = c.input_size, c.hidden_size, c.output_size, c.num_layers
    dtype = {"float64": torch.float64, "float32": torch.float32}[c.dtype]
    nn = torch.nn
    spec = get_cell(c.cell)
    if len(spec.activations) > 1 and c.activation == "sigmoid":  # nn.RNN has no sigmoid
        rnn = classes.SigmoidRNN(I, H, L, dtype=dtype)
    elif len(spec.activations) > 1:
        rnn = getattr(nn, spec.torch_class)(
            I, H, L, nonlinearity=c.activation, batch_first=True, dtype=dtype
        )
    else:
        rnn = getattr(nn, spec.torch_class)(I, H, L, batch_first=True, dtype=dtype)
    zeros = torch.zeros(L, H, dtype=dtype)
    module = classes.TorchRNN(
        rnn,
        nn.Linear(H, O, dtype=dtype),
        h0=zeros,
        c0=zeros if spec.cell_state else None,
        loss=c.loss,
    )
    tparams = dict(module.named_parameters())
    with torch.no_grad():
        for name, sources in torch_names(c.cell, L).items():
            tparams[sources[0]].copy_(torch.from_numpy(np.array(model.params[name])))
            for other in sources[1:]:
                tparams[other].zero_()
    return module


def from_torch(
    rnn, linear=None, h0=None, c0=None, *, loss: str | None = None, backend: str = "auto"
) -> RNN:
    """An rnnlab :class:`~rnnlab.model.RNN` from PyTorch modules.

    Parameters
    ----------
    rnn : torch.nn.RNN, nn.GRU, nn.LSTM, SigmoidRNN, or a TorchRNN from :func:`to_torch`
        Unidirectional, without projections or dropout. A ``TorchRNN`` brings
        its head, initial states and loss; pass nothing else with it.
    linear : torch.nn.Linear (H -> O)
        The output layer (required unless ``rnn`` is a ``TorchRNN``).
    h0, c0 : tensor or array of shape (L, H), (L, 1, H), or (H,) when L == 1; optional
        Initial hidden (and, for an LSTM, cell) state; zero when omitted.
    loss : {"bce", "softmax", "mse"}
        The model's loss: required with plain modules (a ``Linear`` does not say which
        loss its outputs serve); a ``TorchRNN``'s own by default.
    backend : str
        Kernels of the new model.

    The dtype is float32 for float32 weights and float64 otherwise.
    """
    torch = _import_torch()
    classes = _torch_classes()
    if isinstance(rnn, classes.TorchRNN):
        if linear is not None or h0 is not None or c0 is not None:
            raise ValueError(
                "a TorchRNN brings its own head and initial states: pass it alone to from_torch"
            )
        state = dict(rnn.named_parameters())
        loss = rnn.loss if loss is None else loss
        rnn = rnn.rnn
        cell, activation = _describe(rnn, classes, torch)
        O = state["head.weight"].shape[0]
    else:
        cell, activation = _describe(rnn, classes, torch)
        if not isinstance(linear, torch.nn.Linear):
            raise ValueError(
                "from_torch needs the output layer as a torch.nn.Linear, "
                f"got {type(linear).__name__}"
            )
        if linear.in_features != rnn.hidden_size:
            raise ValueError(
                f"the Linear head takes {linear.in_features} features but the recurrent "
                f"layers have hidden_size {rnn.hidden_size}"
            )
        if c0 is not None and not get_cell(cell).cell_state:
            raise ValueError(f"c0 is the LSTM's cell state; a {cell} cell has none")
        state = {f"rnn.{n}": p for n, p in rnn.named_parameters()}
        state |= {f"head.{n}": p for n, p in linear.named_parameters()}
        L, H = rnn.num_layers, rnn.hidden_size
        initial = (("h0", h0), ("c0", c0)) if get_cell(cell).cell_state else (("h0", h0),)
        for base, value in initial:
            for layer, row in enumerate(_initial_rows(value, base, L, H, torch)):
                state[f"{base}.{layer}"] = row
        O = linear.out_features
        if loss is None:
            raise ValueError("from_torch needs loss= with plain torch modules: 'bce' (sigmoid "
                             "outputs), 'softmax' (classes) or 'mse' (real values); a "
                             "torch.nn.Linear does not say which")  # fmt: skip
    I, H, L = rnn.input_size, rnn.hidden_size, rnn.num_layers
    dtype = "float32" if rnn.weight_ih_l0.dtype == torch.float32 else "float64"
    config = RNNConfig(I, H, O, cell, activation, L, loss, dtype)
    shapes = param_shapes(cell, I, H, O, L)
    params = {}
    for name, sources in torch_names(cell, L).items():
        value = np.zeros(shapes[name])  # a torch module without biases: zero biases
        for source in sources:
            if source in state:
                value = value + _numpy(state[source], torch)
        params[name] = value
    return RNN.from_params(config, params, backend=backend)


# -- private helpers ----------------------------------------------------------------------


def _import_torch():
    try:
        import torch
    except ImportError as err:
        raise ImportError(TORCH_MISSING) from err
    return torch


def _numpy(tensor, torch) -> np.ndarray:
    """A float64 numpy copy of a tensor or array (exact for every float dtype)."""
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().cpu().to(torch.float64).numpy().copy()
    return np.array(tensor, dtype=np.float64)


def _describe(rnn, classes, torch) -> tuple[str, str]:
    """``(cell, activation)`` of a torch recurrent module; ValueError if rnnlab cannot run it."""
    nn = torch.nn
    if isinstance(rnn, classes.SigmoidRNN):
        cell, activation = "elman", "sigmoid"
    else:
        spec = next(
            (s for s in CELLS.values()
             if s.torch_class and isinstance(rnn, getattr(nn, s.torch_class))), None
        )  # fmt: skip
        if spec is None:
            raise ValueError(
                "from_torch takes torch.nn.RNN, nn.GRU, nn.LSTM, SigmoidRNN or a TorchRNN from "
                f"to_torch, got {type(rnn).__name__}"
            )
        cell, activation = spec.name, spec.activations[0]
        if len(spec.activations) > 1:  # the nonlinearity is the module's choice
            choices = [a for a in spec.activations if a != "sigmoid"]  # SigmoidRNN's alone
            if rnn.nonlinearity not in choices:
                raise ValueError(
                    f"unknown nonlinearity {rnn.nonlinearity!r}; nn.{spec.torch_class} has "
                    f"{' and '.join(map(repr, choices))} (rnnlab's sigmoid Elman cell exports "
                    "as rnnlab.interop.SigmoidRNN)"
                )
            activation = rnn.nonlinearity
    if rnn.bidirectional:
        raise ValueError("bidirectional layers cannot be converted: rnnlab runs forward in time")
    if getattr(rnn, "proj_size", 0):
        raise ValueError("LSTM projections (proj_size > 0) cannot be converted")
    if rnn.dropout:
        raise ValueError("dropout between layers cannot be converted: rnnlab has no dropout")
    return cell, activation


def _initial_rows(value, name: str, L: int, H: int, torch) -> np.ndarray:
    """An initial state as ``(L, H)`` rows (zeros when ``value`` is None)."""
    if value is None:
        return np.zeros((L, H))
    a = _numpy(value, torch)
    if a.shape == (L, 1, H):
        a = a[:, 0]
    elif a.shape == (H,) and L == 1:
        a = a[None]
    if a.shape != (L, H):
        raise ValueError(
            f"{name} must have shape ({L}, {H}) or ({L}, 1, {H}) — one state per layer, "
            f"shared by the batch — got {tuple(a.shape)}"
        )
    return a


@cache
def _torch_classes():
    """Define the torch module classes (once, on first use: torch is optional)."""
    torch = _import_torch()
    nn = torch.nn
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    class SigmoidRNN(nn.Module):
        """``torch.nn.RNN`` with the logistic sigmoid: same interface and parameter names.

        ``h_t = sigmoid(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, layer after
        layer. ``forward(input, hx=None) -> (output, h_n)`` accepts a padded
        tensor (``batch_first`` or time-major) or a ``PackedSequence``, like
        ``nn.RNN``.
        """

        nonlinearity = "sigmoid"
        bidirectional = False
        proj_size = 0
        dropout = 0.0
        bias = True

        def __init__(
            self,
            input_size: int,
            hidden_size: int,
            num_layers: int = 1,
            *,
            batch_first: bool = True,
            dtype=None,
        ):
            super().__init__()
            self.input_size, self.hidden_size = input_size, hidden_size
            self.num_layers, self.batch_first = num_layers, batch_first
            H = hidden_size
            for layer in range(num_layers):
                n_in = input_size if layer == 0 else H
                for name, shape in (
                    ("weight_ih", (H, n_in)),
                    ("weight_hh", (H, H)),
                    ("bias_ih", (H,)),
                    ("bias_hh", (H,)),
                ):
                    value = torch.empty(shape, dtype=dtype)
                    nn.init.uniform_(value, -(H**-0.5), H**-0.5)  # nn.RNN's default
                    self.register_parameter(f"{name}_l{layer}", nn.Parameter(value))

        def forward(self, input, hx=None):
            packed = isinstance(input, PackedSequence)
            if packed:
                x, lengths = pad_packed_sequence(input, batch_first=True)  # (B, T, I)
            else:
                x = input if self.batch_first else input.transpose(0, 1)  # (B, T, I)
                lengths = torch.full((x.shape[0],), x.shape[1])
            B, T, _ = x.shape
            valid = (torch.arange(T)[None, :] < lengths[:, None]).to(x.dtype)  # (B, T)
            if hx is None:
                hx = torch.zeros(self.num_layers, B, self.hidden_size, dtype=x.dtype)
            last = []
            for layer in range(self.num_layers):
                w_ih, w_hh, b_ih, b_hh = (
                    getattr(self, f"{n}_l{layer}")
                    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
                h = hx[layer]  # (B, H)
                outs = []
                for t in range(T):
                    new = torch.sigmoid(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)  # (B, H)
                    m = valid[:, t, None]  # (B, 1): padding keeps the state, outputs zero
                    h = m * new + (1 - m) * h
                    outs.append(m * new)
                x = torch.stack(outs, dim=1)  # (B, T, H)
                last.append(h)
            h_n = torch.stack(last)  # (L, B, H)
            if packed:
                out = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                return out, h_n
            return (x if self.batch_first else x.transpose(0, 1)), h_n

    class TorchRNN(nn.Module):
        """An rnnlab network in torch: ``rnn`` (batch_first), ``head`` and learnable states.

        ``h0`` (and ``c0`` for an LSTM) hold one ``(H,)`` parameter per layer,
        expanded over the batch at every call. ``loss`` remembers the rnnlab
        loss name so the model comes back unchanged through :func:`from_torch`.
        """

        def __init__(self, rnn, head, *, h0, c0=None, loss: str = "bce"):
            super().__init__()
            self.rnn = rnn
            self.head = head
            self.h0 = nn.ParameterList([nn.Parameter(row.clone()) for row in h0])
            self.c0 = None if c0 is None else nn.ParameterList(
                [nn.Parameter(row.clone()) for row in c0]
            )  # fmt: skip
            self.loss = loss

        def initial_state(self, batch_size: int):
            """``hx`` for ``self.rnn``: ``(L, B, H)``, or ``(h, c)`` of that shape for an LSTM."""
            H = self.rnn.hidden_size
            h = torch.stack(list(self.h0))[:, None, :].expand(-1, batch_size, H).contiguous()
            if self.c0 is None:
                return h
            c = torch.stack(list(self.c0))[:, None, :].expand(-1, batch_size, H).contiguous()
            return h, c

        def forward(self, x, lengths=None):
            """x (B, T, I) padded, lengths (B,) optional -> logits (B, T, O).

            With ``lengths`` the sequences run packed, and the logits past each
            sequence's length are zero (as the hidden states there are): the same
            array as ``model.logits(x, lengths=lengths)``.
            """
            x = torch.as_tensor(x, dtype=self.head.weight.dtype)
            B, T, _ = x.shape
            hx = self.initial_state(B)
            if lengths is None:
                out, _ = self.rnn(x, hx)  # (B, T, H)
                return self.head(out)  # (B, T, O)
            lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, H)
            valid = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
            return self.head(out) * valid[..., None].to(out.dtype)  # (B, T, O), 0 on padding

    for cls in (SigmoidRNN, TorchRNN):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return SimpleNamespace(SigmoidRNN=SigmoidRNN, TorchRNN=TorchRNN)


def __getattr__(name: str):
    """``rnnlab.interop.TorchRNN`` and ``SigmoidRNN`` import torch on first use."""
    if name in ("TorchRNN", "SigmoidRNN"):
        return getattr(_torch_classes(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["from_torch", "to_torch", "torch_names"]  # + TorchRNN, SigmoidRNN (lazy)
