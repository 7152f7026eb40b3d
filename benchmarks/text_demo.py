"""A min-char-rnn-style run from the command line, on a text this script writes.

    python benchmarks/text_demo.py [OUT]   (default runs/text)

The text is the Python documentation's topic pages that ship with Python itself
(``pydoc_data.topics``, every page in name order: about 465,000 characters of English
and code; the same on every machine with the same Python). It runs ``rnnlab train text``
on it (128 tanh units, chunks of 50 characters from 32 tracks, Adam 3e-3, 3000 updates,
float32; the last tenth held out) and prints the held-out bits per character beside the
unigram and bigram baselines, then samples at three temperatures (``rnnlab sample``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_corpus(path: Path) -> int:
    import pydoc_data.topics as topics

    text = "".join(topics.topics[name] for name in sorted(topics.topics))
    path.write_text(text, encoding="utf-8")
    return len(text)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "text"
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "python_topics.txt"
    size = write_corpus(corpus)
    command = [sys.executable, "-m", "rnnlab", "train", "text", "--data", str(corpus),
               "--hidden", "128", "--length", "50", "--batch-size", "32", "--lr", "0.003",
               "--max-steps", "3000", "--dtype", "float32", "--out", str(out / "runs")]  # fmt: skip
    print(f"$ rnnlab train text --data python_topics.txt --hidden 128 --length 50 "
          f"--batch-size 32 --lr 0.003 --max-steps 3000 --dtype float32   "
          f"# {size:,} characters")  # fmt: skip
    trained = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    lines = trained.splitlines()
    print("\n".join(line for line in lines if not line.startswith("sample:")))
    run = sorted((out / "runs").iterdir())[-1]
    for temperature in ("0.5", "0.8", "1.0"):
        drawn = subprocess.run([sys.executable, "-m", "rnnlab", "sample", str(run), "--length",
                                "300", "--temperature", temperature, "--prime", "The "],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        print(f"\n$ rnnlab sample RUN --temperature {temperature} --prime 'The '\n{drawn.rstrip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
