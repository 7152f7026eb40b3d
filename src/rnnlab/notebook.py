"""The seed notebook's own API, running on rnnlab's core.

The notebook's code runs unchanged against this module and prints the same
numbers::

    from rnnlab.notebook import RNN, binarize
    model = RNN()
    model.predict([0, 1])            # [0.007152809912960745, 0.9928144512645394]
    model.update_weights([1, 1], [0, 1], learning_rate=1, print_loss=True)

Its attributes (``Wy_first``, ``Waa_second_1``, ``a_first``...) read and write
the core model's parameters (see the table in DESIGN.md). Its steps run the
notebook's own arithmetic, compiled (:mod:`rnnlab.kernels.compiled.notebook`):
the same digits, about 6x faster than the notebook's Python; its gradient is
the core's ``truncate=1`` gradient (tested to 1e-12), which is exactly what the
notebook derived by hand. Where the notebook crashed — ``InvalidInputError`` was never
defined, ``math.e**-z`` overflows for ``z < -709`` — this module does what was
meant: raises a real ``InvalidInputError`` and saturates the sigmoid.
"""

from __future__ import annotations

import numpy as np

from rnnlab import functional
from rnnlab.kernels.compiled import notebook as steps
from rnnlab.model import RNN as CoreRNN
from rnnlab.tasks.shift import shift_data


class InvalidInputError(ValueError):
    """A target that is not 0 or 1."""


def sigmoid(z):
    """``1 / (1 + e^-z)`` that never overflows; a float for a number, an array for an array."""
    s = functional.sigmoid(z)
    return float(s) if np.ndim(s) == 0 else s


def log_loss(y_hat, y):
    """``-log(y_hat)`` for ``y == 1``, ``-log(1 - y_hat)`` for ``y == 0``; never ``log(0)``."""
    if y not in (0, 1):
        raise InvalidInputError("y must be 0 or 1 but it is ", y)
    return float(functional.log_loss(y_hat, y))


def by_derivative(y_hat, y):
    """d loss / d by for one step: ``y_hat - y``."""
    return y_hat - y


def Wy_derivative(y_hat, y, a):
    """d loss / d Wy for the unit with activation ``a``."""
    return by_derivative(y_hat, y) * a


def ba_derivative(y_hat, y, Wy, an):
    """d loss / d ba through one step: ``(y_hat - y) Wy an (1 - an)``."""
    return (y_hat - y) * Wy * an * (1 - an)


def Waa_derivative(y_hat, y, Wy, an, a_prev):
    """d loss / d Waa through one step (the previous state held fixed)."""
    return ba_derivative(y_hat, y, Wy, an) * a_prev


def Wax_derivative(y_hat, y, Wy, an, x):
    """d loss / d Wax through one step."""
    return ba_derivative(y_hat, y, Wy, an) * x


def binarize(x_input):
    """Threshold probabilities at 0.5 into 0/1."""
    return [0 if x < 0.50 else 1 for x in x_input]


def make_shift_data(n: int = 1000, min_len: int = 4, max_len: int = 10, rng=0):
    """The notebook's data: ``n`` random bit strings and their right shifts by one.

    ``rng`` is a ``numpy.random.Generator`` or a seed. Returns ``X, y``, lists
    of lists of 0/1, as the notebook's cells build them.
    """
    return shift_data(n, np.random.default_rng(rng), (min_len, max_len))


# notebook name -> (core parameter, index)
_NAMES = {
    "Wax_first": ("W_xh", (0, 0)),
    "Wax_second": ("W_xh", (1, 0)),
    "Waa_first_1": ("W_hh", (0, 0)),
    "Waa_first_2": ("W_hh", (0, 1)),
    "Waa_second_1": ("W_hh", (1, 0)),
    "Waa_second_2": ("W_hh", (1, 1)),
    "ba_first": ("b_h", (0,)),
    "ba_second": ("b_h", (1,)),
    "Wy_first": ("W_hy", (0, 0)),
    "Wy_second": ("W_hy", (0, 1)),
    "by": ("b_y", (0,)),
    "a_first": ("h0", (0,)),
    "a_second": ("h0", (1,)),
}

# the notebook's hand-set weights, exactly as written (ba_first = 5: its comment says -5)
_NOTEBOOK_WEIGHTS = {
    "Wy_first": 0, "Wy_second": 10, "by": -5,
    "Waa_first_1": 0, "Waa_first_2": 0, "ba_first": 5,
    "Waa_second_1": 10, "Waa_second_2": 0, "ba_second": -5,
    "Wax_first": 10, "Wax_second": 0,
    "a_first": 0, "a_second": 0,
}  # fmt: skip


def _notebook_attribute(name: str) -> property:
    key, index = _NAMES[name]

    def get(self) -> float:
        return float(self.core.params[key][index])

    def set(self, value) -> None:
        self.core.params[key][index] = value

    return property(get, set, doc=f"The notebook's ``{name}``: ``{key}{list(index)}``.")


class RNN:
    """The notebook's 2-unit sigmoid RNN, its weights living in ``self.core`` (an rnnlab RNN)."""

    def __init__(self):
        self.core = CoreRNN(1, 2, 1, activation="sigmoid", backend="numpy")
        for name, value in _NOTEBOOK_WEIGHTS.items():
            setattr(self, name, value)
        net = self.core.network
        starts = dict(zip(net.names, (start for start, _ in net.slices), strict=True))
        shapes = dict(zip(net.names, net.shapes, strict=True))
        self._at = np.array([starts[_NAMES[n][0]] + np.ravel_multi_index(_NAMES[n][1],
                             shapes[_NAMES[n][0]]) for n in steps.WEIGHTS])  # fmt: skip

    def predict(self, x_input):
        """Output probabilities for one sequence (a list of numbers), one per step."""
        xs = _numbers(x_input, "x_input")
        _check_finite(xs, "x_input")
        out = np.empty(len(xs))
        steps.predict(self.core.params.flat, self._at, xs, out)
        return out.tolist()

    def run(self, x, a_first, a_second):
        """One step from the state ``(a_first, a_second)``: ``(y_hat, a_first, a_second)``."""
        return steps.run(self.core.params.flat, self._at, float(x), float(a_first),
                         float(a_second))  # fmt: skip

    def forward_pass(self, x, y, a_first, a_second):
        """One training step's gradients (the previous state held fixed) and its outputs.

        Returns ``(gradients, a_first, a_second, y_hat)``, the gradients in the
        notebook's order (``Wy_first, Wy_second, by, Waa_first_1, ...``).
        """
        _check_targets([y])
        grads = np.empty(steps.GRADIENTS)
        y_hat, a1, a2 = steps.step_gradients(self.core.params.flat, self._at, float(x),
                                             float(y), float(a_first), float(a_second),
                                             grads)  # fmt: skip
        return tuple(grads.tolist()), a1, a2, y_hat

    def update_weights(self, x_input, y_input, learning_rate=0.0001, print_loss=False):
        """One SGD step on one sequence with the notebook's one-step gradients."""
        _check_targets(y_input)
        xs, ys = _numbers(x_input, "x_input"), _numbers(y_input, "y_input")
        if len(xs) != len(ys):
            raise ValueError(f"x_input has {len(xs)} steps but y_input has {len(ys)}")
        loss = steps.update_weights(self.core.params.flat, self._at, xs, ys,
                                    float(learning_rate))  # fmt: skip
        if loss < 0:  # (the compiled step checks finiteness and changed nothing)
            raise ValueError("x_input contains NaN or infinite values")
        if print_loss:
            print("logistic loss", loss)


for _name in _NAMES:
    setattr(RNN, _name, _notebook_attribute(_name))


def _numbers(values, name: str) -> np.ndarray:
    """A sequence of numbers as a float64 vector (what the compiled steps take)."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers") from None
    if out.ndim != 1:
        raise ValueError(f"{name} must be a list of numbers, got shape {out.shape}")
    return out


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_targets(y_input) -> None:
    for y in y_input:
        if y not in (0, 1):
            raise InvalidInputError("y must be 0 or 1 but it is ", y)
