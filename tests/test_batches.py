"""Padded arrays take a path of whole-array checks: the same Batch, and the same errors,
as the same sequences given as lists (the per-sequence path)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.sequences import make_batch

TARGETS = {"binary": 1, "real": 2, "class": 3, "one-hot": 3}


def _problem(seed: int, B: int, T: int, I: int, kind: str, with_mask: bool):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    X = rng.normal(size=(B, T, I))
    O = TARGETS[kind]
    if kind == "binary":
        Y = rng.integers(0, 2, size=(B, T, 1)).astype(float)
    elif kind == "real":
        Y = rng.normal(size=(B, T, O))
    elif kind == "class":
        Y = rng.integers(0, O, size=(B, T))
    else:
        Y = np.eye(O)[rng.integers(0, O, size=(B, T))]
    mask = rng.integers(0, 2, size=(B, T)).astype(float) if with_mask else None
    return X, Y, mask, lengths, O


def _lists(a, lengths):
    return None if a is None else [a[b, : lengths[b]].tolist() for b in range(len(lengths))]


def _both(X, Y, mask, lengths, I, O, kind, dtype=np.float64):
    targets = "class" if kind in ("class", "one-hot") else kind
    options = dict(input_size=I, output_size=O, targets=targets, dtype=dtype)
    arrays = make_batch(X, Y, lengths=lengths, mask=mask, **options)
    lists = make_batch(_lists(X, lengths), _lists(Y, lengths), mask=_lists(mask, lengths),
                       **options)  # fmt: skip
    return arrays, lists


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 6), T=st.integers(1, 7),
       I=st.integers(1, 3), kind=st.sampled_from(list(TARGETS)), with_mask=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_arrays_give_the_batch_lists_give(seed, B, T, I, kind, with_mask, dtype):
    X, Y, mask, lengths, O = _problem(seed, B, T, I, kind, with_mask)
    X[0, lengths[0] :] = np.nan  # padding is never read
    arrays, lists = _both(X, Y, mask, lengths, I, O, kind, dtype)
    assert not arrays.as_list and lists.as_list
    for name in ("x", "y", "mask", "lengths"):
        a, b = getattr(arrays, name), getattr(lists, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert arrays.x.flags.c_contiguous


@pytest.mark.parametrize(
    ("kind", "corrupt", "message"),
    [
        ("binary", lambda X, Y, m: X.__setitem__((2, 0, 0), np.inf), r"X\[2\] contains NaN"),
        ("real", lambda X, Y, m: Y.__setitem__((3, 0, 1), np.nan), r"Y\[3\] contains NaN"),
        ("binary", lambda X, Y, m: Y.__setitem__((1, 0, 0), 0.5), r"Y\[1\] holds 0.5"),
        ("class", lambda X, Y, m: Y.__setitem__((2, 0), 3), r"Y\[2\] must hold class indices"),
        ("class", lambda X, Y, m: Y.__setitem__((0, 0), -1), r"Y\[0\] must hold class indices"),
        ("one-hot", lambda X, Y, m: Y.__setitem__((1, 0, 0), 2.0), r"Y\[1\] must hold one-hot"),
        ("binary", lambda X, Y, m: m.__setitem__((2, 0), -1.0), "mask values must be non-neg"),
    ],
)
def test_arrays_refuse_what_lists_refuse_with_the_same_message(kind, corrupt, message):
    X, Y, mask, lengths, O = _problem(0, 4, 5, 2, kind, True)
    if kind == "class":
        Y = Y.astype(float)
    corrupt(X, Y, mask)
    targets = "class" if kind in ("class", "one-hot") else kind
    options = dict(input_size=2, output_size=O, targets=targets)
    with pytest.raises(ValueError, match=message):
        make_batch(X, Y, lengths=lengths, mask=mask, **options)
    with pytest.raises(ValueError, match=message):
        make_batch(_lists(X, lengths), _lists(Y, lengths), mask=_lists(mask, lengths), **options)


def test_arrays_that_do_not_match_x_are_named():
    X = np.zeros((3, 4))
    options = dict(input_size=1, output_size=1)
    with pytest.raises(ValueError, match="Y has 2 sequences but X has 3"):
        make_batch(X, np.zeros((2, 4)), **options)
    with pytest.raises(ValueError, match="X has 4 steps but Y has 5"):
        make_batch(X, np.zeros((3, 5)), **options)
    with pytest.raises(ValueError, match="mask has 2 sequences but X has 3"):
        make_batch(X, np.zeros((3, 4)), mask=np.ones((2, 4)), **options)
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.3"):
        make_batch(X, np.zeros((3, 3)), lengths=[4, 1, 1], **options)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 6), T=st.integers(1, 7),
       I=st.integers(1, 3), kind=st.sampled_from(["binary", "real"]),
       given_lengths=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       source=st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_the_compiled_pass_gives_the_numpy_batch(seed, B, T, I, kind, given_lengths, dtype,
                                                 source):  # fmt: skip
    pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab.sequences import _compiled_padded_batch, _numpy_padded_batch

    X, Y, _, lengths, O = _problem(seed, B, T, I, kind, False)
    X, Y = X.astype(source), Y.astype(source)
    if given_lengths:
        X[0, lengths[0] :] = np.nan  # padding is never read
    arguments = (X, Y, None, I, O, lengths if given_lengths else None, kind, dtype)
    fast, numpy = _compiled_padded_batch(*arguments), _numpy_padded_batch(*arguments)
    assert fast is not None
    for name in ("x", "y", "mask", "lengths"):
        a, b = getattr(fast, name), getattr(numpy, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.flags.c_contiguous, name
        np.testing.assert_array_equal(a, b, err_msg=name)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 6), T=st.integers(1, 7),
       O=st.integers(1, 3), sigmoid=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_the_compiled_way_back_gives_the_numpy_outputs(seed, B, T, O, sigmoid, dtype):
    """Outputs to the user's layout: the compiled pass equals numpy's (bit for bit without
    the sigmoid; with it, to a few units in the last place)."""
    pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab.functional import sigmoid as numpy_sigmoid
    from rnnlab.sequences import _compiled_batch_first

    rng = np.random.default_rng(seed)
    values = (rng.standard_normal((T, B, O)) * 8).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B).astype(np.int64)
    fast = _compiled_batch_first(values, lengths, sigmoid)
    inside = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    numpy = np.swapaxes(numpy_sigmoid(values) if sigmoid else values, 0, 1) * inside[..., None]
    assert fast.dtype == values.dtype and fast.shape == (B, T, O)
    if sigmoid:
        np.testing.assert_allclose(fast, numpy, rtol=4 * np.finfo(dtype).eps, atol=0)
    else:
        np.testing.assert_array_equal(fast, numpy)
    assert not fast[~inside].any()


#: padded arrays of 4 sequences of 5 steps spoiled in place, and what the checks say
_CORRUPTIONS = [
    (lambda X, Y, L: X.__setitem__((2, 0, 0), np.inf), r"X\[2\] contains NaN"),
    (lambda X, Y, L: Y.__setitem__((3, 0, 0), np.nan), r"Y\[3\] contains NaN"),
    (lambda X, Y, L: Y.__setitem__((1, 0, 0), 0.5), r"Y\[1\] holds 0.5"),
    (lambda X, Y, L: L.__setitem__(1, 0), r"lengths must lie in 1\.\.5"),
    (lambda X, Y, L: L.__setitem__(1, 6), r"lengths must lie in 1\.\.5"),
]


@pytest.mark.parametrize(("corrupt", "message"), _CORRUPTIONS)
def test_the_compiled_pass_leaves_bad_arrays_to_the_numpy_checks(corrupt, message):
    pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab.sequences import _compiled_padded_batch

    X, Y, _, lengths, _ = _problem(0, 4, 5, 2, "binary", False)
    lengths[:] = 5
    corrupt(X, Y, lengths)
    arguments = (X, Y, None, 2, 1, lengths, "binary", np.float64)
    assert _compiled_padded_batch(*arguments) is None
    with pytest.raises(ValueError, match=message):
        make_batch(X, Y, lengths=lengths, input_size=2, output_size=1)


def test_strided_arrays_give_the_batch_of_their_copies():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 8, 2)), rng.integers(0, 2, size=(3, 8, 1)).astype(float)
    strided = make_batch(X[:, ::2], Y[:, ::2], input_size=2, output_size=1)
    copied = make_batch(X[:, ::2].copy(), Y[:, ::2].copy(), input_size=2, output_size=1)
    for name in ("x", "y", "mask", "lengths"):
        np.testing.assert_array_equal(getattr(strided, name), getattr(copied, name))


def test_make_batch_refuses_a_batch():
    """A Batch is a named tuple: given to make_batch it would read as five sequences."""
    batch = make_batch([[0, 1], [1]], [[1, 0], [0]], input_size=1, output_size=1)
    with pytest.raises(ValueError, match="already a Batch"):
        make_batch(batch, input_size=1, output_size=1)


#: (cell, H, B, way): each way the compiled driver runs a training batch: one sequence
#: at a time, lanes, lanes blocks on threads, one BLAS block, BLAS blocks on threads
_WAYS = [("elman", 3, 3, "sequences"), ("gru", 2, 32, "blocks"), ("lstm", 4, 64, "threads"),
         ("elman", 16, 32, "blocks"), ("gru", 16, 32, "threads")]  # fmt: skip


@pytest.fixture
def threads_where_chosen(monkeypatch):
    """Lanes blocks on threads wherever ``sizes.choose`` takes them: the backend
    otherwise races them against one thread, shape by shape (``compiled.threads_pay``),
    and the faster runs."""
    compiled = pytest.importorskip("rnnlab.kernels.compiled")
    monkeypatch.setattr(compiled, "threads_pay", lambda *runs: True)
    for cache in ("_CALLS", "_TRAINERS", "_PADDED_FORWARD"):
        monkeypatch.setattr(compiled, cache, {})


def _check_way(model, T, B, way, training) -> bool:
    """The batch runs ``way`` (on one thread, or without BLAS, the threads' ways are
    blocks); whether its blocks run on threads (padded arrays then take the Batch way:
    each thread's share would convert them into the same work)."""
    from rnnlab.kernels import compiled

    net = model.network
    call = compiled._call(net, model.params.flat.dtype, T, B, None, training=training)
    threads = compiled.numba.get_num_threads() > 1 and compiled.blas.available()
    assert call.way == (way if threads or way != "threads" else "blocks")
    assert bool(call.shares) == (call.way == "threads")
    return call.way == "threads"


def _no_batch(*args, **kwargs):
    raise AssertionError("took the Batch way")


@pytest.mark.parametrize(("cell", "H", "B", "way"), _WAYS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("loss", "reduction", "truncate"),
                         [("bce", "mean", None), ("mse", "sum", 7)])  # fmt: skip
def test_padded_arrays_train_in_the_compiled_call_as_their_batch(cell, H, B, way, dtype, loss,
                                                                 reduction, truncate, monkeypatch,
                                                                 threads_where_chosen):  # fmt: skip
    """``loss_and_grad`` of padded arrays converts them inside the compiled call: the
    loss and gradient of the Batch that make_batch makes of them, bit for bit (and NaN
    in the padding is never read)."""
    compiled = pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab import RNN

    T, I, O = 7, 2, 1 if loss == "bce" else 2
    model = RNN(I, H, O, cell=cell, loss=loss, dtype=dtype, seed=1, backend="numba")
    threaded = _check_way(model, T, B, way, training=True)
    X, Y, _, lengths, _ = _problem(3, B, T, I, "binary" if loss == "bce" else "real", False)
    Y = Y[..., :O].copy()
    lengths[0] = T - 2  # (padding everywhere: the pass runs to the longest, T - 1 or less)
    X, Y = X.astype(dtype), Y.astype(dtype)
    X[0, lengths[0] :] = np.nan
    direct = compiled.loss_and_grad_padded(
        model.network, model.params.flat, X, Y, lengths, loss=loss, reduction=reduction,
        truncate=truncate,
    )  # fmt: skip
    assert (direct is None) == threaded  # (the arrays took the compiled conversion)
    batch = model.batch(X, Y, lengths=lengths)
    expected, expected_grads = model.loss_and_grad(batch, reduction=reduction, truncate=truncate)
    if not threaded:
        monkeypatch.setattr(model, "batch", _no_batch)
    value, grads = model.loss_and_grad(X, Y, lengths=lengths, reduction=reduction,
                                       truncate=truncate)  # fmt: skip
    assert value == expected
    if not threaded:
        assert direct[0] == expected
    np.testing.assert_array_equal(grads.flat, expected_grads.flat)
    if not threaded:
        np.testing.assert_array_equal(direct[1], expected_grads.flat)


@pytest.mark.parametrize(("corrupt", "message"), _CORRUPTIONS)
def test_padded_arrays_that_fail_a_check_in_the_compiled_call_are_named(corrupt, message):
    compiled = pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab import RNN

    model = RNN(2, 3, 1, backend="numba")
    X, Y, _, lengths, _ = _problem(0, 4, 5, 2, "binary", False)
    lengths[:] = 5
    corrupt(X, Y, lengths)
    assert compiled.loss_and_grad_padded(model.network, model.params.flat, X, Y, lengths,
                                         loss="bce") is None  # fmt: skip
    with pytest.raises(ValueError, match=message):
        model.loss_and_grad(X, Y, lengths=lengths)


def test_padded_arrays_of_other_kinds_take_the_batch_way():
    """Other dtypes, strided or read-only arrays, lists of lengths, class targets and
    truncations shorter than the array are converted by make_batch: the same loss and
    gradient."""
    compiled = pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab import RNN

    model = RNN(2, 3, 1, backend="numba", dtype="float32")
    X, Y, _, lengths, _ = _problem(0, 4, 6, 2, "binary", False)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    value, _ = model.loss_and_grad(X32, Y32, lengths=lengths)
    theta = model.params.flat
    frozen = X32.copy()
    frozen.flags.writeable = False
    for other in [(X, Y32, lengths), (np.asfortranarray(X32), Y32, lengths),
                  (X32, Y32, list(lengths)), (frozen, Y32, lengths),
                  (X32, Y32, np.stack([lengths, lengths], axis=1)[:, 0])]:  # fmt: skip
        assert compiled.loss_and_grad_padded(model.network, theta, *other, loss="bce") is None
    assert model.loss_and_grad(frozen, Y32, lengths=lengths)[0] == value
    assert compiled.loss_and_grad_padded(model.network, theta, X32, Y32, lengths, loss="bce",
                                         truncate=5) is None  # fmt: skip
    cut = model.loss_and_grad(model.batch(X32, Y32, lengths=lengths), truncate=5)[1]
    np.testing.assert_array_equal(model.loss_and_grad(X32, Y32, lengths=lengths,
                                                      truncate=5)[1].flat, cut.flat)  # fmt: skip
    assert model.loss_and_grad(X, Y, lengths=lengths)[0] == pytest.approx(value, rel=1e-6)
    assert model.loss_and_grad(X32, Y32, lengths=list(lengths))[0] == value
    assert model.loss_and_grad(np.asfortranarray(X32), Y32, lengths=lengths)[0] == value
    softmax = RNN(2, 3, 3, loss="softmax", backend="numba")
    classes = np.random.default_rng(0).integers(0, 3, size=(4, 6))
    targets = classes.astype(float)
    assert compiled.loss_and_grad_padded(softmax.network, softmax.params.flat, X, targets, None,
                                         loss="softmax") is None  # fmt: skip
    assert np.isfinite(softmax.loss_and_grad(X, classes, lengths=lengths)[0])


#: (cell, H, B, way): each way the compiled driver runs a forward pass: one sequence at a
#: time, lanes, lanes blocks on threads, one BLAS block, BLAS blocks on threads
_FORWARD_WAYS = [("lstm", 3, 3, "sequences"), ("gru", 2, 32, "blocks"), ("gru", 4, 64, "threads"),
                 ("lstm", 16, 32, "blocks"), ("elman", 64, 32, "threads")]  # fmt: skip


@pytest.mark.parametrize(("cell", "H", "B", "way"), _FORWARD_WAYS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["bce", "mse", "softmax"])
def test_padded_arrays_run_forward_in_the_compiled_call_as_their_batch(
    cell, H, B, way, dtype, loss, monkeypatch, threads_where_chosen
):
    """``logits``, ``predict_proba`` and ``predict`` of padded arrays convert them inside
    the compiled call: the outputs of the Batch way, bit for bit, trimmed to the longest
    length."""
    compiled = pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab import RNN
    from rnnlab.sequences import unbatch

    T, I, O = 7, 2, 1 if loss == "bce" else 2
    model = RNN(I, H, O, cell=cell, loss=loss, dtype=dtype, seed=1, backend="numba")
    threaded = _check_way(model, T, B, way, training=False)
    X, _, _, lengths, _ = _problem(4, B, T, I, "binary", False)
    lengths[0] = T - 2
    lengths = np.minimum(lengths, T - 1)  # (the longest is shorter than the array)
    X = X.astype(dtype)
    X[0, lengths[0] :] = np.nan
    for squash in (False, True):
        found = compiled.forward_padded(model.network, model.params.flat, X, lengths, squash)
        assert (found is None) == threaded
    batch = model.batch(X, lengths=lengths)
    logits, _, _ = model._forward(batch.x)
    logits_first = unbatch(logits, batch)
    expected = model.predict_proba(X, lengths=lengths)  # (softmax: the Batch way)
    with monkeypatch.context() as patch:  # predict the Batch way
        patch.setattr(model, "_forward_padded", lambda *args, **kwargs: None)
        bits = {t: model.predict(X, lengths=lengths, threshold=t) for t in (0.0, 0.5, 1.0)}
    if loss != "softmax":
        assert np.array_equal(expected, unbatch(logits, batch, sigmoid=loss == "bce"))
        if not threaded:
            monkeypatch.setattr(model, "batch", _no_batch)
    got = model.logits(X, lengths=lengths)
    assert got.shape == (B, T - 1, O) and got.flags.c_contiguous
    np.testing.assert_array_equal(got.reshape(logits_first.shape), logits_first)
    np.testing.assert_array_equal(model.predict_proba(X, lengths=lengths), expected)
    if not threaded:  # (softmax too: its bits come from the logits)
        monkeypatch.setattr(model, "batch", _no_batch)
    for threshold in (0.0, 0.5, 1.0):  # predict: the same, thresholded (0 past each length)
        got = model.predict(X, lengths=lengths, threshold=threshold)
        assert got.dtype == bits[threshold].dtype
        np.testing.assert_array_equal(got, bits[threshold])


def test_padded_arrays_that_fail_a_check_in_the_compiled_forward_are_named():
    compiled = pytest.importorskip("rnnlab.kernels.compiled")
    from rnnlab import RNN

    model = RNN(2, 3, 1, backend="numba")
    X, _, _, lengths, _ = _problem(0, 4, 5, 2, "binary", False)
    X[2, lengths[2] - 1, 0] = np.nan
    assert compiled.forward_padded(model.network, model.params.flat, X, lengths, True) is None
    with pytest.raises(ValueError, match=r"X\[2\] contains NaN"):
        model.predict_proba(X, lengths=lengths)
    X[2, lengths[2] - 1, 0] = 0.0
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.5"):
        model.logits(X, lengths=lengths + 5)
    model.params["W_hh"][0, 0] = np.inf
    assert compiled.forward_padded(model.network, model.params.flat, X, lengths, True) is None
    with pytest.raises(ValueError, match="weights are not all finite"):
        model.predict_proba(X, lengths=lengths)
