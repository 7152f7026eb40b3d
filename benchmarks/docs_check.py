"""Check that the README's sweep tables are what their sweeps give on this code (and its
demo's rows what ``rnnlab train shift`` and ``rnnlab eval`` print).

    python benchmarks/docs_check.py [--all]   (make docs-check, make docs-check-all)

Reruns each sweep of ``benchmarks/sweeps/`` that the README quotes (between
``<!-- sweep NAME on MACHINE -->`` and ``<!-- /sweep -->``) into a temporary folder and
compares its Markdown summary with the README's table, every column but "seconds" (a
measurement, not a result). Exit code 1 and the differing rows when they differ. The
paper-scale sweeps (:data:`LONG`, half an hour on two cores) only with ``--all``.

A table holds the results of one kind of machine (:func:`machine`): where BLAS products
or vectorized sums enter the training, another CPU sums them in another order, and runs
that train for thousands of updates end elsewhere. On another machine a table that
differs is reported as not comparable, not as a failure; ``readme_numbers.py OUT
--sweeps`` writes this machine's tables.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import rnnlab
from rnnlab.sweeps.summary import COLUMNS, to_markdown

ROOT = Path(__file__).resolve().parent.parent
#: a sweep table: its name, the machine it was made on ("": not recorded), the table
BLOCK = re.compile(r"<!-- sweep (\S+?)(?: on (.*?))? -->\n(.*?)<!-- /sweep -->", re.S)
#: sweeps checked only with ``--all``
LONG = {"adding_le"}


def machine() -> str:
    """What decides the order of a sum in training: the CPU (its vector width, for
    numba's reassociated sums) and the kernels OpenBLAS chose for it."""
    import platform

    from llvmlite import binding

    from rnnlab.kernels.compiled import blas

    return f"{platform.machine()} {binding.get_host_cpu_name()}, OpenBLAS {blas.core_name()}"


def results_only(table: str) -> list[list[str]]:
    """The table's rows without the "seconds" column."""
    drop = COLUMNS.index("seconds")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|")]  # fmt: skip
    return [row[:drop] + row[drop + 1 :] for row in rows]


def main() -> int:
    readme = (ROOT / "README.md").read_text()
    blocks = BLOCK.findall(readme)
    if not blocks:
        print("README.md quotes no sweep")
        return 1
    failed, here = False, machine()
    for name, made_on, table in blocks:
        if name in LONG and "--all" not in sys.argv[1:]:
            print(f"{name}: not checked (paper-scale; make docs-check-all)")
            continue
        with tempfile.TemporaryDirectory() as out:
            rows = rnnlab.sweep(ROOT / "benchmarks/sweeps" / f"{name}.toml", out=out, save=False)
        fresh = to_markdown(rnnlab.sweep.summarize(rows))
        if results_only(fresh) == results_only(table):
            print(f"{name}: README table matches ({len(rows)} runs)")
        elif made_on != here:
            print(f"{name}: not comparable here: the README's table comes from "
                  f"{made_on or 'a machine it does not name'}, this is {here}; this machine "
                  f"gives\n{fresh}")  # fmt: skip
        else:
            failed = True
            print(f"{name}: the README says\n{table}\nthe sweep gives\n{fresh}")
    return 1 if failed or not demo_matches(readme) else 0


def demo_matches(readme: str) -> bool:
    """Whether the demo's rows in the README (held-out losses, the first weight, ``rnnlab
    eval``'s line) are what ``rnnlab train shift`` and ``rnnlab eval`` print now."""
    import subprocess

    from readme_numbers import RUNS, demo_rows

    with tempfile.TemporaryDirectory() as out:
        for name in ("demo.txt", "eval.txt"):
            command = [part.format(out=out) for part in RUNS[name]]
            if name == "demo.txt":
                command.append("--no-plot")
            printed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                     check=True)  # fmt: skip
            Path(out, name).write_text(printed.stdout)
        rewritten = demo_rows(readme, Path(out))
    if rewritten == readme:
        print("demo: README rows match rnnlab train shift and rnnlab eval")
        return True
    print("demo: the README's rows differ from what rnnlab train shift and rnnlab eval print:")
    print("\n".join(line for line in rewritten.splitlines() if line not in readme.splitlines()))
    return False


if __name__ == "__main__":
    sys.exit(main())
