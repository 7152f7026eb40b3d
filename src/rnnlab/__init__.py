"""rnnlab: small recurrent neural networks with exact, hand-written BPTT."""

from rnnlab.gradcheck import gradcheck
from rnnlab.interop import from_torch, to_torch
from rnnlab.io import ModelFileError
from rnnlab.io import load_model as load
from rnnlab.model import RNN, RNNConfig
from rnnlab.train import fit

__all__ = [
    "RNN",
    "ModelFileError",
    "RNNConfig",
    "fit",
    "from_torch",
    "gradcheck",
    "load",
    "to_torch",
]
__version__ = "0.1.0"
