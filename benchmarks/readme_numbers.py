"""Rerun every benchmark the README quotes and write its numbers into README.md.

    python benchmarks/readme_numbers.py OUT_DIR [--reuse] [--only NAME,NAME] [--sweeps]
                                                [--timings] [--text]

Runs ``speed.py --solve 10``, the sweeps of ``benchmarks/sweeps/`` the README quotes
(``rnnlab sweep SPEC --markdown``), ``sweep_scaling.py``, ``rnnlab train shift``,
``speed.py --repeats 3`` (also written to docs/speed_grid.txt), ``speed.py --startup``,
``rnnlab train shift --inspect`` and ``inspect_examples.py`` (the README's pictures),
``papers.py`` (the paper-scale sweeps: half an hour on two cores), ``online_rules.py``,
``online_cost.py``, ``text_demo.py`` and ``speed.py --text``,
keeping each output in OUT_DIR (``--reuse``: only rewrite README from outputs there;
``--only``: rerun these outputs, e.g. ``tasks.md,scaling.txt``, and reuse the rest),
then replaces the README's tables, grid excerpt, summary and timings with them
(``--sweeps``: the sweep tables alone, the paper-scale one aside unless ``--only``
names it; each records the machine it ran on, see ``docs_check.py``; ``--timings``: the
user-path table, the time-to-solve table and the start-up paragraph alone, from ``speed.py
--api``, ``--solve 10`` and ``--startup``, whose outputs are kept in docs/ as well;
``--text``: the character model's block alone, from ``text_demo.py`` and ``speed.py
--text``, kept in docs/ too). The
summary compares the grid with the previous backend's (``git show
8a806a5:docs/speed_grid.txt``). ``make docs-check`` reruns the sweep tables and the demo's
rows; ``tests/test_readme_tables.py`` checks the timings and the text block against the
outputs kept in docs/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from docs_check import BLOCK, machine  # (run as a script: benchmarks/ is on the path)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEFORE_COMMIT = "8a806a5"

#: the sweeps whose summaries the README quotes (between <!-- sweep NAME --> markers)
SWEEPS = ("shift_seeds", "tasks", "copy_delay", "regular", "adding_le")


def sweep_command(name: str) -> list[str]:
    """``rnnlab sweep`` of ``benchmarks/sweeps/NAME.toml``, its table into ``{out}/NAME.md``."""
    return [sys.executable, "-m", "rnnlab", "sweep", f"benchmarks/sweeps/{name}.toml", "--out",
            "{out}/sweeps", "--no-save", "--no-plots", "--quiet", "--markdown",
            f"{{out}}/{name}.md"]  # fmt: skip


RUNS = {
    "solve.txt": [sys.executable, "benchmarks/speed.py", "--solve", "10"],
    **{f"{name}.md": sweep_command(name) for name in SWEEPS},
    "scaling.txt": [sys.executable, "benchmarks/sweep_scaling.py"],
    "demo.txt": [sys.executable, "-m", "rnnlab", "train", "shift", "--out", "{out}/runs"],
    "eval.txt": [
        sys.executable,
        "-c",
        "import glob, sys; from rnnlab.cli import main; "
        "model = sorted(glob.glob(sys.argv[1] + '/shift-*/model.safetensors'))[-1]; "
        "sys.exit(main(['eval', model, '--length', '1000', '--n', '100']))",
        "{out}/runs",
    ],  # (the demo's model, as the README evaluates it)
    "grid.txt": [sys.executable, "benchmarks/speed.py", "--repeats", "3"],
    "startup.txt": [sys.executable, "benchmarks/speed.py", "--startup"],
    "inspect.txt": [
        sys.executable,
        "-m",
        "rnnlab",
        "train",
        "shift",
        "--inspect",
        "--no-plot",
        "--out",
        "{out}/inspect",
    ],
    "examples.txt": [sys.executable, "benchmarks/inspect_examples.py"],
    "notebook.txt": [sys.executable, "benchmarks/notebook_cell.py"],
    "api.txt": [sys.executable, "benchmarks/speed.py", "--api", "--repeats", "3"],
    "papers.txt": [sys.executable, "benchmarks/papers.py", "{out}"],
    "online.txt": [sys.executable, "benchmarks/online_rules.py", "{out}"],
    "online_cost.txt": [sys.executable, "benchmarks/online_cost.py"],
    "text.txt": [sys.executable, "benchmarks/text_demo.py", "{out}/text"],
    "text_speed.txt": [sys.executable, "benchmarks/speed.py", "--text"],
}


def run_all(out: Path, only: set[str] | None = None) -> None:
    for name, command in RUNS.items():
        if only is not None and name not in only:
            continue
        command = [part.format(out=out) for part in command]
        if name.endswith(".md"):  # a sweep from scratch: a rerun would keep finished runs
            shutil.rmtree(out / "sweeps" / name.removesuffix(".md"), ignore_errors=True)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        if name.endswith(".md"):  # (a sweep writes its own table; beside it, where it ran)
            (out / name.replace(".md", ".machine")).write_text(machine() + "\n")
        else:
            (out / name).write_text(result.stdout)


def between(s: str, marker: str, text: str) -> str:
    """``s`` with ``text`` between its ``<!-- MARKER -->`` and ``<!-- /MARKER -->`` lines."""
    block = re.compile(rf"(<!-- {marker} -->\n).*?(<!-- /{marker} -->)", re.S)
    return block.sub(lambda g: g.group(1) + text + g.group(2), s, count=1)


def sweep_tables(s: str, out: Path) -> str:
    """``s`` (the README) with each sweep table that ``out`` holds between its
    ``<!-- sweep NAME on MACHINE -->`` and ``<!-- /sweep -->`` (docs_check.py), with the
    machine its sweep ran on (``OUT/NAME.machine``; none named for a table without one)."""

    def table(m: re.Match) -> str:
        path, where = out / f"{m.group(1)}.md", out / f"{m.group(1)}.machine"
        if not path.exists():
            return m.group(0)
        made_on = f" on {where.read_text().strip()}" if where.exists() else ""
        return f"<!-- sweep {m.group(1)}{made_on} -->\n{path.read_text()}<!-- /sweep -->"

    return BLOCK.sub(table, s)


def demo_rows(s: str, out: Path) -> str:
    """``s`` (the README) with the rows of ``rnnlab train shift``'s tables that its demo
    shows (the held-out test sets, the first weight) as ``OUT/demo.txt`` has them, and
    ``rnnlab eval``'s line of that model (``OUT/eval.txt``)."""
    printed = (out / "demo.txt").read_text().splitlines()
    for label in ("│ lengths 4-10 ", "│ length 1000 ", "│ W_xh[0, 0] "):
        row = next((line.rstrip() for line in printed if line.startswith(label)), None)
        if row is None:
            raise ValueError(f"{out / 'demo.txt'} has no row {label.strip()!r}")
        s = re.sub("^" + re.escape(label) + ".*$", lambda _, row=row: row, s, count=1, flags=re.M)
    if (out / "eval.txt").exists():
        line = (out / "eval.txt").read_text().strip()
        s = re.sub(r"^shift, 100 sequences of length 1000: .*$", lambda _: line, s, count=1,
                   flags=re.M)  # fmt: skip
    return s


def _span(values: list[float]) -> str:
    """``"2.2-2.4"``, or ``"2.3"`` when the values round alike."""
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}-{high}"


#: where ``speed.py --api`` and ``speed.py --startup`` outputs are kept (the README's
#: numbers from them; ``tests/test_readme_tables.py`` checks that they are)
API_OUTPUT, STARTUP_OUTPUT = ROOT / "docs/speed_api.txt", ROOT / "docs/startup.txt"
SOLVE_OUTPUT = ROOT / "docs/speed_solve.txt"
#: the outputs the README's timings come from, and where docs/ keeps them
TIMINGS = {"api.txt": API_OUTPUT, "startup.txt": STARTUP_OUTPUT, "solve.txt": SOLVE_OUTPUT}
#: the character model's run and its speed against PyTorch, kept in docs/ as well
TEXT = {"text.txt": ROOT / "docs/text_demo.txt", "text_speed.txt": ROOT / "docs/speed_text.txt"}


def timings(s: str, api: str, startup: str, solve: str) -> str:
    """``s`` (the README) with its user-path table, time-to-solve table and start-up
    paragraph written from the outputs of ``speed.py --api`` (``api``), ``speed.py --solve
    10`` (``solve``) and ``speed.py --startup`` (``startup``)."""
    a = s.index("```text\n# shift, task defaults")
    b = s.index("```", a + 8)
    s = s[:a] + "```text\n" + solve.strip() + "\n" + s[b:]
    text = (
        "The paths a user takes, on padded batch-first float32 arrays with lengths\n"
        "(`python benchmarks/speed.py --api`): `fit` per update (its own clock, Adam on random\n"
        "mini-batches, as a PyTorch loop does), `model.loss_and_grad(X, Y, lengths=L)` against "
        "a\nPyTorch forward and backward, `model.predict_proba(X, lengths=L)` against a "
        "`no_grad`\nforward; rnnlab's speed over PyTorch's with one thread (`t1`) and its "
        "default threads\n(`tN`, at H = 256), and `lg/step`, what the array path costs over "
        "the training pass on a\nprepared batch (the two called in turn, call by call); "
        "measured on a later 2-core machine\nthan the grid above, whose first line names its "
        "CPU and the OpenBLAS kernels rnnlab's\nproducts ran on (`speed.py` drops an "
        "`OPENBLAS_CORETYPE` pin: PyTorch's MKL picks its own):\n\n```text\n" + api + "```\n\n"
        "The LSTM's lead is the smallest at H = 16-64 (its forward pass at H = 64 about "
        "even):\nPyTorch's LSTM is one fused kernel, and at H = 16 a tenth of its update "
        "time is less\nthan the products and nonlinearities of the update alone take here\n"
        '(`benchmarks/lstm_floor.py`; docs/architecture.md, "The LSTM against PyTorch").\n\n'
    )
    a = s.index("The paths a user takes")
    b = s.index("How (the whole design")
    s = s[:a] + text + s[b:]
    cold_all = re.search(r"kernels cold.*?process\s+([\d.]+) s", startup).group(1)
    warm_all = re.search(r"kernels warm.*?first calls.*?([\d.]+) s", startup).group(1)
    tr = re.findall(r"rnnlab train shift (cold|warm).*?([\d.]+) s wall", startup)
    cold = next(v for k, v in tr if k == "cold")
    warm = [float(v) for k, v in tr if k == "warm"]
    text = (
        "Start-up (`python benchmarks/speed.py --startup`, fresh processes): "
        "`rnnlab train shift`\n"
        f"takes {_span(warm)} s from the shell with a warm kernel cache, "
        f"and {float(cold):.0f} s the first time, when\n"
        "numba compiles the kernels it needs into `__pycache__` (one driver for every cell:\n"
        "the first use of each way of running a batch compiles it for every cell at once).\n"
        "The snippet's first calls (every cell at H = 2 and 64, a few sequences, float32 "
        "and float64)\n"
        f"take {float(cold_all):.0f} s cold and {float(warm_all):.1f} s warm.\n\n"
    )
    a = s.index("Start-up (`python benchmarks")
    b = s.index("## Layout")
    return s[:a] + text + s[b:]


def text_block(s: str, run: str, speed: str) -> str:
    """``s`` (the README) with its character-model block written from the outputs of
    ``text_demo.py`` (``run``) and ``speed.py --text`` (``speed``)."""
    return between(s, "text", "```text\n" + run + "\n" + speed + "```\n")


def keep(out: Path, outputs: dict[str, Path]) -> None:
    """Keep ``OUT/NAME`` for each of ``outputs`` at its path in docs/ (what the README
    says)."""
    for output, kept in outputs.items():
        kept.write_text((out / output).read_text())


def rewrite(out: Path) -> None:
    before = out / "grid_before.txt"
    before.write_text(subprocess.run(["git", "show", f"{BEFORE_COMMIT}:docs/speed_grid.txt"],
                                     cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout)  # fmt: skip
    s = README.read_text()
    # demo line
    m = re.search(r"solved after \d+ updates in [\d.]+ s", open(out / "demo.txt").read())
    s = re.sub(r"solved after \d+ updates in [\d.]+ s", m.group(0), s, count=1)
    files = re.search(r"saved to \S+ (\([^)]*\))", open(out / "demo.txt").read()).group(1)
    s = re.sub(r"(saved to runs/\S+ )\([^)]*\)", lambda g: g.group(1) + files, s, count=1)
    s = demo_rows(s, out)
    # inspect: the summary `rnnlab train shift --inspect` prints, and the examples' output
    printed = open(out / "inspect.txt").read().splitlines()
    summary = printed[next(i for i, l in enumerate(printed) if "-state " in l) :]
    a = s.index("$ rnnlab train shift --inspect")
    a = s.index("\n", a) + 1
    b = s.index("```", a)
    s = s[:a] + "\n".join(l.rstrip() for l in summary if not l.startswith("wrote ")) + "\n" + s[b:]
    a = s.index("```text\n# benchmarks/inspect_examples.py")
    b = s.index("```", a + 8)
    examples = open(out / "examples.txt").read().strip()
    s = s[:a] + "```text\n# benchmarks/inspect_examples.py\n" + examples + "\n" + s[b:]
    s = sweep_tables(s, out)
    s = between(s, "notebook-cell", "```text\n" + open(out / "notebook.txt").read() + "```\n")
    s = between(s, "sweep-scaling", open(out / "scaling.txt").read())
    s = between(s, "papers", open(out / "papers.txt").read())
    online = open(out / "online.txt").read() + "\n```text\n" + open(out / "online_cost.txt").read()
    s = between(s, "online", online + "```\n")
    s = text_block(s, *((out / name).read_text() for name in TEXT))
    keep(out, TEXT)
    # grid
    open(ROOT / "docs/speed_grid.txt", "w").write(open(out / "grid.txt").read())
    grid = open(out / "grid.txt").read().splitlines()
    want = {
        (c, h, b, t)
        for c in ("elman", "gru", "lstm")
        for (h, b, t) in ((2, 1, 10), (2, 32, 10), (16, 32, 100), (64, 32, 100), (256, 256, 100))
    }
    ex = [l for l in grid[2:] if (l.split()[0], *map(int, l.split()[1:4])) in want]
    a = s.index("```text\n# numba threads")
    b = s.index("```", a + 8)
    s = s[:a] + "```text\n" + "\n".join(grid[:2] + ex) + "\n" + s[b:]
    rows = [l.split() for l in grid[2:]]
    t1 = [float(r[10]) for r in rows]
    best = [float(r[11]) for r in rows]
    behind = [f"{r[0]} {r[1]}/{r[2]}/{r[3]} {float(r[10]):.1f}x" for r in rows if float(r[10]) < 1]
    small = max(float(r[10]) for r in rows if int(r[1]) <= 16)
    cmp = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/speed.py"),
            "--compare",
            str(before),
            str(out / "grid.txt"),
        ],
        capture_output=True,
        text=True,
    ).stdout
    summary = next(l for l in cmp.splitlines() if l.startswith("# 72"))
    med, rng = re.search(r"median ([\d.]+), range ([\d.]+-[\d.]+)", summary).groups()
    within, slower, faster = re.search(
        r"within 0.8-1.25: (\d+), slower than 0.8: (\d+), faster than 1.25: (\d+)", summary
    ).groups()
    prose = (
        f"Over the whole grid (72 configurations) rnnlab is ahead of single-threaded PyTorch in "
        f"{sum(v > 1 for v in t1)} (up to {small:.0f}x at H <= 16) and of the faster PyTorch in "
        f"{sum(v > 1 for v in best)}; "
        + (
            f"behind one-thread PyTorch (cell H/B/T): {', '.join(behind)}.\n"
            if behind
            else "behind one-thread PyTorch in none.\n"
        )
        + "`python benchmarks/speed.py --compare BEFORE AFTER` compares two saved grids; "
        "against the\n"
        f"grid of the previous backend (one hand-written kernel per cell and size) this one is\n"
        f"within 0.8-1.25x in {within} configurations, faster in {faster} and slower in {slower}\n"
        f"(after/before median {med}, range {rng}; slowest: one sequence at a time and small H).\n"
        f"Runs vary by 10-30% on this shared machine. Every measurement is followed by a 0.25 s\n"
        f"pause: OpenMP threads keep spinning after their last parallel region, and without the\n"
        f"pause they slowed whichever implementation ran next.\n\n"
    )
    a = s.index("Over the whole grid")
    b = s.index("The paths a user takes")
    s = s[:a] + prose + s[b:]
    # the user paths, solving and start-up (their outputs also kept in docs/, which the
    # tests check)
    try:
        s = timings(s, *((out / name).read_text() for name in TIMINGS))
    except OSError as err:
        print("user-path and start-up numbers not updated:", err)
    else:
        keep(out, TIMINGS)
    open(README, "w").write(s)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    only = None
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
        unknown = only - set(RUNS)
        if unknown:
            print(f"unknown outputs {sorted(unknown)}; choose from {', '.join(RUNS)}")
            return 2
    if only is not None and "demo.txt" in only:  # (the README evaluates the demo's model)
        only.add("eval.txt")
    if "--sweeps" in sys.argv:  # the sweep tables alone
        only = {f"{name}.md" for name in SWEEPS} - {"adding_le.md"} if only is None else only
    if "--timings" in sys.argv:  # the user paths, solving and start-up alone
        only = set(TIMINGS)
    if "--text" in sys.argv:  # the character model alone
        only = set(TEXT)
    if "--reuse" not in sys.argv:
        run_all(out, only)
    if "--sweeps" in sys.argv:
        README.write_text(sweep_tables(README.read_text(), out))
    elif "--timings" in sys.argv:
        README.write_text(timings(README.read_text(), *((out / n).read_text() for n in TIMINGS)))
        keep(out, TIMINGS)
    elif "--text" in sys.argv:
        README.write_text(text_block(README.read_text(), *((out / n).read_text() for n in TEXT)))
        keep(out, TEXT)
    else:
        rewrite(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
