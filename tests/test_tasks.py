"""The task registry: data shapes, masks, determinism, each task's rule checked against an
independent implementation, metrics, and errors."""

import dataclasses
import itertools
import random
import re
from functools import reduce

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlab import RNN, RNNConfig
from rnnlab.functional import sigmoid
from rnnlab.tasks import TASKS, Task, TrainDefaults, get_task, shift_data
from rnnlab.tasks.automata import DFA

NAMES = list(TASKS)
seeds = st.integers(0, 2**32 - 1)


def lengths_for(task, lo_extra: int, span: int) -> tuple[int, int]:
    """A length range that has strings of every kind the task makes."""
    lo = task.min_length + lo_extra
    if task.name.startswith("tomita"):
        return lo, lo + span + 4  # e.g. Tomita 7 rejects no string shorter than 1010
    return lo, lo + span + (task.name == "dyck1")  # balanced strings have even lengths


def sequences(batch, b):
    """Sequence ``b`` unpadded: x (T_b, I), y (T_b, O), mask (T_b,)."""
    n = batch.lengths[b]
    return batch.x[:n, b], batch.y[:n, b], batch.mask[:n, b]


# -- registry -------------------------------------------------------------------------


def test_registry_names_and_order():
    assert NAMES == [
        "shift", "copy", "parity", "binary_addition", "adding",
        *(f"tomita{g}" for g in range(1, 8)),
        "dyck1",
    ]  # fmt: skip
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name
        assert get_task(name) is task


@pytest.mark.parametrize("name", NAMES)
def test_task_attributes_and_defaults(name):
    task = TASKS[name]
    assert task.description and "\n" not in task.description
    assert task.loss in ("bce", "softmax", "mse")
    assert (task.tolerance is not None) == (task.loss == "mse")
    assert 0 < task.solved_at <= 1
    d = task.defaults
    assert isinstance(d, TrainDefaults)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.lr = 1.0
    assert d.cell == "elman" and d.num_layers == 1 and d.optimizer == "adam"
    assert d.activation in ("sigmoid", "tanh", "relu")
    assert task.check_lengths(d.train_lengths) == d.train_lengths
    assert task.check_lengths(d.test_lengths) == d.test_lengths
    assert d.test_lengths[1] >= d.train_lengths[1]
    assert min(d.hidden_size, d.batch_size, d.max_steps, d.n_train, d.n_test) >= 1
    RNN(task.input_size, d.hidden_size, task.output_size, activation=d.activation, loss=task.loss)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task 'shfit'; choose one of shift, copy, "):
        get_task("shfit")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("shift", {"k": 2}, "no parameter k; its parameters: delay"),
        ("shift", {"delay": 0}, "delay must be at least 1"),
        ("shift", {"delay": 1.5}, "delay must be an integer"),
        ("copy", {"symbols": 0}, "symbols must be at least 1"),
        ("copy", {"alphabet": 1}, "alphabet must be at least 2"),
        ("adding", {"tolerance": 0}, "tolerance"),
        ("adding", {"solved_at": 1.5}, "solved_at"),
        ("parity", {"delay": 1}, "no parameter delay; its parameters: final, train_lengths"),
        ("tomita3", {"grammar": 4}, "no parameter grammar"),
        ("dyck1", {"max_depth": 0}, "max_depth must be at least 1"),
    ],
)
def test_bad_parameters_are_clear_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        get_task(name, **params)


def test_parameters_change_the_task():
    task = get_task("shift", delay=3)
    assert task.delay == 3 and task.params == {"delay": 3}
    assert TASKS["shift"].delay == 1  # the registry's task is untouched
    assert get_task("copy", symbols=2, delay=4).input_size == 4 + 2
    assert get_task("adding", tolerance=0.1).tolerance == 0.1
    assert get_task("dyck1", max_depth=7).max_depth == 7


@pytest.mark.parametrize("name", NAMES)
def test_every_task_takes_its_data_sizes(name):
    """Lengths fixed or ranged, given as a length, a pair or text; set sizes; kept by
    with_params; what generate draws by default; refused with the parameter's name."""
    task = TASKS[name]
    lo = max(task.min_length, 4)  # (tomita2 has strings of even lengths only)
    sized = get_task(name, train_lengths=lo + 2, test_lengths=f"{lo + 4}-{lo + 9}", n_train=7,
                     n_test=5)  # fmt: skip
    d = sized.defaults
    assert (d.train_lengths, d.test_lengths, d.n_train, d.n_test) == (
        (lo + 2, lo + 2), (lo + 4, lo + 9), 7, 5)  # fmt: skip
    unsized = {"train_lengths": None, "test_lengths": None, "n_train": None, "n_test": None}
    assert dataclasses.replace(d, **unsized) == dataclasses.replace(task.defaults, **unsized)
    assert get_task(name, train_lengths=[lo, lo + 1]).defaults.train_lengths == (lo, lo + 1)
    batch = sized.generate(4, np.random.default_rng(0))
    assert list(batch.lengths) == [lo + 2] * 4
    again = get_task(name, **sized.params)  # (what config.json records, read back)
    assert again.defaults == d and repr(again) == repr(sized)
    assert TASKS[name].defaults == task.defaults  # the registry's task is untouched
    for bad, message in [({"train_lengths": task.min_length - 1}, "train_lengths must be at"),
                         ({"test_lengths": (lo + 3, lo)}, "the longest of test_lengths"),
                         ({"train_lengths": "5-x"}, "a length or LO-HI"),
                         ({"n_train": 0}, "n_train must be at least 1")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            get_task(name, **bad)


def test_sizes_survive_other_parameter_changes():
    task = get_task("copy", train_lengths=40, delay=3).with_params(alphabet=8)
    assert task.defaults.train_lengths == (40, 40) and task.alphabet == 8
    assert task.parameters()["delay"] == 3 and task.parameters()["n_test"] == 500
    # a task that tests at its training lengths keeps doing so; others keep their tests
    assert get_task("adding", train_lengths=100).defaults.test_lengths == (100, 100)
    assert get_task("parity", train_lengths=10).defaults.test_lengths == (21, 50)


# -- generate: shapes, masks, determinism ---------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds, lo_extra=st.integers(0, 6), span=st.integers(0, 8), n=st.integers(1, 12))
def test_generate_shapes_and_masks(name, seed, lo_extra, span, n):
    task = TASKS[name]
    lo, hi = lengths_for(task, lo_extra, span)
    batch = task.generate(n, np.random.default_rng(seed), (lo, hi))
    T = int(batch.lengths.max())
    assert batch.x.shape == (T, n, task.input_size)
    assert batch.y.shape == (T, n, task.output_size)
    assert batch.mask.shape == (T, n) and batch.lengths.shape == (n,)
    assert batch.as_list is True
    assert np.all((batch.lengths >= lo) & (batch.lengths <= hi))
    padding = np.arange(T)[:, None] >= batch.lengths[None, :]  # (T, B)
    assert not batch.x[padding].any() and not batch.y[padding].any()
    assert not batch.mask[padding].any()
    assert set(np.unique(batch.mask)) <= {0.0, 1.0}
    assert np.all(batch.mask.sum(axis=0) >= 1)  # every sequence has a scored step
    if task.loss == "softmax":
        scored = batch.mask > 0
        assert np.all(batch.y[scored].sum(axis=-1) == 1) and set(np.unique(batch.y)) <= {0, 1}


@pytest.mark.parametrize("name", NAMES)
def test_generate_is_deterministic_and_uses_only_its_rng(name):
    task = TASKS[name]
    np.random.seed(0)  # noqa: NPY002 - the legacy global state must stay untouched
    random.seed(0)
    global_np, global_py = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    a = task.generate(20, np.random.default_rng(7))
    b = task.generate(20, np.random.default_rng(7))
    c = task.generate(20, np.random.default_rng(8))
    for field in ("x", "y", "mask", "lengths"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert not (a.x.shape == c.x.shape and np.array_equal(a.x, c.x))
    assert np.array_equal(np.random.get_state()[1], global_np)  # noqa: NPY002
    assert random.getstate() == global_py
    d = task.defaults
    assert np.all((a.lengths >= d.train_lengths[0]) & (a.lengths <= d.train_lengths[1]))


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ((5, 4), r"lengths\[1\] must be at least 5"),
        ((0, 4), r"lengths\[0\] must be at least 1"),
        ((2.0, 4), "must be an integer"),
        (5, "pair"),
        ((1, 2, 3), "pair"),
    ],
)
def test_generate_rejects_bad_lengths(lengths, message):
    with pytest.raises(ValueError, match=message):
        TASKS["parity"].generate(3, np.random.default_rng(0), lengths)


def test_generate_rejects_bad_n_rng_and_task_specific_lengths():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n must be at least 1"):
        TASKS["shift"].generate(0, rng)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        TASKS["shift"].generate(3, 0)
    with pytest.raises(ValueError, match=r"lengths\[0\] must be at least 7"):
        TASKS["copy"].generate(3, rng, (6, 10))  # 3 symbols, delimiter, 3 recalls
    with pytest.raises(ValueError, match="even lengths"):
        TASKS["dyck1"].generate(3, rng, (5, 5))
    with pytest.raises(ValueError, match=r"no strings in the language with lengths 3\.\.3"):
        TASKS["tomita2"].generate(4, rng, (3, 3))  # (10)* has only even lengths


# -- each task follows its rule (independent implementations) -------------------------


@given(seed=seeds, delay=st.integers(1, 4), n=st.integers(1, 10))
def test_shift_targets(seed, delay, n):
    task = get_task("shift", delay=delay)
    batch = task.generate(n, np.random.default_rng(seed), (1, 12))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        bits = [int(v) for v in x[:, 0]]
        expected = [bits[t - delay] if t >= delay else 0 for t in range(len(bits))]
        assert [int(v) for v in y[:, 0]] == expected
        assert set(bits) <= {0, 1} and mask.all()


def test_shift_data_is_the_notebooks_data():
    X, y = shift_data(300, np.random.default_rng(5))
    assert {len(s) for s in X} == set(range(4, 11))
    for seq, target in zip(X, y, strict=True):
        assert set(seq) <= {0, 1} and target == [0, *seq[:-1]]
    again, _ = shift_data(300, np.random.default_rng(5))
    assert again == X
    batch = TASKS["shift"].generate(300, np.random.default_rng(5), (4, 10))  # the same draws
    assert [batch.x[: len(s), b, 0].tolist() for b, s in enumerate(X)] == X


@given(seed=seeds, symbols=st.integers(1, 4), alphabet=st.integers(2, 6), n=st.integers(1, 8))
def test_copy_targets(seed, symbols, alphabet, n):
    task = get_task("copy", symbols=symbols, alphabet=alphabet)
    lo = task.min_length
    batch = task.generate(n, np.random.default_rng(seed), (lo, lo + 12))
    blank, delimiter = alphabet, alphabet + 1
    for b in range(n):
        x, y, mask = sequences(batch, b)
        assert np.all(x.sum(axis=1) == 1)  # one-hot inputs
        tokens = list(x.argmax(axis=1))
        T, delay = len(tokens), len(tokens) - 2 * symbols - 1
        remembered = tokens[:symbols]
        assert all(t < alphabet for t in remembered)
        assert tokens[symbols:] == [blank] * delay + [delimiter] + [blank] * symbols
        assert list(np.flatnonzero(mask)) == list(range(T - symbols, T))
        assert list(y[T - symbols :].argmax(axis=1)) == remembered
        assert not y[: T - symbols].any()


@given(seed=seeds, n=st.integers(1, 10))
def test_parity_targets(seed, n):
    batch = TASKS["parity"].generate(n, np.random.default_rng(seed), (1, 15))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        bits = [int(v) for v in x[:, 0]]
        expected = [reduce(lambda a, c: a ^ c, bits[: t + 1]) for t in range(len(bits))]
        assert [int(v) for v in y[:, 0]] == expected and mask.all()


@given(seed=seeds, n=st.integers(1, 10))
def test_parity_with_one_label_at_the_end(seed, n):
    task = get_task("parity", final=True)
    batch = task.generate(n, np.random.default_rng(seed), (1, 15))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        assert list(np.flatnonzero(mask)) == [len(x) - 1]
        assert y[-1, 0] == sum(int(v) for v in x[:, 0]) % 2
    assert task.defaults.train_lengths == (1, 40) and task.defaults.test_lengths == (41, 500)
    every = task.every_string()  # labelled at the end too
    assert every.mask.sum() == 2**11 - 2


@given(seed=seeds, n=st.integers(1, 10))
def test_binary_addition_targets(seed, n):
    batch = TASKS["binary_addition"].generate(n, np.random.default_rng(seed), (2, 40))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        T = len(x)
        a = sum(int(bit) << t for t, bit in enumerate(x[:, 0]))
        c = sum(int(bit) << t for t, bit in enumerate(x[:, 1]))
        assert not x[-1].any()  # the carry-out step
        total = sum(int(bit) << t for t, bit in enumerate(y[:, 0]))
        assert total == a + c and a + c < 2**T and mask.all()


@given(seed=seeds, n=st.integers(1, 10))
def test_adding_targets(seed, n):
    batch = TASKS["adding"].generate(n, np.random.default_rng(seed), (2, 30))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        T = len(x)
        marked = np.flatnonzero(x[:, 1])
        assert len(marked) == 2 and set(np.unique(x[:, 1])) <= {0.0, 1.0}
        assert marked[0] < (T + 1) // 2 <= marked[1]  # one in each half
        assert np.all((x[:, 0] >= 0) & (x[:, 0] < 1))
        assert list(np.flatnonzero(mask)) == [T - 1]
        assert y[-1, 0] == x[marked[0], 0] + x[marked[1], 0]


@given(seed=seeds, n=st.integers(1, 10))
def test_adding_as_hochreiter_and_schmidhuber_scaled_it(seed, n):
    task = get_task("adding", scaled=True)
    batch = task.generate(n, np.random.default_rng(seed), (2, 30))
    for b in range(n):
        x, y, _ = sequences(batch, b)
        marked = np.flatnonzero(x[:, 1])
        assert np.all((x[:, 0] >= -1) & (x[:, 0] < 1))
        assert y[-1, 0] == pytest.approx(0.5 + (x[marked[0], 0] + x[marked[1], 0]) / 4)
        assert 0 <= y[-1, 0] < 1


def test_adding_solved_by_mean_squared_error():
    task = get_task("adding", solved_mse=0.01)
    assert task.is_solved({"loss": 0.009, "sequence_accuracy": 0.2})
    assert not task.is_solved({"loss": 0.011, "sequence_accuracy": 1.0})
    assert TASKS["adding"].is_solved({"loss": 0.5, "sequence_accuracy": 0.995})
    with pytest.raises(ValueError, match="solved_mse must be a positive number"):
        get_task("adding", solved_mse=0)


@given(seed=seeds, n=st.integers(1, 6))
def test_copy_in_the_papers_form(seed, n):
    """A blank class due before the recall, every step scored; the baseline S ln A / T."""
    task = get_task("copy", symbols=4, alphabet=5, blank_class=True)
    assert task.output_size == 6
    batch = task.generate(n, np.random.default_rng(seed), (20, 30))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        T = len(x)
        assert mask.all() and np.all(y.sum(axis=1) == 1)
        assert list(y[: T - 4].argmax(axis=1)) == [5] * (T - 4)
        assert list(y[T - 4 :].argmax(axis=1)) == list(x[:4].argmax(axis=1))
    # the baseline's loss, computed: blank with certainty, then uniform over the symbols
    T = 25
    batch = task.generate(50, np.random.default_rng(seed), (T, T))
    guess = np.where(batch.y[..., 5:6] == 1, 1.0, 0.0)  # (T, B, 1): blank where due
    probs = np.concatenate([np.broadcast_to((1 - guess) / 5, (*guess.shape[:2], 5)), guess], -1)
    loss = -(np.log(np.clip(probs, 1e-300, 1)) * batch.y).sum(-1).mean()
    assert loss == pytest.approx(task.baseline_loss(T))
    assert task.baseline_loss(T) == pytest.approx(4 * np.log(5) / T)
    # symbol accuracy counts the recall steps alone: the blank-then-guess net (its guess
    # symbol 0) is right at every blank and at the recalls whose symbol is 0
    guessing = probs + np.where(np.arange(6) == 0, 1e-9, 0.0)  # ties go to symbol 0
    metrics = task.evaluate(guessing, batch)
    due = batch.y[T - 4 :].argmax(-1)  # (4, B)
    assert metrics["symbol_accuracy"] == pytest.approx((due == 0).mean())
    assert metrics["step_accuracy"] == pytest.approx(((T - 4) + 4 * (due == 0).mean()) / T)


# Weiss et al. (2018)'s definition of Tomita 3's complement: an odd run of 1s and,
# anywhere later, an odd run of 0s (runs maximal)
NOT_TOMITA_3 = re.compile("((0|1)*0)*1(11)*(0(0|1)*1)*0(00)*(1(0|1)*)*$")
TOMITA = {
    1: lambda w: re.fullmatch("1*", w) is not None,
    2: lambda w: re.fullmatch("(10)*", w) is not None,
    3: lambda w: NOT_TOMITA_3.match(w) is None,
    4: lambda w: "000" not in w,
    5: lambda w: w.count("0") % 2 == 0 and w.count("1") % 2 == 0,
    6: lambda w: (w.count("0") - w.count("1")) % 3 == 0,
    7: lambda w: re.fullmatch("0*1*0*1*", w) is not None,
}


def tomita3_by_runs(w: str) -> bool:
    """A third definition of Tomita 3, by maximal runs."""
    runs = [(k, len(list(g))) for k, g in itertools.groupby(w)]
    seen_odd_ones = False
    for symbol, size in runs:
        if symbol == "0" and size % 2 and seen_odd_ones:
            return False
        seen_odd_ones |= symbol == "1" and size % 2 == 1
    return True


@pytest.mark.parametrize("grammar", range(1, 8))
def test_tomita_automata_match_the_definitions_on_every_short_string(grammar):
    dfa = TASKS[f"tomita{grammar}"].dfa
    for n in range(11):
        for word in itertools.product("01", repeat=n):
            w = "".join(word)
            assert dfa.accepts([int(c) for c in w]) == TOMITA[grammar](w), w
            if grammar == 3:
                assert TOMITA[3](w) == tomita3_by_runs(w), w


@pytest.mark.parametrize("grammar", range(1, 8))
@given(seed=seeds, n=st.integers(1, 16))
def test_tomita_labels_and_balance(grammar, seed, n):
    task = TASKS[f"tomita{grammar}"]
    batch = task.generate(n, np.random.default_rng(seed), (1, 18))
    labels = []
    for b in range(n):
        x, y, mask = sequences(batch, b)
        assert np.all(x.sum(axis=1) == 1)
        word = "".join(str(int(c)) for c in x.argmax(axis=1))
        assert list(np.flatnonzero(mask)) == [len(word) - 1]
        assert y[-1, 0] == TOMITA[grammar](word) and not y[:-1].any()
        labels.append(int(y[-1, 0]))
    assert sum(labels) == n // 2  # balanced


def test_dfa_samples_uniformly():
    dfa = TASKS["tomita4"].dfa  # 7 of the 8 strings of length 3 have no 000
    rng = np.random.default_rng(0)
    counts = dfa.completions(3, accept=True)
    assert counts[3][dfa.start] == 7
    words = [tuple(dfa.sample(3, True, rng, counts)) for _ in range(7000)]
    freq = np.array([words.count(w) for w in set(words)])
    assert len(freq) == 7 and (0, 0, 0) not in words
    assert np.all(np.abs(freq - 1000) < 150)  # about 5 standard deviations
    with pytest.raises(ValueError, match="no word of length 2 is accepted"):
        DFA(((1, 1), (1, 1)), frozenset({0})).sample(2, True, rng, [[1, 0], [0, 0], [0, 0]])


@given(seed=seeds, max_depth=st.integers(1, 5), n=st.integers(1, 10))
def test_dyck_strings_and_targets_by_a_stack(seed, max_depth, n):
    task = get_task("dyck1", max_depth=max_depth)
    batch = task.generate(n, np.random.default_rng(seed), (2, 30))
    for b in range(n):
        x, y, mask = sequences(batch, b)
        assert len(x) % 2 == 0 and mask.all() and np.all(x.sum(axis=1) == 1)
        stack = []
        for t, symbol in enumerate("()"[i] for i in x.argmax(axis=1)):
            if symbol == "(":
                stack.append(t)
            else:
                stack.pop()  # IndexError: unbalanced
            assert len(stack) <= max_depth
            assert y[t].tolist() == [float(bool(stack)), float(not stack)]
        assert not stack


def test_dyck_tested_beyond_its_trained_depth():
    from rnnlab.runs import test_sets

    task = get_task("dyck1", max_depth=3, test_depth=7)
    (_, held, _), (label, deeper, lengths) = test_sets(task)
    assert held is task and label == "lengths 22-50, max_depth=7" and lengths == (22, 50)
    batch = deeper.generate(300, np.random.default_rng(0), lengths)
    depth = np.cumsum(1 - 2 * batch.x[..., 1], axis=0) * batch.mask  # (T, B)
    assert depth.max() == 7 and (depth.max(axis=0) > 3).mean() > 0.5
    assert "tested to depth 7" in task.description
    assert len(test_sets(get_task("dyck1"))) == 2  # (no deeper set: lengths only)
    assert get_task("dyck1", max_depth=7).test_depth == 7  # (follows the trained depth)
    with pytest.raises(ValueError, match="test_depth must be at least 4"):
        get_task("dyck1", test_depth=2)
    with pytest.raises(ValueError, match="train_lengths: balanced strings have even"):
        get_task("dyck1", train_lengths=5)


@pytest.mark.parametrize("name", ["shift", "tomita3", "dyck1", "parity", "binary_addition"])
def test_held_out_data_holds_no_training_string(name):
    """What "solved" is judged on: fresh strings only (53-75% of them were training
    strings for the Tomita tasks before), as many as asked."""
    from rnnlab.tasks.base import _keys, input_keys
    from rnnlab.train import held_out_set, training_set

    task = TASKS[name]
    train = training_set(task, 3)
    held = held_out_set(task, 3, 1, train=train)
    assert held.size == task.defaults.n_test
    assert not set(_keys(held)) & input_keys(train)
    usual = task.generate(task.defaults.n_test, np.random.default_rng([3, 1]))
    assert set(_keys(usual)) & input_keys(train)  # (the draw it replaces overlapped)
    assert held_out_set(task, 3, 1).x.tobytes() == held.x.tobytes()  # deterministic


def test_held_out_data_where_every_string_was_trained_on():
    """Copy's defaults: 384 strings, all in its 10,000 training sequences."""
    from rnnlab.train import held_out_set

    task = TASKS["copy"]
    assert held_out_set(task, 0, 1, n=50).size == 50


# -- evaluate and is_solved -----------------------------------------------------------


def perfect_outputs(task, batch):
    return batch.y.copy()  # probabilities 0/1, one-hot rows, or the exact values


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_perfect_and_corrupted(name):
    task = TASKS[name]
    batch = task.generate(10, np.random.default_rng(3))
    out = perfect_outputs(task, batch)
    metrics = task.evaluate(out, batch)
    assert metrics == {"step_accuracy": 1.0, "sequence_accuracy": 1.0}
    assert task.is_solved(metrics)

    # unscored steps (padding, and steps the task does not score) do not count
    junk = out.copy()
    junk[batch.mask == 0] = np.nan
    assert task.evaluate(junk, batch) == metrics

    # corrupt one scored step of sequence 0
    t = int(np.flatnonzero(batch.mask[:, 0])[0])
    bad = out.copy()
    if task.loss == "bce":
        bad[t, 0, 0] = 1.0 - bad[t, 0, 0]
    elif task.loss == "softmax":
        bad[t, 0] = np.roll(bad[t, 0], 1)
    else:
        bad[t, 0, 0] += 1.0
    metrics = task.evaluate(bad, batch)
    scored = batch.mask.sum()
    assert metrics["step_accuracy"] == pytest.approx(1 - 1 / scored, abs=1e-12)
    assert metrics["sequence_accuracy"] == pytest.approx(0.9, abs=1e-12)
    assert not task.is_solved(metrics) or task.solved_at <= 0.9


def test_evaluate_thresholds():
    task = TASKS["dyck1"]  # bce with two bits per step: both must be right
    batch = task.generate(4, np.random.default_rng(0), (2, 2))  # "()" x 4
    out = np.where(batch.y > 0, 0.5, 0.49)  # 0.5 reads as 1, 0.49 as 0
    assert task.evaluate(out, batch)["sequence_accuracy"] == 1.0
    out[0, 0, 1] = 0.6  # second bit of step 0 wrong: the whole step is wrong
    assert task.evaluate(out, batch) == {"step_accuracy": 7 / 8, "sequence_accuracy": 3 / 4}

    task = TASKS["adding"]
    batch = task.generate(4, np.random.default_rng(0))
    out = batch.y.copy()
    last = batch.lengths - 1
    out[last, np.arange(4), 0] += [0.039, -0.039, 0.041, np.inf]
    assert task.evaluate(out, batch) == {"step_accuracy": 0.5, "sequence_accuracy": 0.5}
    assert task.tolerance == 0.04 and task.solved_at == 0.99
    assert task.is_solved({"step_accuracy": 0.99, "sequence_accuracy": 0.99})
    assert not task.is_solved({"step_accuracy": 0.98, "sequence_accuracy": 0.98})

    task = TASKS["copy"]  # softmax: the argmax decides, not the confidence
    batch = task.generate(2, np.random.default_rng(0))
    out = 0.2 * batch.y + 0.1
    assert task.evaluate(out, batch)["sequence_accuracy"] == 1.0


def test_evaluate_rejects_mismatched_outputs():
    task = TASKS["parity"]
    batch = task.generate(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="outputs have shape"):
        task.evaluate(batch.y[:, :2], batch)


# -- the shift task's hand-built solution ---------------------------------------------


def test_shift_solution_is_perfect_on_long_sequences():
    task = TASKS["shift"]
    model = RNN.from_params(RNNConfig(), task.solution())
    batch = task.generate(20, np.random.default_rng(0), (1000, 1000))
    outputs = sigmoid(model.logits(batch)).transpose(1, 0, 2)  # (B, T, O) -> the batch's (T, B, O)
    metrics = task.evaluate(outputs, batch)
    assert metrics == {"step_accuracy": 1.0, "sequence_accuracy": 1.0}
    X = [[int(v) for v in batch.x[:, b, 0]] for b in range(3)]
    assert model.predict(X) == [[0, *s[:-1]] for s in X]


def test_shift_solution_with_the_notebooks_slip_fails():
    task = TASKS["shift"]
    params = task.solution()
    params["b_h"][0] = 5.0  # the notebook's ba_first
    model = RNN.from_params(RNNConfig(), params)
    batch = task.generate(20, np.random.default_rng(0), (50, 50))
    outputs = sigmoid(model.logits(batch)).transpose(1, 0, 2)  # (T, B, O)
    assert task.evaluate(outputs, batch)["sequence_accuracy"] < 1.0


def test_shift_solution_only_for_delay_one():
    with pytest.raises(ValueError, match="delay=1 only"):
        get_task("shift", delay=2).solution()
