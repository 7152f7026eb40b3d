"""A finite-state machine read out of a network: a Mealy machine, on aalpy's classes.

States are numbered from 0 (the initial one) in breadth-first order of the
inputs, so two equal machines print the same. Minimisation is aalpy's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping

from aalpy.automata import Dfa, DfaState, MealyMachine, MealyState


class Automaton:
    """A Mealy machine (from each state, each input symbol gives an output and a next
    state) or a DFA (states accept or reject the string read so far).

    Attributes
    ----------
    machine : aalpy.automata.MealyMachine or aalpy.automata.Dfa
        The minimal machine (aalpy's; use it for anything aalpy offers).
    kind : "mealy" or "dfa"
    """

    def __init__(self, machine: MealyMachine | Dfa):
        self.machine = machine
        self.kind = "dfa" if isinstance(machine, Dfa) else "mealy"

    def to_dfa(self, *, empty: bool = True) -> Automaton:
        """The acceptor of a Mealy machine whose output (0/1) says whether the string read
        so far is accepted: a state accepts when the transitions into it output 1
        (they must agree); the initial state, when nothing enters it, accepts the empty
        string as ``empty`` says. Minimised."""
        if self.kind == "dfa":
            return self
        accepts: dict[int, set] = {}
        for (_, _), (following, output) in self.table().items():
            accepts.setdefault(following, set()).add(bool(output))
        if any(len(values) > 1 for values in accepts.values()):
            raise ValueError("the machine's outputs are not a property of its states: "
                             "not an acceptor")  # fmt: skip
        states = {s.state_id: DfaState(s.state_id, next(iter(accepts.get(s.state_id, {empty}))))
                  for s in self.machine.states}  # fmt: skip
        for s in self.machine.states:
            for symbol, following in s.transitions.items():
                states[s.state_id].transitions[symbol] = states[following.state_id]
        dfa = Dfa(states[self.machine.initial_state.state_id], list(states.values()))
        dfa.minimize()
        automaton = Automaton(_renumbered(dfa, self.alphabet))
        automaton.__dict__.update({k: v for k, v in self.__dict__.items()
                                   if k not in ("machine", "kind")})  # fmt: skip
        return automaton

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
        """The outputs for a sequence of input symbols, from the initial state (for a
        DFA: after each symbol, whether the string so far is accepted, 1 or 0)."""
        state, outputs = self.machine.initial_state, []
        for symbol in symbols:
            if symbol not in state.transitions:
                raise ValueError(f"{symbol!r} is not in the alphabet {self.alphabet}")
            following = state.transitions[symbol]
            outputs.append(int(following.is_accepting) if self.kind == "dfa"
                           else state.output_fun[symbol])  # fmt: skip
            state = following
        return outputs

    def accepts(self, symbols: Iterable[Hashable]) -> bool:
        """For a DFA: whether it accepts the string."""
        if self.kind != "dfa":
            raise ValueError("accepts() is for a DFA; see to_dfa()")
        state = self.machine.initial_state
        for symbol in symbols:
            state = state.transitions[symbol]
        return bool(state.is_accepting)

    def states_along(self, symbols: Iterable[Hashable]) -> list[int]:
        """The state after each symbol, from the initial state."""
        state, visited = self.machine.initial_state, []
        for symbol in symbols:
            state = state.transitions[symbol]
            visited.append(state.state_id)
        return visited

    def table(self) -> dict[tuple[int, Hashable], tuple[int, Hashable]]:
        """``(state, symbol) -> (next state, output)``, states numbered from 0 (for a DFA
        the output is whether the next state accepts)."""
        return {(s.state_id, a): (t.state_id, int(t.is_accepting) if self.kind == "dfa"
                                  else s.output_fun[a])
                for s in self.machine.states for a, t in s.transitions.items()}  # fmt: skip

    def to_dot(self, name: str = "automaton") -> str:
        """The machine in Graphviz's DOT language (edges ``input / output``)."""
        lines = [f"digraph {name} {{", "  rankdir=LR;", '  start [shape=point, label=""];',
                 "  start -> s0;"]  # fmt: skip
        for state in self.machine.states:
            shape = "doublecircle" if getattr(state, "is_accepting", False) else "circle"
            lines.append(f'  s{state.state_id} [shape={shape}, label="{state.state_id}"];')
        for (state, symbol), (following, output) in sorted(self.table().items(), key=str):
            lines.append(f'  s{state} -> s{following} [label="{symbol} / {output}"];')
        return "\n".join([*lines, "}"]) + "\n"

    def __eq__(self, other) -> bool:
        """The same machine up to the names of its states (for minimal machines:
        the same input-output behaviour)."""
        if not isinstance(other, Automaton):
            return NotImplemented
        if self.kind != other.kind or set(self.alphabet) != set(other.alphabet):
            return False
        if self.kind == "dfa" and (self.machine.initial_state.is_accepting
                                   != other.machine.initial_state.is_accepting):  # fmt: skip
            return False
        pairs = {self.machine.initial_state: other.machine.initial_state}
        queue = deque(pairs.items())
        while queue:
            mine, theirs = queue.popleft()
            for symbol in self.alphabet:
                a, b = mine.transitions[symbol], theirs.transitions[symbol]
                if self.kind == "dfa" and a.is_accepting != b.is_accepting:
                    return False
                if self.kind == "mealy" and mine.output_fun[symbol] != theirs.output_fun[symbol]:
                    return False
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


def _renumbered(machine, alphabet: list):
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
