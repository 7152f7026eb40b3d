"""rnnlab: small recurrent neural networks with exact, hand-written BPTT."""

from rnnlab.gradcheck import gradcheck
from rnnlab.model import RNN, RNNConfig

__all__ = ["RNN", "RNNConfig", "gradcheck"]
__version__ = "0.1.0"
