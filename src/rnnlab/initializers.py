"""Initial parameters, drawn from an explicit ``numpy.random.Generator``.

Recurrent weights are what decides whether a small RNN trains, so each
activation gets the scheme known to work for it:

- ``sigmoid``: Glorot-uniform input weights scaled by 4, the factor Glorot &
  Bengio (2010) derive for the logistic function, whose slope at 0 is 1/4 —
  without it two sigmoid units start almost linear and flat; recurrent
  weights at half the Glorot scale, so the state starts as a function of the
  recent input. Measured on ``shift`` (2 units, Adam 0.05): with recurrent
  weights also scaled by 4, 2 of 40 seeds settled in saturated self-loops
  and never solved it; with this scheme 40 of 40 did.
- ``tanh``: Glorot-uniform input weights, orthogonal recurrent weights
  (Saxe et al. 2014): gradients neither explode nor vanish at the start.
- ``relu``: He-uniform input weights and the identity as recurrent weights
  (the IRNN of Le et al. 2015): the state is carried unchanged until learnt.

GRU and LSTM cells (fixed sigmoid gates and tanh candidates; ``activation``
is the Elman cell's alone) get Glorot-uniform input weights and an orthogonal
recurrent block per gate, as Keras does. The LSTM's forget-gate bias starts
at 1 (Gers et al. 2000; Jozefowicz et al. 2015): the cell state is kept by
default until the net learns to forget, so gradients flow through time from
the first update.

The ``exprnn`` cell's recurrence is ``expm(A - A^T)`` of the strict upper triangle of
``A_hh`` (:mod:`rnnlab.kernels.orthogonal`). It starts as Lezcano-Casado & Martinez-Rubio
(2019) start it on the copy task, with Henaff et al. (2016)'s initialisation: ``A - A^T``
block-diagonal with 2 x 2 blocks ``[[0, s], [-s, 0]]``, ``s`` uniform in ``(-pi, pi)`` (a
rotation per pair of units, at random angles); its input weights are He-uniform and its
modReLU bias uniform in ``(-0.01, 0.01)``. With ``init="irnn"`` its ``A_hh`` is zero (the
identity recurrence).

The output layer is Glorot-uniform; other biases and initial states start at 0.

``init`` chooses another scheme for every cell and activation: ``"irnn"`` is Le,
Jaitly and Hinton (2015)'s as they published it, the identity as recurrent weights and
input weights drawn from a Gaussian of standard deviation 0.001 (the He-uniform inputs
of the default relu scheme diverged on the adding problem at T = 150, theirs did not);
``"orthogonal"`` is Glorot-uniform input and orthogonal recurrent weights whatever the
activation.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from rnnlab.kernels.layout import param_name
from rnnlab.kernels.registry import get_cell


def glorot_uniform(shape: tuple[int, int], *, rng: np.random.Generator, gain: float = 1.0):
    fan_out, fan_in = shape
    limit = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def he_uniform(shape: tuple[int, int], *, rng: np.random.Generator):
    limit = np.sqrt(6.0 / shape[1])
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(shape: tuple[int, int], *, rng: np.random.Generator):
    """A random (semi-)orthogonal matrix: QR of a Gaussian, signs fixed so it is uniform."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # (max, min)
    return q if rows >= cols else q.T


def henaff(shape: tuple[int, int], *, rng: np.random.Generator):
    """A generator ``A (H, H)`` whose ``triu(A, 1) - triu(A, 1)^T`` is block-diagonal, 2 x 2
    blocks ``[[0, s], [-s, 0]]`` with ``s`` uniform in ``(-pi, pi)`` (Henaff et al. 2016)."""
    H = shape[0]
    A = np.zeros(shape)
    angles = rng.uniform(-np.pi, np.pi, size=H // 2)
    A[2 * np.arange(H // 2), 2 * np.arange(H // 2) + 1] = angles
    return A


def identity(shape: tuple[int, int], *, rng: np.random.Generator):
    """The identity matrix (``rng`` unused; the same signature as the others)."""
    return np.eye(*shape)


def gaussian(shape: tuple[int, int], *, rng: np.random.Generator, std: float):
    return rng.normal(0.0, std, size=shape)


#: the initialisation schemes (see the module's docstring)
INITS = ("default", "irnn", "orthogonal")


def _recurrent_blocks(init, shape, gates: int, *, rng) -> np.ndarray:
    """Initialise each gate's ``(H, n)`` block of a stacked ``(gates * H, n)`` matrix alone."""
    H = shape[0] // gates
    return np.concatenate([init((H, shape[1]), rng=rng) for _ in range(gates)], axis=0)


def init_params(
    *,
    cell: str,
    activation: str,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int,
    rng: np.random.Generator,
    dtype=np.float64,
    init: str = "default",
    embedding: int | None = None,
) -> dict[str, np.ndarray]:
    """Fresh parameters for a network, float ``dtype``, in a fixed draw order.

    Everything that differs between cells comes from the cell's registry entry
    (:mod:`rnnlab.kernels.registry`): its gate blocks, its input bias and the initial
    value of each of that bias's gate blocks (``bias_blocks``). A cell with a choice
    of nonlinearity gets the scheme of ``activation``; a cell with fixed ones (gated)
    gets Glorot-uniform input and orthogonal recurrent blocks; ``init`` overrides both
    (:data:`INITS`).
    """
    spec = get_cell(cell)
    check_init(init)
    if init == "irnn":
        w_in, w_rec = partial(gaussian, std=0.001), identity
    elif init == "orthogonal":
        w_in, w_rec = glorot_uniform, orthogonal
    elif spec.orthogonal:
        w_in, w_rec = he_uniform, henaff
    elif len(spec.activations) > 1 and activation == "sigmoid":
        w_in, w_rec = partial(glorot_uniform, gain=4.0), partial(glorot_uniform, gain=0.5)
    elif len(spec.activations) > 1 and activation == "relu":
        w_in, w_rec = he_uniform, identity
    else:
        w_in, w_rec = glorot_uniform, orthogonal
    params = {}
    for layer in range(num_layers):
        layer_input = (embedding or input_size) if layer == 0 else hidden_size
        for base, shape in spec.shapes(layer_input, hidden_size).items():
            if base == "W_xh":
                value = _recurrent_blocks(w_in, shape, spec.gates, rng=rng)
            elif base == "W_hh":
                value = _recurrent_blocks(w_rec, shape, spec.gates, rng=rng)
            elif base == "A_hh":  # the generator of an orthogonal recurrence
                value = np.zeros(shape) if init == "irnn" else henaff(shape, rng=rng)
            elif base == spec.input_bias and spec.bias_inside:  # modReLU's
                value = rng.uniform(-0.01, 0.01, size=shape)
            elif base == spec.input_bias and spec.bias_blocks:  # e.g. the LSTM's forget gate
                value = np.repeat(np.asarray(spec.bias_blocks, dtype=np.float64), hidden_size)
            else:  # other biases and initial states
                value = np.zeros(shape)
            params[param_name(base, layer)] = np.ascontiguousarray(value, dtype=dtype)
    params["W_hy"] = np.ascontiguousarray(
        glorot_uniform((output_size, hidden_size), rng=rng), dtype=dtype
    )
    params["b_y"] = np.zeros(output_size, dtype=dtype)
    if embedding is not None:  # (drawn last: the other weights are those of no table)
        params["E"] = np.ascontiguousarray(gaussian((input_size, embedding), rng=rng, std=1.0),
                                           dtype=dtype)  # fmt: skip
    return params


def check_init(init) -> str:
    """``init`` if it names a scheme of :data:`INITS`, else a ``ValueError``."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    return init
