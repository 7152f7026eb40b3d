"""Python side of the compiled backend: pack parameters, pick a path, unpack gradients.

Public functions have exactly the signatures of :mod:`rnnlab.kernels.numpy_ref`.
Anything the compiled kernels do not cover (unknown names, ``truncate < 1``,
float16 or integer parameters) goes to the reference, so results are always right.

The per-call Python work is kept small because at ``H = 2``, batch 1, a few
microseconds of dict handling would cost as much as the compiled pass itself:
the layout of the flat parameter vector is computed once per network shape
(a :class:`Plan`), and parameters that already live in one flat vector
(:class:`FlatParams`, e.g. from :func:`pack`) are used without copying.
"""

from __future__ import annotations

import numba
import numpy as np

from rnnlab.kernels import _numba_elman as elman
from rnnlab.kernels import _numba_gated as gated
from rnnlab.kernels import _numba_loops as loops
from rnnlab.kernels import numpy_ref
from rnnlab.kernels._numba_cells import (
    ACTIVATION_CODES,
    CELL_CODES,
    GATES,
    LOSS_CODES,
    TAPE,
)
from rnnlab.kernels.layout import CELLS, param_shapes
from rnnlab.losses import check_reduction

#: hidden sizes from here on run the per-step BLAS path (measured on 2 cores, see
#: benchmarks/speed.py); below, plain loops over rows win.
BLAS_MIN_HIDDEN = 32
# One-layer Elman networks with full BPTT run kernels of their own
# (kernels/_numba_elman.py), picked by size; times measured at T = 100, float32, 2 cores:
#: the fused Elman pass runs the batch in SIMD lanes from this batch size on, and units
#: innermost below it (H = 16, B = 4: units 165 us, lanes 293 us; B = 8: lanes 285 us,
#: units 322 us; B = 32: lanes 2.4x faster)
LANES_MIN_BATCH = 8
#: ... and splits its blocks of lanes over threads from this batch size on (two blocks
#: or more; at B = 256 it halves the time; one block in parallel only adds ~9 us) ...
PARALLEL_LANES_MIN_BATCH = 2 * elman.LANES
#: ... below this hidden size (B = 256: H = 64 20 ms vs 28 ms for the BLAS kernel; H = 96
#: 48 ms vs 45 ms)
PARALLEL_LANES_MAX_HIDDEN = 96
#: from this hidden size on (otherwise) the whole batch advances a step at a time with
#: BLAS products (B = 32: H = 32 1.0 ms vs lanes 1.5 ms; H = 64 2.5 vs 5.0 ms; H = 24
#: 0.99 vs 0.92 ms)
ELMAN_BLAS_MIN_HIDDEN = 32
# One-layer GRU and LSTM networks (kernels/_numba_gated.py), float32, 2 cores:
#: the batch in SIMD lanes up to this hidden size (B = 32, T = 10, H = 2: 26 us vs 56 us a
#: step at a time for a GRU, 29 vs 63 us for an LSTM; T = 100, H = 8: GRU 651 vs 789 us,
#: LSTM 822 vs 1319 us; H = 16: GRU 1626 vs 1307 us, LSTM 1945 vs 2440 us) ...
GATED_LANES_MAX_HIDDEN = {"gru": 8, "lstm": 16}
#: ... and, with blocks over both cores, up to this one from this batch size on
#: (B = 256, T = 100: H = 16 7.8 ms vs 24 ms; H = 64 72 ms vs 106 ms for a GRU)
GATED_PARALLEL_LANES_MAX_HIDDEN = 64
GATED_PARALLEL_LANES_MIN_BATCH = 128
#: the weight-gradient products go through BLAS from this hidden size on, in both paths
GRAM_BLAS_MIN_HIDDEN = 8
#: the rows path splits the batch over threads (prange) from this batch size on. Off by
#: default: on this 2-core machine numba's OpenMP workers, spinning after each parallel
#: region, competed with the main thread and with OpenBLAS and made every later call
#: slower (benchmarks/speed.py); set it to e.g. 32 to try threads elsewhere.
PARALLEL_MIN_BATCH = 1 << 62

_COLUMNS = ("W_xh", "W_hh", None, None, "h0", "c0")  # lay columns; biases depend on the cell
_BIASES = {"elman": ("b_h", None), "gru": ("b_xh", "b_hh"), "lstm": ("b_h", None)}


class Plan:
    """Where every parameter of one network shape lives in the flat vector.

    Attributes
    ----------
    names, shapes, slices : per parameter, in :func:`~rnnlab.kernels.layout.param_shapes` order
    lay : int64 array of shape (L, 6)
        Offsets of ``W_xh, W_hh, b_x, b_h, h0, c0`` per layer (``-1``: absent).
    head : int64 array of shape (2,)
        Offsets of ``W_hy, b_y``.
    """

    def __init__(self, cell: str, num_layers: int, I: int, H: int, O: int):
        self.cell, self.num_layers, self.I, self.H, self.O = cell, num_layers, I, H, O
        self.key = (cell, num_layers, I, H, O)
        shapes = param_shapes(cell, I, H, O, num_layers)
        self.names = tuple(shapes)
        self.shapes = tuple(shapes.values())
        offsets, start = {}, 0
        slices = []
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            offsets[name] = start
            slices.append((start, start + size))
            start += size
        self.slices = tuple(slices)
        self.size = start
        b_x, b_h = _BIASES[cell]
        self.lay = np.full((num_layers, 6), -1, dtype=np.int64)
        for layer in range(num_layers):
            suffix = "" if layer == 0 else f"_l{layer}"
            for col, base in enumerate(("W_xh", "W_hh", b_x, b_h, "h0", "c0")):
                if base is not None and base + suffix in offsets:
                    self.lay[layer, col] = offsets[base + suffix]
        self.head = np.array([offsets["W_hy"], offsets["b_y"]], dtype=np.int64)
        self.cell_code = CELL_CODES[cell]
        self.G = GATES[cell]
        self.S = TAPE[cell] * H
        self.use_blas = H >= BLAS_MIN_HIDDEN
        #: one-layer networks run kernels of their own cell (full BPTT only)
        self.one_layer = num_layers == 1
        self.gram_blas = H >= GRAM_BLAS_MIN_HIDDEN
        self.items = tuple(zip(self.names, self.slices, self.shapes, strict=True))

    def unpack(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into a flat vector (no copies)."""
        # (1-D arrays skip the reshape: at H = 2 these views cost as much as the pass)
        return {
            name: flat[a:b] if len(shape) == 1 else flat[a:b].reshape(shape)
            for name, (a, b), shape in self.items
        }


class FlatParams(dict):
    """A parameter dict whose arrays are views into one flat vector ``flat``.

    Edits in place (``p -= lr * g``, as optimizers do) reach ``flat``. Assigning a
    name (``params["W_hh"] = a``, or ``update``) copies the values into the existing
    view, cast to its dtype; names cannot be added or removed. So ``flat`` never goes
    stale, and the compiled backend uses it directly instead of packing each call.
    Copies and pickles are FlatParams again (``copy.copy`` shares ``flat``).
    """

    def __init__(self, plan: Plan, flat: np.ndarray):
        super().__init__(plan.unpack(flat))
        self.plan = plan
        self.flat = flat

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
        return FlatParams, (self.plan, self.flat)

    def __copy__(self):
        return FlatParams(self.plan, self.flat)

    def __deepcopy__(self, memo):
        return FlatParams(self.plan, self.flat.copy())


_PLANS: dict[tuple, Plan] = {}


def get_plan(cell: str, num_layers: int, I: int, H: int, O: int) -> Plan:
    key = (cell, num_layers, I, H, O)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = Plan(*key)
    return plan


def pack(params: dict, *, cell: str, num_layers: int, dtype=None) -> FlatParams:
    """Copy ``params`` into one flat vector and return its :class:`FlatParams` view."""
    H = params["h0"].shape[0]
    plan = get_plan(cell, num_layers, params["W_xh"].shape[1], H, params["W_hy"].shape[0])
    dtype = np.result_type(*params.values()) if dtype is None else dtype
    flat = np.concatenate([np.ravel(params[n]) for n in plan.names]).astype(dtype, copy=False)
    return FlatParams(plan, flat)


def _flat(params: dict, cell: str, num_layers: int, I: int):
    """(plan, flat vector) for ``params``, or (None, None) when the kernels do not apply."""
    if type(params) is FlatParams:
        plan = params.plan
        if plan.cell == cell and plan.num_layers == num_layers and plan.I == I:
            return plan, params.flat
    try:
        h0, W_hy = params["h0"], params["W_hy"]
        plan = get_plan(cell, num_layers, I, h0.shape[0], W_hy.shape[0])
        flat = np.concatenate([params[n].ravel() for n in plan.names])
    except (KeyError, ValueError, AttributeError):
        return None, None  # let the reference report what is wrong
    if flat.size != plan.size:
        return None, None
    return plan, flat


def _float_dtype(flat: np.ndarray, x: np.ndarray):
    """float32 when parameters and inputs are float32, float64 for any other float mix."""
    if flat.dtype == np.float32 and x.dtype == np.float32:
        return np.float32
    if flat.dtype.kind == "f" and flat.dtype.itemsize >= 4 and x.dtype.kind in "fiub":
        return np.float64
    return None


def _prepare(params, x, cell, activation, num_layers):
    if cell not in CELL_CODES or activation not in ACTIVATION_CODES or x.ndim != 3:
        return None
    plan, flat = _flat(params, cell, num_layers, x.shape[2])
    if plan is None:
        return None
    dtype = _float_dtype(flat, x)
    if dtype is None:
        return None
    if flat.dtype != dtype:
        flat = flat.astype(dtype)
    return plan, flat, dtype, np.ascontiguousarray(x, dtype=dtype)


def _shapes_match(plan: Plan, x, y, mask) -> bool:
    """Whether targets ``(T, B, O)`` and mask ``(T, B)`` fit ``x`` and the network: the
    compiled kernels index by these shapes unchecked; the reference reports a mismatch."""
    T, B = x.shape[0], x.shape[1]
    return np.shape(y) == (T, B, plan.O) and np.shape(mask) == (T, B)


def forward(params: dict, x: np.ndarray, *, cell: str, activation: str, num_layers: int):
    """Compiled :func:`rnnlab.kernels.numpy_ref.forward`.

    Returns ``(logits (T, B, O), tape)``; the tape is ``[(hs (T, B, H), None)]`` per
    layer (the compiled backward pass keeps its own caches).
    """
    prepared = _prepare(params, x, cell, activation, num_layers)
    if prepared is None:
        return numpy_ref.forward(params, x, cell=cell, activation=activation,
                                 num_layers=num_layers)  # fmt: skip
    plan, flat, _, x = prepared
    parallel = not plan.use_blas and x.shape[1] >= PARALLEL_MIN_BATCH and _threads() > 1
    logits, hs = loops.forward(
        x, flat, plan.lay, plan.head, plan.cell_code, ACTIVATION_CODES[activation], plan.G,
        plan.H, plan.O, plan.S, num_layers, plan.use_blas, parallel,
    )  # fmt: skip
    return logits, [(hs[layer], None) for layer in range(num_layers)]


def hidden_states(params: dict, x: np.ndarray, **net) -> list[np.ndarray]:
    """The hidden sequence of every layer, each of shape (T, B, H)."""
    _, tape = forward(params, x, **net)
    return [hs for hs, _ in tape]


def loss_and_grad(
    params: dict,
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    *,
    cell: str,
    activation: str,
    num_layers: int,
    loss: str = "bce",
    truncate: int | None = None,
    reduction: str = "sum",
) -> tuple[float, dict[str, np.ndarray]]:
    """Compiled :func:`rnnlab.kernels.numpy_ref.loss_and_grad` (same arguments, same result).

    The gradient dict's arrays are views into one flat vector, available as
    ``grads.flat`` (a :class:`FlatParams`), so an optimizer can update in one go.
    """
    net = {"cell": cell, "activation": activation, "num_layers": num_layers}
    compiled = _compiled_loss_and_grad(params, x, y, mask, net, loss, truncate, reduction)
    if compiled is None:
        return numpy_ref.loss_and_grad(params, x, y, mask, **net, loss=loss, truncate=truncate,
                                       reduction=reduction)  # fmt: skip
    value, grad, plan = compiled
    return value, FlatParams(plan, grad)


def loss_and_grad_flat(
    params: FlatParams,
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    *,
    cell: str,
    activation: str,
    num_layers: int,
    loss: str = "bce",
    truncate: int | None = None,
    reduction: str = "sum",
) -> tuple[float, np.ndarray]:
    """:func:`loss_and_grad` with the gradient as one vector laid out as ``params.flat``.

    The training loop's path: no dict of views is built (at ``H = 2`` building it
    costs as much as the pass).
    """
    net = {"cell": cell, "activation": activation, "num_layers": num_layers}
    compiled = _compiled_loss_and_grad(params, x, y, mask, net, loss, truncate, reduction)
    if compiled is not None:
        return compiled[0], compiled[1]
    value, grads = numpy_ref.loss_and_grad(params, x, y, mask, **net, loss=loss,
                                           truncate=truncate, reduction=reduction)  # fmt: skip
    grad = np.concatenate([np.ravel(grads[name]) for name in params.plan.names])
    return value, grad.astype(params.flat.dtype, copy=False)


def fused_train_step(
    params: FlatParams,
    *,
    cell: str,
    activation: str,
    num_layers: int,
    loss: str = "bce",
    truncate: int | None = None,
    reduction: str = "sum",
):
    """Pass, clipping and optimizer step in one compiled call, for the smallest models.

    Returns ``run(x, y, mask, update) -> (loss, gradient norm before clipping)`` for a
    one-layer Elman network with full BPTT (None for any other network); ``update``
    comes from :meth:`rnnlab.optim.Optimizer.fused`. ``run`` returns None for a batch
    it does not take (``LANES_MIN_BATCH`` sequences or more, or another dtype, which
    would compile anew): those go through :func:`loss_and_grad_flat`. Everything that
    does not depend on the batch is settled here, once: at ``H = 2`` the pass takes
    about as long as a call from Python.
    """
    plan = getattr(params, "plan", None)
    if (
        plan is None
        or not plan.one_layer
        or plan.cell != "elman"
        or plan.H >= ELMAN_BLAS_MIN_HIDDEN
        or (plan.cell, plan.num_layers) != (cell, num_layers)
        or truncate is not None
        or activation not in ACTIVATION_CODES
        or loss not in LOSS_CODES
    ):
        return None
    check_reduction(reduction)
    flat, lay, head, H = params.flat, plan.lay, plan.head, plan.H
    dtype, I = flat.dtype, plan.I
    codes = (ACTIVATION_CODES[activation], H, LOSS_CODES[loss], reduction == "mean")
    kernel = elman.units_train_step

    O = plan.O

    def run(x, y, mask, update):
        if x.ndim != 3:
            return None
        T, B = x.shape[0], x.shape[1]
        if (
            B >= LANES_MIN_BATCH
            or x.shape[2] != I
            or y.shape != (T, B, O)
            or mask.shape != (T, B)
            or x.dtype != dtype
            or y.dtype != dtype
            or mask.dtype != dtype
        ):
            return None
        return kernel(x, y, mask, flat, lay, head, *codes, *update)

    return run


def _compiled_loss_and_grad(params, x, y, mask, net, loss, truncate, reduction):
    """(value, flat gradient, plan) from the compiled kernels, or None where they do not apply."""
    if loss not in LOSS_CODES or (truncate is not None and truncate < 1):
        return None
    activation, num_layers = net["activation"], net["num_layers"]
    prepared = _prepare(params, x, net["cell"], activation, num_layers)
    if prepared is None:
        return None
    check_reduction(reduction)
    plan, flat, dtype, x = prepared
    if not _shapes_match(plan, x, y, mask):
        return None
    y = np.ascontiguousarray(y, dtype=dtype)
    mask = np.ascontiguousarray(mask, dtype=dtype)
    T, B = x.shape[0], x.shape[1]
    k = 0 if truncate is None or truncate >= T else int(truncate)
    act, loss_code, mean = ACTIVATION_CODES[activation], LOSS_CODES[loss], reduction == "mean"
    if plan.one_layer and k == 0 and plan.cell == "elman":
        fused = _elman_kernel(plan.H, B)
        value, grad = fused(x, y, mask, flat, plan.lay, plan.head, act, plan.H, loss_code, mean)
    elif plan.one_layer and k == 0:  # GRU, LSTM
        fused = _gated_kernel(plan.cell, plan.H, B)
        value, grad = fused(x, y, mask, flat, plan.lay, plan.head, plan.cell_code, plan.H,
                            loss_code, mean)  # fmt: skip
    elif plan.use_blas:
        value, grad = loops._loss_and_grad_blas(
            x, y, mask, flat, plan.lay, plan.head, plan.cell_code, act, plan.G, plan.H, plan.S,
            num_layers, loss_code, mean, k,
        )  # fmt: skip
    else:
        parallel = B >= PARALLEL_MIN_BATCH and _threads() > 1
        kernel = loops._loss_and_grad_rows_parallel if parallel else loops._loss_and_grad_rows
        value, grad = kernel(
            x, y, mask, flat, plan.lay, plan.head, plan.cell_code, act, plan.G, plan.H, plan.S,
            num_layers, loss_code, mean, k, plan.gram_blas,
        )  # fmt: skip
    return value, grad, plan


def _elman_kernel(H: int, B: int):
    """The one-layer Elman kernel for hidden size ``H`` and batch ``B`` (see the constants)."""
    if B >= PARALLEL_LANES_MIN_BATCH and H < PARALLEL_LANES_MAX_HIDDEN and _threads() > 1:
        return elman.elman_loss_and_grad_parallel
    if H >= ELMAN_BLAS_MIN_HIDDEN:
        return elman.elman_loss_and_grad_blas
    if B < LANES_MIN_BATCH:
        return elman.elman_loss_and_grad_units
    return elman.elman_loss_and_grad


def _gated_kernel(cell: str, H: int, B: int):
    """The one-layer GRU/LSTM kernel for hidden size ``H`` and batch ``B`` (see the constants)."""
    threads = _threads() > 1
    if threads and (
        (B >= GATED_PARALLEL_LANES_MIN_BATCH and H <= GATED_PARALLEL_LANES_MAX_HIDDEN)
        or (B >= PARALLEL_LANES_MIN_BATCH and H <= GATED_LANES_MAX_HIDDEN[cell])
    ):
        return gated.gated_loss_and_grad_lanes_parallel
    if B >= LANES_MIN_BATCH and H <= GATED_LANES_MAX_HIDDEN[cell]:
        return gated.gated_loss_and_grad_lanes
    return gated.gru_loss_and_grad if cell == "gru" else gated.lstm_loss_and_grad


def _threads() -> int:
    return numba.get_num_threads()


__all__ = [
    "CELLS",
    "FlatParams",
    "Plan",
    "forward",
    "fused_train_step",
    "hidden_states",
    "loss_and_grad",
    "loss_and_grad_flat",
    "pack",
]  # fmt: skip
