"""The compiled backend against the numpy reference (the specification).

float64 must agree to 1e-12 relative (per array: max |difference| / max |reference|),
float32 to 1e-4. Shapes are small so each case is quick; the compiled kernels are
cached on disk, so only the first run of this file pays for compilation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlab.kernels import get_backend, numpy_ref
from rnnlab.kernels.layout import param_shapes

numba_backend = pytest.importorskip("rnnlab.kernels.numba_backend")
from rnnlab.kernels import _numba_dispatch  # noqa: E402

CELLS = [("elman", "sigmoid"), ("elman", "tanh"), ("elman", "relu"), ("gru", None), ("lstm", None)]
LOSSES = ["bce", "softmax", "mse"]


def relative_error(a, b, floor: float = 0.0) -> float:
    """max |a - b| over the larger of max |b| and ``floor``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max() if b.size else 0.0, floor)
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def make_problem(rng, cell, *, T, B, I, H, O, L, loss, dtype=np.float64, lengths=None):
    params = {
        name: (0.8 * rng.normal(size=shape)).astype(dtype)
        for name, shape in param_shapes(cell, I, H, O, L).items()
    }
    x = rng.normal(size=(T, B, I)).astype(dtype)
    if loss == "softmax":
        y = np.eye(O, dtype=dtype)[rng.integers(0, O, size=(T, B))]
    elif loss == "bce":
        y = rng.integers(0, 2, size=(T, B, O)).astype(dtype)
    else:
        y = rng.normal(size=(T, B, O)).astype(dtype)
    mask = (rng.random((T, B)) < 0.8).astype(dtype)  # unscored steps inside sequences
    if lengths is not None:  # padding after each sequence's end
        mask *= np.arange(T)[:, None] < np.asarray(lengths)[None, :]
    return params, x, y, mask


def assert_same(params, x, y, mask, net, *, tol, **kw):
    ref_value, ref_grads = numpy_ref.loss_and_grad(params, x, y, mask, **net, **kw)
    value, grads = numba_backend.loss_and_grad(params, x, y, mask, **net, **kw)
    assert set(grads) == set(ref_grads)
    assert relative_error(value, ref_value) <= tol
    # a gradient array that saturation made ~1e-12 of the largest one is compared on
    # 1e-2 of that scale: its own digits are round-off (1 - tanh^2 cancels)
    floor = 1e-2 * max(np.abs(g).max() for g in ref_grads.values())
    for name, g in ref_grads.items():
        assert grads[name].shape == params[name].shape
        assert grads[name].dtype == params[name].dtype
        assert relative_error(grads[name], g, floor) <= tol, name
    return max(relative_error(grads[n], g, floor) for n, g in ref_grads.items())


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("truncate", [None, 1, 2, 5])
def test_loss_and_grad_matches_reference(rng, cell, activation, num_layers, truncate):
    net = {"cell": cell, "activation": activation or "sigmoid", "num_layers": num_layers}
    for loss in LOSSES:
        for reduction in ("sum", "mean"):
            problem = make_problem(
                rng, cell, T=7, B=3, I=2, H=3, O=3, L=num_layers, loss=loss, lengths=[7, 4, 1]
            )
            assert_same(*problem, net, tol=1e-12, loss=loss, truncate=truncate,
                        reduction=reduction)  # fmt: skip


@pytest.mark.parametrize(("cell", "activation"), [("elman", "tanh"), ("gru", None), ("lstm", None)])
@pytest.mark.parametrize("path", ["blas", "parallel"])
def test_blas_and_threaded_paths_match_reference(rng, cell, activation, path, monkeypatch):
    """Large hidden sizes run one BLAS product per step; large batches split over threads."""
    monkeypatch.setattr(_numba_dispatch, "PARALLEL_MIN_BATCH", 32)
    net = {"cell": cell, "activation": activation or "sigmoid", "num_layers": 2}
    H, B = (_numba_dispatch.BLAS_MIN_HIDDEN, 3) if path == "blas" else (4, 40)
    for truncate in (None, 3):
        problem = make_problem(rng, cell, T=6, B=B, I=3, H=H, O=2, L=2, loss="bce")
        assert_same(*problem, net, tol=1e-12, loss="bce", truncate=truncate, reduction="mean")


ELMAN_KERNELS = [  # (H, B, the kernel one-layer Elman networks get)
    (5, 3, "elman_loss_and_grad_units"),
    (5, _numba_dispatch.LANES_MIN_BATCH, "elman_loss_and_grad"),  # the batch in SIMD lanes
    (5, 40, "elman_loss_and_grad"),  # a full block of lanes and a partial one
    (5, 70, "elman_loss_and_grad_parallel"),  # blocks over threads
    (_numba_dispatch.ELMAN_BLAS_MIN_HIDDEN, 3, "elman_loss_and_grad_blas"),
    (_numba_dispatch.PARALLEL_LANES_MAX_HIDDEN, 70, "elman_loss_and_grad_blas"),
]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("H", "B", "kernel"), ELMAN_KERNELS)
def test_one_layer_elman_kernels_match_reference(rng, activation, loss, H, B, kernel,
                                                 monkeypatch):  # fmt: skip
    """Every one-layer Elman kernel, each where the dispatcher sends it (two threads
    assumed, whatever the number of cores here)."""
    monkeypatch.setattr(_numba_dispatch, "_threads", lambda: 2)
    assert _numba_dispatch._elman_kernel(H, B).__name__ == kernel
    lengths = rng.integers(1, 10, size=B)
    params, x, y, mask = make_problem(rng, "elman", T=9, B=B, I=2, H=H, O=3, L=1, loss=loss,
                                      lengths=lengths)  # fmt: skip
    net = {"cell": "elman", "activation": activation, "num_layers": 1}
    for reduction in ("sum", "mean"):
        assert_same(params, x, y, mask, net, tol=1e-12, loss=loss, reduction=reduction)


GATED_KERNELS = [  # (H, B, the kernel one-layer GRU/LSTM networks get, two threads)
    (1, 1, "step"),
    (5, 3, "step"),
    (4, 20, "gated_loss_and_grad_lanes"),
    (4, 70, "gated_loss_and_grad_lanes_parallel"),
    (12, 130, "gated_loss_and_grad_lanes_parallel"),
    (12, 20, {"gru": "step", "lstm": "gated_loss_and_grad_lanes"}),
    (40, 2, "step"),
]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("H", "B", "kernel"), GATED_KERNELS)
def test_one_layer_gated_kernels_match_reference(rng, cell, loss, H, B, kernel, monkeypatch):
    """One-layer GRU and LSTM networks run kernels of their own (kernels/_numba_gated.py):
    a step at a time, or the batch in SIMD lanes (in blocks over threads)."""
    monkeypatch.setattr(_numba_dispatch, "_threads", lambda: 2)
    kernel = kernel[cell] if isinstance(kernel, dict) else kernel
    chosen = _numba_dispatch._gated_kernel(cell, H, B).__name__
    assert chosen == (f"{cell}_loss_and_grad" if kernel == "step" else kernel)
    lengths = rng.integers(1, 10, size=B)
    params, x, y, mask = make_problem(rng, cell, T=9, B=B, I=2, H=H, O=3, L=1, loss=loss,
                                      lengths=lengths)  # fmt: skip
    net = {"cell": cell, "activation": "sigmoid", "num_layers": 1}
    for reduction in ("sum", "mean"):
        assert_same(params, x, y, mask, net, tol=1e-12, loss=loss, reduction=reduction)
    p32 = {n: p.astype(np.float32) for n, p in params.items()}
    p32["W_hh"] /= np.sqrt(H)
    p64 = {n: p.astype(np.float64) for n, p in p32.items()}
    value, grads = numba_backend.loss_and_grad(p32, *(a.astype(np.float32) for a in (x, y, mask)),
                                               **net, loss=loss)  # fmt: skip
    ref_value, ref_grads = numpy_ref.loss_and_grad(p64, x, y, mask, **net, loss=loss)
    assert relative_error(value, ref_value) <= 1e-4
    for name, g in ref_grads.items():
        assert grads[name].dtype == np.float32
        assert relative_error(grads[name], g) <= 1e-4, name


@pytest.mark.parametrize(("H", "B", "kernel"), ELMAN_KERNELS)
def test_one_layer_elman_kernels_in_float32(rng, H, B, kernel, monkeypatch):
    monkeypatch.setattr(_numba_dispatch, "_threads", lambda: 2)
    params, x, y, mask = make_problem(rng, "elman", T=9, B=B, I=2, H=H, O=2, L=1, loss="bce",
                                      dtype=np.float32)  # fmt: skip
    params["W_hh"] /= np.sqrt(H)  # not chaotic: float32 round-off stays round-off
    net = {"cell": "elman", "activation": "tanh", "num_layers": 1}
    value, grads = numba_backend.loss_and_grad(params, x, y, mask, **net)
    p64 = {n: p.astype(np.float64) for n, p in params.items()}
    args64 = (x.astype(np.float64), y.astype(np.float64), mask.astype(np.float64))
    ref_value, ref_grads = numpy_ref.loss_and_grad(p64, *args64, **net)
    assert relative_error(value, ref_value) <= 1e-4
    for name, g in ref_grads.items():
        assert grads[name].dtype == np.float32
        assert relative_error(grads[name], g) <= 1e-4, name


@pytest.mark.parametrize(
    ("cell", "activation"), [("elman", "sigmoid"), ("gru", None), ("lstm", None)]
)
@pytest.mark.parametrize("H", [3, _numba_dispatch.BLAS_MIN_HIDDEN])
def test_float32_matches_reference(rng, cell, activation, H):
    net = {"cell": cell, "activation": activation or "sigmoid", "num_layers": 2}
    params, x, y, mask = make_problem(rng, cell, T=6, B=3, I=2, H=H, O=2, L=2, loss="bce",
                                      dtype=np.float32)  # fmt: skip
    value, grads = numba_backend.loss_and_grad(params, x, y, mask, **net, truncate=2)
    p64 = {n: p.astype(np.float64) for n, p in params.items()}
    args64 = (x.astype(np.float64), y.astype(np.float64), mask.astype(np.float64))
    ref_value, ref_grads = numpy_ref.loss_and_grad(p64, *args64, **net, truncate=2)
    assert relative_error(value, ref_value) <= 1e-4
    for name, g in ref_grads.items():
        assert grads[name].dtype == np.float32
        assert relative_error(grads[name], g) <= 1e-4, name


@given(
    seed=st.integers(0, 2**32 - 1),
    cell=st.sampled_from(["elman", "gru", "lstm"]),
    activation=st.sampled_from(["sigmoid", "tanh", "relu"]),
    num_layers=st.integers(1, 3),
    T=st.integers(1, 8),
    B=st.integers(1, 4),
    I=st.integers(1, 3),
    H=st.sampled_from([1, 2, 5, _numba_dispatch.BLAS_MIN_HIDDEN]),
    O=st.integers(1, 3),
    loss=st.sampled_from(LOSSES),
    truncate=st.sampled_from([None, 1, 2, 5]),
    reduction=st.sampled_from(["sum", "mean"]),
    weight_scale=st.floats(0.1, 3.0),
)
def test_random_shapes_and_weights(seed, cell, activation, num_layers, T, B, I, H, O, loss,
                                   truncate, reduction, weight_scale):  # fmt: skip
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    params, x, y, mask = make_problem(rng, cell, T=T, B=B, I=I, H=H, O=O, L=num_layers,
                                      loss=loss, lengths=lengths)  # fmt: skip
    params = {n: p * weight_scale for n, p in params.items()}
    net = {"cell": cell, "activation": activation, "num_layers": num_layers}
    assert_same(params, x, y, mask, net, tol=1e-12, loss=loss, truncate=truncate,
                reduction=reduction)  # fmt: skip


@pytest.mark.parametrize(
    ("cell", "H"), [("elman", 3), ("gru", 3), ("lstm", _numba_dispatch.BLAS_MIN_HIDDEN)]
)
def test_forward_and_hidden_states_match_reference(rng, cell, H):
    net = {"cell": cell, "activation": "tanh", "num_layers": 2}
    params, x, _, _ = make_problem(rng, cell, T=5, B=3, I=2, H=H, O=2, L=2, loss="bce")
    logits, _ = numba_backend.forward(params, x, **net)
    ref_logits, _ = numpy_ref.forward(params, x, **net)
    assert relative_error(logits, ref_logits) <= 1e-12
    for hs, ref in zip(numba_backend.hidden_states(params, x, **net),
                       numpy_ref.hidden_states(params, x, **net), strict=True):  # fmt: skip
        assert hs.shape == ref.shape
        assert relative_error(hs, ref) <= 1e-12


def test_packed_params_are_used_in_place(rng):
    """FlatParams: optimizer-style in-place edits and assignments reach the flat vector."""
    net = {"cell": "elman", "activation": "sigmoid", "num_layers": 1}
    params, x, y, mask = make_problem(rng, "elman", T=4, B=2, I=1, H=2, O=1, L=1, loss="bce")
    packed = numba_backend.pack(params, cell="elman", num_layers=1)
    _, grads = numba_backend.loss_and_grad(packed, x, y, mask, **net)
    packed["W_hh"] -= 0.1 * grads["W_hh"]
    packed["b_h"] = np.zeros(2)
    params["W_hh"] = params["W_hh"] - 0.1 * grads["W_hh"]
    params["b_h"] = np.zeros(2)
    assert_same(dict(params), x, y, mask, net, tol=1e-12)
    value, _ = numba_backend.loss_and_grad(packed, x, y, mask, **net)
    assert value == pytest.approx(numpy_ref.loss_and_grad(params, x, y, mask, **net)[0], rel=1e-12)
    assert grads.flat.shape == packed.flat.shape


def test_same_inputs_same_bits(rng):
    net = {"cell": "lstm", "activation": "sigmoid", "num_layers": 2}
    problem = make_problem(rng, "lstm", T=5, B=40, I=2, H=4, O=2, L=2, loss="bce")
    v1, g1 = numba_backend.loss_and_grad(*problem, **net)
    v2, g2 = numba_backend.loss_and_grad(*problem, **net)
    assert v1 == v2
    assert all(np.array_equal(g1[n], g2[n]) for n in g1)


def test_falls_back_to_reference_for_unsupported_input(rng):
    net = {"cell": "elman", "activation": "sigmoid", "num_layers": 1}
    params, x, y, mask = make_problem(rng, "elman", T=4, B=2, I=1, H=2, O=1, L=1, loss="bce")
    for kw in ({"truncate": 0}, {"loss": "nope"}):
        try:
            expected = numpy_ref.loss_and_grad(params, x, y, mask, **net, **kw)
        except ValueError as err:
            with pytest.raises(ValueError, match=str(err)[:20]):
                numba_backend.loss_and_grad(params, x, y, mask, **net, **kw)
        else:
            value, _ = numba_backend.loss_and_grad(params, x, y, mask, **net, **kw)
            assert value == expected[0]
    with pytest.raises(ValueError, match="reduction"):
        numba_backend.loss_and_grad(params, x, y, mask, **net, reduction="median")


def test_backend_selection():
    assert get_backend("numpy") is numpy_ref
    assert get_backend("numba") is numba_backend
    assert get_backend("auto") is numba_backend


def test_flat_params_stay_in_step_with_their_vector(rng):
    import copy
    import pickle

    params, *_ = make_problem(rng, "lstm", T=2, B=1, I=2, H=3, O=2, L=2, loss="bce")
    packed = numba_backend.pack(params, cell="lstm", num_layers=2)
    packed.update({"W_hh": np.ones((12, 3))}, b_y=np.zeros(2))
    assert packed.flat[packed.plan.slices[1][0]] == 1.0  # through update, into the vector
    assert packed.setdefault("b_y") is packed["b_y"]
    for remove in (lambda: packed.pop("b_y"), lambda: packed.__delitem__("b_y"), packed.clear):
        with pytest.raises(TypeError, match="cannot be removed"):
            remove()
    with pytest.raises(KeyError, match="not a parameter"):
        packed.setdefault("extra", np.zeros(1))
    for twin in (copy.deepcopy(packed), pickle.loads(pickle.dumps(packed))):
        assert type(twin) is type(packed) and twin.flat is not packed.flat
        np.testing.assert_array_equal(twin.flat, packed.flat)
        assert all(np.shares_memory(twin[n], twin.flat) for n in twin)
    assert copy.copy(packed).flat is packed.flat  # a shallow copy shares the arrays, as dicts do


def test_compiled_kernels_refuse_targets_of_the_wrong_shape(rng):
    """The kernels index by the shapes unchecked: a mismatch must reach the reference's error."""
    for B in (2, 40):  # the fused path and the lanes path
        params, x, y, mask = make_problem(rng, "elman", T=4, B=B, I=1, H=2, O=1, L=1, loss="bce")
        net = {"cell": "elman", "activation": "sigmoid", "num_layers": 1}
        wide = np.concatenate([y, y], axis=2)  # two outputs for a one-output network
        with pytest.raises(ValueError):
            numba_backend.loss_and_grad(params, x, wide, mask, **net)
        with pytest.raises(ValueError):
            numba_backend.loss_and_grad(params, x, y, mask[:2], **net)
