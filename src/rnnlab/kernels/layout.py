"""A network's shape and where each of its parameters lives in one flat vector.

Layer 0 uses the cell's base names (``W_xh``, ``W_hh``, ...); layer ``l >= 1``
adds ``_l{l}`` (``W_xh_l1``). The linear head is ``W_hy (O, H)``, ``b_y (O,)``. A
network with an ``embedding`` of size ``D`` first maps its inputs through a learned
table ``E (I, D)`` (``x -> E^T x``: with one-hot tokens, a row lookup), and its first
layer reads ``D`` numbers (:mod:`rnnlab.kernels.embedded`).
Adding layers never renames the first one, so a one-layer model keeps the
notebook's names.

Every backend takes a :class:`Network` and the flat parameter vector ``theta``;
a model's parameters are :class:`FlatParams`, named views into that vector.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from rnnlab.kernels.registry import ACTIVATION_CODES, CellSpec, get_cell

HEAD = ("W_hy", "b_y")
#: columns of :attr:`Network.offsets`: where each layer's arrays start (-1: absent)
W_XH, W_HH, B_X, B_H, H0, C0 = range(6)


def param_name(base: str, layer: int) -> str:
    return base if layer == 0 else f"{base}_l{layer}"


def param_shapes(
    cell: str,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int,
    embedding: int | None = None,
) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape: the embedding table (if any), layer by layer,
    then the head."""
    spec = get_cell(cell)
    shapes: dict[str, tuple[int, ...]] = {}
    if embedding is not None:
        shapes["E"] = (input_size, embedding)
    for layer in range(num_layers):
        layer_input = (embedding or input_size) if layer == 0 else hidden_size
        for base, shape in spec.shapes(layer_input, hidden_size).items():
            shapes[param_name(base, layer)] = shape
    shapes["W_hy"] = (output_size, hidden_size)
    shapes["b_y"] = (output_size,)
    return shapes


def parameter_count(cell: str, input_size: int, hidden_size: int, output_size: int,
                    num_layers: int, embedding: int | None = None) -> tuple[int, int]:  # fmt: skip
    """(arrays, numbers) of a network, worked out without listing them (so a config
    that claims a billion layers is measured before anything is built)."""
    spec = get_cell(cell)
    first = spec.shapes(embedding or input_size, hidden_size)
    later = spec.shapes(hidden_size, hidden_size)
    numbers = sum(math.prod(s) for s in first.values())
    numbers += (num_layers - 1) * sum(math.prod(s) for s in later.values())
    numbers += output_size * hidden_size + output_size
    table = 0 if embedding is None else 1
    numbers += table * input_size * (embedding or 0)
    return len(first) * num_layers + len(HEAD) + table, numbers


class Network:
    """One network's architecture and the layout of its flat parameter vector.

    Attributes
    ----------
    spec : the cell's :class:`~rnnlab.kernels.registry.CellSpec`
    activation, num_layers, input_size, hidden_size, output_size : as in ``RNNConfig``
    names, shapes, slices : per parameter, in flat-vector order
    size : length of the flat vector
    offsets : int64 array (L, 6)
        Start of ``W_xh, W_hh, input bias, recurrent bias, h0, c0`` per layer (-1: absent).
    head : int64 array (2,)
        Start of ``W_hy, b_y``.
    """

    def __init__(self, cell: str, activation: str, num_layers: int, input_size: int,
                 hidden_size: int, output_size: int, embedding: int | None = None):  # fmt: skip
        self.spec: CellSpec = get_cell(cell)
        if activation not in self.spec.activations:
            raise ValueError(f"activation {activation!r} is not one of {self.spec.name}'s "
                             f"({', '.join(self.spec.activations)})")  # fmt: skip
        self.cell, self.activation, self.num_layers = cell, activation, num_layers
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.embedding = embedding
        self.activation_code = ACTIVATION_CODES[activation]
        shapes = param_shapes(cell, input_size, hidden_size, output_size, num_layers, embedding)
        self.names = tuple(shapes)
        self.shapes = tuple(shapes.values())
        starts, start, slices = {}, 0, []
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            starts[name] = start
            slices.append((start, start + size))
            start += size
        self.slices = tuple(slices)
        self.size = start
        spec = self.spec
        columns = ("W_xh", spec.recurrent_weight, spec.input_bias, spec.recurrent_bias, "h0", "c0")
        self.offsets = np.full((num_layers, 6), -1, dtype=np.int64)
        for layer in range(num_layers):
            for column, base in enumerate(columns):
                if base is not None and param_name(base, layer) in starts:
                    self.offsets[layer, column] = starts[param_name(base, layer)]
        self.head = np.array([starts["W_hy"], starts["b_y"]], dtype=np.int64)
        self._items = tuple(zip(self.names, self.slices, self.shapes, strict=True))

    def __reduce__(self):
        return network, self.key  # pickled and copied as the one object of its shape

    @property
    def key(self) -> tuple:
        return (self.cell, self.activation, self.num_layers, self.input_size,
                self.hidden_size, self.output_size, self.embedding)  # fmt: skip

    def __repr__(self) -> str:
        embedding = "" if self.embedding is None else f", embedding={self.embedding}"
        return "Network(cell={!r}, activation={!r}, num_layers={}, input_size={}, " \
               "hidden_size={}, output_size={}".format(*self.key) + embedding + ")"  # fmt: skip

    def unpack(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into a flat vector (no copies)."""
        # (1-D arrays skip the reshape: at H = 2 building views costs as much as a pass)
        return {
            name: flat[a:b] if len(shape) == 1 else flat[a:b].reshape(shape)
            for name, (a, b), shape in self._items
        }

    def layer(self, params: dict, layer: int) -> dict[str, np.ndarray]:
        """One layer's parameters under their base names (the same arrays, no copies)."""
        return {base: params[param_name(base, layer)] for base in self.spec.bases}


@cache
def network(cell: str, activation: str, num_layers: int, input_size: int, hidden_size: int,
            output_size: int, embedding: int | None = None) -> Network:  # fmt: skip
    """The :class:`Network` of these sizes (one object per shape, made once)."""
    return Network(cell, activation, num_layers, input_size, hidden_size, output_size,
                   embedding)  # fmt: skip


#: bytes the start of a flat vector or a workspace is aligned to (a cache line)
ALIGNMENT = 64


def aligned_empty(size: int, dtype) -> np.ndarray:
    """An uninitialized vector of ``size`` numbers starting on a cache line. numpy aligns
    small arrays to 16 bytes only, and a weight matrix whose rows straddle cache lines
    made a GRU training step (H = 64, one sequence) 13% slower, in some processes and
    not others."""
    dtype = np.dtype(dtype)
    raw = np.empty(size * dtype.itemsize + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + size * dtype.itemsize].view(dtype)


class FlatParams(dict):
    """A network's parameters: a dict of named views into one flat vector ``flat``.

    Edits in place (``p -= lr * g``, as optimizers do) reach ``flat``. Assigning a
    name (``params["W_hh"] = a``, or ``update``) copies the values into the existing
    view, cast to its dtype; names cannot be added or removed. So every array a
    user holds stays the model's, whatever backend runs it. Copies and pickles are
    FlatParams again (``copy.copy`` shares ``flat``, ``copy.deepcopy`` does not).
    """

    def __init__(self, net: Network, flat: np.ndarray):
        if flat.shape != (net.size,):
            raise ValueError(f"flat vector of shape {flat.shape}; the network has {net.size}")
        super().__init__(net.unpack(flat))
        self.net = net
        self.flat = flat

    @classmethod
    def pack(cls, net: Network, params: dict, dtype) -> FlatParams:
        """Copy named arrays (exactly the network's names and shapes) into a new vector."""
        flat = aligned_empty(net.size, dtype)
        out = cls(net, flat)
        out.update(params)
        return out

    def __setitem__(self, name, value):
        if name not in self:
            raise KeyError(f"{name!r} is not a parameter of this network ({', '.join(self)})")
        view = self[name]
        if np.shape(value) != view.shape:
            raise ValueError(f"parameter {name} has shape {view.shape}, got {np.shape(value)}")
        view[...] = value

    def update(self, other=(), /, **named):
        for name, value in dict(other, **named).items():
            self[name] = value

    def setdefault(self, name, value=None):
        if name not in self:
            self[name] = value  # raises: no new names
        return self[name]

    def __ior__(self, other):
        self.update(other)
        return self

    def _fixed(self, *args, **kwargs):
        raise TypeError("the parameters of a network cannot be removed")

    __delitem__ = pop = popitem = clear = _fixed

    def __reduce__(self):
        return FlatParams, (self.net, self.flat)

    def __copy__(self):
        return FlatParams(self.net, self.flat)

    def __deepcopy__(self, memo):
        flat = aligned_empty(self.net.size, self.flat.dtype)
        flat[...] = self.flat
        return FlatParams(self.net, flat)
