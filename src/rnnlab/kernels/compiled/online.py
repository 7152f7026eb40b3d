"""Online learning of a one-layer Elman network on a stream, compiled: a chunk of steps
in one call.

The same arithmetic as :class:`rnnlab.online.OnlineGradient` (the specification; the
tests hold the two to 1e-7 after hundreds of steps of updates, which grow rounding)
for the rules whose state is arrays alone: ``rtrl`` (``P (H, N)``), ``snap1`` and
``rflo`` (``J (H, I + H + 2)``) and ``truncate1``. In numpy a step of a 2-unit net
costs about 50 us of Python around a few hundred flops; here the loop over the chunk's
steps, the SGD update every ``k`` steps and the stop after ``until`` right predictions
in a row all run in one call.

The parameters are the model's flat vector ``theta = [W_xh (H, I), W_hh (H, H), b_h
(H,), h0 (H,), W_hy (O, H), b_y (O,)]`` (:mod:`rnnlab.kernels.layout`); ``grad`` the
gradient summed since the last update, laid out the same way; the recurrent columns of
``P`` are ``theta[:N]``.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.kernels.compiled.functions import BCE, MSE, activate, activation_derivative
from rnnlab.kernels.compiled.gemm import gemm
from rnnlab.kernels.compiled.math import kernel

#: rule codes (the rules of rnnlab.online this kernel runs)
RTRL, SNAP1, RFLO, TRUNCATE1 = range(4)
CODES = {"rtrl": RTRL, "snap1": SNAP1, "rflo": RFLO, "truncate1": TRUNCATE1}
#: RTRL's product W_hh P through BLAS from this many units on (below, a loop is faster)
BLAS_FROM = 16


@kernel
def learn_chunk(theta, grad, h, P, J, feedback, X, Y, rule, act, loss, lr, clip, k, total,
                until, right_run, decay, losses, tolerance):  # fmt: skip
    """Steps ``X (n, I)``, ``Y (n, O)`` of the stream, updating ``theta`` in place after
    every step whose count is a multiple of ``k`` (``total``: steps before this chunk;
    ``clip`` 0: no clipping). ``right_run``: right predictions in a row so far;
    ``until``: stop once that many (0: never). Writes each step's loss to ``losses`` and
    returns ``(steps taken, right_run)``; ``h``, ``P``, ``J``, ``grad`` carry over."""
    n, I = X.shape
    H, O = h.shape[0], Y.shape[1]
    N = H * I + H * H + 2 * H
    o_hh, o_b, o_hy = H * I, H * I + H * H, N
    o_by = N + O * H
    a, hn, d = np.empty(H), np.empty(H), np.empty(H)
    z, dz, dh, P_new = np.empty(O), np.empty(O), np.empty(H), np.empty_like(P)
    h_prev = np.empty(H)
    for step in range(n):
        for i in range(H):
            h_prev[i] = h[i]
        for i in range(H):  # a = W_xh x + W_hh h + b
            acc = theta[o_b + i]
            for j in range(I):
                acc += theta[i * I + j] * X[step, j]
            for j in range(H):
                acc += theta[o_hh + i * H + j] * h_prev[j]
            a[i] = acc
        for i in range(H):
            hn[i] = activate(act, a[i])
            d[i] = activation_derivative(act, hn[i])
        # the output layer, its loss, its gradient; the prediction judged before the update
        value, right, big = 0.0, True, -np.inf
        for o in range(O):
            acc = theta[o_by + o]
            for i in range(H):
                acc += theta[o_hy + o * H + i] * hn[i]
            z[o] = acc
            big = max(big, acc)
        if loss == BCE:
            for o in range(O):
                zo, yo = z[o], Y[step, o]
                value += max(zo, 0.0) + math.log1p(math.exp(-abs(zo))) - yo * zo
                s = 1.0 / (1.0 + math.exp(-zo))
                dz[o] = s - yo
                right = right and (s >= 0.5) == (yo >= 0.5)
        elif loss == MSE:
            for o in range(O):
                dz[o] = 2.0 * (z[o] - Y[step, o])
                value += (z[o] - Y[step, o]) ** 2
                right = right and abs(z[o] - Y[step, o]) < tolerance
        else:  # softmax
            norm, best, due = 0.0, 0, 0
            for o in range(O):
                norm += math.exp(z[o] - big)
                if z[o] > z[best]:
                    best = o
                if Y[step, o] > Y[step, due]:
                    due = o
            for o in range(O):
                value -= Y[step, o] * z[o]
                dz[o] = math.exp(z[o] - big) / norm - Y[step, o]
            value += big + math.log(norm)
            right = best == due
        for o in range(O):  # (a NaN output is never right, nor an infinite one but bce's)
            right = right and z[o] == z[o] and (loss == BCE or math.isfinite(z[o]))
        losses[step] = value
        right_run = right_run + 1 if right else 0
        for o in range(O):
            grad[o_by + o] += dz[o]
            for i in range(H):
                grad[o_hy + o * H + i] += dz[o] * hn[i]
        for i in range(H):  # dL/dh: through W_hy^T, or RFLO's fixed random feedback
            acc = 0.0
            for o in range(O):
                acc += (feedback[i, o] if rule == RFLO else theta[o_hy + o * H + i]) * dz[o]
            dh[i] = acc
        if rule == RTRL:  # P = D (W_hh P + M): O(H^2 N)
            if H >= BLAS_FROM:
                gemm(theta[o_hh:o_b].reshape((H, H)), P, P_new, 0.0)
            else:
                for i in range(H):
                    for c in range(N):
                        P_new[i, c] = 0.0
                    for j in range(H):
                        w = theta[o_hh + i * H + j]
                        for c in range(N):
                            P_new[i, c] += w * P[j, c]
            for i in range(H):
                for j in range(I):
                    P_new[i, i * I + j] += X[step, j]
                for j in range(H):
                    P_new[i, o_hh + i * H + j] += h_prev[j]
                P_new[i, o_b + i] += 1.0
                for c in range(N):
                    P[i, c] = d[i] * P_new[i, c]
            for c in range(N):
                acc = 0.0
                for i in range(H):
                    acc += dh[i] * P[i, c]
                grad[c] += acc
        elif rule == TRUNCATE1:  # P = D M
            for i in range(H):
                g = dh[i] * d[i]
                for j in range(I):
                    grad[i * I + j] += g * X[step, j]
                for j in range(H):
                    grad[o_hh + i * H + j] += g * h_prev[j]
                grad[o_b + i] += g
        else:  # SnAp-1, RFLO: each unit's own columns, J (H, I + H + 2)
            for i in range(H):
                keep = decay if rule == RFLO else d[i] * theta[o_hh + i * H + i]
                for c in range(I + H + 2):
                    J[i, c] *= keep
                for j in range(I):
                    J[i, j] += d[i] * X[step, j]
                for j in range(H):
                    J[i, I + j] += d[i] * h_prev[j]
                J[i, I + H] += d[i]
                for j in range(I):
                    grad[i * I + j] += dh[i] * J[i, j]
                for j in range(H):
                    grad[o_hh + i * H + j] += dh[i] * J[i, I + j]
                grad[o_b + i] += dh[i] * J[i, I + H]
                grad[o_b + H + i] += dh[i] * J[i, I + H + 1]
        for i in range(H):
            h[i] = hn[i]
        total += 1
        if until > 0 and right_run >= until:
            return step + 1, right_run
        if total % k == 0:  # the update: SGD on the summed gradient, its norm clipped
            norm = 0.0
            for c in range(grad.shape[0]):
                norm += grad[c] * grad[c]
            norm = math.sqrt(norm)
            scale = 1.0 if clip <= 0.0 or norm <= clip else clip / norm
            for c in range(grad.shape[0]):
                theta[c] -= lr * scale * grad[c]
                grad[c] = 0.0
    return n, right_run
