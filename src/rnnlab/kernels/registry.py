"""The cell registry: every recurrent cell rnnlab knows, declared once.

Everything that differs between cells and is not their math is here, and every
layer reads it from here: the parameter names and shapes (:mod:`.layout`), the
numpy reference step (:mod:`.reference`), the compiled code (:mod:`.compiled`),
the initial weights (:mod:`rnnlab.initializers`) and the PyTorch names
(:mod:`rnnlab.interop`).

A cell with ``G`` gates and hidden size ``H`` has, per layer, ``W_xh (G H, I)``,
``W_hh (G H, H)``, its biases (``G H`` each), ``h0 (H,)`` and, with a cell
state, ``c0 (H,)``. Gate blocks are stacked in PyTorch's order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    """What rnnlab needs to know about a cell, besides its math.

    Attributes
    ----------
    name : the cell's name (``RNN(cell=...)``).
    code : the integer the compiled kernels dispatch on (never reused).
    gates : ``G``, row blocks of ``W_xh`` / ``W_hh`` (PyTorch's order).
    tape : numbers per unit the compiled backward step keeps from the forward one.
    cell_state : whether the carry is ``(h, c)`` (``c0`` is a parameter) or ``(h,)``.
    input_bias : the bias added to ``W_xh x`` (``(G H,)``).
    recurrent_bias : the bias added to ``W_hh h`` before the cell's math, or None
        when one bias serves both sides (then the sum of PyTorch's two).
    torch_class : the ``torch.nn`` module with the same equations ("" where there is none).
    bias_blocks : initial value of each gate block of ``input_bias`` (zeros if empty).
    activations : the nonlinearities ``RNN(activation=...)`` may choose; a cell with
        fixed nonlinearities takes only the default, ``"sigmoid"``.
    bias_inside : the cell applies its input bias itself (modReLU's
        ``sign(z) relu(|z| + b)``): the kernels hand it ``z`` without the bias, and the
        bias apart, and take the bias's gradient from it.
    orthogonal : ``W_hh`` is not a free parameter but ``expm(A - A^T)`` of the strictly
        upper triangle of the parameter ``A_hh`` stored in its place (:mod:`.orthogonal`),
        so it stays orthogonal through training.
    """

    name: str
    code: int
    gates: int
    tape: int
    cell_state: bool
    input_bias: str
    recurrent_bias: str | None
    torch_class: str
    bias_blocks: tuple[float, ...] = ()
    activations: tuple[str, ...] = ("sigmoid",)
    bias_inside: bool = False
    orthogonal: bool = False

    def shapes(self, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
        """One layer's parameter base names and shapes, in the flat vector's order."""
        GH, H = self.gates * hidden_size, hidden_size
        shapes = {"W_xh": (GH, input_size), self.recurrent_weight: (GH, H),
                  self.input_bias: (GH,)}  # fmt: skip
        if self.recurrent_bias is not None:
            shapes[self.recurrent_bias] = (GH,)
        shapes["h0"] = (H,)
        if self.cell_state:
            shapes["c0"] = (H,)
        return shapes

    @property
    def recurrent_weight(self) -> str:
        """The base name of the recurrent parameter: ``W_hh``, or ``A_hh`` (orthogonal)."""
        return "A_hh" if self.orthogonal else "W_hh"

    @property
    def bases(self) -> tuple[str, ...]:
        """One layer's parameter base names."""
        return tuple(self.shapes(1, 1))


CELLS: dict[str, CellSpec] = {
    spec.name: spec
    for spec in (
        CellSpec(
            "elman", code=0, gates=1, tape=0, cell_state=False, input_bias="b_h",
            recurrent_bias=None, torch_class="RNN", activations=("sigmoid", "tanh", "relu"),
        ),
        CellSpec(
            "gru", code=1, gates=3, tape=4, cell_state=False, input_bias="b_xh",
            recurrent_bias="b_hh", torch_class="GRU",
        ),
        CellSpec(
            "lstm", code=2, gates=4, tape=5, cell_state=True, input_bias="b_h",
            recurrent_bias=None, torch_class="LSTM", bias_blocks=(0.0, 1.0, 0.0, 0.0),
        ),
        # Lezcano-Casado & Martinez-Rubio (2019): h = modReLU(W_xh x + expm(A - A^T) h, b)
        CellSpec(
            "exprnn", code=3, gates=1, tape=0, cell_state=False, input_bias="b_h",
            recurrent_bias=None, torch_class="", bias_inside=True, orthogonal=True,
        ),
    )
}  # fmt: skip

#: codes of the Elman activations (and of the loss functions) in compiled kernels
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2}
LOSS_CODES = {"bce": 0, "softmax": 1, "mse": 2}


def get_cell(name: str) -> CellSpec:
    """The registry entry of cell ``name`` (ValueError naming the choices otherwise)."""
    spec = CELLS.get(name)
    if spec is None:
        raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}")
    return spec
