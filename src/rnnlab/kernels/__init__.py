"""Backends: the numpy reference (the specification) and the compiled kernels.

The backend protocol
--------------------
A backend is a module with a ``name`` and four functions. Each takes the
network (a :class:`~rnnlab.kernels.layout.Network`: cell, sizes, layout) and its
parameters as one flat vector ``theta (P,)``, float32 or float64, with inputs of
the same dtype, time-major:

``forward(net, theta, x, *, states=False, initial=None) -> (logits, h, c)``
    The forward pass alone (no tape, no gradient). ``x (T, B, I)`` ->
    ``logits (T, B, O)``; with ``states``, every layer's hidden states
    ``h (L, T, B, H)`` and, for cells with a cell state, ``c (L, T, B, H)``
    (else None); without, both None. ``initial``: ``(h (L, B, H), c (L, B, H) or
    None)``, the states to start from instead of the network's ``h0`` (``c0``).

``loss_and_grad(net, theta, x, y, mask, *, loss, reduction="mean", truncate=None,
initial=None, final=None)``
    ``-> (value, grad)``: the loss of ``y (T, B, O)`` weighted by ``mask (T, B)``
    and its exact gradient (BPTT, or truncated to ``truncate`` steps), a new
    flat vector laid out as ``theta``. ``initial`` as in ``forward``: states carried
    from an earlier chunk of a stream are data, so ``h0`` and ``c0`` then get no
    gradient. ``final``, a ``(2, L, B, H)`` array of ``theta``'s dtype, receives the
    states after the last step (h, then c; zeros for cells without c): the next chunk's
    ``initial``.

``train_step(net, theta, x, y, mask, *, loss, reduction="mean", truncate=None, update,
initial=None, final=None)``
    ``-> (value, norm)``: one training update of ``theta`` in place: the pass
    above, then the optimizer step ``update`` (an :class:`rnnlab.optim.rules.Update`:
    clipping, rule, state arrays). Returns the loss and the gradient's norm
    before clipping; when either is not finite ``theta`` is unchanged.

``trainer(net, *, loss, reduction="mean", truncate=None) -> Trainer``
    The two calls above with the options fixed, as methods
    ``loss_and_grad(theta, x, y, mask, initial=None, final=None)`` and
    ``train_step(theta, x, y, mask, update, initial=None, final=None)``:
    what a training loop calls once per update. The compiled backend checks the
    options once and each batch shape once (at ``H = 2`` the checks of a call cost as
    much as the pass); :class:`Trainer` makes one from the two functions.
    Optionally, ``train_steps(theta, x, y, mask, lengths, steps, record, update) ->
    bool``: many updates in one call, each on a batch of sequences of one training set
    (see :meth:`rnnlab.kernels.compiled._Trainer.train_steps`; False: make them one at
    a time). ``fit`` finds it with ``getattr``.

Optionally, for padded batch-first arrays (``X (B, T[, I])`` with ``lengths``, from the
network's own states): ``loss_and_grad_padded(net, theta, X, Y, lengths, *, loss,
reduction="mean", truncate=None) -> (value, grad) | None`` and ``forward_padded(net,
theta, X, lengths, squash) -> (B, n, O) | None`` (batch-first outputs up to the longest
length ``n``, through the sigmoid with ``squash``): the arrays converted and checked in
the backend's own call; None sends the model the Batch way (another kind of array, or
a failed check, which that way names). The model finds them with ``getattr``.

Arguments are checked by the layers above (:mod:`rnnlab.model`,
:mod:`rnnlab.train`); a backend need only refuse what it would misread (the compiled
one checks shapes, as its kernels index unchecked). ``rnnlab.kernels.reference`` is the
specification; ``rnnlab.kernels.compiled`` must match it to 1e-12 (float64).
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType

import numpy as np

BACKENDS = ("auto", "numpy", "numba")


def check_plain(net) -> None:
    """Refuse a network with an input embedding: its first layer's ``W_xh`` reads the
    table's width, not the inputs', and only :class:`.embedded.Embedded` maps it."""
    if net.embedding is not None:
        raise ValueError("the kernels run networks without an input embedding; wrap the "
                         "backend in rnnlab.kernels.embedded.Embedded (as RNN does)")  # fmt: skip


class Reparametrized:
    """A backend around another, for parameters the kernels do not take as they are
    (:mod:`.orthogonal`, :mod:`.embedded`): a subclass maps ``theta`` to the kernels'
    parameters in ``forward`` and ``loss_and_grad`` and pulls the gradient back; the
    update is that gradient and the optimizer's rule."""

    def __init__(self, backend):
        self.backend = backend

    @property
    def name(self) -> str:
        return self.backend.name

    def train_step(self, net, theta, x, y, mask, *, loss, reduction="mean", truncate=None,
                   update, initial=None, final=None, **path):  # fmt: skip
        from rnnlab.optim import rules  # (optim's compiled rules import this package)

        value, grad = self.loss_and_grad(net, theta, x, y, mask, loss=loss, reduction=reduction,
                                         truncate=truncate, initial=initial, final=final,
                                         **path)  # fmt: skip
        if not math.isfinite(value):
            return value, float(np.linalg.norm(grad))
        return value, rules.apply(update, theta, grad)

    def trainer(self, net, *, loss, reduction="mean", truncate=None) -> Trainer:
        return Trainer(self, net, loss=loss, reduction=reduction, truncate=truncate)


class Trainer:
    """A backend's ``loss_and_grad`` and ``train_step`` for one network with the
    options fixed (the protocol's ``trainer``, made from its two functions)."""

    def __init__(self, backend, net, *, loss: str, reduction: str = "mean",
                 truncate: int | None = None):  # fmt: skip
        self.backend, self.net = backend, net
        self.options = {"loss": loss, "reduction": reduction, "truncate": truncate}

    def loss_and_grad(self, theta, x, y, mask, initial=None, final=None):
        return self.backend.loss_and_grad(self.net, theta, x, y, mask, initial=initial,
                                          final=final, **self.options)  # fmt: skip

    def train_step(self, theta, x, y, mask, update, initial=None, final=None):
        return self.backend.train_step(self.net, theta, x, y, mask, update=update,
                                       initial=initial, final=final, **self.options)  # fmt: skip


def get_backend(name: str) -> ModuleType | _Auto:
    """The backend module for ``name``: ``"numpy"``, ``"numba"`` or ``"auto"``.

    ``"auto"`` takes the compiled kernels when they import (numba present, its cache
    writable) and compile, otherwise the numpy reference (with one warning saying why).
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    from rnnlab.kernels import reference

    if name in ("numba", "auto"):
        try:
            from rnnlab.kernels import compiled
        except Exception as err:  # ImportError, or numba's own (cannot cache...)
            reason = " ".join(str(err).split())
            if name == "numba":
                raise ValueError(f"backend 'numba' is not available: {reason}") from None
            _warn_once(f"rnnlab runs on the numpy reference backend: {reason}")
        else:
            global _AUTO
            if name == "numba":
                return compiled
            if _AUTO is None:
                _AUTO = _Auto(compiled, reference)
            return _AUTO
    return reference


class _Auto:
    """``backend="auto"``: the compiled kernels until one of them fails to compile (a
    numba error at its first call: a broken LLVM, a machine numba cannot target), then
    the numpy reference for good, with one warning. ``name`` says which runs."""

    def __init__(self, compiled: ModuleType, reference: ModuleType):
        from numba.core.errors import NumbaError

        self._compiled, self._reference, self._active = compiled, reference, compiled
        self._errors = NumbaError  # (imported once: an import per call costs a step at H = 2)

    @property
    def name(self) -> str:
        return self._active.name

    def _fall_back(self, err: Exception) -> ModuleType:
        """Switch to the reference for good (once, with a warning) and return it; an error
        from the reference itself is the caller's."""
        if self._active is not self._compiled:
            raise err
        reason = " ".join(str(err).split())[:300]
        _warn_once(f"rnnlab runs on the numpy reference backend: the compiled kernels "
                   f"failed to compile ({reason})")  # fmt: skip
        self._active = self._reference
        return self._reference

    # (each call costs one Python frame over the compiled backend's, and no more: at
    # H = 2, batch 1, a generic *args wrapper cost 1.3 us of a 14 us update, collecting
    # the keywords into a dict 0.4 us of an 8 us one)
    def forward(self, net, theta, x, *, states=False, initial=None, **path):
        try:
            return self._active.forward(net, theta, x, states=states, initial=initial, **path)
        except self._errors as err:
            return self._fall_back(err).forward(net, theta, x, states=states, initial=initial)

    def loss_and_grad(self, net, theta, x, y, mask, *, loss, reduction="mean", truncate=None,
                      initial=None, final=None, **path):  # fmt: skip
        options = {"loss": loss, "reduction": reduction, "truncate": truncate, "initial": initial,
                   "final": final}  # fmt: skip
        try:
            return self._active.loss_and_grad(net, theta, x, y, mask, **options, **path)
        except self._errors as err:
            return self._fall_back(err).loss_and_grad(net, theta, x, y, mask, **options)

    def forward_padded(self, net, theta, X, lengths, squash):
        """The compiled backend's ``forward_padded`` (a padded batch-first array, converted
        in the compiled call), or None (the reference: take the Batch way)."""
        if self._active is not self._compiled:
            return None
        try:
            return self._compiled.forward_padded(net, theta, X, lengths, squash)
        except self._errors as err:
            self._fall_back(err)
            return None

    def loss_and_grad_padded(self, net, theta, X, Y, lengths, *, loss, reduction="mean",
                             truncate=None):  # fmt: skip
        """The compiled backend's ``loss_and_grad_padded`` (padded batch-first arrays,
        converted in the compiled call), or None (the reference: take the Batch way)."""
        if self._active is not self._compiled:
            return None
        try:
            return self._compiled.loss_and_grad_padded(
                net, theta, X, Y, lengths, loss=loss, reduction=reduction, truncate=truncate
            )
        except self._errors as err:
            self._fall_back(err)
            return None

    def train_step(self, net, theta, x, y, mask, *, loss, reduction="mean", truncate=None,
                   update, initial=None, final=None, **path):  # fmt: skip
        options = {"loss": loss, "reduction": reduction, "truncate": truncate, "update": update,
                   "initial": initial, "final": final}  # fmt: skip
        try:
            return self._active.train_step(net, theta, x, y, mask, **options, **path)
        except self._errors as err:
            return self._fall_back(err).train_step(net, theta, x, y, mask, **options)

    def trainer(self, net, *, loss, reduction="mean", truncate=None, **path):
        return _AutoTrainer(self, net, dict(loss=loss, reduction=reduction, truncate=truncate),
                            path)  # fmt: skip


class _AutoTrainer:
    """:meth:`_Auto.trainer`: the compiled trainer until a kernel fails to compile, then
    the reference's."""

    def __init__(self, auto: _Auto, net, options: dict, path: dict):
        self._auto, self._net, self._options = auto, net, options
        self._active = auto._active.trainer(net, **options, **path)

    def _fall_back(self, err: Exception):
        self._active = self._auto._fall_back(err).trainer(self._net, **self._options)
        return self._active

    def loss_and_grad(self, theta, x, y, mask, initial=None, final=None):
        try:
            return self._active.loss_and_grad(theta, x, y, mask, initial, final)
        except self._auto._errors as err:
            return self._fall_back(err).loss_and_grad(theta, x, y, mask, initial, final)

    def train_step(self, theta, x, y, mask, update, initial=None, final=None):
        try:
            return self._active.train_step(theta, x, y, mask, update, initial, final)
        except self._auto._errors as err:
            return self._fall_back(err).train_step(theta, x, y, mask, update, initial, final)

    @property
    def train_steps(self):
        """The compiled trainer's ``train_steps`` (falling back as the calls above do), or
        None: the reference has none."""
        run = getattr(self._active, "train_steps", None)
        if run is None:
            return None

        def guarded(theta, x, y, mask, lengths, steps, record, update) -> bool:
            try:
                return run(theta, x, y, mask, lengths, steps, record, update)
            except self._auto._errors as err:
                self._fall_back(err)
                return False

        return guarded


_AUTO: _Auto | None = None


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
