"""Hostile and unlucky inputs: crafted model files, sizes beyond memory.

Each case ends in one clear error (``ModelFileError`` / ``ValueError`` in the API;
``error:`` and exit 2 in the CLI) within a bound of time and memory, and loses
nothing.
"""

import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab import RNN, load
from rnnlab.cli import main as cli_main
from rnnlab.io import MAX_JSON_DEPTH, ModelFileError, _checksum, read_model_file

#: what one crafted file may cost the loader
SECONDS, MEGABYTES = 2.0, 64


def saved(tmp_path, **config):
    model = RNN(**config, seed=3, backend="numpy")
    return model, model.save(tmp_path / "model.safetensors")


def crafted(path, tensors, config: dict | str, *, checksum=True):
    """A file with any config and a checksum made right for it (as an attacker could)."""
    config_json = config if isinstance(config, str) else json.dumps(config)
    metadata = {"format": "rnnlab", "format_version": "1", "config": config_json}
    if checksum:
        plain = safetensors.numpy.save(tensors, metadata={**metadata, "checksum": ""})
        body = plain[8 + int.from_bytes(plain[:8], "little") :]
        metadata["checksum"] = _checksum(config_json, body)
    path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata))
    return path


def refused_quickly(path, match):
    """load(path) raises one line naming the file, in bounded time and memory."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=match) as err:
        load(path, backend="numpy")
    assert time.perf_counter() - start < SECONDS
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < MEGABYTES
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 700
    return message


def tensors_of(model):
    return {name: np.array(value) for name, value in model.params.items()}


@pytest.mark.parametrize("layers", [10**6, 10**9, 10**18])
def test_a_config_claiming_huge_sizes_is_refused_before_anything_is_built(tmp_path, layers):
    model, _ = saved(tmp_path)
    config = {**model.config.to_dict(), "num_layers": layers}
    path = crafted(tmp_path / "big.safetensors", tensors_of(model), config)
    refused_quickly(path, "memory|describes")


def test_a_huge_hidden_size_is_refused(tmp_path):
    model, _ = saved(tmp_path)
    config = {**model.config.to_dict(), "hidden_size": 10**8}
    refused_quickly(crafted(tmp_path / "wide.safetensors", tensors_of(model), config), "memory")


def test_deeply_nested_config_is_refused(tmp_path):
    model, _ = saved(tmp_path)
    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    path = crafted(tmp_path / "deep.safetensors", tensors_of(model), deep)
    refused_quickly(path, f"nests 100000 levels deep \\(at most {MAX_JSON_DEPTH}\\)")


def test_a_header_length_beyond_the_file_is_refused(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    refused_quickly(path, "not a valid safetensors file")


def test_a_huge_sparse_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of holes
    refused_quickly(path, "not a valid safetensors file")


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_only_regular_files_are_read(tmp_path, kind):
    path = tmp_path / "model.safetensors"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    refused_quickly(path, "not a regular file|Is a directory")


def test_a_changed_weight_byte_is_caught_by_the_checksum(tmp_path):
    _, path = saved(tmp_path, hidden_size=3)
    data = bytearray(path.read_bytes())
    body_start = 8 + int.from_bytes(data[:8], "little")
    caught = 0
    for i in range(body_start, len(data), 7):
        changed = data.copy()
        changed[i] ^= 0x01  # the smallest change: one bit of one weight
        path.write_bytes(bytes(changed))
        with pytest.raises(ModelFileError, match="checksum mismatch"):
            load(path, backend="numpy")
        caught += 1
    assert caught > 10


def test_a_file_without_checksum_loads_with_a_notice(tmp_path):
    model, _ = saved(tmp_path)
    path = crafted(tmp_path / "old.safetensors", tensors_of(model), model.config.to_dict(),
                   checksum=False)  # fmt: skip
    with pytest.warns(UserWarning, match="before rnnlab stored checksums"):
        loaded = load(path, backend="numpy")
    assert np.array_equal(loaded.params.flat, model.params.flat)


def test_saving_is_deterministic_and_readable_by_safetensors(tmp_path):
    model = RNN(2, 3, 2, cell="gru", num_layers=2, seed=1, backend="numpy")
    first = model.save(tmp_path / "a.safetensors").read_bytes()
    second = model.save(tmp_path / "b.safetensors").read_bytes()
    assert first == second
    tensors = safetensors.numpy.load_file(tmp_path / "a.safetensors")
    assert set(tensors) == set(model.params)
    assert all(np.array_equal(tensors[k], model.params[k]) for k in tensors)


def test_sizes_beyond_memory_are_refused_up_front():
    with pytest.raises(ValueError, match=r"hidden_size=100000000,.* needs .* of memory"):
        RNN(1, 10**8, 1)
    with pytest.raises(ValueError, match=r"num_layers=1000000000,.* needs .* of memory"):
        RNN(1, 2, 1, num_layers=10**9)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train", "shift", "--hidden", "100000", "--quiet"], "hidden_size=100000"),
        (["train", "shift", "--layers", "1000000000", "--quiet"], "num_layers=1000000000"),
        (["train", "shift", "--layers", "1000000", "--quiet"], "num_layers=1000000"),
    ],
)
def test_cli_refuses_sizes_beyond_memory_in_one_line(tmp_path, capsys, monkeypatch, argv, match):
    from rnnlab import resources

    monkeypatch.setattr(resources, "total_memory", lambda: 16 << 30)  # a 16 GB machine
    assert cli_main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err
    assert not any(tmp_path.iterdir())  # nothing made for a run that never started


@pytest.mark.parametrize("command", ["show", "eval", "predict"])
def test_cli_refuses_crafted_files_in_one_line(tmp_path, capsys, command):
    model, _ = saved(tmp_path)
    config = {**model.config.to_dict(), "num_layers": 10**9}
    path = crafted(tmp_path / "big.safetensors", tensors_of(model), config)
    argv = [command, str(path)] + (["1", "0", "1"] if command == "predict" else [])
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_loader_fuzz_never_crashes_and_stays_bounded(tmp_path, data):
    """Random changes to a valid file: a model or a ModelFileError, fast, small."""
    model = RNN(1, 3, 1, cell="lstm", seed=0, backend="numpy")
    path = tmp_path / "fuzz.safetensors"
    original = bytearray(model.save(path).read_bytes())
    changed = original.copy()
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(changed) - 1))
        changed[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        changed = changed[: data.draw(st.integers(0, len(changed)))]
    path.write_bytes(bytes(changed))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_model_file(path)
            load(path, backend="numpy")
        except ModelFileError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
    assert time.perf_counter() - start < SECONDS


# -- Ctrl-C, divergence, unwritable outputs ---------------------------------------------------

INTERRUPTED_TRAINING = """
import os, signal, sys, threading, time
from rnnlab.cli import main
# as an interactive process has it (a runner started in the background, as `cmd &` in a
# script, hands its children SIGINT ignored, and Ctrl-C then cannot reach training)
signal.signal(signal.SIGINT, signal.default_int_handler)
backend = sys.argv[1]
if backend == "numba":  # compile first, so the signal arrives during training
    main(["train", "shift", "--quiet", "--max-steps", "2", "--out", sys.argv[2] + "/warm",
          "--no-plot", "--backend", "numba"])

def interrupt():  # once training has begun (its handler is in), and a while into it
    for _ in range(2000):
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            break
        time.sleep(0.01)
    time.sleep(float(sys.argv[3]))
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()
# (two units cannot learn copy: it trains until stopped)
sys.exit(main(["train", "copy", "--hidden", "2", "--quiet", "--max-steps", "1000000",
               "--patience", "1000000", "--out", sys.argv[2] + "/runs", "--no-plot",
               "--backend", backend]))
"""


def run_python(code, *args, timeout=600):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ctrl_c_saves_the_run_says_how_to_resume_and_exits_130(tmp_path, backend):
    done = run_python(INTERRUPTED_TRAINING, backend, tmp_path, 1.5)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted after step ") and "rnnlab train --resume" in last
    (run,) = (tmp_path / "runs").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["interrupted"] is True and config["stop_reason"].startswith("interrupted")
    assert config["steps"] > 0
    assert (run / "model.safetensors").exists() and (run / "checkpoint.safetensors").exists()
    load(run / "model.safetensors", backend="numpy")  # a whole, loadable model
    assert not list(run.glob(".*.tmp"))


def test_only_an_interrupted_run_is_resumed(tmp_path):
    from rnnlab.fit_state import FitState
    from rnnlab.runs import train_task
    from rnnlab.train import FitConfig

    first = train_task("shift", out=tmp_path, plot=False, backend="numpy",
                       fit_config=FitConfig(max_steps=7, seed=0,
                                            stop_when_solved=False))  # fmt: skip
    state = FitState.load(first.run_dir / "checkpoint.safetensors")
    assert state.step == 7 and state.optimizer["step"] == 7 and state.optimizer_name == "adam"
    assert np.array_equal(state.optimizer["exp_avg"],
                          first.optimizer.state["flat"]["exp_avg"])  # fmt: skip
    with pytest.raises(ValueError, match=r"the run ended \(reached max_steps=7\); only an "
                                         "interrupted run continues"):  # fmt: skip
        train_task("shift", out=tmp_path, plot=False, resume=first.run_dir)
    config = json.loads((first.run_dir / "config.json").read_text())
    config["interrupted"], config["fit"]["max_steps"] = True, 10  # (as if stopped at 7 of 10)
    (first.run_dir / "config.json").write_text(json.dumps(config))
    second = train_task("shift", out=tmp_path, plot=False, backend="numpy",
                        resume=first.run_dir)  # fmt: skip
    assert second.history.steps == 10 and second.optimizer.state["flat"]["step"] == 10
    assert json.loads((second.run_dir / "config.json").read_text())["init"] == "default"
    (first.run_dir / "checkpoint.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no checkpoint\.safetensors"):
        train_task("shift", out=tmp_path, plot=False, resume=first.run_dir)


def test_divergence_returns_to_the_last_finite_weights_and_writes_strict_json(tmp_path):
    from rnnlab.runs import train_task
    from rnnlab.train import FitConfig, fit

    result = train_task("shift", out=tmp_path, plot=False, backend="numpy",
                        fit_config=FitConfig(optimizer="sgd", lr=1e308, max_steps=50,
                                             seed=0))  # fmt: skip
    history = result.history
    assert history.diverged and not history.trained
    assert "nothing trained" in history.stop_reason
    assert not (result.run_dir / "model.safetensors").exists()  # no model saved as trained
    text = (result.run_dir / "config.json").read_text()
    config = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert config["trained"] is False
    # weights evaluated as finite before it diverges come back
    model = RNN(1, 2, 1, seed=0, backend="numpy")
    fit(model, "shift", optimizer="sgd", lr=0.5, max_steps=2, eval_every=1)
    history = fit(model, "shift", optimizer="sgd", lr=1e308, max_steps=50, eval_every=1,
                  restore_best=False)  # fmt: skip
    assert history.diverged and np.all(np.isfinite(model.params.flat))
    assert np.abs(model.params.flat).max() < 1e3  # not the weights of the runaway step
    assert np.all(np.isfinite(model.predict_proba([[1, 0, 1]])))


def test_an_unwritable_output_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = cli_main(["train", "shift", "--quiet", "--out", str(blocker / "runs"), "--backend",
                     "numpy"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --out") and err.count("\n") == 1


def test_resume_refuses_settings_of_its_own(tmp_path, capsys):
    code = cli_main(["train", "--resume", str(tmp_path), "--hidden", "4"])
    assert code == 2 and "drop --hidden" in capsys.readouterr().err


# -- a compiled backend that cannot cache ----------------------------------------------------


def test_the_cache_goes_where_it_can_be_written(tmp_path):
    from rnnlab.kernels.compiled import cache

    package, home = tmp_path / "site-packages", tmp_path / "home"
    package.mkdir()
    home.mkdir()
    env = {"XDG_CACHE_HOME": str(home / ".cache")}
    everything = lambda p: True  # noqa: E731
    nothing = lambda p: False  # noqa: E731
    only_home = lambda p: home in (p, *p.parents)  # noqa: E731
    assert cache.choose(package, env, everything) is None  # beside the source
    assert cache.choose(package, env, only_home) is None  # numba's user cache
    chosen = cache.choose(package, env, nothing)  # neither: a private temporary one
    assert chosen is not None and chosen.name.startswith("rnnlab-numba-cache-")
    assert cache.choose(package, {**env, "NUMBA_CACHE_DIR": "/x"}, nothing) is None


def test_auto_falls_back_when_the_compiled_backend_fails_to_import(monkeypatch):
    import importlib.abc

    from rnnlab import kernels

    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "rnnlab.kernels.compiled":
                raise RuntimeError("cannot cache function 'kernel': no locator available")
            return None

    monkeypatch.delitem(sys.modules, "rnnlab.kernels.compiled", raising=False)
    monkeypatch.delattr(kernels, "compiled", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    monkeypatch.setattr(kernels, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="numpy reference backend: cannot cache"):
        assert kernels.get_backend("auto").name == "numpy"
    with pytest.raises(ValueError, match="backend 'numba' is not available"):
        kernels.get_backend("numba")


# -- smaller cases ----------------------------------------------------------------------------


def test_eval_with_a_task_the_model_does_not_fit_says_so(tmp_path, capsys):
    _, path = saved(tmp_path)
    assert cli_main(["eval", str(path), "--task", "copy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: task 'copy' has") and err.count("\n") == 1


def test_eval_sizes_beyond_memory_are_refused(tmp_path, capsys):
    _, path = saved(tmp_path)
    assert cli_main(["eval", str(path), "--task", "shift", "--n", str(10**12)]) == 2
    assert "needs" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["[1, 2]", '{"task": ["shift"]}', '{"task": {"a": 1}}'])
def test_a_run_config_of_the_wrong_shape_is_an_error_line(tmp_path, capsys, content):
    _, path = saved(tmp_path)
    (tmp_path / "config.json").write_text(content)
    assert cli_main(["eval", str(path)]) == 2
    assert "say which with --task" in capsys.readouterr().err


def test_a_closed_stdout_is_not_a_traceback():
    done = subprocess.run([sys.executable, "-m", "rnnlab", "tasks"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, pass_fds=(),
                          preexec_fn=lambda: os.close(1))  # fmt: skip
    assert "Traceback" not in done.stderr and done.returncode in (0, 1)


def test_weights_that_are_not_finite_are_refused_by_predict():
    model = RNN(seed=0, backend="numpy")
    model.params["W_hh"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"not all finite \(W_hh hold NaN"):
        model.predict([[1, 0, 1]])


@pytest.mark.parametrize("threshold", [float("nan"), 2, -0.1, "0.5", True])
def test_predict_threshold_is_a_probability(threshold):
    with pytest.raises(ValueError, match="threshold must be a probability"):
        RNN(seed=0, backend="numpy").predict([[1, 0]], threshold=threshold)


def test_gradcheck_refuses_eps_zero_and_runs_float32_models_in_float64():
    from rnnlab.gradcheck import gradcheck

    model = RNN(1, 3, 1, seed=0, backend="numpy")
    with pytest.raises(ValueError, match="eps must be a positive number"):
        gradcheck(model, [[1, 0, 1]], [[0, 1, 0]], eps=0)
    small = RNN(1, 3, 1, seed=0, backend="numpy", dtype="float32")
    assert gradcheck(small, [[1, 0, 1, 1]], [[0, 1, 0, 1]]) < 1e-6
    assert small.config.dtype == "float32"  # the model itself is untouched


def test_fit_takes_numpy_integers_as_rnn_does():
    from rnnlab.train import fit

    history = fit(RNN(seed=0, backend="numpy"), "shift", max_steps=np.int64(3))
    assert history.steps == 3


def test_auto_falls_back_when_the_compiled_kernels_fail_to_compile():
    import types

    from numba.core.errors import LoweringError

    from rnnlab import kernels
    from rnnlab.kernels import reference

    def broken(*args, **kwargs):
        raise LoweringError("no target for this machine")

    fake = types.SimpleNamespace(name="numba", forward=broken, loss_and_grad=broken,
                                 train_step=broken)  # fmt: skip
    auto = kernels._Auto(fake, reference)
    model = RNN(1, 3, 1, seed=0, backend="numpy")
    x = np.ones((4, 2, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logits, _, _ = auto.forward(model.network, model.params.flat, x)
    assert any("failed to compile (no target" in str(w.message) for w in caught)
    assert auto.name == "numpy"  # for good
    expected, _, _ = reference.forward(model.network, model.params.flat, x)
    np.testing.assert_array_equal(logits, expected)


def test_auto_trainer_falls_back_when_the_compiled_step_fails_to_compile():
    import types

    from numba.core.errors import LoweringError

    from rnnlab import kernels
    from rnnlab.kernels import reference
    from rnnlab.optim import make_optimizer

    def broken(*args, **kwargs):
        raise LoweringError("no target for this step")

    compiled_trainer = types.SimpleNamespace(loss_and_grad=broken, train_step=broken)
    fake = types.SimpleNamespace(name="numba", trainer=lambda net, **options: compiled_trainer)
    auto = kernels._Auto(fake, reference)
    model = RNN(1, 3, 1, seed=0, backend="numpy")
    x, y, mask = np.ones((4, 2, 1)), np.zeros((4, 2, 1)), np.ones((4, 2))
    trainer = auto.trainer(model.network, loss="bce")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theta = model.params.flat.copy()
        update = make_optimizer("adam", lr=0.1).flat_update(theta)
        loss, _ = trainer.train_step(theta, x, y, mask, update)
    assert any("failed to compile (no target for this step" in str(w.message) for w in caught)
    assert auto.name == "numpy"
    expected, _ = reference.loss_and_grad(model.network, model.params.flat, x, y, mask,
                                          loss="bce")  # fmt: skip
    assert loss == expected and not np.array_equal(theta, model.params.flat)  # it stepped
    value, _ = trainer.loss_and_grad(theta, x, y, mask)  # the reference's from now on
    assert np.isfinite(value)


def test_a_run_killed_while_saving_leaves_nothing_once_the_next_run_starts(tmp_path):
    from rnnlab.io import publish_run_dir, staging_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    left = tmp_path / f".shift.abcd1234.staging-{dead}"  # what kill -9 while saving leaves
    left.mkdir()
    (left / ".model.safetensors.0000.tmp").write_bytes(b"half")
    mine = staging_dir(tmp_path, "shift")
    assert not left.exists() and mine.exists()  # a dead process's staging is removed
    (mine / "config.json").write_text("{}")
    run = publish_run_dir(mine, "shift")
    assert run.name.startswith("shift-") and (run / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == [run.name]  # nothing hidden left
