"""Online learning: gradients carried forward in time, one step of a stream at a time.

The notebook updates its weights during a sequence with a gradient cut to one step. The
exact online gradient is real-time recurrent learning (Williams and Zipser 1989): carry
the sensitivity of the state to every weight, ``P_t = dh_t / dtheta (H, N)``, forward

.. math::

    P_t = D_t (W_{hh} P_{t-1} + M_t), \\qquad D_t = \\mathrm{diag}\\, f'(a_t),

where ``M_t = da_t / dtheta`` holds the immediate dependence of the pre-activation
``a_t = W_xh x_t + W_hh h_{t-1} + b_h`` (``h_{t-1}`` for ``W_hh``, ``x_t`` for ``W_xh``,
1 for ``b_h``), and ``P_0`` is the identity on ``h0``. The step's loss gives
``dL_t/dtheta = (dL_t/dh_t) P_t`` and, for the output layer, its usual gradient: no
history is stored, and a network can learn from an endless stream. RTRL costs
``O(H^2 N) = O(H^4)`` a step. Rules (:data:`RULES`):

- ``rtrl``: the exact gradient, as above;
- ``uoro``: unbiased online recurrent optimisation (Tallec and Ollivier 2018): ``P_t``
  approximated by a rank-one ``u v^T`` with random signs, unbiased, ``O(H^2 + N)``;
- ``snap1``: SnAp-1 (Menick et al. 2021): ``P_t`` kept only where a parameter reaches a
  unit in one step (row ``i`` of ``W_xh`` and ``W_hh``, ``b_h[i]``, ``h0[i]`` for unit
  ``i``), so ``W_hh P_{t-1}`` keeps its diagonal alone: ``O(H^2)`` a step; exact when
  ``W_hh`` is diagonal;
- ``rflo``: random-feedback local online learning (Murray 2019): SnAp-1's trace with the
  recurrence's own term replaced by a fixed decay, ``J_t = RFLO_DECAY J_{t-1} + D_t M_t``
  (Murray's leaky network decays its trace by its leak; this cell has none), and the
  error reaching the state through a fixed random matrix instead of ``W_hy^T``: local
  in space and time, ``O(H^2)`` a step;
- ``tbptt``: truncated BPTT over windows of ``window`` steps (the learner's ``k``), the
  state carried across windows but not its gradient: the window's steps are kept and
  run back at its end, ``O(H^2)`` a step;
- ``truncate1``: the notebook's rule, ``P_t = D_t M_t`` (the gradient cut to one step).

Every rule runs one-layer Elman networks (every activation), float64, with the
Elman's own arithmetic above. ``rtrl`` and ``snap1`` also run every other cell and
depth (GRU, LSTM, stacked layers) through the cells' own hand-written steps
(:mod:`rnnlab.kernels.reference`): the state ``s`` (every layer's ``h``, and ``c``) and
``P_t = ds_t / dtheta (S, N)`` advance as ``P_t = A_t P_{t-1} + B_t``, where row ``k`` of
the one-step Jacobians ``A_t = ds_t / ds_{t-1}`` and ``B_t = ds_t / dtheta`` is one
backward step from component ``k`` (:class:`_Jacobians`); SnAp-1 keeps the entries of
``P`` where a parameter reaches the component within one step: its own unit's rows of
its layer's gate blocks, its ``h0``, ``c0``, and every parameter of the layers below.
:class:`OnlineLearner` feeds a stream through one of them and updates its weights every
``k`` steps (on the numba backend a one-layer Elman learner runs compiled:
:mod:`rnnlab.kernels.compiled.online`). Streams: :func:`shift_stream` (the notebook's
task with no sequence boundaries: the input bit ``d`` steps back), :func:`parity_stream`
(of the last ``k`` bits), :func:`adding_stream` (the marked values of a window summed),
:func:`tomita_stream` (membership of the prefix so far) and :func:`data_stream` (a
user's long sequence).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rnnlab.functional import ACTIVATIONS, DERIVATIVES
from rnnlab.kernels.layout import param_name
from rnnlab.kernels.registry import get_cell
from rnnlab.losses import LOSSES
from rnnlab.model import RNN
from rnnlab.tasks.base import step_correct

#: the learning rules
RULES = ("rtrl", "uoro", "snap1", "rflo", "tbptt", "truncate1")
#: RFLO's trace keeps this share of itself a step (its stand-in for the network's leak)
RFLO_DECAY = 0.5
#: the recurrent parameters whose sensitivity is carried, in the order of ``P``'s columns
RECURRENT = ("W_xh", "W_hh", "b_h", "h0")


def check_online(task: str, rule: str) -> None:
    """Refuse a rule :data:`RULES` does not hold, or a task with no stream (ValueError)."""
    if rule not in RULES:
        raise ValueError(f"unknown online rule {rule!r}; choose one of {', '.join(RULES)}")
    if task != "shift":
        raise ValueError(f"online learning streams the shift task (its delay: a delayed copy); "
                         f"{task!r} has no stream yet")  # fmt: skip


class OnlineGradient:
    """The running gradient of one stream's loss for a one-layer Elman ``model``.

    ``step(x, y)`` advances the state by one input ``x (I,)``, adds the gradient of that
    step's loss against ``y (O,)`` to :attr:`grads` (one array per parameter, as
    ``model.params``) and returns the loss; ``reset_grads()`` starts a new sum. The
    state and the carried sensitivity persist across calls: the weights may change in
    between (that is online learning; the gradient is then the rule's approximation).
    """

    def __init__(self, model: RNN, rule: str = "rtrl", rng: np.random.Generator | None = None,
                 window: int = 1):  # fmt: skip
        c = model.config
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        elman = c.cell == "elman" and c.num_layers == 1
        if get_cell(c.cell).orthogonal:
            raise ValueError(f"online rules do not run the {c.cell} cell (its recurrence is a "
                             "function of its weights)")  # fmt: skip
        if c.embedding is not None:
            raise ValueError("online rules learn networks without an input embedding")
        if not elman and rule not in ("rtrl", "snap1"):
            raise ValueError(f"{rule} learns one-layer Elman networks (rtrl and snap1 also "
                             f"GRU, LSTM and stacked ones); this model is {c.num_layers} "
                             f"layer(s) of {c.cell}")  # fmt: skip
        if rule in ("uoro", "rflo") and not isinstance(rng, np.random.Generator):
            raise ValueError(f"{rule} draws random numbers: give rng=np.random.default_rng(seed)")
        self.model, self.rule, self.rng = model, rule, rng
        self.loss = LOSSES[c.loss]
        self.jacobians = None if elman else _Jacobians(model, sparse=rule == "snap1")
        if self.jacobians is not None:
            self.reset_grads()
            return
        self.f, self.df = ACTIVATIONS[c.activation], DERIVATIVES[c.activation]
        p = model.params
        H, I = c.hidden_size, c.input_size
        self.shapes = {name: p[name].shape for name in RECURRENT}
        self.size = sum(int(np.prod(s)) for s in self.shapes.values())  # N
        self.h = np.array(p["h0"], dtype=np.float64)  # (H,)
        if rule == "uoro":  # P ~ u v^T: u (H,), v (N,); h0's sensitivity is the identity
            self.u, self.v = np.zeros(H), np.zeros(self.size)
            self._started = False
        elif rule == "rtrl":
            self.P = np.zeros((H, self.size))  # (H, N)
            start = self.size - H
            self.P[:, start:] = np.eye(H)  # dh0 / dh0
        elif rule in ("snap1", "rflo"):  # unit i's own columns: x (I), h_prev (H), b_h[i], h0[i]
            self.J = np.zeros((H, I + H + 2))
            self.J[:, -1] = 1.0  # dh0_i / dh0_i
            if rule == "rflo":  # (H, O) fixed random feedback, the scale of W_hy^T
                self.feedback = rng.uniform(-1.0, 1.0, size=p["W_hy"].T.shape) * np.sqrt(
                    6.0 / sum(p["W_hy"].shape)
                )
        elif rule == "tbptt":
            if isinstance(window, bool) or not isinstance(window, int) or window < 1:
                raise ValueError(f"window must be a positive integer, got {window!r}")
            self.window, self.kept = window, []  # per step: x, h_prev, f'(a), dL/dh
        self._offsets = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes.values()])
        self._inputs = I
        self.reset_grads()

    def reset_grads(self) -> None:
        """A new sum: :attr:`grads`, named views of :attr:`flat_grad` (as the model's)."""
        self.flat_grad = np.zeros(self.model.network.size)
        self.grads = self.model.network.unpack(self.flat_grad)

    def _add_immediate(self, P: np.ndarray, d: np.ndarray, x: np.ndarray,
                       h_prev: np.ndarray) -> None:  # fmt: skip
        """``P += D_t M_t`` in place, ``P (H, N)``: row i of ``M_t`` is ``x`` at W_xh's row
        i, ``h_prev`` at W_hh's row i and 1 at ``b_h[i]`` (its zeros are never made)."""
        H, I, o = h_prev.shape[0], self._inputs, self._offsets
        rows = np.arange(H)
        P[:, o[0] : o[1]].reshape(H, H, I)[rows, rows] += d[:, None] * x  # (H, I)
        P[:, o[1] : o[2]].reshape(H, H, H)[rows, rows] += d[:, None] * h_prev  # (H, H)
        P[rows, o[2] + rows] += d

    def _immediate_of(self, c: np.ndarray, x: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
        """``c^T D_t M_t`` (N,) for ``c (H,)`` already times ``d``: O(H I + H^2)."""
        H = h_prev.shape[0]
        return np.concatenate([np.outer(c, x).ravel(), np.outer(c, h_prev).ravel(), c,
                               np.zeros(H)])  # fmt: skip

    def step(self, x, y) -> float:
        """One step of the stream: ``x (I,)`` in, loss against ``y (O,)`` out."""
        p = self.model.params
        x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
        c = self.model.config
        if x.shape != (c.input_size,) or y.shape != (c.output_size,):
            raise ValueError(f"a step takes {c.input_size} input(s) and {c.output_size} "
                             f"target(s); got {x.size} and {y.size}")  # fmt: skip
        if self.jacobians is not None:
            return self._jacobian_step(x, y)
        h_prev = self.h
        a = p["W_xh"] @ x + p["W_hh"] @ h_prev + p["b_h"]  # (H,)
        h = self.f(a)  # (H,)
        d = self.df(h)  # (H,) f'(a), from the output
        loss, dh = self._head(h, y)
        if self.rule == "rtrl":  # O(H^2 N) = O(H^4): the product with W_hh
            self.P = d[:, None] * (p["W_hh"] @ self.P)  # (H, N)
            self._add_immediate(self.P, d, x, h_prev)
            flat = dh @ self.P  # (N,)
        elif self.rule == "truncate1":  # P = D M: the notebook's one step, O(H^2)
            flat = self._immediate_of(dh * d, x, h_prev)
        elif self.rule == "snap1":
            self.J = d[:, None] * (np.diagonal(p["W_hh"])[:, None] * self.J)  # (H, I + H + 2)
            self.J[:, :-1] += d[:, None] * np.concatenate([x, h_prev, [1.0]])[None, :]
            flat = self._snap1_gradient(dh)
        elif self.rule == "rflo":
            self.J *= RFLO_DECAY
            self.J[:, :-1] += d[:, None] * np.concatenate([x, h_prev, [1.0]])[None, :]
            flat = self._snap1_gradient(self.feedback @ self._dz)
        elif self.rule == "tbptt":
            self.kept.append((x, h_prev, d, dh))
            flat = self._window_back(p["W_hh"]) if len(self.kept) == self.window else None
        else:
            flat = self._uoro(d, x, h_prev, p["W_hh"], dh)
        for k, name in enumerate(RECURRENT) if flat is not None else ():
            self.grads[name] += flat[self._offsets[k] : self._offsets[k + 1]].reshape(
                self.shapes[name])  # fmt: skip
        self.h = h
        return loss

    def _head(self, h: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The output layer on the top state ``h (H,)``: adds its gradients, sets
        :attr:`right`; returns the step's loss and ``dL/dh (H,)``."""
        p = self.model.params
        z = p["W_hy"] @ h + p["b_y"]  # (O,)
        loss = float(self.loss.step_loss(z[None, None], y[None, None])[0, 0])
        outputs = self.loss.output(z[None, None])  # (1, 1, O): the prediction, pre-update
        self.right = bool(step_correct(self.loss.name, outputs, y[None, None], 0.04)[0, 0])
        dz = self._dz = self.loss.dlogits(z[None, None], y[None, None])[0, 0]  # (O,)
        self.grads["W_hy"] += np.outer(dz, h)
        self.grads["b_y"] += dz
        return loss, p["W_hy"].T @ dz

    def _jacobian_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One step of any cell and depth: ``P`` carried by the one-step Jacobians."""
        J = self.jacobians
        top = J.advance(x)  # (H,) the top layer's new h
        loss, dh = self._head(top, y)
        flat = dh @ J.P[J.top_rows]  # (N,)
        for name, (a, b) in J.columns.items():
            self.grads[name] += flat[a:b].reshape(self.grads[name].shape)
        return loss

    def _snap1_gradient(self, dh: np.ndarray) -> np.ndarray:
        """``dh P`` (N,) with ``P`` SnAp-1's: each unit's row of ``J`` times its ``dh``."""
        I, H = self._inputs, dh.shape[0]
        G = dh[:, None] * self.J  # (H, I + H + 2)
        return np.concatenate([G[:, :I].ravel(), G[:, I : I + H].ravel(), G[:, I + H],
                               G[:, I + H + 1]])  # fmt: skip

    def _window_back(self, W_hh: np.ndarray) -> np.ndarray:
        """BPTT through the kept window (its first state taken as given), (N,); empties it."""
        I, H = self._inputs, W_hh.shape[0]
        gx, gh, gb = np.zeros((H, I)), np.zeros((H, H)), np.zeros(H)
        carried = np.zeros(H)  # dL/dh_t from the window's later steps
        for x, h_prev, d, dh in reversed(self.kept):
            da = (dh + carried) * d  # (H,) at the pre-activation
            gx += np.outer(da, x)
            gh += np.outer(da, h_prev)
            gb += da
            carried = W_hh.T @ da  # (H,)
        self.kept = []
        return np.concatenate([gx.ravel(), gh.ravel(), gb, np.zeros(H)])

    def _uoro(self, d, x, h_prev, W_hh, dh) -> np.ndarray:
        """UORO's step: ``u v^T`` tracks ``P``; returns ``(dh . u) v`` (N,), unbiased;
        O(H^2 + N)."""
        if not self._started:  # P_0: the identity on h0, as a rank-one draw
            nu = self.rng.choice((-1.0, 1.0), size=self.u.shape[0])
            self.u[:] = nu
            self.v[:] = 0.0
            self.v[self.size - nu.shape[0] :] = nu
            self._started = True
        u_forward = d * (W_hh @ self.u)  # (H,) F_h u
        nu = self.rng.choice((-1.0, 1.0), size=u_forward.shape[0])  # (H,)
        v_immediate = self._immediate_of(nu * d, x, h_prev)  # (N,) nu^T F_theta
        eps = 1e-12
        rho0 = np.sqrt((np.linalg.norm(self.v) + eps) / (np.linalg.norm(u_forward) + eps))
        rho1 = np.sqrt((np.linalg.norm(v_immediate) + eps) / (np.linalg.norm(nu) + eps))
        self.u = rho0 * u_forward + rho1 * nu
        self.v = self.v / rho0 + v_immediate / rho1
        return (dh @ self.u) * self.v


class OnlineLearner:
    """Learns from a stream one step at a time: every ``k`` steps (``tbptt``: its
    window), the gradient summed since the last update (``rule``'s) takes one SGD step of
    ``lr`` (gradient norm clipped to ``clip``). ``learn(stream, steps)`` returns the
    per-step losses; ``learn(stream, steps, until=W)`` stops once the last ``W``
    predictions, each made before its step's update, were all right (:attr:`solved_at`:
    the step it stopped)."""

    def __init__(self, model: RNN, rule: str = "rtrl", *, lr: float = 0.1, k: int = 1,
                 clip: float | None = 1.0, seed: int = 0):  # fmt: skip
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not (isinstance(lr, int | float) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if clip is not None and not (isinstance(clip, int | float) and clip > 0):
            raise ValueError(f"clip must be a positive number or None, got {clip!r}")
        self.model, self.k, self.lr, self.clip = model, k, float(lr), clip
        self.gradient = OnlineGradient(model, rule, np.random.default_rng(seed), window=k)
        self.steps, self.solved_at = 0, None
        self.right_run = 0  # predictions right in a row so far (across calls of learn)
        c = model.config
        self.compiled = (model.backend == "numba" and rule in COMPILED_RULES
                         and self.gradient.jacobians is None and c.dtype == "float64")  # fmt: skip

    def learn(self, stream: Iterator, steps: int, until: int | None = None) -> np.ndarray:
        """Learn from ``steps`` steps of ``stream`` (fewer if ``until`` is met); returns the
        per-step losses. On the compiled backend the steps run in one call per chunk of
        :data:`CHUNK`, drawn from the stream beforehand: a run stopped by ``until`` leaves
        the rest of its chunk drawn and unused."""
        if until is not None and (isinstance(until, bool) or not isinstance(until, int)
                                  or until < 1):  # fmt: skip
            raise ValueError(f"until must be a positive integer or None, got {until!r}")
        if self.compiled:
            return self._learn_compiled(stream, steps, until)
        losses = np.empty(steps)
        g = self.gradient
        for t in range(steps):
            x, y = next(stream)
            losses[t] = g.step(x, y)
            self.steps += 1
            self.right_run = self.right_run + 1 if g.right else 0
            if until is not None and self.right_run >= until:
                self.solved_at = self.steps
                return losses[: t + 1]
            if self.steps % self.k == 0:
                norm = np.sqrt(sum(float((v * v).sum()) for v in g.grads.values()))
                scale = 1.0 if self.clip is None or norm <= self.clip else self.clip / norm
                for name, value in g.grads.items():
                    self.model.params[name] -= self.lr * scale * value
                g.reset_grads()
        return losses

    def _learn_compiled(self, stream: Iterator, steps: int, until: int | None) -> np.ndarray:
        from rnnlab.kernels.compiled import online as kernel
        from rnnlab.kernels.registry import ACTIVATION_CODES, LOSS_CODES

        g, c, losses, done = self.gradient, self.model.config, np.empty(steps), 0
        h = g.h  # (its arrays are the kernel's: they carry over between calls)
        P = getattr(g, "P", np.zeros((0, 0)))
        J = getattr(g, "J", np.zeros((0, 0)))
        feedback = getattr(g, "feedback", np.zeros((0, 0)))
        while done < steps:
            chunk = [next(stream) for _ in range(min(CHUNK, steps - done))]
            X = np.array([x for x, _ in chunk], dtype=np.float64).reshape(len(chunk), -1)
            Y = np.array([y for _, y in chunk], dtype=np.float64).reshape(len(chunk), -1)
            if X.shape[1] != c.input_size or Y.shape[1] != c.output_size:
                raise ValueError(f"a step takes {c.input_size} input(s) and {c.output_size} "
                                 f"target(s); got {X.shape[1]} and {Y.shape[1]}")  # fmt: skip
            taken, self.right_run = kernel.learn_chunk(
                self.model.params.flat, g.flat_grad, h, P, J, feedback, X, Y,
                kernel.CODES[g.rule], ACTIVATION_CODES[c.activation], LOSS_CODES[c.loss],
                self.lr, 0.0 if self.clip is None else float(self.clip), self.k, self.steps,
                until or 0, self.right_run, RFLO_DECAY, losses[done:], 0.04,
            )  # fmt: skip
            done += taken
            self.steps += taken
            if until is not None and self.right_run >= until:  # (the kernel stopped there)
                self.solved_at = self.steps
                return losses[:done]
        return losses


#: rules the compiled backend runs (for one-layer Elman networks, float64)
COMPILED_RULES = ("rtrl", "snap1", "rflo", "truncate1")
#: stream steps drawn per compiled call
CHUNK = 256


class _Jacobians:
    """The state of a network of any cell and depth, and ``P = ds / dtheta`` carried by
    its one-step Jacobians (see the module's docstring); ``sparse``: SnAp-1's pattern.

    The state ``s (S,)`` is every layer's ``h`` (and ``c``), layer by layer; ``theta``'s
    columns are the recurrent parameters, the flat vector up to the output layer.
    """

    def __init__(self, model: RNN, *, sparse: bool):
        from rnnlab.kernels.reference import STEPS

        net, self.model = model.network, model
        self.net, self.impl = net, STEPS[net.cell](net.activation)
        H, L = net.hidden_size, net.num_layers
        self.parts = 2 if net.spec.cell_state else 1  # h (and c) per layer
        S, N = self.parts * H * L, int(net.head[0])  # (the head comes last in theta)
        self.columns = {name: sl for name, sl in zip(net.names, net.slices, strict=True)
                        if sl[1] <= N}  # fmt: skip
        self.top_rows = np.arange(H) + self.parts * H * (L - 1)  # the top layer's h
        self.state = np.concatenate([np.array(model.params[name], dtype=np.float64)
                                     for name in self._initial_names()])  # fmt: skip
        self.P = np.zeros((S, N))
        for k, name in enumerate(self._initial_names()):  # ds_0 / d(h0, c0): the identity
            a = self.columns[name][0]
            self.P[k * H : (k + 1) * H, a : a + H] = np.eye(H)
        self.keep = self._own_units(S, N) if sparse else None

    def _initial_names(self) -> list[str]:
        bases = ("h0", "c0")[: self.parts]
        return [param_name(base, layer) for layer in range(self.net.num_layers) for base in bases]

    def _own_units(self, S: int, N: int) -> np.ndarray:
        """(S, N) bool, SnAp-1's pattern: where a parameter reaches state component ``k``
        within one step. That is its own unit's parameters in its own layer, and every
        parameter of the layers below, whose outputs it reads in the same step."""
        H, keep = self.net.hidden_size, np.zeros((S, N), dtype=bool)
        unit_of_row = np.arange(S) % H
        layer_of_row = np.arange(S) // (self.parts * H)
        for name, (a, b) in self.columns.items():
            layer = int(name.rsplit("_l", 1)[1]) if "_l" in name else 0
            shape = self.model.params[name].shape
            units = (np.arange(shape[0]) % H).repeat(int(np.prod(shape[1:])))  # per entry
            own = (unit_of_row[:, None] == units[None, :]) & (layer_of_row[:, None] == layer)
            keep[:, a:b] = own | (layer_of_row[:, None] > layer)
        return keep

    def _carries(self, s: np.ndarray) -> list[tuple]:
        """The state as each layer's carry, ``(h (1, H),)`` or ``(h, c)``."""
        H, k = self.net.hidden_size, self.parts
        return [tuple(s[(l * k + i) * H : (l * k + i + 1) * H][None, :] for i in range(k))
                for l in range(self.net.num_layers)]  # fmt: skip

    def advance(self, x: np.ndarray) -> np.ndarray:
        """Step the state on ``x (I,)`` and ``P`` with it; returns the top layer's ``h``."""
        net, params = self.net, self.model.params
        layers = [net.layer(params, layer) for layer in range(net.num_layers)]
        below, caches, new = x[None, :], [], []
        for layer, carry in zip(layers, self._carries(self.state), strict=True):
            carry, cache = self.impl.step(layer, carry, below)  # (1, H) each
            caches.append(cache)
            new.extend(part[0] for part in carry)
            below = carry[0]
        S, N = self.P.shape
        A, B = np.empty((S, S)), np.empty((S, N))  # ds_t/ds_{t-1}, ds_t/dtheta (immediate)
        for k in range(S):
            A[k], B[k] = self._row(k, layers, caches)
        self.P = A @ self.P + B  # (S, N): O(S^2 N)
        if self.keep is not None:
            self.P *= self.keep
        self.state = np.concatenate(new)
        return self.state[self.top_rows]

    def _row(self, k: int, layers: list, caches: list) -> tuple[np.ndarray, np.ndarray]:
        """Row ``k`` of ``A_t`` and ``B_t``: one step back from state component ``k``."""
        net, H, parts = self.net, self.net.hidden_size, self.parts
        grad = np.zeros(net.size)
        grads = [net.layer(net.unpack(grad), layer) for layer in range(net.num_layers)]
        layer, rest = divmod(k, parts * H)
        dcarry = [np.zeros((1, H)) for _ in range(parts)]
        dcarry[rest // H][0, rest % H] = 1.0
        row = np.zeros(parts * H * net.num_layers)  # (S,)
        for below in range(layer, -1, -1):  # down through the layers of this step
            back, dx = self.impl.step_back(layers[below], caches[below], tuple(dcarry),
                                           grads[below])  # fmt: skip
            at = below * parts * H
            row[at : at + parts * H] = np.concatenate([part[0] for part in back])
            dcarry = [dx] + [np.zeros((1, H)) for _ in range(parts - 1)]
        return row, grad[: self.P.shape[1]]


def parity_stream(rng: np.random.Generator, window: int = 2) -> Iterator[tuple[list, list]]:
    """Random bits and the parity of the last ``window`` of them (fewer at first)."""
    recent: list[int] = []
    while True:
        bit = int(rng.integers(0, 2))
        recent = [*recent, bit][-window:]
        yield [bit], [sum(recent) % 2]


def adding_stream(rng: np.random.Generator, window: int = 10) -> Iterator[tuple[list, list]]:
    """The adding problem as a stream: each step a value uniform in [0, 1) and a marker
    (on with probability ``2 / window``); the target, the sum of the marked values among
    the last ``window`` steps (a real value: an ``mse`` model, two inputs)."""
    recent: list[float] = []
    while True:
        value, marked = float(rng.random()), bool(rng.random() < 2.0 / window)
        recent = [*recent, value if marked else 0.0][-window:]
        yield [value, float(marked)], [sum(recent)]


def tomita_stream(rng: np.random.Generator, grammar: int) -> Iterator[tuple[list, list]]:
    """Random bits (one-hot) and whether the prefix so far is in Tomita ``grammar``'s
    language, one answer a step (an acceptor read online)."""
    from rnnlab.tasks.tomita import GRAMMARS

    dfa = GRAMMARS[grammar][1]
    state = dfa.start
    while True:
        bit = int(rng.integers(0, 2))
        state = dfa.transitions[state][bit]
        yield [1.0 - bit, float(bit)], [float(state in dfa.accepting)]


def data_stream(X, Y) -> Iterator[tuple[list, list]]:
    """A user's data as one long sequence: rows of ``X (T, I)`` and ``Y (T, O)``, again
    and again."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or not len(X):
        raise ValueError(f"X and Y must be (T, I) and (T, O) of one length, got {X.shape} "
                         f"and {Y.shape}")  # fmt: skip
    while True:
        yield from zip(X, Y, strict=True)


def shift_stream(rng: np.random.Generator, delay: int = 1) -> Iterator[tuple[list, list]]:
    """An endless stream of random bits and the bit ``delay`` steps before (0 at first):
    the notebook's task with no sequence boundaries."""
    past = [0] * delay
    while True:
        bit = int(rng.integers(0, 2))
        past.append(bit)
        yield [bit], [past.pop(0)]
