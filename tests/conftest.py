import subprocess
import sys

import numpy as np
import pytest
from hypothesis import settings

# derandomized: the suite checks the same examples on every run, so CI never flakes
settings.register_profile("default", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("default")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_sequences(rng, lengths, features, *, binary=False):
    """A list of (T_i, features) arrays (random normals, or 0/1 when binary)."""
    if binary:
        return [rng.integers(0, 2, size=(n, features)).astype(float) for n in lengths]
    return [rng.normal(size=(n, features)) for n in lengths]


#: the float32 variants of the compiled driver's entry points, compiled into numba's disk
#: cache by a second process while this one starts on the float64 ones (the suite's
#: first files): compiling takes one core, and on a cold cache it is most of the suite's
#: time. This process then loads them (or, where it gets there first, compiles them
#: itself: the cache is safe to share). The order is the order the suite needs them in.
WARM_FLOAT32 = """
import numpy as np
from rnnlab import RNN
X, lengths = np.zeros((32, 4), np.float32), np.full(32, 4)
model = RNN(1, 2, 1, dtype="float32", backend="numba", seed=0)
for B in (3, 32):  # one sequence at a time, then blocks of lanes
    model.loss_and_grad(X[:B], X[:B], lengths=lengths[:B])
for B in (3, 32):
    model.predict_proba(X[:B], lengths=lengths[:B])
"""
_warming: subprocess.Popen | None = None


def pytest_sessionstart(session):
    global _warming
    _warming = subprocess.Popen([sys.executable, "-c", WARM_FLOAT32],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def pytest_sessionfinish(session):
    if _warming is not None:
        if _warming.poll() is None:  # (a short run of a few tests: not needed)
            _warming.kill()
        _warming.wait()
