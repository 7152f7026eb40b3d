"""The automaton of a network by active learning: L* (aalpy) with the network as the
system under learning (after Weiss, Goldberg and Yahav, 2018).

Membership queries are runs of the network from its initial state, one symbol at a
time (:meth:`rnnlab.RNN.step`); equivalence queries are random walks through the
network and the hypothesis (aalpy's ``StatePrefixEqOracle``: walks from every state
of the hypothesis). The result is exact on every string the walks tried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from aalpy.base import SUL
from aalpy.learning_algs import run_Lstar
from aalpy.oracles import StatePrefixEqOracle

from rnnlab.analysis.automaton import Automaton, _renumbered


class NetworkSUL(SUL):
    """A network as aalpy's system under learning: reset to the initial state, then
    one input symbol in, the network's output symbol out."""

    def __init__(self, model, encode: Callable[[Hashable], Sequence[float]],
                 output_of: Callable[[np.ndarray], Hashable], budget: int):  # fmt: skip
        super().__init__()
        self.model, self.output_of, self.budget = model, output_of, budget
        self._inputs = {}
        self._encode = encode
        self.state = None

    def pre(self):
        self.state = self.model.initial_state(1)

    def post(self):
        self.state = None

    def step(self, letter):
        self.budget -= 1
        if self.budget < 0:
            raise QueryBudgetExceeded
        x = self._inputs.get(letter)
        if x is None:
            x = self._inputs[letter] = np.asarray(self._encode(letter), dtype=np.float64)[None]
        probabilities, self.state = self.model.step(x, self.state)
        return self.output_of(probabilities[0])


class QueryBudgetExceeded(Exception):
    """The network needed more steps of membership queries than allowed."""


def learn(model, alphabet: list, encode, output_of, *, walks_per_state: int = 50,
          walk_len: int = 20, max_steps: int = 200_000, seed: int = 0) -> Automaton:  # fmt: skip
    """L* over ``alphabet``; see the module's notes. At most ``max_steps`` network steps
    (a network that is not a small finite machine is refused instead of learned
    forever)."""
    start = time.perf_counter()
    random.seed(seed)  # aalpy's oracles draw from the random module
    sul = NetworkSUL(model, encode, output_of, max_steps)
    oracle = StatePrefixEqOracle(alphabet, sul, walks_per_state=walks_per_state,
                                 walk_len=walk_len)  # fmt: skip
    try:
        machine = run_Lstar(alphabet, sul, oracle, automaton_type="mealy", print_level=0)
    except QueryBudgetExceeded:
        raise ValueError(f"L* needed more than {max_steps} network steps: this network is "
                         "not a small finite machine (method='quantize' gives its best "
                         "approximation)") from None  # fmt: skip
    automaton = Automaton(_renumbered(machine, alphabet))
    automaton.method = (f"L* (aalpy), the network as membership oracle, "
                        f"{walks_per_state} random walks of {walk_len} per state as "
                        "equivalence oracle")  # fmt: skip
    automaton.seconds = time.perf_counter() - start
    return automaton
