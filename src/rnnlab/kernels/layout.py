"""Parameter names and shapes for a whole network: cells, layers and the output head.

Layer 0 uses the cell's base names (``W_xh``, ``W_hh``, ...); layer ``l >= 1``
adds ``_l{l}`` (``W_xh_l1``). The linear head is ``W_hy (O, H)``, ``b_y (O,)``.
Adding layers never renames the first one, so a one-layer model keeps the
notebook's names.
"""

from __future__ import annotations

from rnnlab.kernels.elman import ElmanCell
from rnnlab.kernels.gru import GRUCell
from rnnlab.kernels.lstm import LSTMCell

CELLS = {"elman": ElmanCell, "gru": GRUCell, "lstm": LSTMCell}
HEAD = ("W_hy", "b_y")


def param_name(base: str, layer: int) -> str:
    return base if layer == 0 else f"{base}_l{layer}"


def make_cell(cell: str, activation: str = "sigmoid"):
    """The numpy reference cell object for a cell type (``activation``: Elman only)."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    return CELLS[cell](activation) if cell == "elman" else CELLS[cell]()


def param_shapes(
    cell: str, input_size: int, hidden_size: int, output_size: int, num_layers: int
) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, layer by layer, then the head."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else hidden_size
        for base, shape in CELLS[cell].shapes(layer_input, hidden_size).items():
            shapes[param_name(base, layer)] = shape
    shapes["W_hy"] = (output_size, hidden_size)
    shapes["b_y"] = (output_size,)
    return shapes


def layer_view(params: dict, cell_cls, layer: int) -> dict:
    """The parameters of one layer under their base names (views, no copies)."""
    return {base: params[param_name(base, layer)] for base in cell_cls.shapes(1, 1)}
