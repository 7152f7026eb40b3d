"""Looking inside a trained network: the automaton it implements.

>>> machine = extract(model, alphabet=[0, 1])  # doctest: +SKIP
>>> machine.num_states, machine.run([0, 1, 1])  # doctest: +SKIP
(2, [0, 0, 1])
"""

from rnnlab.analysis.automaton import Automaton
from rnnlab.analysis.extract import Fidelity, extract, fidelity
from rnnlab.analysis.report import inspect_model

__all__ = ["Automaton", "Fidelity", "extract", "fidelity", "inspect_model"]
