"""The README's sweep tables name the machine they ran on (``benchmarks/docs_check.py``):
``make docs-check`` compares a table only on a machine of that kind."""

from __future__ import annotations

import importlib
import platform
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("docs_check"), importlib.import_module("readme_numbers")


def test_a_table_is_written_and_read_with_the_machine_it_ran_on(scripts, tmp_path):
    docs_check, readme_numbers = scripts
    older = "x86_64 older, OpenBLAS Zen"
    readme = ("intro\n<!-- sweep one -->\n| old |\n<!-- /sweep -->\nmiddle\n"
              f"<!-- sweep two on {older} -->\n| kept |\n<!-- /sweep -->\n")  # fmt: skip
    found = docs_check.BLOCK.findall(readme)
    assert found == [("one", "", "| old |\n"), ("two", older, "| kept |\n")]
    (tmp_path / "one.machine").write_text("x86_64 newer, OpenBLAS Haswell\n")
    (tmp_path / "one.md").write_text("| new |\n")  # (no two.md: that table stays)
    (tmp_path / "three.md").write_text("| reused |\n")  # (from before machines were named)
    readme += "<!-- sweep three on x86_64 older, OpenBLAS Zen -->\n| old |\n<!-- /sweep -->\n"
    written = readme_numbers.sweep_tables(readme, tmp_path)
    assert docs_check.BLOCK.findall(written) == [
        ("one", "x86_64 newer, OpenBLAS Haswell", "| new |\n"),
        ("two", older, "| kept |\n"),
        ("three", "", "| reused |\n"),  # (a machine not recorded is not guessed)
    ]
    assert written.startswith("intro\n") and "\nmiddle\n" in written


def test_the_machine_is_its_cpu_and_the_kernels_openblas_chose(scripts):
    docs_check, _ = scripts
    here = docs_check.machine()
    assert here.startswith(platform.machine() + " ") and ", OpenBLAS " in here
    assert "None" not in here  # (scipy's OpenBLAS names its kernels)


def test_every_readme_table_names_its_machine_but_the_paper_scale_one(scripts):
    docs_check, _ = scripts
    readme = (BENCHMARKS.parent / "README.md").read_text()
    unnamed = {name for name, made_on, _ in docs_check.BLOCK.findall(readme) if not made_on}
    assert unnamed <= docs_check.LONG


def test_the_demo_rows_are_rewritten_from_the_demo_run(scripts, tmp_path):
    _, readme_numbers = scripts
    readme = ("│ lengths 4-10 │ 1000 │ 0.1 │\n│ length 1000  │ 200 │ 0.2 │\n│ W_xh[0, 0] │ +1 │\n"
              "shift, 100 sequences of length 1000: loss 0.3\n")  # fmt: skip
    printed = "solved\n│ lengths 4-10 │ 1000 │ 0.4 │   \n│ length 1000  │ 200 │ 0.5 │\n"
    (tmp_path / "demo.txt").write_text(printed + "│ W_xh[0, 0] │ +2 │\n")
    (tmp_path / "eval.txt").write_text("shift, 100 sequences of length 1000: loss 0.6\n")
    assert readme_numbers.demo_rows(readme, tmp_path) == (
        "│ lengths 4-10 │ 1000 │ 0.4 │\n│ length 1000  │ 200 │ 0.5 │\n│ W_xh[0, 0] │ +2 │\n"
        "shift, 100 sequences of length 1000: loss 0.6\n"
    )


def test_the_timings_are_what_the_kept_benchmark_outputs_say(scripts):
    """The user-path table, the time-to-solve table and the start-up paragraph are
    ``readme_numbers.py --timings``'s rendering of ``speed.py --api``, ``--solve 10`` and
    ``--startup`` outputs kept in docs/: no number in them is edited by hand, and a rerun
    that writes them writes all three."""
    _, readme_numbers = scripts
    readme = (BENCHMARKS.parent / "README.md").read_text()
    api, startup, solve = (kept.read_text() for kept in readme_numbers.TIMINGS.values())
    assert readme_numbers.timings(readme, api, startup, solve) == readme
    assert "```text\n" + api + "```" in readme and "```text\n" + solve + "```" in readme
    changed = api.replace("lstm     16", "lstm     17", 1)
    assert readme_numbers.timings(readme, changed, startup, solve) != readme
    changed = solve.replace("    60   ", "    61   ", 1)
    assert changed != solve and readme_numbers.timings(readme, api, startup, changed) != readme


def test_the_text_block_is_what_the_kept_outputs_say(scripts):
    """The character model's block is ``readme_numbers.py --text``'s rendering of
    ``text_demo.py`` and ``speed.py --text`` outputs kept in docs/, unedited."""
    _, readme_numbers = scripts
    readme = (BENCHMARKS.parent / "README.md").read_text()
    run, speed = (kept.read_text() for kept in readme_numbers.TEXT.values())
    assert readme_numbers.text_block(readme, run, speed) == readme
    assert run in readme and speed in readme
    changed = speed.replace("lstm ", "lstm  ", 1)
    assert changed != speed and readme_numbers.text_block(readme, run, changed) != readme
