"""Looking inside a trained network: the automaton it implements, its fixed points.

>>> machine = extract(model, alphabet=[0, 1])  # doctest: +SKIP
>>> machine.num_states, machine.run([0, 1, 1])  # doctest: +SKIP
(2, [0, 0, 1])
"""

from rnnlab.analysis.automaton import Automaton
from rnnlab.analysis.dynamics import FixedPoint, fixed_points
from rnnlab.analysis.extract import Fidelity, extract, fidelity
from rnnlab.analysis.report import inspect_model

__all__ = [
    "Automaton",
    "Fidelity",
    "FixedPoint",
    "extract",
    "fidelity",
    "fixed_points",
    "inspect_model",
]
