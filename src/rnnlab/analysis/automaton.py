"""A finite-state machine read out of a network: a Mealy machine, on aalpy's classes.

States are numbered from 0 (the initial one) in breadth-first order of the
inputs, so two equal machines print the same. Minimisation is aalpy's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping

from aalpy.automata import MealyMachine, MealyState


class Automaton:
    """A Mealy machine: from each state, each input symbol gives an output and a next state.

    Attributes
    ----------
    machine : aalpy.automata.MealyMachine
        The minimal machine (aalpy's; use it for anything aalpy offers).
    """

    kind = "mealy"

    def __init__(self, machine: MealyMachine):
        self.machine = machine

    @classmethod
    def from_table(cls, table: Mapping[tuple[Hashable, Hashable], tuple[Hashable, Hashable]],
                   initial: Hashable, alphabet: Iterable[Hashable]) -> Automaton:  # fmt: skip
        """The minimal machine of a transition table ``(state, symbol) -> (next, output)``
        (every reachable state needs every symbol), states renumbered from ``initial``."""
        alphabet = list(alphabet)
        order, queue = {initial: 0}, deque([initial])
        while queue:  # the reachable states, breadth first
            state = queue.popleft()
            for symbol in alphabet:
                if (state, symbol) not in table:
                    raise ValueError(f"state {state!r} has no transition on {symbol!r}")
                following = table[state, symbol][0]
                if following not in order:
                    order[following] = len(order)
                    queue.append(following)
        states = {old: MealyState(new) for old, new in order.items()}
        for old, state in states.items():
            for symbol in alphabet:
                following, output = table[old, symbol]
                state.transitions[symbol] = states[following]
                state.output_fun[symbol] = output
        machine = MealyMachine(states[initial], list(states.values()))
        machine.minimize()
        return cls(_renumbered(machine, alphabet))

    @property
    def num_states(self) -> int:
        return len(self.machine.states)

    @property
    def alphabet(self) -> list:
        return list(self.machine.get_input_alphabet())

    def run(self, symbols: Iterable[Hashable]) -> list:
        """The outputs for a sequence of input symbols, from the initial state."""
        state, outputs = self.machine.initial_state, []
        for symbol in symbols:
            if symbol not in state.transitions:
                raise ValueError(f"{symbol!r} is not in the alphabet {self.alphabet}")
            outputs.append(state.output_fun[symbol])
            state = state.transitions[symbol]
        return outputs

    def states_along(self, symbols: Iterable[Hashable]) -> list[int]:
        """The state after each symbol, from the initial state."""
        state, visited = self.machine.initial_state, []
        for symbol in symbols:
            state = state.transitions[symbol]
            visited.append(state.state_id)
        return visited

    def table(self) -> dict[tuple[int, Hashable], tuple[int, Hashable]]:
        """``(state, symbol) -> (next state, output)``, states numbered from 0."""
        return {(s.state_id, a): (s.transitions[a].state_id, s.output_fun[a])
                for s in self.machine.states for a in s.transitions}  # fmt: skip

    def to_dot(self, name: str = "automaton") -> str:
        """The machine in Graphviz's DOT language (edges ``input / output``)."""
        lines = [f"digraph {name} {{", "  rankdir=LR;", '  start [shape=point, label=""];',
                 "  start -> s0;"]  # fmt: skip
        for state in self.machine.states:
            lines.append(f'  s{state.state_id} [shape=circle, label="{state.state_id}"];')
        for (state, symbol), (following, output) in sorted(self.table().items(), key=str):
            lines.append(f'  s{state} -> s{following} [label="{symbol} / {output}"];')
        return "\n".join([*lines, "}"]) + "\n"

    def __eq__(self, other) -> bool:
        """The same machine up to the names of its states (for minimal machines:
        the same input-output behaviour)."""
        if not isinstance(other, Automaton) or set(self.alphabet) != set(other.alphabet):
            return NotImplemented if not isinstance(other, Automaton) else False
        pairs = {self.machine.initial_state: other.machine.initial_state}
        queue = deque(pairs.items())
        while queue:
            mine, theirs = queue.popleft()
            for symbol in self.alphabet:
                if mine.output_fun[symbol] != theirs.output_fun[symbol]:
                    return False
                a, b = mine.transitions[symbol], theirs.transitions[symbol]
                if a in pairs:
                    if pairs[a] is not b:
                        return False
                else:
                    pairs[a] = b
                    queue.append((a, b))
        return len(pairs) == self.num_states == other.num_states

    __hash__ = None

    def __repr__(self) -> str:
        return f"Automaton({self.kind}, {self.num_states} states, alphabet {self.alphabet})"


def _renumbered(machine: MealyMachine, alphabet: list) -> MealyMachine:
    """The same machine, states numbered 0, 1, ... breadth first from the initial one."""
    order, queue = {machine.initial_state: 0}, deque([machine.initial_state])
    while queue:
        state = queue.popleft()
        for symbol in alphabet:
            following = state.transitions[symbol]
            if following not in order:
                order[following] = len(order)
                queue.append(following)
    for state, number in order.items():
        state.state_id = number
    machine.states = sorted(order, key=order.get)
    return machine
