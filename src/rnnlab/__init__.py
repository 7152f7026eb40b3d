"""rnnlab: small recurrent neural networks with exact, hand-written BPTT."""

from rnnlab.gradcheck import gradcheck
from rnnlab.interop import from_torch, to_torch
from rnnlab.io import ModelFileError
from rnnlab.model import RNN, HiddenStates, RNNConfig, State, load
from rnnlab.sweeps import sweep
from rnnlab.train import fit

__all__ = [
    "RNN",
    "HiddenStates",
    "ModelFileError",
    "RNNConfig",
    "State",
    "fit",
    "from_torch",
    "gradcheck",
    "load",
    "sweep",
    "to_torch",
]
__version__ = "0.1.0"
