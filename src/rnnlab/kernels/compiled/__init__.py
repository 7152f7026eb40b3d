"""The compiled backend: one numba driver for every cell, size and path.

Implements the backend protocol of :mod:`rnnlab.kernels` with the kernels of
:mod:`.driver` (which way a batch runs: :mod:`.sizes`). Cells without compiled
math are refused. Importing this module fails (so ``backend="auto"`` falls back
to numpy) when numba is missing or cannot reach BLAS, which its ``np.dot``
needs (through scipy).
"""

from __future__ import annotations

import functools
import importlib.util
import numbers
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np

if importlib.util.find_spec("scipy") is None:  # not imported: numba does when np.dot runs
    raise ImportError("the compiled backend needs scipy: numba's np.dot calls BLAS through it")

# (``cache`` first: importing it points numba at a writable cache before any kernel
# below is decorated)
from rnnlab.kernels import check_plain
from rnnlab.kernels.compiled import blas, cache, driver, sizes  # noqa: F401
from rnnlab.kernels.compiled.products import FEW
from rnnlab.kernels.layout import Network, aligned_empty
from rnnlab.kernels.registry import LOSS_CODES
from rnnlab.losses import check_reduction
from rnnlab.optim.rules import Update

name = "numba"

#: the scratch the kernels carve their work arrays from, per thread and dtype, kept
#: between calls: a fresh allocation of a few hundred kB is handed back to the system
#: when freed and page-faulted in again on the next call, which cost more than the pass
#: itself (an LSTM pass at H = 16, B = 32, T = 100 took 3.3 ms instead of 1.1 ms). It
#: holds what the largest batch so far needed; :func:`release_workspace` frees it.
_WORKSPACE = threading.local()


def release_workspace() -> None:
    """Free this thread's scratch memory (it is made again when next needed)."""
    _WORKSPACE.buffers = {}


class _Call(NamedTuple):
    """What a call of one network on one batch shape needs, worked out once."""

    plan: np.ndarray  # the network (see driver.PLAN)
    settings: np.ndarray  # how to run (see driver.SETTINGS)
    workspace: int  # numbers of scratch
    way: str  # "blocks", "threads" or "sequences": which entry points of the driver
    one_blas_thread: bool  # run the call with BLAS on one thread (sizes.one_blas_thread)
    shares: tuple  # the settings of each thread's share of the blocks ("threads"), or none
    backprop: object  # the driver's entry points for the call's way
    forward: object


_CALLS: dict[tuple, _Call] = {}


def _call(net: Network, dtype, T: int, B: int, path, loss=0, mean=False, truncate=0,
          training=False, stateful=False) -> _Call:  # fmt: skip
    key = (net, dtype, T, B, path, loss, mean, truncate, training, stateful)
    call = _CALLS.get(key)
    if call is None:
        if net.cell not in sizes.TABLE:
            raise ValueError(f"the compiled backend has no kernels for cell {net.cell!r}")
        p = path or sizes.choose(net.cell, net.hidden_size, B, training=training)
        options = (loss, mean, truncate, training, stateful)
        call = _made(net, T, B, p, *options)
        if path is None and call.shares and not p.use_blas:
            call = _faster_of(call, net, dtype, T, B, p, options)
        if len(_CALLS) >= 256:  # (many shapes: start again rather than grow)
            _CALLS.clear()
        _CALLS[key] = call
    return call


def _faster_of(threaded: _Call, net: Network, dtype, T: int, B: int, p: sizes.Path,
               options: tuple) -> _Call:  # fmt: skip
    """``threaded`` (lanes blocks on threads) or the same blocks on one thread, whichever
    :func:`threads_pay` finds faster on this shape: both give the same bits. A long batch
    is first timed on a corner of it (``_SAMPLE``), scaled up by its sequences and steps."""
    _, _, truncate, training, _ = options  # (loss, mean, truncate, training, stateful)
    serial = p._replace(parallel=False)
    alone = _made(net, T, B, serial, *options)
    Ts, Bs = min(T, _SAMPLE[0]), min(B, _SAMPLE[1])
    corner = _made(net, Ts, Bs, serial, *options)
    sample = _probe(net, dtype, Ts, Bs, training)
    scale = B / Bs * _steps_run(T, truncate) / _steps_run(Ts, truncate)
    probe = functools.cache(lambda: _probe(net, dtype, T, B, training))  # (made if raced)
    pay = threads_pay(lambda: probe()(alone), lambda: probe()(threaded), lambda: sample(corner),
                      scale)  # fmt: skip
    return threaded if pay else alone


def _steps_run(T: int, truncate: int) -> int:
    """Steps a pass over ``T`` steps runs, forward and back (truncated BPTT goes back up
    to ``truncate`` steps from each step)."""
    k = truncate
    back = T if k == 0 else (T * (T + 1) // 2 if k >= T else k * (k + 1) // 2 + (T - k) * k)
    return T + back


def _made(net: Network, T: int, B: int, p: sizes.Path, loss, mean, truncate, training,
          stateful) -> _Call:  # fmt: skip
    """The call of ``net`` on a batch of ``B`` sequences of ``T`` steps, run ``p``'s way."""
    spec = net.spec
    integers = [spec.code, net.activation_code, net.num_layers, net.input_size,
                net.hidden_size, net.output_size, spec.gates, spec.tape,
                spec.recurrent_bias is not None, spec.cell_state, spec.bias_inside]  # fmt: skip
    plan = np.concatenate([np.array(integers, dtype=np.int64), net.offsets.ravel(), net.head])
    if p.use_blas and p.parallel and B % p.lanes:  # (BLAS blocks on threads must be full)
        p = p._replace(lanes=B, parallel=False)
    threads = numba.get_num_threads() if p.parallel else 0
    size = driver.workspace_size(plan, net.size, T, B, p.lanes, p.use_blas, threads, training)
    if (
        B < FEW
        and net.num_layers == 1
        and truncate == 0
        and not p.use_blas
        and not spec.bias_inside  # (the sequence loops add the bias to ax ...)
        and not (training and stateful)  # (... and train from h0, keeping no state)
    ):
        way = "sequences"
        blas_from = sizes.TABLE[net.cell].sequence_blas_min_hidden
        p = p._replace(use_blas=net.hidden_size >= blas_from)
    else:
        way = "threads" if p.parallel else "blocks"
    settings = np.array([loss, mean, truncate, p.lanes, p.use_blas, p.parallel, threads,
                         0, 0, 1], np.int64)  # fmt: skip
    shares = ()
    if way == "threads":  # (as _layout cuts the batch: lanes wide, from share k every n-th)
        n = min(-(-B // min(B, p.lanes)), threads)
        shares = tuple(np.array([*settings[:8], k, n], np.int64) for k in range(n))
    columns = 1 if way == "sequences" else B
    # BLAS on one thread for the call: small products, and BLAS blocks on threads (one
    # block per core; each block's products then run on its own core)
    one = (
        p.use_blas
        and blas.available()
        and (p.parallel or sizes.one_blas_thread(spec.gates, net.hidden_size, columns))
    )
    sequences = way == "sequences"
    return _Call(
        plan, settings, int(size), way, one, shares,
        driver.backprop_sequences if sequences else driver.backprop_blocks,
        driver.forward_sequences if sequences else driver.forward_blocks,
    )  # fmt: skip


def _probe(net: Network, dtype, T: int, B: int, training: bool):
    """A function running a call on a batch of its shape (a training pass into a
    gradient of its own, or a forward pass), of arrays of its own: only the thread's
    scratch (which may grow to the call's size) and the pool (made on first use) stay.
    Its inputs are 0.5 (zeros would read as one-hot rows and take the columns' way)."""
    theta = np.zeros(net.size, dtype)
    x = np.full((T, B, net.input_size), 0.5, dtype)
    y = np.zeros((T, B, net.output_size), dtype)
    mask, empty = np.ones((T, B), dtype), _EMPTY[dtype]
    grad, logits = np.empty_like(theta), np.empty_like(y)

    def run(c: _Call) -> None:
        work = _workspace(dtype, c.workspace)
        if training:
            _backprop(c, (x, y, mask, theta, c.plan, c.settings, work, empty, empty),
                      _NO_LENGTHS, grad, _NO_UPDATE[np.dtype(dtype)])  # fmt: skip
        else:
            _forward(c, (x, theta, c.plan, c.settings, empty, work, logits, empty, empty,
                         _NO_LENGTHS))  # fmt: skip

    return run


#: a call that takes longer than this on one thread runs on threads without a race (a
#: pool thread's hand-off, 80-90 us on the Zen 5 machine, is then a few per cent of it)
_LONG_CALL = 0.02
#: (steps, sequences) of the corner of a batch that is timed before any race
_SAMPLE = (16, 128)


def threads_pay(alone, threaded, sample=None, scale=1.0) -> bool:
    """Whether ``threaded()`` (a call's blocks on threads) runs faster than ``alone()``
    (the same blocks on one thread). ``sample()`` (default ``alone``) does ``1 / scale``
    of ``alone``'s work: timed once loaded, where ``scale`` times it passes
    :data:`_LONG_CALL` the answer is yes, unraced. Otherwise ``threaded`` runs once (to
    load), then the two in turn, best of three; threads must save a tenth. A pool
    thread's hand-off costs what the machine's scheduler does (80-90 us a call on the
    project's Zen 5 virtual machine), and decides below a few hundred microseconds of
    work."""
    clock = time.perf_counter
    sample = sample or alone
    sample()  # (the kernels loaded)
    start = clock()
    sample()
    if (clock() - start) * scale > _LONG_CALL:
        return True
    best = [np.inf, np.inf]
    threaded()
    for _ in range(3):
        for i, run in enumerate((alone, threaded)):
            start = clock()
            run()
            best[i] = min(best[i], clock() - start)
    return best[1] < 0.9 * best[0]


#: the threads that run the other shares of a batch's blocks (the calling thread runs the
#: first): the entry points release the GIL, so they run side by side
_POOL: ThreadPoolExecutor | None = None


def _on_threads(kernel, shares, head, tail) -> None:
    """``kernel(*head, settings, *tail)`` for each share's ``settings``, side by side."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                   thread_name_prefix="rnnlab-blocks")  # fmt: skip
    others = [_POOL.submit(kernel, *head, settings, *tail) for settings in shares[1:]]
    try:
        kernel(*head, shares[0], *tail)
    finally:
        for other in others:
            other.result()  # (waited for, and raised, before the work arrays are reused)


def _backprop(c: _Call, arguments, lengths, grad, update):
    """The driver's ``backprop`` for call ``c`` on ``arguments`` (x, y, mask, theta, plan,
    settings, work, initial, final): ``(loss, norm)`` (see
    :func:`.driver.backprop_blocks`), its shares of blocks on threads where it has them.
    (The hot paths call ``c.backprop`` themselves when it has neither.)"""
    if c.shares:
        x, y, mask, theta, plan, settings, work, start, final = arguments

        def run():
            tail = (work, start, final, lengths, grad, *update, _NO_STEPS, _NO_RECORD)
            _on_threads(driver.backprop_blocks, c.shares, (x, y, mask, theta, plan), tail)
            return driver.finish_blocks(mask, theta, plan, settings, work, grad, *update)

        return _one_blas_thread(run) if c.one_blas_thread else run()
    if c.one_blas_thread:
        return _one_blas_thread(c.backprop, *arguments, lengths, grad, *update, _NO_STEPS,
                                _NO_RECORD)  # fmt: skip
    return c.backprop(*arguments, lengths, grad, *update, _NO_STEPS, _NO_RECORD)


def _forward(c: _Call, arguments):
    """The driver's ``forward`` for call ``c`` on ``arguments`` (x, theta, plan, settings,
    initial, work, logits, h_out, c_out, lengths), its shares of blocks on threads
    where it has them."""
    if c.shares:
        x, theta, plan, _, start, work, logits, h, cs, lengths = arguments

        def run():
            _on_threads(driver.forward_blocks, c.shares, (x, theta, plan),
                        (start, work, logits, h, cs, lengths))  # fmt: skip
            return x.shape[0]

        return _one_blas_thread(run) if c.one_blas_thread else run()
    if c.one_blas_thread:
        return _one_blas_thread(c.forward, *arguments)
    return c.forward(*arguments)


def _workspace(dtype, size: int) -> np.ndarray:
    buffers = getattr(_WORKSPACE, "buffers", None)
    if buffers is None:
        buffers = _WORKSPACE.buffers = {}
    buffer = buffers.get(dtype)
    if buffer is None or buffer.size < size:
        grown = size if buffer is None else max(size, 2 * buffer.size)
        buffer = buffers[dtype] = aligned_empty(grown, dtype)
    return buffer


def _as(array, dtype) -> np.ndarray:
    """``array`` as the kernels take it: ``dtype``, C-contiguous and writeable (numba
    types a read-only array apart, and would compile the kernel again for it)."""
    if type(array) is np.ndarray and array.dtype is dtype and (f := array.flags).c_contiguous \
            and f.writeable:  # fmt: skip
        return array  # (``is``: numpy's dtypes of one kind are one object)
    return np.array(array, dtype=dtype, order="C")


def _check(net, theta, x, y=None, mask=None):
    """The kernels index by these shapes unchecked: refuse any that do not fit."""
    check_plain(net)
    if theta.shape != (net.size,) or theta.dtype not in _EMPTY:
        raise ValueError(f"theta must be a float32/float64 vector of {net.size} numbers")
    if x.ndim != 3 or x.shape[2] != net.input_size:
        raise ValueError(f"x must be (T, B, {net.input_size}), got {x.shape}")
    T, B = x.shape[0], x.shape[1]
    if y is not None and y.shape != (T, B, net.output_size):
        raise ValueError(f"y must be {(T, B, net.output_size)}, got {y.shape}")
    if mask is not None and mask.shape != (T, B):
        raise ValueError(f"mask must be {(T, B)}, got {mask.shape}")


def forward(net: Network, theta: np.ndarray, x: np.ndarray, *, states: bool = False,
            initial: tuple | None = None, path: sizes.Path | None = None):  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels`; ``path``: which way to run the batch
    (default :func:`.sizes.choose`'s)."""
    dtype = theta.dtype
    x = _as(x, dtype)
    _check(net, theta, x)
    T, B = x.shape[0], x.shape[1]
    start = _initial(net, initial, B, dtype)
    c = _call(net, dtype, T, B, path)
    logits, empty = np.empty((T, B, net.output_size), dtype), _EMPTY[dtype]
    h = cs = None
    if states:
        h = np.empty((net.num_layers, T, B, net.hidden_size), dtype)
        cs = np.empty_like(h) if net.spec.cell_state else None
    _forward(c, (x, theta, c.plan, c.settings, start, _workspace(dtype, c.workspace), logits,
                 empty if h is None else h, empty if cs is None else cs, _NO_LENGTHS))  # fmt: skip
    return logits, h, cs


#: per network, dtype, shapes of X and theta, and squash: (call, every sequence's length,
#: X's shape with features) for :func:`forward_padded`
_PADDED_FORWARD: dict[tuple, tuple] = {}
#: what those caches hold for arrays whose call runs blocks on threads: the Batch way, decided
#: once (each thread's share would convert them into the same work)
_BATCH_WAY = ()


def _plain(array, dtype) -> bool:
    """Whether ``array`` is an ndarray of ``dtype`` (float32/float64, or int64 lengths)
    that the padded entry points take as they are: C-contiguous, aligned and writeable
    (numba types the others apart, and would compile the entry point again for them)."""
    if type(array) is not _ARRAY or array.dtype is not dtype or dtype not in _PLAIN_DTYPES:
        return False
    flags = array.flags
    return flags.c_contiguous and flags.aligned and flags.writeable


def _padded_lengths(lengths, full: np.ndarray) -> np.ndarray | None:
    """``lengths`` as the padded entry points take them: ``full`` (every sequence whole)
    for None, the array itself when plain int64 of ``full``'s shape, else None."""
    if lengths is None:
        return full
    return lengths if _plain(lengths, _INT64) and lengths.shape == full.shape else None


def forward_padded(net: Network, theta: np.ndarray, X: np.ndarray, lengths,
                   squash: bool) -> np.ndarray | None:  # fmt: skip
    """The logits of a padded batch-first array ``X (B, T[, I])`` of ``theta``'s dtype,
    C-contiguous, with ``lengths`` (int64, or None: every sequence ``T`` steps), from the
    network's own states, batch-first ``(B, n, O)`` (``n`` the longest length; through
    the sigmoid with ``squash``), zero past each length: converted and checked (``X``
    and ``theta`` finite) inside the compiled call. None for arrays of another kind, or
    when a check fails (:func:`rnnlab.sequences.make_batch` and the model's own checks
    then convert them, or say what is wrong)."""
    dtype = theta.dtype
    if not _plain(X, dtype):
        return None
    key = (net, dtype, X.shape, theta.shape, squash)
    found = _PADDED_FORWARD.get(key)
    if found is None:
        I = net.input_size
        shape = (*X.shape, 1) if X.ndim == 2 and I == 1 else X.shape
        if len(shape) != 3 or shape[2] != I or 0 in shape or theta.shape != (net.size,):
            return None
        check_plain(net)
        B, T = shape[0], shape[1]
        c = _call(net, dtype, T, B, None)
        if c.shares:  # (each share would convert the arrays into the same work: the Batch way)
            _PADDED_FORWARD[key] = _BATCH_WAY
            return None
        extra = driver.padded_size(T, B, I + net.output_size)  # (x and logits, time-major)
        settings = c.settings.copy()
        settings[7] = squash  # (driver.SETTINGS)
        c = c._replace(settings=settings, workspace=c.workspace + extra)
        if len(_PADDED_FORWARD) >= 256:
            _PADDED_FORWARD.clear()
        found = _PADDED_FORWARD[key] = (c, np.full(B, T, np.int64), shape)
    if found is _BATCH_WAY:
        return None
    c, full, shape = found
    lengths = _padded_lengths(lengths, full)
    if lengths is None:
        return None
    B, T, O = shape[0], shape[1], net.output_size
    out = np.empty((B, T, O), dtype)
    empty = _EMPTY[dtype]
    n = _forward(c, (X if X.ndim == 3 else X.reshape(shape), theta, c.plan, c.settings, empty,
                     _workspace(dtype, c.workspace), out, empty, empty, lengths))  # fmt: skip
    if n == 0:
        return None
    return out if n == T else out.reshape(-1)[: B * n * O].reshape(B, n, O)


def _one_blas_thread(kernel, *arguments):
    """``kernel(*arguments)`` with this thread's BLAS on one thread (:mod:`.blas`)."""
    previous = blas.limit(1)
    try:
        return kernel(*arguments)
    finally:
        blas.limit(previous)


#: an empty (0, 0, 0, 0) array per dtype, never written: the driver's "start from the
#: network's own states" and "no states wanted"
_EMPTY = {np.dtype(t): np.empty((0, 0, 0, 0), t) for t in (np.float32, np.float64)}
#: an empty (0, 0) mask per dtype, for padded arrays (their mask comes from the lengths)
_EMPTY_MASK = {np.dtype(t): np.empty((0, 0), t) for t in (np.float32, np.float64)}
#: no lengths: the arrays are the kernels' time-major ones
_NO_LENGTHS = np.empty(0, np.int64)
#: no ``steps`` and ``record`` for the driver's ``backprop``: one update (see
#: :meth:`_Trainer.train_steps`)
_NO_STEPS, _NO_RECORD = np.empty((0, 0), np.int64), np.empty((0, 3))
_INT64 = np.dtype(np.int64)
_PLAIN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), _INT64)
#: the losses whose targets padded arrays hold as they are (bce's 0/1, mse's reals;
#: softmax's class indices are made one-hot by make_batch)
_PADDED_LOSSES = (LOSS_CODES["bce"], LOSS_CODES["mse"])


def _initial(net: Network, initial, B: int, dtype) -> np.ndarray:
    """``initial`` (h, c) as the driver's ``(2, L, B, H)`` array (empty: the network's)."""
    if initial is None:
        return _EMPTY[dtype]
    shape = (net.num_layers, B, net.hidden_size)
    h, c = initial
    if np.shape(h) != shape or (net.spec.cell_state and np.shape(c) != shape):
        raise ValueError(f"initial states must be {shape} (h{', c' * net.spec.cell_state})")
    start = np.zeros((2, *shape), dtype)
    start[0] = h
    if net.spec.cell_state:
        start[1] = c
    return start


#: per dtype, an empty gradient (the driver then updates theta) and an Update of three
#: empty arrays (unused: the gradient goes out instead)
_NO_GRADIENT = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}
_NO_UPDATE = {d: Update(np.empty(0), empty, empty) for d, empty in _NO_GRADIENT.items()}

_ARRAY = np.ndarray


class _Trainer:
    """The protocol's ``trainer``: loss, reduction and truncation checked once; each
    batch shape's :class:`_Call` worked out (and its arrays' shapes checked) once."""

    def __init__(self, net: Network, *, loss: str, reduction: str = "mean",
                 truncate: int | None = None, path: sizes.Path | None = None):  # fmt: skip
        code = LOSS_CODES.get(loss) if isinstance(loss, str) else None
        if code is None:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSS_CODES)}")
        check_reduction(reduction)
        whole = isinstance(truncate, numbers.Integral) and not isinstance(truncate, bool)
        if truncate is not None and not (whole and truncate >= 1):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        self.net, self.path = net, path
        self.truncate = None if truncate is None else int(truncate)
        self._code, self._mean = code, reduction == "mean"
        self._calls: dict[tuple, _Call] = {}  # per (dtype, shapes of theta, x, y, mask)

    def _arguments(self, theta, x, y, mask, initial, final) -> tuple[_Call, tuple]:
        """The call for these arrays and its leading arguments (arrays converted to
        ``theta``'s dtype and made contiguous where they are not; ``initial`` as the
        driver's array; ``final`` checked)."""
        dtype = theta.dtype
        # (:func:`_as`'s check, inline: three calls cost 0.25 us of a 6 us step at H = 2)
        if not (type(x) is _ARRAY and x.dtype is dtype and (f := x.flags).c_contiguous
                and f.writeable):  # fmt: skip
            x = _as(x, dtype)
        if not (type(y) is _ARRAY and y.dtype is dtype and (f := y.flags).c_contiguous
                and f.writeable):  # fmt: skip
            y = _as(y, dtype)
        if not (type(mask) is _ARRAY and mask.dtype is dtype and (f := mask.flags).c_contiguous
                and f.writeable):  # fmt: skip
            mask = _as(mask, dtype)
        stateful = initial is not None or final is not None
        key = (dtype, theta.shape, x.shape, y.shape, mask.shape, stateful)
        c = self._calls.get(key)
        if c is None:
            net = self.net
            _check(net, theta, x, y, mask)
            T, B = x.shape[0], x.shape[1]
            k = 0 if self.truncate is None or self.truncate >= T else self.truncate
            if len(self._calls) >= 256:  # (many batch shapes: start again rather than grow)
                self._calls.clear()
            c = self._calls[key] = _call(net, dtype, T, B, self.path, self._code, self._mean,
                                         k, True, stateful)  # fmt: skip
        start = _EMPTY[dtype] if initial is None else _initial(self.net, initial, x.shape[1],
                                                               dtype)  # fmt: skip
        shape = (2, self.net.num_layers, x.shape[1], self.net.hidden_size)
        if final is None:
            final = _EMPTY[dtype]
        elif not (type(final) is _ARRAY and final.shape == shape and final.dtype is dtype
                  and final.flags.c_contiguous):  # fmt: skip
            raise ValueError(f"final must be a C-contiguous {dtype} array of shape {shape}")
        return c, (x, y, mask, theta, c.plan, c.settings, _workspace(dtype, c.workspace), start,
                   final)  # fmt: skip

    def loss_and_grad(self, theta, x, y, mask, initial=None,
                      final=None) -> tuple[float, np.ndarray]:  # fmt: skip
        c, arguments = self._arguments(theta, x, y, mask, initial, final)
        grad = np.empty_like(theta)
        value, _ = _backprop(c, arguments, _NO_LENGTHS, grad, _NO_UPDATE[theta.dtype])
        return float(value), grad

    def loss_and_grad_padded(self, theta, X, Y, lengths) -> tuple[float, np.ndarray] | None:
        """:meth:`loss_and_grad` of padded batch-first arrays ``X (B, T[, I])``, ``Y (B,
        T[, O])`` of ``theta``'s dtype (plain: C-contiguous, writeable), with ``lengths``
        (a plain int64 array, or None: every sequence ``T`` steps), from the network's
        own states: converted to the kernels' layout and checked inside the compiled
        call. None when the arrays are of another kind (any other would compile the
        entry point again), when a truncation could cut a sequence, or when they fail a
        check (:func:`rnnlab.sequences.make_batch` then converts them, or says what is
        wrong)."""
        dtype = theta.dtype
        if not (_plain(X, dtype) and _plain(Y, dtype)) or (
            self.truncate is not None and self.truncate < X.shape[1]
        ):  # (truncation: the Batch way, which compares it with the longest length)
            return None
        key = (dtype, theta.shape, X.shape, Y.shape, "padded")
        found = self._calls.get(key)
        if found is None:
            found = self._padded_call(theta, X, Y, key)
        if found is None or found is _BATCH_WAY:
            return None
        c, full, shape_x, shape_y = found
        lengths = _padded_lengths(lengths, full)
        if lengths is None:
            return None
        X = X if X.ndim == 3 else X.reshape(shape_x)
        Y = Y if Y.ndim == 3 else Y.reshape(shape_y)
        grad = np.empty_like(theta)
        arguments = (X, Y, _EMPTY_MASK[dtype], theta, c.plan, c.settings,
                     _workspace(dtype, c.workspace), _EMPTY[dtype], _EMPTY[dtype])  # fmt: skip
        value, failed = _backprop(c, arguments, lengths, grad, _NO_UPDATE[dtype])
        return None if failed == -1.0 else (float(value), grad)

    def _padded_call(self, theta, X, Y, key):
        """(call, every sequence's length, the shapes of X and Y with features) for
        :meth:`loss_and_grad_padded`, or None for arrays it does not take."""
        net = self.net
        I, O = net.input_size, net.output_size
        if X.ndim == 2 and I == 1:
            X = X.reshape(*X.shape, 1)
        if Y.ndim == 2 and O == 1:
            Y = Y.reshape(*Y.shape, 1)
        if (X.ndim != 3 or X.shape[2] != I or Y.shape != (*X.shape[:2], O) or 0 in X.shape
                or theta.shape != (net.size,) or self._code not in _PADDED_LOSSES):  # fmt: skip
            return None
        check_plain(net)
        B, T = X.shape[0], X.shape[1]
        k = 0 if self.truncate is None or self.truncate >= T else self.truncate
        c = _call(net, theta.dtype, T, B, self.path, self._code, self._mean, k, True, False)
        if c.shares:  # (each share would convert the arrays into the same work: the Batch way)
            self._calls[key] = _BATCH_WAY
            return _BATCH_WAY
        c = c._replace(workspace=c.workspace + driver.padded_size(T, B, I + O + 1))
        if len(self._calls) >= 256:
            self._calls.clear()
        found = self._calls[key] = (c, np.full(B, T, np.int64), X.shape, Y.shape)
        return found

    def train_step(self, theta, x, y, mask, update: Update, initial=None,
                   final=None) -> tuple[float, float]:  # fmt: skip
        c, arguments = self._arguments(theta, x, y, mask, initial, final)
        if c.shares or c.one_blas_thread:
            return _backprop(c, arguments, _NO_LENGTHS, _NO_GRADIENT[theta.dtype], update)
        return c.backprop(*arguments, _NO_LENGTHS, _NO_GRADIENT[theta.dtype], *update, _NO_STEPS,
                          _NO_RECORD)  # fmt: skip

    def train_steps(self, theta, x, y, mask, lengths, steps, record, update: Update) -> bool:
        """``K`` updates in one compiled call: update ``k`` on the sequences ``steps[k]``
        (``steps (K, B)`` int64) of the time-major training set ``x (T, N, I)``, ``y (T,
        N, O)``, ``mask (T, N)`` with ``lengths (N,)``, each trimmed to the longest of its
        lengths (as ``Batch.take``), at learning rate ``record[k, 0]`` (``record (K, 3)``
        float64); its loss and gradient norm go to ``record[k, 1:]``. Stops after the first
        update whose loss or norm is not finite (that update not applied). The same bits as
        :meth:`train_step` on each batch in turn. ``update``'s numbers are left as they
        were (the caller counts the steps made). False, doing nothing, where the batches
        would not all take one call's way (truncation that could cut one, blocks on
        threads): make them one at a time."""
        dtype, N = theta.dtype, x.shape[1]
        steps, lengths = _as(steps, _INT64), _as(lengths, _INT64)
        K, B = steps.shape if steps.ndim == 2 else (0, 0)
        if not (K and B and type(record) is _ARRAY and record.shape == (K, 3)
                and record.dtype == np.float64 and record.flags.c_contiguous):  # fmt: skip
            raise ValueError("steps must be (K, B) and record a C-contiguous float64 (K, 3)")
        if (
            steps.min() < 0
            or steps.max() >= N
            or lengths.shape != (N,)
            or (lengths.min() < 0 or lengths.max() > x.shape[0])
        ):
            raise ValueError(f"steps must index the {N} sequences, each length at most T")
        T = x.shape[0]
        if self.truncate is not None and self.truncate < T:
            return False
        key = (dtype, theta.shape, x.shape, y.shape, mask.shape, B, "steps")
        c = self._calls.get(key)
        x, y, mask = _as(x, dtype), _as(y, dtype), _as(mask, dtype)
        if c is None:
            _check(self.net, theta, x, y, mask)
            c = _call(self.net, dtype, T, B, self.path, self._code, self._mean, 0, True, False)
            I, O = x.shape[2], y.shape[2]
            c = (
                _BATCH_WAY
                if c.shares
                else c._replace(workspace=c.workspace + driver.padded_size(T, B, I + O + 1))
            )
            if len(self._calls) >= 256:
                self._calls.clear()
            self._calls[key] = c
        if c is _BATCH_WAY:
            return False
        arguments = (x, y, mask, theta, c.plan, c.settings, _workspace(dtype, c.workspace),
                     _EMPTY[dtype], _EMPTY[dtype], lengths,
                     _NO_GRADIENT[dtype], *update, steps, record)  # fmt: skip
        if c.one_blas_thread:
            _one_blas_thread(c.backprop, *arguments)
        else:
            c.backprop(*arguments)
        return True


def trainer(net: Network, *, loss: str, reduction: str = "mean", truncate: int | None = None,
            path: sizes.Path | None = None) -> _Trainer:  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels` (``path`` as in :func:`forward`)."""
    return _Trainer(net, loss=loss, reduction=reduction, truncate=truncate, path=path)


#: the trainers that :func:`loss_and_grad` and :func:`train_step` made, per network and
#: options
_TRAINERS: dict[tuple, _Trainer] = {}


def _trainer(net, loss, reduction, truncate, path) -> _Trainer:
    key = (net, loss, reduction, truncate, path)
    try:
        found = _TRAINERS.get(key)
    except TypeError:  # an unhashable option: the trainer says what is wrong with it
        return trainer(net, loss=loss, reduction=reduction, truncate=truncate, path=path)
    if found is None:
        if len(_TRAINERS) >= 256:
            _TRAINERS.clear()
        found = _TRAINERS[key] = trainer(net, loss=loss, reduction=reduction,
                                         truncate=truncate, path=path)  # fmt: skip
    return found


def loss_and_grad(net: Network, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                  mask: np.ndarray, *, loss: str, reduction: str = "mean",
                  truncate: int | None = None, initial: tuple | None = None,
                  final: np.ndarray | None = None,
                  path: sizes.Path | None = None) -> tuple[float, np.ndarray]:  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels` (``path`` as in :func:`forward`)."""
    return _trainer(net, loss, reduction, truncate, path).loss_and_grad(theta, x, y, mask,
                                                                        initial, final)  # fmt: skip


def loss_and_grad_padded(
    net: Network,
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    lengths: np.ndarray | None,
    *,
    loss: str,
    reduction: str = "mean",
    truncate: int | None = None,
) -> tuple[float, np.ndarray] | None:
    """:meth:`_Trainer.loss_and_grad_padded` (None: take the Batch way)."""
    return _trainer(net, loss, reduction, truncate, None).loss_and_grad_padded(theta, X, Y,
                                                                               lengths)  # fmt: skip


def train_step(net: Network, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
               mask: np.ndarray, *, loss: str, reduction: str = "mean",
               truncate: int | None = None, update: Update, initial: tuple | None = None,
               final: np.ndarray | None = None,
               path: sizes.Path | None = None) -> tuple[float, float]:  # fmt: skip
    """See the protocol in :mod:`rnnlab.kernels`: pass and update in one compiled call."""
    return _trainer(net, loss, reduction, truncate, path).train_step(theta, x, y, mask, update,
                                                                     initial, final)  # fmt: skip


def load() -> None:
    """Load numba's compiler target (0.3-0.5 s that the first kernel a process calls
    pays otherwise) by calling one small kernel. Processes forked afterwards (a sweep's
    workers) start with it loaded."""
    from rnnlab.kernels.compiled.arrays import time_major

    x = np.zeros((1, 1, 1))
    time_major(x, np.ones(1, np.int64), np.empty_like(x), np.empty((1, 1)), False)
