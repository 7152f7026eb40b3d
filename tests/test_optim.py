"""Optimizers, clipping and schedules; the optimizers against torch.optim in float64."""

import itertools
import math

import numpy as np
import pytest

from rnnlab import RNN
from rnnlab.optim import OPTIMIZERS, clip_grad_norm, make_optimizer, make_schedule, rules

torch = pytest.importorskip("torch")

SHAPES = {"W_xh": (3, 2), "W_hh": (3, 3), "b_h": (3,), "W_hy": (2, 3), "b_y": (2,)}
STEPS = 20


def random_params(rng, dtype=np.float64):
    return {n: rng.normal(size=s).astype(dtype) for n, s in SHAPES.items()}


def random_grads(rng, scale=1.0):
    """Gradients of mixed magnitudes, with a few exact zeros (eps and sqrt(0) paths)."""
    grads = {}
    for n, s in SHAPES.items():
        g = rng.normal(size=s) * scale * 10.0 ** rng.integers(-3, 2, size=s)
        g[rng.random(size=s) < 0.1] = 0.0
        grads[n] = g
    return grads


# (our name, our hyperparameters, torch class, torch keyword arguments)
CASES = [
    ("sgd", {}, "SGD", {}),
    ("sgd", {"weight_decay": 0.1}, "SGD", {"weight_decay": 0.1}),
    ("momentum", {}, "SGD", {"momentum": 0.9}),
    ("momentum", {"momentum": 0.5, "nesterov": True}, "SGD", {"momentum": 0.5, "nesterov": True}),
    ("momentum", {"weight_decay": 0.01}, "SGD", {"momentum": 0.9, "weight_decay": 0.01}),
    ("adam", {}, "Adam", {}),
    (
        "adam",
        {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3, "weight_decay": 0.1},
        "Adam",
        {"betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.1},
    ),
    ("adagrad", {}, "Adagrad", {}),
    (
        "adagrad",
        {"lr_decay": 0.05, "initial_accumulator_value": 0.3, "weight_decay": 0.01},
        "Adagrad",
        {"lr_decay": 0.05, "initial_accumulator_value": 0.3, "weight_decay": 0.01},
    ),
    ("rmsprop", {}, "RMSprop", {}),
    (
        "rmsprop",
        {"momentum": 0.8, "centered": True, "alpha": 0.9, "weight_decay": 0.01},
        "RMSprop",
        {"momentum": 0.8, "centered": True, "alpha": 0.9, "weight_decay": 0.01},
    ),
]


@pytest.mark.parametrize(("name", "hyper", "torch_cls", "torch_hyper"), CASES)
def test_matches_torch_optim(rng, name, hyper, torch_cls, torch_hyper):
    params = random_params(rng)
    tparams = {
        n: torch.tensor(p, dtype=torch.float64, requires_grad=True) for n, p in params.items()
    }
    lrs = [0.05 * (1.0 + 0.5 * math.sin(k)) for k in range(STEPS)]  # lr changes every step
    opt = make_optimizer(name, lr=lrs[0], **hyper)
    topt = getattr(torch.optim, torch_cls)(list(tparams.values()), lr=lrs[0], **torch_hyper)
    arrays = {n: id(p) for n, p in params.items()}
    for k in range(STEPS):
        grads = random_grads(rng)
        before = {n: g.copy() for n, g in grads.items()}
        opt.lr = lrs[k]
        topt.param_groups[0]["lr"] = lrs[k]
        opt.step(params, grads)
        for n, t in tparams.items():
            t.grad = torch.tensor(grads[n])
        topt.step()
        for n, t in tparams.items():
            np.testing.assert_allclose(params[n], t.detach().numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(grads[n], before[n])  # gradients never modified
    assert {n: id(p) for n, p in params.items()} == arrays  # updated in place
    # our state uses torch's names: compare every moment array too
    for n, t in tparams.items():
        ours, theirs = opt.state[n], topt.state[t]
        assert ours["step"] == STEPS
        moments = set(ours) - {"step"}
        assert moments <= set(theirs)
        assert moments or name == "sgd"
        for key in moments:
            np.testing.assert_allclose(ours[key], theirs[key].numpy(), rtol=1e-12, atol=1e-12)


def test_sgd_is_exactly_the_notebook_update(rng):
    params = random_params(rng)
    grads = random_grads(rng)
    expected = {n: p - 0.3 * grads[n] for n, p in params.items()}
    make_optimizer("sgd", lr=0.3).step(params, grads)
    for n in params:
        np.testing.assert_array_equal(params[n], expected[n])  # bit for bit


def test_float32_params_stay_float32(rng):
    params = random_params(rng, np.float32)
    opt = make_optimizer("adam", lr=0.01)
    opt.step(params, random_grads(rng))
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(opt.state[n]["exp_avg"].dtype == np.float32 for n in params)


def test_parameters_without_gradients_are_left_alone(rng):
    params = random_params(rng)
    frozen = params["b_y"].copy()
    grads = random_grads(rng)
    del grads["b_y"]
    opt = make_optimizer("momentum", lr=0.1)
    opt.step(params, grads)
    np.testing.assert_array_equal(params["b_y"], frozen)
    assert "b_y" not in opt.state


def test_bad_gradient_dicts_raise_before_any_update(rng):
    params = random_params(rng)
    copy = {n: p.copy() for n, p in params.items()}
    opt = make_optimizer("adam", lr=0.1)
    grads = random_grads(rng)
    grads["W_zz"] = np.zeros(2)
    with pytest.raises(ValueError, match="W_zz"):
        opt.step(params, grads)
    grads = random_grads(rng)
    grads["b_y"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"b_y.*\(5,\)"):
        opt.step(params, grads)
    for n in params:
        np.testing.assert_array_equal(params[n], copy[n])
    assert opt.state == {}


def test_state_of_another_model_is_refused(rng):
    opt = make_optimizer("adam", lr=0.1)
    opt.step({"w": np.zeros(3)}, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="one optimizer per model"):
        opt.step({"w": np.zeros(4)}, {"w": np.ones(4)})


def test_adam_trains_a_real_model(rng):
    model = RNN(hidden_size=4, seed=3)
    X = [rng.integers(0, 2, size=8).tolist() for _ in range(6)]
    Y = [[0, *x[:-1]] for x in X]  # the shift task
    opt = make_optimizer("adam", lr=0.05)
    first, _ = model.loss_and_grad(X, Y)
    for _ in range(60):
        loss, grads = model.loss_and_grad(X, Y)
        opt.step(model.params, grads)
    assert loss < 0.5 * first


def test_hyperparams_and_repr():
    opt = make_optimizer("rmsprop", lr=0.02, centered=True)
    assert opt.hyperparams == {
        "lr": 0.02, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": True,
        "weight_decay": 0.0,
    }  # fmt: skip
    assert repr(opt).startswith("RMSprop(lr=0.02, alpha=0.99")
    assert make_optimizer("momentum", lr=1.0).momentum == 0.9


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'; choose one of") as err:
        make_optimizer("adamw", lr=0.1)
    assert all(name in str(err.value) for name in OPTIMIZERS)
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) betas for 'adam'; it takes"):
        make_optimizer("adam", lr=0.1, betas=(0.9, 0.99))


@pytest.mark.parametrize("lr", [0, -0.1, math.nan, math.inf, True, "0.1", None])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_bad_learning_rates(name, lr):
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\), got"):
        make_optimizer(name, lr=lr)


@pytest.mark.parametrize(
    ("name", "hyper", "message"),
    [
        ("adam", {"beta1": 1.0}, r"beta1 must be a finite number in \[0, 1\), got 1.0"),
        ("adam", {"beta2": -0.1}, "beta2 must be"),
        ("adam", {"eps": 0.0}, r"eps must be a finite number in \(0, inf\)"),
        ("adam", {"weight_decay": math.nan}, "weight_decay must be"),
        ("adagrad", {"lr_decay": -1}, "lr_decay must be"),
        ("adagrad", {"initial_accumulator_value": -1}, "initial_accumulator_value must be"),
        ("rmsprop", {"alpha": 1.0}, "alpha must be"),
        ("rmsprop", {"centered": 1}, "centered must be True or False"),
        ("momentum", {"momentum": 1.5}, "momentum must be"),
        ("momentum", {"momentum": 0.0}, "use 'sgd'"),
        ("sgd", {"nesterov": True}, "nesterov needs momentum > 0"),
    ],
)
def test_bad_hyperparameters(name, hyper, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(name, lr=0.1, **hyper)


def test_setting_a_bad_lr_keeps_the_old_one():
    opt = make_optimizer("sgd", lr=0.1)
    opt.lr = 0.2
    assert opt.lr == 0.2
    with pytest.raises(ValueError, match="lr must be"):
        opt.lr = -1.0
    assert opt.lr == 0.2


# -- clipping -----------------------------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.01, 1.0, 1e6])
def test_clip_grad_norm_matches_torch(rng, max_norm):
    grads = random_grads(rng)
    before = {n: g.copy() for n, g in grads.items()}
    tensors = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm).item()
    total = clip_grad_norm(grads, max_norm)
    assert total == pytest.approx(expected, rel=1e-12)
    assert total == pytest.approx(np.sqrt(sum((g**2).sum() for g in before.values())), rel=1e-12)
    for t, g in zip(tensors, grads.values(), strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=0)
    if max_norm == 1e6:  # below the limit: untouched, bit for bit
        for n in grads:
            np.testing.assert_array_equal(grads[n], before[n])
    else:
        clipped = np.sqrt(sum((g**2).sum() for g in grads.values()))
        assert clipped == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_edge_cases():
    assert clip_grad_norm({}, 1.0) == 0.0
    grads = {"a": np.array([np.inf, 1.0]), "b": np.array([2.0])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    np.testing.assert_array_equal(grads["a"], [np.inf, 1.0])  # left for the caller to handle
    np.testing.assert_array_equal(grads["b"], [2.0])
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="max_norm must be"):
            clip_grad_norm({"a": np.ones(2)}, bad)


# -- schedules ----------------------------------------------------------------------------


def test_constant_schedule():
    s = make_schedule("constant", 0.1, 50)
    assert [s(k) for k in (0, 1, 49, 50, 1000)] == [0.1] * 5
    w = make_schedule("constant", 0.1, 50, warmup=4)
    assert [w(k) for k in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_cosine_schedule_endpoints_and_monotonicity():
    s = make_schedule("cosine", 0.1, 100, min_lr=0.001)
    lrs = [s(k) for k in range(120)]
    assert lrs[0] == 0.1
    assert lrs[50] == pytest.approx((0.1 + 0.001) / 2, rel=1e-14)
    assert lrs[100] == pytest.approx(0.001, rel=1e-14)
    assert lrs[100:] == [lrs[100]] * 20  # stays at min_lr
    assert all(a > b for a, b in itertools.pairwise(lrs[:101]))  # strictly decreasing


def test_cosine_schedule_matches_torch():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=0.01)
    s = make_schedule("cosine", 0.1, 30, min_lr=0.01)
    for k in range(31):
        assert s(k) == pytest.approx(sched.get_last_lr()[0], rel=1e-12)
        opt.step()
        sched.step()


def test_cosine_schedule_with_warmup():
    s = make_schedule("cosine", 1.0, 20, warmup=5)
    lrs = [s(k) for k in range(21)]
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] == 1.0
    assert lrs[20] == 0.0
    assert all(a < b for a, b in itertools.pairwise(lrs[:5]))
    assert all(a > b for a, b in itertools.pairwise(lrs[5:21]))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("linear", 0.1, 10), {}, "unknown schedule 'linear'; choose one of constant, cosine"),
        (("cosine", 0.0, 10), {}, "lr must be"),
        (("cosine", 0.1, 0), {}, "total_steps must be at least 1"),
        (("cosine", 0.1, 2.5), {}, "total_steps must be a non-negative integer"),
        (("cosine", 0.1, 10), {"warmup": 10}, r"warmup \(10\) must be shorter"),
        (("cosine", 0.1, 10), {"warmup": -1}, "warmup must be"),
        (("cosine", 0.1, 10), {"min_lr": 0.2}, "min_lr must be"),
        (("constant", 0.1, 10), {"min_lr": 0.01}, "min_lr only applies to the cosine"),
    ],
)
def test_bad_schedules(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(*args, **kwargs)


def test_schedule_rejects_negative_steps():
    with pytest.raises(ValueError, match="step must be a non-negative integer"):
        make_schedule("cosine", 0.1, 10)(-1)


@pytest.mark.parametrize(("name", "hyper"), [(name, hyper) for name, hyper, _, _ in CASES])
@pytest.mark.parametrize("max_norm", [None, 0.5])
def test_flat_step_equals_the_dict_step(rng, name, hyper, max_norm):
    """step_flat (the Update rule for sgd/momentum/adam, the dict rule otherwise) on one
    vector equals clip_grad_norm + step on the dict, step after step."""
    params = random_params(rng)
    names = list(params)
    flat = np.concatenate([params[n].ravel() for n in names])
    by_dict = make_optimizer(name, lr=0.05, **hyper)
    by_flat = make_optimizer(name, lr=0.05, **hyper)
    for _ in range(STEPS):
        grads = random_grads(rng)
        flat_grad = np.concatenate([grads[n].ravel() for n in names])
        expected_norm = clip_grad_norm(grads, max_norm) if max_norm else None
        by_dict.step(params, grads)
        norm = by_flat.step_flat(flat, flat_grad, max_norm=max_norm)
        if expected_norm is not None:
            assert norm == pytest.approx(expected_norm, rel=1e-13)
    np.testing.assert_allclose(flat, np.concatenate([params[n].ravel() for n in names]),
                               rtol=1e-12, atol=1e-14)  # fmt: skip
    assert by_flat.state["flat"]["step"] == STEPS


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_step_with_an_infinite_gradient_changes_nothing(rng, name):
    opt = make_optimizer(name, lr=0.1)
    flat = rng.normal(size=7)
    before = flat.copy()
    grad = rng.normal(size=7)
    grad[3] = np.inf
    assert opt.step_flat(flat, grad, max_norm=1.0) == np.inf
    np.testing.assert_array_equal(flat, before)
    assert opt.state.get("flat", {"step": 0})["step"] == 0
    with pytest.raises(ValueError, match="max_norm"):
        opt.step_flat(flat, rng.normal(size=7), max_norm=-1.0)
    with pytest.raises(ValueError, match="shape"):
        opt.step_flat(flat, np.zeros(3))


# -- the flat rule as data: flat_update ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hyper", "rule", "keys"),
    [
        ("adam", {"beta1": 0.5, "eps": 1e-6}, rules.ADAM, ("exp_avg", "exp_avg_sq")),
        ("momentum", {"nesterov": True}, rules.SGD, ("momentum_buffer",)),
        ("sgd", {"weight_decay": 0.1}, rules.SGD, ()),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_flat_update_carries_the_rule_the_current_lr_and_step(name, hyper, rule, keys, dtype):
    opt = make_optimizer(name, lr=0.05, **hyper)
    theta = np.zeros(7, dtype=dtype)
    update = opt.flat_update(theta, max_norm=2)
    assert isinstance(update, rules.Update)
    assert (update.rule, update.step, update.lr, update.max_norm) == (rule, 1, 0.05, 2.0)
    assert isinstance(update.max_norm, float) and update.weight_decay == opt.weight_decay
    arrays = [update.first, update.second]
    for key, array in zip(keys, arrays, strict=False):
        assert array is opt.state["flat"][key]  # the optimizer's own state, updated in place
        assert array.shape == theta.shape and array.dtype == theta.dtype
    for array in arrays[len(keys) :]:
        assert array.size == 0 and array.dtype == theta.dtype  # unused: empty
    opt.advance_flat()
    opt.lr = 0.01
    again = opt.flat_update(theta)
    assert (again.step, again.lr, again.max_norm) == (2, 0.01, 0.0)  # never stale
    assert again.first is update.first and again.second is update.second  # made once


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_optimizers_without_a_flat_rule_give_none(rng, name):
    opt = make_optimizer(name, lr=0.05)
    assert opt.flat_update(np.zeros(3)) is None
    flat = rng.normal(size=3)
    opt.step_flat(flat, rng.normal(size=3))
    assert opt.state["flat"]["step"] == 1


@pytest.mark.parametrize(("name", "hyper", "torch_cls", "torch_hyper"), CASES)
def test_flat_step_matches_torch_optim(rng, name, hyper, torch_cls, torch_hyper):
    """step_flat (the rule applied by :func:`rnnlab.optim.rules.apply` for Adam and SGD)
    against torch.optim on one vector, with clipping, float64."""
    theta = rng.normal(size=11)
    t = torch.tensor(theta, requires_grad=True)
    opt = make_optimizer(name, lr=0.05, **hyper)
    topt = getattr(torch.optim, torch_cls)([t], lr=0.05, **torch_hyper)
    for _ in range(STEPS):
        grad = rng.normal(size=11) * 10.0 ** rng.integers(-2, 2)
        t.grad = torch.tensor(grad)
        expected_norm = torch.nn.utils.clip_grad_norm_([t], 1.0).item()
        topt.step()
        assert opt.step_flat(theta, grad, max_norm=1.0) == pytest.approx(expected_norm, rel=1e-12)
        np.testing.assert_allclose(theta, t.detach().numpy(), rtol=1e-12, atol=1e-12)
