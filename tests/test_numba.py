"""The compiled backend against the numpy reference (the specification).

float64 must agree to 1e-12 relative (per array: max |difference| / max |reference|),
float32 to 1e-4. Every test runs each way the driver can take a batch (``PATHS``),
chosen explicitly, so retuning the size thresholds changes no test.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.kernels import get_backend, reference
from rnnlab.kernels.layout import network
from rnnlab.optim.rules import ADAM, SGD, Update

compiled = pytest.importorskip("rnnlab.kernels.compiled")
from rnnlab.kernels.compiled import sizes  # noqa: E402
from rnnlab.kernels.compiled.sizes import Path  # noqa: E402

#: the cells the derandomized property test below draws from (its examples follow this
#: list: a cell added here changes every example it draws)
DRAWN_CELLS = [("elman", "sigmoid"), ("elman", "tanh"), ("elman", "relu"), ("gru", "sigmoid"),
               ("lstm", "sigmoid")]  # fmt: skip
CELLS = [*DRAWN_CELLS, ("exprnn", "sigmoid")]
LOSSES = ["bce", "softmax", "mse"]
PATHS = {
    "lanes": Path(32, False, False),
    "narrow lanes": Path(3, False, False),  # several blocks and a ragged last one
    "lanes on threads": Path(3, False, True),
    "blas": Path(32, True, False),
}


def relative_error(a, b, floor: float = 0.0) -> float:
    """max |a - b| over the larger of max |b| and ``floor``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max() if b.size else 0.0, floor)
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def make_problem(rng, cell, activation, *, T, B, I, H, O, L, loss, dtype=np.float64,
                 lengths=None, scale=0.8):  # fmt: skip
    net = network(cell, activation, L, I, H, O)
    theta = (scale * rng.normal(size=net.size)).astype(dtype)
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
    return net, theta, x, y, mask


def assert_same(net, theta, x, y, mask, *, tol, path, **kw):
    ref_value, ref_grad = reference.loss_and_grad(net, theta, x, y, mask, **kw)
    value, grad = compiled.loss_and_grad(net, theta, x, y, mask, path=path, **kw)
    assert grad.shape == theta.shape and grad.dtype == theta.dtype
    assert relative_error(value, ref_value) <= tol
    # an array that saturation made ~1e-12 of the largest one is compared on 1e-2 of that
    # scale: its own digits are round-off (1 - tanh^2 cancels)
    ref = net.unpack(ref_grad.astype(np.float64))
    got = net.unpack(grad)
    floor = 1e-2 * max(np.abs(g).max() for g in ref.values())
    for name, g in ref.items():
        assert relative_error(got[name], g, floor) <= tol, name


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("layers", [1, 2])
def test_every_cell_loss_depth_and_path_matches_reference(rng, cell, activation, loss, layers,
                                                           path):  # fmt: skip
    lengths = [7, 3, 5, 1, 7, 6, 2]  # variable-length sequences: padding masked out
    net, theta, x, y, mask = make_problem(rng, cell, activation, T=7, B=7, I=2, H=5, O=3,
                                          L=layers, loss=loss, lengths=lengths)  # fmt: skip
    for reduction in ("sum", "mean"):
        assert_same(net, theta, x, y, mask, tol=1e-12, path=path, loss=loss,
                    reduction=reduction)  # fmt: skip


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("truncate", [None, 3])
def test_blas_weight_gradients_gathered_or_per_step(rng, cell, activation, truncate):
    from rnnlab.kernels.compiled.products import GATHER, NARROW, THIN

    # gathered, several steps per weight-gradient product and a ragged last one; a
    # product per step
    steps = GATHER // (THIN - 1)
    cases = [(THIN - 1, 2 * steps + 3, 2, 2), (THIN, 7, NARROW, NARROW)]
    for B, T, I, O in cases:  # (inputs and outputs: products as loops, then through BLAS)
        lengths = rng.integers(1, T + 1, size=B)
        net, theta, x, y, mask = make_problem(rng, cell, activation, T=T, B=B, I=I, H=4, O=O,
                                              L=2, loss="bce", lengths=lengths)  # fmt: skip
        assert_same(net, theta, x, y, mask, tol=1e-12, path=PATHS["blas"], loss="bce",
                    truncate=truncate)  # fmt: skip


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("H", [5, 16], ids=["loops", "blas"])
def test_one_sequence_at_a_time_matches_reference(rng, cell, activation, loss, B, H):
    """Batches of fewer than 4 sequences of a one-layer network run one sequence at a
    time (units in the lanes; products in loops or, from a hidden size on, BLAS): the
    same numbers."""
    assert 5 < sizes.TABLE[cell].sequence_blas_min_hidden <= 16  # (both ways are tested)
    net, theta, x, y, mask = make_problem(rng, cell, activation, T=6, B=B, I=2, H=H, O=3,
                                          L=1, loss=loss, lengths=[6, 2, 4][:B],
                                          scale=0.8 * (5 / H) ** 0.5)  # fmt: skip
    for reduction in ("sum", "mean"):
        assert_same(net, theta, x, y, mask, tol=1e-12, path=PATHS["lanes"], loss=loss,
                    reduction=reduction)  # fmt: skip
    logits, h, c = compiled.forward(net, theta, x, states=True, path=PATHS["lanes"])
    ref_logits, ref_h, ref_c = reference.forward(net, theta, x, states=True)
    assert relative_error(logits, ref_logits) <= 1e-12 and relative_error(h, ref_h) <= 1e-12
    assert (c is None) == (ref_c is None) and (c is None or relative_error(c, ref_c) <= 1e-12)


@pytest.mark.skipif(not compiled.blas.available(), reason="numba's BLAS here is not OpenBLAS")
@pytest.mark.parametrize(("B", "H"), [(1, 64), (8, 32)], ids=["one sequence at a time",
                                                              "blas block"])  # fmt: skip
def test_small_blas_products_on_one_thread_give_the_same_numbers(rng, B, H):
    """Calls whose BLAS products are small run them on one thread; the numbers are
    the reference's and the thread's own BLAS setting is back afterwards."""
    assert sizes.one_blas_thread(3, H, B)  # (the sizes below take that way)
    net, theta, x, y, mask = make_problem(rng, "gru", "sigmoid", T=5, B=B, I=2, H=H, O=3,
                                          L=1, loss="bce", scale=0.2)  # fmt: skip
    previous = compiled.blas.limit(2)  # a setting to find again afterwards
    try:
        assert_same(net, theta, x, y, mask, tol=1e-12, path=None, loss="bce")
        logits, _, _ = compiled.forward(net, theta, x)
        assert relative_error(logits, reference.forward(net, theta, x)[0]) <= 1e-12
        assert compiled.blas.limit(2) == 2
    finally:
        compiled.blas.limit(previous)


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("truncate", [1, 2, 4])
def test_truncated_bptt_matches_reference(rng, cell, activation, truncate, path):
    net, theta, x, y, mask = make_problem(rng, cell, activation, T=6, B=5, I=2, H=4, O=2, L=2,
                                          loss="bce", lengths=[6, 2, 5, 6, 3])  # fmt: skip
    assert_same(net, theta, x, y, mask, tol=1e-12, path=path, loss="bce", truncate=truncate)


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("loss", LOSSES)
def test_float32_matches_reference_to_1e4(rng, cell, activation, loss, path):
    net, theta, x, y, mask = make_problem(rng, cell, activation, T=9, B=6, I=2, H=6, O=3, L=2,
                                          loss=loss, lengths=[9, 4, 7, 1, 9, 5])  # fmt: skip
    f32 = [a.astype(np.float32) for a in (theta, x, y, mask)]
    for truncate in (None, 3):
        for reduction in ("sum", "mean"):
            kw = {"loss": loss, "truncate": truncate, "reduction": reduction}
            value, grad = compiled.loss_and_grad(net, *f32, path=path, **kw)
            assert grad.dtype == np.float32
            ref_value, ref_grad = reference.loss_and_grad(net, theta, x, y, mask, **kw)
            assert relative_error(value, ref_value) <= 1e-4
            ref, got = net.unpack(ref_grad), net.unpack(grad)
            floor = 1e-2 * np.abs(ref_grad).max()
            for name, g in ref.items():
                assert relative_error(got[name], g, floor) <= 1e-4, name


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cell=st.sampled_from(DRAWN_CELLS),
    num_layers=st.integers(1, 3),
    T=st.integers(1, 8),
    B=st.integers(1, 9),
    I=st.integers(1, 3),
    H=st.sampled_from([1, 2, 5, 33]),
    O=st.integers(1, 3),
    loss=st.sampled_from(LOSSES),
    truncate=st.sampled_from([None, 1, 2, 5]),
    reduction=st.sampled_from(["sum", "mean"]),
    weight_scale=st.floats(0.1, 3.0),
    path=st.sampled_from(list(PATHS.values())),
)
def test_random_shapes_and_weights(seed, cell, num_layers, T, B, I, H, O, loss, truncate,
                                   reduction, weight_scale, path):  # fmt: skip
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    net, theta, x, y, mask = make_problem(rng, *cell, T=T, B=B, I=I, H=H, O=O, L=num_layers,
                                          loss=loss, lengths=lengths,
                                          scale=0.8 * weight_scale)  # fmt: skip
    assert_same(net, theta, x, y, mask, tol=1e-12, path=path, loss=loss, truncate=truncate,
                reduction=reduction)  # fmt: skip


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize(("cell", "activation"), CELLS)
def test_forward_only_pass_matches_reference(rng, cell, activation, path):
    net, theta, x, _, _ = make_problem(rng, cell, activation, T=5, B=7, I=2, H=4, O=2, L=2,
                                       loss="bce")  # fmt: skip
    logits, h, c = compiled.forward(net, theta, x, states=True, path=path)
    ref_logits, ref_h, ref_c = reference.forward(net, theta, x, states=True)
    assert relative_error(logits, ref_logits) <= 1e-12
    assert h.shape == ref_h.shape == (2, 5, 7, 4)
    assert relative_error(h, ref_h) <= 1e-12
    if cell == "lstm":
        assert c.shape == ref_c.shape and relative_error(c, ref_c) <= 1e-12
    else:
        assert c is None and ref_c is None
    alone, no_h, no_c = compiled.forward(net, theta, x, path=path)
    np.testing.assert_array_equal(alone, logits)
    assert no_h is None and no_c is None


@pytest.mark.parametrize("rule", [ADAM, SGD])
@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_train_step_is_the_pass_then_the_update(rng, rule, path):
    """The fused compiled step equals the reference pass followed by the numpy update."""
    net, theta, x, y, mask = make_problem(rng, "gru", "sigmoid", T=5, B=4, I=2, H=3, O=2, L=1,
                                          loss="bce")  # fmt: skip
    results = []
    for backend in (reference, compiled):
        weights = theta.copy()
        first, second = np.zeros_like(weights), np.zeros_like(weights)
        update = Update.make(rule, 1, 0.05, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                             momentum=0.5, nesterov=True, max_norm=0.5, first=first,
                             second=second)  # fmt: skip
        kw = {"path": path} if backend is compiled else {}
        loss, norm = backend.train_step(net, weights, x, y, mask, loss="bce", update=update, **kw)
        results.append((loss, norm, weights, first, second))
    (l0, n0, w0, f0, s0), (l1, n1, w1, f1, s1) = results
    assert l1 == pytest.approx(l0, rel=1e-12) and n1 == pytest.approx(n0, rel=1e-12)
    assert not np.array_equal(w1, theta)  # it did update
    for got, want in ((w1, w0), (f1, f0), (s1, s0)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_train_step_leaves_weights_alone_when_the_loss_is_not_finite(rng):
    net, theta, x, y, mask = make_problem(rng, "elman", "tanh", T=4, B=3, I=1, H=2, O=1, L=1,
                                          loss="mse")  # fmt: skip
    y[0, 0, 0] = np.inf
    update = Update.make(ADAM, 1, 0.05, beta1=0.9, beta2=0.999, eps=1e-8, max_norm=1.0,
                         first=np.zeros_like(theta), second=np.zeros_like(theta))  # fmt: skip
    before = theta.copy()
    loss, _ = compiled.train_step(net, theta, x, y, mask, loss="mse", update=update)
    assert not np.isfinite(loss)
    np.testing.assert_array_equal(theta, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cell", "loss", "reduction", "truncate"),
                         [("lstm", "bce", "mean", None), ("gru", "softmax", "sum", 3)])  # fmt: skip
def test_results_depend_only_on_the_block_width(rng, dtype, cell, loss, reduction, truncate):
    """Blocks on threads are summed in block order: the same bits as one after another
    (which is why the backend may run a shape's lanes blocks either way, whichever is
    faster: ``compiled.threads_pay``): the loss and gradient, the states a pass ends in,
    an optimizer's update, a forward pass. (B = 44: a last block of 4 of 8 lanes.)"""
    net, theta, x, y, mask = make_problem(rng, cell, "sigmoid", T=5, B=44, I=2, H=4, O=3, L=2,
                                          loss=loss, dtype=dtype)  # fmt: skip
    options = {"loss": loss, "reduction": reduction, "truncate": truncate}
    ways = {"alone": Path(8, False, False), "threads": Path(8, False, True)}
    results = {}
    for name, path in ways.items():
        final = np.empty((2, 2, 44, 4), dtype)
        value, grad = compiled.loss_and_grad(net, theta, x, y, mask, **options, final=final,
                                             path=path)  # fmt: skip
        updated = theta.copy()
        update = Update.make(ADAM, 1, 0.05, beta1=0.9, beta2=0.999, eps=1e-8, max_norm=1.0,
                             first=np.zeros_like(theta), second=np.zeros_like(theta))  # fmt: skip
        stepped = compiled.train_step(net, updated, x, y, mask, **options, update=update,
                                      path=path)  # fmt: skip
        states = compiled.forward(net, theta, x, states=True, path=path)  # logits, h (and c)
        results[name] = (value, grad, final, stepped, updated, update.first, *states)
    for one, other in zip(results["alone"], results["threads"], strict=True):
        assert (one is None) == (other is None)
        if one is not None:
            np.testing.assert_array_equal(one, other)


def test_the_race_keeps_a_way_with_the_bits_of_the_other(monkeypatch):
    """The race itself, on a shape whose lanes blocks ``sizes.choose`` puts on threads:
    whichever way it keeps, training and forward give the serial way's bits."""
    if compiled.numba.get_num_threads() < 2:
        pytest.skip("one thread: no blocks on threads")
    monkeypatch.setattr(compiled, "_CALLS", {})
    rng = np.random.default_rng(5)
    net, theta, x, y, mask = make_problem(rng, "lstm", "sigmoid", T=6, B=200, I=2, H=4, O=3,
                                          L=1, loss="softmax", dtype=np.float32)  # fmt: skip
    raced = compiled._call(net, theta.dtype, 6, 200, None, 1, training=True)
    assert raced.way in ("threads", "blocks") and raced.settings[3] == 32
    serial = Path(32, False, False)
    for options in ({"loss": "softmax"}, {"loss": "softmax", "reduction": "sum"}):
        kept = compiled.loss_and_grad(net, theta, x, y, mask, **options)
        alone = compiled.loss_and_grad(net, theta, x, y, mask, **options, path=serial)
        assert kept[0] == alone[0]
        np.testing.assert_array_equal(kept[1], alone[1])
    logits, _, _ = compiled.forward(net, theta, x)
    np.testing.assert_array_equal(logits, compiled.forward(net, theta, x, path=serial)[0])


def test_lanes_blocks_run_on_threads_only_where_they_are_faster(monkeypatch):
    """A shape whose lanes blocks ``sizes.choose`` puts on threads runs that way only
    where the race says so (the same bits either way); paths given, and BLAS blocks on
    threads (other bits), are not raced."""
    if compiled.numba.get_num_threads() < 2:
        pytest.skip("one thread: no blocks on threads")
    raced = []
    lanes = network("lstm", "sigmoid", 1, 2, 4, 1)
    for verdict, way in ((True, "threads"), (False, "blocks")):
        monkeypatch.setattr(compiled, "_CALLS", {})
        race = lambda *runs, verdict=verdict: raced.append(1) or verdict  # noqa: E731
        monkeypatch.setattr(compiled, "threads_pay", race)
        for training in (True, False):
            call = compiled._call(lanes, np.dtype(np.float64), 5, 256, None, training=training)
            assert call.way == way and bool(call.shares) == verdict
            assert call.settings[5] == verdict  # (driver.SETTINGS: parallel)
    assert len(raced) == 4
    given = compiled._call(lanes, np.dtype(np.float64), 5, 256, Path(32, False, True))
    if compiled.blas.available():  # (BLAS blocks on threads need BLAS held to one thread)
        wide = network("gru", "sigmoid", 1, 2, 64, 1)
        blas_blocks = compiled._call(wide, np.dtype(np.float64), 5, 32, None, training=True)
        assert blas_blocks.way == "threads"
    assert given.way == "threads" and len(raced) == 4


def test_threads_pay_when_they_save_a_tenth(monkeypatch):
    """``threads_pay`` times each way on a clock the runs advance: best of three, once
    both are loaded; a call long on one thread (or whose corner, scaled up, is) goes on
    threads unraced."""
    now = [0.0]
    monkeypatch.setattr(compiled, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    runs = []

    def taking(*seconds):  # successive runs take these times (the last one thereafter)
        def run():
            runs.append(run)
            now[0] += seconds[min(len([r for r in runs if r is run]), len(seconds)) - 1]

        return run

    assert compiled.threads_pay(taking(1e-4), taking(5e-5))
    assert not compiled.threads_pay(taking(1e-4), taking(9.5e-5))
    assert compiled.threads_pay(taking(1e-4), taking(2e-4, 2e-4, 5e-5))  # (best of three)
    slow_threads = taking(1.0)
    assert compiled.threads_pay(taking(0.5, compiled._LONG_CALL * 2), slow_threads)
    assert slow_threads not in runs
    alone, corner = taking(1e-4), taking(1e-4)  # a long batch: its corner timed, scaled up
    assert compiled.threads_pay(alone, slow_threads, corner, compiled._LONG_CALL / 5e-5)
    assert alone not in runs and slow_threads not in runs and corner in runs
    assert not compiled.threads_pay(taking(1e-4), taking(9.5e-5), corner, 10.0)


def test_bad_shapes_and_names_are_refused(rng):
    """The kernels index by the shapes unchecked: a mismatch is an error, not a wrong read."""
    net, theta, x, y, mask = make_problem(rng, "elman", "sigmoid", T=4, B=2, I=1, H=2, O=1, L=1,
                                          loss="bce")  # fmt: skip
    bad = [
        {"y": np.concatenate([y, y], axis=2)},  # two outputs for a one-output network
        {"mask": mask[:2]},
        {"x": x[..., None]},
        {"theta": theta[:-1]},
    ]
    for change in bad:
        args = {"theta": theta, "x": x, "y": y, "mask": mask, **change}
        with pytest.raises(ValueError):
            compiled.loss_and_grad(net, args["theta"], args["x"], args["y"], args["mask"],
                                   loss="bce")  # fmt: skip
    with pytest.raises(ValueError, match="loss"):
        compiled.loss_and_grad(net, theta, x, y, mask, loss="nope")
    with pytest.raises(ValueError, match="reduction"):
        compiled.loss_and_grad(net, theta, x, y, mask, loss="bce", reduction="median")


def test_unknown_cell_codes_are_refused():
    """A cell the compiled kernels do not know is an error, never another cell's math."""
    from rnnlab.kernels.compiled import cells, driver

    net = network("elman", "tanh", 1, 1, 2, 1)
    assert 99 not in (cells.ELMAN, cells.GRU, cells.LSTM)
    plan = np.concatenate([[99, 1, 1, 1, 2, 1, 1, 0, 0, 0, 0], net.offsets.ravel(), net.head])
    settings = np.array([0, 0, 0, 32, 0, 0, 0])  # see driver.PLAN and driver.SETTINGS
    empty = np.zeros((0, 0, 0, 0))
    outputs = (empty, np.zeros(10_000), np.zeros((2, 1, 1)), empty, empty, np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="unknown cell"):
        driver.forward_blocks(np.zeros((2, 1, 1)), np.zeros(net.size), plan.astype(np.int64),
                              settings, *outputs)  # fmt: skip
    plan[:2] = cells.ELMAN, 99  # an unknown activation
    with pytest.raises(ValueError, match="unknown activation"):
        driver.forward_sequences(np.zeros((2, 1, 1)), np.zeros(net.size),
                                 plan.astype(np.int64), settings, *outputs)  # fmt: skip
    plan[1], settings[0] = 1, 99  # an unknown loss
    x, y, mask = np.zeros((2, 1, 1)), np.zeros((2, 1, 1)), np.ones((2, 1))
    with pytest.raises(ValueError, match="unknown loss"):
        driver.backprop_sequences(x, y, mask, np.zeros(net.size), plan.astype(np.int64),
                                  settings, np.zeros(10_000), empty, empty,
                                  np.zeros(0, np.int64), np.zeros(net.size),
                                  *compiled._NO_UPDATE[np.dtype(np.float64)], compiled._NO_STEPS,
                                  compiled._NO_RECORD)  # fmt: skip


def test_backend_selection():
    assert get_backend("numpy") is reference
    assert get_backend("numba") is compiled
    auto = get_backend("auto")  # the compiled kernels, falling back if they cannot compile
    assert auto.name == "numba" and get_backend("auto") is auto
    assert compiled.name == "numba" and reference.name == "numpy"


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("truncate", [None, 2])
def test_training_from_given_states_matches_reference(rng, cell, activation, truncate, path):
    """States carried in from an earlier chunk (``initial``): the same loss and gradient
    as the reference, h0 and c0 untouched; batches of 1-3 sequences too (they then take
    the blocks' way)."""
    for B, layers in ((5, 2), (2, 1)):
        net, theta, x, y, mask = make_problem(rng, cell, activation, T=6, B=B, I=2, H=4, O=2,
                                              L=layers, loss="bce")  # fmt: skip
        shape = (layers, B, 4)
        initial = (rng.normal(size=shape), rng.normal(size=shape) if net.spec.cell_state
                   else None)  # fmt: skip
        kw = {"loss": "bce", "truncate": truncate, "initial": initial}
        ref_value, ref_grad = reference.loss_and_grad(net, theta, x, y, mask, **kw)
        value, grad = compiled.loss_and_grad(net, theta, x, y, mask, path=path, **kw)
        assert relative_error(value, ref_value) <= 1e-12
        assert relative_error(grad, ref_grad) <= 1e-12
        for name, g in net.unpack(grad).items():
            if name.startswith(("h0", "c0")):
                assert not g.any(), name
        own_value, own_grad = compiled.loss_and_grad(net, theta, x, y, mask, path=path,
                                                     loss="bce", truncate=truncate)  # fmt: skip
        assert own_value != value and net.unpack(own_grad)["h0"].any()
        # the states the pass ends in: the forward pass's last ones, on both backends
        _, h, c = reference.forward(net, theta, x, states=True, initial=initial)
        for backend, options in ((compiled, {"path": path}), (reference, {})):
            final = np.full((2, layers, B, 4), np.nan)
            again, _ = backend.loss_and_grad(net, theta, x, y, mask, final=final, **kw, **options)
            assert again == value or relative_error(again, value) <= 1e-12
            assert relative_error(final[0], h[:, -1]) <= 1e-12
            if c is None:
                assert not final[1].any()
            else:
                assert relative_error(final[1], c[:, -1]) <= 1e-12


# -- one-hot inputs: a column of W_xh per step and sequence ---------------------------------


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize(("H", "B"), [(6, 40), (24, 10), (24, 40), (5, 3)])  # lanes, gathered,
def test_one_hot_inputs_take_columns_and_equal_numpy(cell, activation, H, B):  # BLAS, sequences
    """Inputs whose every row is one-hot or zero (text, tokens) skip the product over
    the vocabulary; the sums are the same, so the results equal numpy's, in both dtypes,
    and a batch with one row that is not one-hot takes the product and equals it too."""
    rng = np.random.default_rng(H * B)
    V, T, L = 11, 6, 2
    net = network(cell, activation, L, V, H, V)
    numba_backend = get_backend("numba")
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-4)):
        theta = (rng.normal(size=net.size) * 0.5).astype(dtype)
        x = np.eye(V, dtype=dtype)[rng.integers(0, V, size=(T, B))]
        x[T - 1, 0] = 0.0  # (a zero row: no token)
        y = np.eye(V, dtype=dtype)[rng.integers(0, V, size=(T, B))]
        mask = np.ones((T, B), dtype)
        dense = x.copy()
        dense[0, 0, 0] = 0.5  # not one-hot: the product over the vocabulary
        for inputs in (x, dense):
            for truncate in (None, 2):
                want = reference.loss_and_grad(net, theta, inputs, y, mask, loss="softmax",
                                               truncate=truncate)  # fmt: skip
                got = numba_backend.loss_and_grad(net, theta, inputs, y, mask, loss="softmax",
                                                  truncate=truncate)  # fmt: skip
                assert got[0] == pytest.approx(want[0], rel=tol)
                assert relative_error(got[1], want[1], 1e-3) < tol
            logits = numba_backend.forward(net, theta, inputs)[0]
            assert relative_error(logits, reference.forward(net, theta, inputs)[0], 1e-3) < tol


@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("truncate", [None, 2])
def test_blas_blocks_on_threads_match_reference(rng, cell, activation, truncate):
    """An even batch in two BLAS blocks, one per thread (what ``sizes.choose`` picks for
    training from ``blas_threads_min_hidden`` on), from given states and writing the final
    ones; an odd batch given that path runs as one block."""
    for B, dtype, tol in ((32, np.float64, 1e-12), (32, np.float32, 1e-4), (33, np.float64, 1e-12)):
        net, theta, x, y, mask = make_problem(rng, cell, activation, T=5, B=B, I=9, H=12, O=9,
                                              L=2, loss="softmax", dtype=dtype)  # fmt: skip
        path = Path(16, True, True)
        assert_same(net, theta, x, y, mask, tol=tol, path=path, loss="softmax", truncate=truncate)
        initial = (rng.normal(size=(2, 2, B, 12)) * 0.5).astype(dtype)
        finals = [np.zeros((2, 2, B, 12), dtype) for _ in range(2)]
        want = reference.loss_and_grad(net, theta, x, y, mask, loss="softmax",
                                       initial=tuple(initial), final=finals[0])  # fmt: skip
        got = compiled.loss_and_grad(net, theta, x, y, mask, loss="softmax", path=path,
                                     initial=tuple(initial), final=finals[1])  # fmt: skip
        assert relative_error(got[1], want[1], 1e-3) <= tol
        assert relative_error(finals[1], finals[0]) <= tol
    assert sizes.choose("gru", 64, 32, threads=2) == Path(16, True, True)
    assert sizes.choose("gru", 64, 33, threads=2).parallel is False
    assert sizes.choose("gru", 64, 32, threads=1).parallel is False


@pytest.mark.parametrize(("cell", "activation"), CELLS)
def test_forward_blocks_on_threads_match_reference(rng, cell, activation):
    """A forward pass of blocks on threads (BLAS blocks of half an even batch, or lanes
    blocks), each in its own share of the workspace with BLAS on one thread: logits and
    every state equal numpy's, from given states; an odd batch on the BLAS path runs as
    one block."""
    for B, dtype, tol in ((32, np.float64, 1e-12), (32, np.float32, 1e-4), (33, np.float64, 1e-12)):
        net, theta, x, _, _ = make_problem(rng, cell, activation, T=5, B=B, I=9, H=12, O=9,
                                           L=2, loss="softmax", dtype=dtype)  # fmt: skip
        initial = tuple((rng.normal(size=(2, 2, B, 12)) * 0.5).astype(dtype))
        want = reference.forward(net, theta, x, states=True, initial=initial)
        for path in (Path(16, True, True), Path(8, False, True)):
            got = compiled.forward(net, theta, x, states=True, initial=initial, path=path)
            for ours, theirs in zip(got, want, strict=True):
                assert (ours is None) == (theirs is None)
                if ours is not None:
                    assert relative_error(ours, theirs, 1e-3) <= tol
    # the forward pass takes two blocks from a per-cell amount of work per block and step
    assert sizes.choose("lstm", 64, 32, threads=2, training=False) == Path(16, True, True)
    assert sizes.choose("lstm", 16, 32, threads=2, training=False).parallel is False
    assert sizes.choose("elman", 256, 256, threads=2, training=False) == Path(128, True, True)
    assert sizes.choose("gru", 256, 256, threads=1, training=False).parallel is False
    assert sizes.choose("elman", 8, 256, threads=2, training=False) == Path(32, False, True)
    assert sizes.choose("elman", 2, 256, threads=2, training=False).parallel is False
    # thin blocks of a large gate matrix stay one block (BLAS's own threads)
    assert sizes.choose("lstm", 256, 32, threads=2).parallel is False
    assert sizes.choose("lstm", 256, 256, threads=2) == Path(128, True, True)
    assert sizes.choose("lstm", 128, 32, threads=2) == Path(16, True, True)


def test_blocks_on_threads_leave_blas_threads_as_they_were(rng):
    """BLAS on one thread holds for a call on threads only: OpenBLAS's count (set for
    the whole process by scipy's builds) is back to what it was after each call."""
    from rnnlab.kernels.compiled import blas

    if not blas.available():
        pytest.skip("scipy's BLAS is not OpenBLAS")
    net, theta, x, y, mask = make_problem(rng, "gru", "sigmoid", T=4, B=32, I=2, H=16, O=1, L=1,
                                          loss="bce")  # fmt: skip
    before = blas.limit(2)
    try:
        for _ in range(5):
            compiled.forward(net, theta, x, path=Path(16, True, True))
            compiled.loss_and_grad(net, theta, x, y, mask, loss="bce", path=Path(16, True, True))
            assert blas.limit(2) == 2
    finally:
        blas.limit(before)


def test_forward_on_threads_keeps_one_block_of_scratch_per_thread(rng):
    """A forward pass of many lanes blocks on threads reuses one block's scratch per
    thread: its workspace does not grow with the batch, and the outputs are right."""
    import numba

    net, theta, x, _, _ = make_problem(rng, "elman", "tanh", T=3, B=1000, I=2, H=5, O=2, L=1,
                                       loss="mse")  # fmt: skip
    path = Path(8, False, True)
    threads = numba.get_num_threads()
    small = compiled._call(net, theta.dtype, 3, 8 * threads, path).workspace
    assert compiled._call(net, theta.dtype, 3, 1000, path).workspace == small
    got = compiled.forward(net, theta, x, states=True, path=path)
    want = reference.forward(net, theta, x, states=True)
    assert relative_error(got[0], want[0]) <= 1e-12
    assert relative_error(got[1], want[1]) <= 1e-12


def test_read_only_arrays_run_the_kernels_already_compiled(rng):
    from rnnlab.kernels.compiled import driver

    def compiled_signatures():
        return sum(len(getattr(driver, f"{kind}_{way}").signatures)
                   for kind in ("forward", "backprop")
                   for way in ("blocks", "sequences"))  # fmt: skip

    net, theta, x, y, mask = make_problem(rng, "elman", "tanh", T=5, B=4, I=1, H=3, O=1, L=1,
                                          loss="bce")  # fmt: skip
    logits, _, _ = compiled.forward(net, theta, x)
    value, grad = compiled.loss_and_grad(net, theta, x, y, mask, loss="bce")
    known = compiled_signatures()
    for array in (x, y, mask):
        array.flags.writeable = False  # (a cached set, a memory-mapped file: numba types it apart)
    assert np.array_equal(compiled.forward(net, theta, x)[0], logits)
    again, again_grad = compiled.loss_and_grad(net, theta, x, y, mask, loss="bce")
    assert again == value and np.array_equal(again_grad, grad)
    assert compiled_signatures() == known
