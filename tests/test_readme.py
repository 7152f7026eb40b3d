"""The README's Python examples run and print what they say."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example saves a model file
    blocks = _python_blocks()
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "[[0, 0, 1, 0, 1, 1, 1, 1]]" in out
    assert "logistic loss 0.014357029257883496" in out
    error = float(out.splitlines()[1])
    assert error < 1e-6
    assert out.splitlines()[-1] == "True"  # (the online example learns)
