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
