"""Optimizers over rnnlab's parameter dicts, gradient clipping and learning-rate schedules.

Parameters and gradients are flat dicts ``{name: ndarray}`` with the same
names and shapes. ``opt.step(params, grads)`` edits the parameter arrays in
place (the dict and its arrays keep their identity). Each optimizer keeps its
per-parameter state in ``opt.state[name]`` — a plain dict with the step count
and the moment arrays — so nothing is hidden and nothing is global.

The update rules are ``torch.optim``'s (checked against it in float64), with
``g`` the gradient plus ``weight_decay * p`` (coupled L2, as in torch) and
``t`` the parameter's step count:

========  =========================================================================
sgd       p -= lr g                                       (the notebook's update)
momentum  b = mu b + g;  p -= lr b                (nesterov: p -= lr (g + mu b))
adam      m += (1 - b1) (g - m);  v = b2 v + (1 - b2) g²
          p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
adagrad   s += g²;  p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)
rmsprop   v = a v + (1 - a) g²;  p -= lr g / (sqrt(v) + eps)
          (centered: sqrt(v - m²) with m += (1 - a) (g - m); momentum: as above)
========  =========================================================================

A model's parameters are also one flat vector (``model.params.flat``): ``step_flat``
updates it from a flat gradient, and ``flat_update`` hands a backend the rule, its
hyperparameters and state arrays as one :class:`~rnnlab.optim.rules.Update` (Adam,
SGD, Momentum; None for the others), for a training step that computes the gradient
and applies the update in one call (see :class:`rnnlab.train.TrainStep`).

>>> opt = make_optimizer("adam", lr=0.05)
>>> opt.step(model.params, grads)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rnnlab.optim import rules
from rnnlab.optim.rules import Update

# -- checking hyperparameters -------------------------------------------------------------


def _number(name: str, value, *, low: float, high: float = math.inf, low_open: bool = False,
            high_open: bool = True) -> float:  # fmt: skip
    """``value`` as a float, or a ValueError saying which interval it must lie in."""
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        raise ValueError(
            f"{name} must be a finite number in {left}{low:g}, {high:g}{right}, got {value!r}"
        )
    return float(value)


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _buffer(state: dict, key: str, p: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """The state array ``key`` for parameter ``p`` (same shape and dtype), made on first use."""
    if key not in state:
        state[key] = np.full_like(p, fill)
    elif state[key].shape != p.shape:
        raise ValueError(
            f"optimizer state {key!r} has shape {state[key].shape} but the parameter has "
            f"shape {p.shape}; use one optimizer per model"
        )
    return state[key]


# -- optimizers ---------------------------------------------------------------------------


class Optimizer:
    """Base class: the learning rate, the per-parameter state and the loop over names.

    Subclasses implement ``_update(p, g, state)`` for one parameter array.

    Attributes
    ----------
    lr : float
        Base learning rate; settable (a schedule sets it before each step).
    state : dict of str to dict
        Per parameter name: ``"step"`` (updates so far) and the moment arrays,
        each the parameter's shape and dtype.
    """

    name = ""
    _lr = math.nan  # (until __init__ sets it: equal to no value)

    def __init__(self, lr: float, *, weight_decay: float = 0.0):
        self.lr = lr
        self.weight_decay = _number("weight_decay", weight_decay, low=0.0)
        self.state: dict[str, dict] = {}
        self._flat_cache = None  # [theta, state["flat"], Update, hyper] for flat_update()
        self._checked_max_norm = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if type(value) is float and value == self._lr:  # (fit sets it every update)
            return
        self._lr = _number("lr", value, low=0.0, low_open=True)

    @property
    def hyperparams(self) -> dict:
        """Every hyperparameter by name, ``lr`` first (what a run's config records)."""
        names = inspect.signature(type(self).__init__).parameters
        return {n: getattr(self, n) for n in names if n != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.items())
        return f"{type(self).__name__}({args})"

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Update every parameter that has a gradient, in place.

        Parameters
        ----------
        params : dict of str to ndarray
            Float arrays, edited in place.
        grads : dict of str to ndarray
            Same names and shapes (a parameter without a gradient is left as is).
            Never modified.
        """
        for name, g in grads.items():  # check everything before touching anything
            if name not in params:
                raise ValueError(f"gradient {name!r} has no parameter of that name")
            p = params[name]
            if not isinstance(p, np.ndarray) or not p.flags.writeable:
                raise ValueError(f"parameter {name!r} must be a writeable numpy array")
            if np.shape(g) != p.shape:
                raise ValueError(
                    f"gradient {name!r} has shape {np.shape(g)}, parameter has shape {p.shape}"
                )
        for name, g in grads.items():
            p = params[name]
            g = np.asarray(g)
            if self.weight_decay:
                g = g + self.weight_decay * p
            state = self.state.setdefault(name, {"step": 0})
            state["step"] += 1
            self._update(p, g, state)

    def step_flat(self, theta: np.ndarray, grad: np.ndarray, *, max_norm: float | None = None
                  ) -> float:  # fmt: skip
        """Clip and update one flat parameter vector in place (numpy).

        Parameters
        ----------
        theta : (P,) float array, edited in place
        grad : (P,) float array, scaled in place when clipped
        max_norm : clip ``grad`` to this global L2 norm first (as :func:`clip_grad_norm`)

        Returns the norm before clipping; when it is inf or NaN nothing is changed.
        The state of a flat step is kept under ``state["flat"]`` (one optimizer
        should step either flat vectors or parameter dicts, not both).
        """
        if grad.shape != theta.shape:
            raise ValueError(f"gradient has shape {grad.shape}, parameters {theta.shape}")
        update = self.flat_update(theta, max_norm=max_norm)
        if update is not None:  # the rule as data: the same numbers a backend's step applies
            norm = rules.apply(update, theta, grad)
            if math.isfinite(norm):
                self.advance_flat()
            return norm
        norm = rules.clip(grad, self._max_norm(max_norm))
        if not math.isfinite(norm):
            return norm
        if self.weight_decay:
            grad = grad + self.weight_decay * theta
        state = self.state.setdefault("flat", {"step": 0})
        state["step"] += 1
        self._update(theta, grad, state)
        return norm

    def flat_update(self, theta: np.ndarray, max_norm: float | None = None) -> Update | None:
        """This optimizer's next step on the flat vector ``theta``, as data.

        Returns an :class:`~rnnlab.optim.rules.Update` (the rule, the current ``lr``,
        the step it will be, the clipping norm and the state arrays of
        ``state["flat"]``, updated in place by whoever applies it), or None when the
        optimizer has no flat rule (Adagrad, RMSprop: use :meth:`step_flat`). Once
        the update has been applied (a finite loss and norm), call
        :meth:`advance_flat`. Cheap: at ``H = 2`` it runs once per few microseconds, so
        each call returns the same Update for the same ``theta``, rewritten (copy its
        ``numbers`` to keep one).
        """
        return None

    def advance_flat(self, steps: int = 1) -> None:
        """Count ``steps`` steps made with the :class:`~rnnlab.optim.rules.Update` of
        :meth:`flat_update` (its ``step`` is then the next one's)."""
        self.state["flat"]["step"] += steps

    def _max_norm(self, max_norm) -> float:
        """``max_norm`` checked, as a float (0.0: no clipping); the last one is remembered."""
        if max_norm is None:
            return 0.0
        if max_norm != self._checked_max_norm:  # (NaN never equals: always checked)
            self._checked_max_norm = _number("max_norm", max_norm, low=0.0, low_open=True)
        return self._checked_max_norm

    def _flat(self, theta: np.ndarray, keys: tuple[str, ...], hyper: tuple) -> Update:
        """The :class:`~rnnlab.optim.rules.Update` for the next flat step of ``theta``:
        state arrays ``keys`` of ``state["flat"]`` (at most two; empty for each one
        missing), and ``hyper`` = (rule, lr, beta1, beta2, eps, weight_decay, momentum,
        nesterov, max_norm). One Update is kept and rewritten in place while ``theta``,
        the state dict and its arrays stay the same objects (checked by identity: this
        runs once per update); its numbers only where they changed."""
        c = self._flat_cache
        if not (
            c is not None
            and c[0] is theta
            and self.state.get("flat") is c[1]
            and (not keys or c[1].get(keys[0]) is c[2].first)
            and (len(keys) < 2 or c[1].get(keys[1]) is c[2].second)
        ):
            c = self._flat_cache = self._new_flat_state(theta, keys)
        state, update = c[1], c[2]
        numbers = update.numbers
        if hyper != c[3]:
            numbers[rules.RULE], numbers[rules.LR :] = hyper[0], hyper[1:]
            c[3] = hyper
        numbers[rules.STEP] = state["step"] + 1
        return update

    def _new_flat_state(self, theta: np.ndarray, keys: tuple[str, ...]) -> list:
        """``[theta, state["flat"], its Update, the hyperparameters written (none)]``,
        the state arrays made with :func:`_buffer` where missing."""
        if theta.dtype.kind != "f":
            raise ValueError(f"parameters must be a float vector, got dtype {theta.dtype}")
        state = self.state.setdefault("flat", {"step": 0})
        arrays = []
        for key in keys:
            array = _buffer(state, key, theta)
            if array.dtype != theta.dtype:  # kept from a vector of another dtype
                array = state[key] = array.astype(theta.dtype)
            arrays.append(array)
        empty = np.empty(0, dtype=theta.dtype)
        arrays += [empty] * (2 - len(arrays))
        return [theta, state, Update(np.zeros(10), *arrays), None]

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, ``p -= lr * g``; with ``momentum`` as :class:`Momentum`."""

    name = "sgd"

    def __init__(
        self, lr: float, *, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0,
    ):  # fmt: skip
        super().__init__(lr, weight_decay=weight_decay)
        self.momentum = _number("momentum", momentum, low=0.0, high=1.0)
        self.nesterov = _flag("nesterov", nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov needs momentum > 0")

    def flat_update(self, theta, max_norm=None):
        return self._flat(theta, _MOMENTUM if self.momentum else (), (
            rules.SGD, self._lr, 0.0, 0.0, 0.0, self.weight_decay, self.momentum, self.nesterov,
            self._max_norm(max_norm)))  # fmt: skip

    def _update(self, p, g, state):
        if self.momentum:
            buf = _buffer(state, "momentum_buffer", p)
            buf *= self.momentum
            buf += g  # (P,) b = mu b + g; equals torch's b = g on the first step
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Momentum(SGD):
    """SGD with heavy-ball momentum as PyTorch writes it: ``b = mu b + g; p -= lr b``."""

    name = "momentum"

    def __init__(
        self, lr: float, *, momentum: float = 0.9, nesterov: bool = False,
        weight_decay: float = 0.0,
    ):  # fmt: skip
        if momentum == 0:
            raise ValueError("momentum must be > 0 for the momentum optimizer; use 'sgd'")
        super().__init__(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


class Adam(Optimizer):
    """Adam with bias correction, ``eps`` added after the square root (torch's default)."""

    name = "adam"

    def __init__(
        self, lr: float, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):  # fmt: skip
        super().__init__(lr, weight_decay=weight_decay)
        self.beta1 = _number("beta1", beta1, low=0.0, high=1.0)
        self.beta2 = _number("beta2", beta2, low=0.0, high=1.0)
        self.eps = _number("eps", eps, low=0.0, low_open=True)

    def flat_update(self, theta, max_norm=None):
        return self._flat(theta, _MOMENTS, (
            rules.ADAM, self._lr, self.beta1, self.beta2, self.eps, self.weight_decay, 0.0, False,
            self._max_norm(max_norm)))  # fmt: skip

    def _update(self, p, g, state):
        t, b1, b2 = state["step"], self.beta1, self.beta2
        m = _buffer(state, "exp_avg", p)
        v = _buffer(state, "exp_avg_sq", p)
        m += (1.0 - b1) * (g - m)  # torch's lerp
        v *= b2
        v += (1.0 - b2) * g * g
        step_size = self.lr / (1.0 - b1**t)
        denom = np.sqrt(v) / math.sqrt(1.0 - b2**t) + self.eps
        p -= step_size * (m / denom)


class Adagrad(Optimizer):
    """Adagrad: per-entry steps scaled by the root of the summed squared gradients."""

    name = "adagrad"

    def __init__(
        self, lr: float, *, lr_decay: float = 0.0, eps: float = 1e-10,
        initial_accumulator_value: float = 0.0, weight_decay: float = 0.0,
    ):  # fmt: skip
        super().__init__(lr, weight_decay=weight_decay)
        self.lr_decay = _number("lr_decay", lr_decay, low=0.0)
        self.eps = _number("eps", eps, low=0.0, low_open=True)
        self.initial_accumulator_value = _number(
            "initial_accumulator_value", initial_accumulator_value, low=0.0
        )

    def _update(self, p, g, state):
        clr = self.lr / (1.0 + (state["step"] - 1) * self.lr_decay)
        s = _buffer(state, "sum", p, self.initial_accumulator_value)
        s += g * g
        p -= clr * (g / (np.sqrt(s) + self.eps))


class RMSprop(Optimizer):
    """RMSprop: steps scaled by a running root mean square of the gradient."""

    name = "rmsprop"

    def __init__(
        self, lr: float, *, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
        centered: bool = False, weight_decay: float = 0.0,
    ):  # fmt: skip
        super().__init__(lr, weight_decay=weight_decay)
        self.alpha = _number("alpha", alpha, low=0.0, high=1.0)
        self.eps = _number("eps", eps, low=0.0, low_open=True)
        self.momentum = _number("momentum", momentum, low=0.0, high=1.0)
        self.centered = _flag("centered", centered)

    def _update(self, p, g, state):
        a = self.alpha
        v = _buffer(state, "square_avg", p)
        v *= a
        v += (1.0 - a) * g * g
        if self.centered:
            m = _buffer(state, "grad_avg", p)
            m += (1.0 - a) * (g - m)
            avg = np.sqrt(np.maximum(v - m * m, 0.0)) + self.eps  # >= 0 up to round-off
        else:
            avg = np.sqrt(v) + self.eps
        if self.momentum:
            buf = _buffer(state, "momentum_buffer", p)
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p -= self.lr * (g / avg)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Adam, Adagrad, RMSprop)
}


def make_optimizer(name: str, lr: float, **hyperparams) -> Optimizer:
    """An optimizer by name: ``"sgd"``, ``"momentum"``, ``"adam"``, ``"adagrad"``, ``"rmsprop"``.

    ``hyperparams`` are the class's keyword arguments (``beta1``, ``eps``,
    ``weight_decay``...); unknown names and bad values raise ``ValueError``.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[name]
    allowed = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "lr")]
    unknown = sorted(set(hyperparams) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {name!r}; "
            f"it takes {', '.join(allowed)}"
        )
    return cls(lr, **hyperparams)


_MOMENTS = ("exp_avg", "exp_avg_sq")  # Adam's flat state arrays (torch's names)
_MOMENTUM = ("momentum_buffer",)  # SGD's


# -- gradient clipping --------------------------------------------------------------------


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """The L2 norm over all entries of all gradient arrays (inf or NaN if any entry is)."""
    norms = [np.linalg.norm(np.ravel(g)) for g in grads.values()]
    return float(np.linalg.norm(norms)) if norms else 0.0


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is taken over all entries
    of all arrays, and they are multiplied by ``min(1, max_norm / (norm + 1e-6))``.
    A non-finite norm leaves the gradients untouched (the caller decides).

    Returns
    -------
    float
        The global norm before clipping.
    """
    max_norm = _number("max_norm", max_norm, low=0.0, low_open=True)
    total = global_norm(grads)
    coef = max_norm / (total + 1e-6)
    if math.isfinite(total) and coef < 1.0:
        for g in grads.values():
            g *= coef
    return total


# -- learning-rate schedules --------------------------------------------------------------

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Learning rate by step: ``schedule(step) -> lr``, ``step = 0, 1, ...``.

    Linear warmup ``lr * (step + 1) / warmup`` for ``step < warmup``, then
    ``constant`` (``lr``) or ``cosine``:
    ``min_lr + (lr - min_lr) (1 + cos(pi (step - warmup) / (total_steps - warmup))) / 2``,
    which reaches ``min_lr`` at ``step == total_steps`` and stays there.
    """

    kind: str
    lr: float
    total_steps: int
    warmup: int = 0
    min_lr: float = 0.0

    def __call__(self, step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.lr
        progress = min(1.0, (step - self.warmup) / (self.total_steps - self.warmup))
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_schedule(
    kind: str, lr: float, total_steps: int, *, warmup: int = 0, min_lr: float = 0.0
) -> Schedule:
    """A learning-rate schedule (see :class:`Schedule`); every argument is checked."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    lr = _number("lr", lr, low=0.0, low_open=True)
    for name, value in (("total_steps", total_steps), ("warmup", warmup)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps!r}")
    if warmup >= total_steps:
        raise ValueError(f"warmup ({warmup}) must be shorter than total_steps ({total_steps})")
    min_lr = _number("min_lr", min_lr, low=0.0, high=lr, high_open=False)
    if kind == "constant" and min_lr != 0.0:
        raise ValueError("min_lr only applies to the cosine schedule")
    return Schedule(kind, lr, int(total_steps), int(warmup), min_lr)
