"""A sweep's results: one SQLite file, one row per finished run.

Only the process that drives the sweep writes (workers send their results back),
one transaction per run: a sweep killed at any moment leaves every finished run
and no half-written row (SQLite's write-ahead log drops an unfinished transaction
when the file is next opened). Runs are keyed by setting and seed, so a rerun of
the same spec skips what is already there.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,      -- setting and seed, canonical JSON
    setting TEXT NOT NULL,     -- the setting, canonical JSON
    seed INTEGER NOT NULL,
    solved INTEGER NOT NULL,   -- 0/1
    updates INTEGER NOT NULL,
    seconds REAL NOT NULL,     -- training time (fit), seconds
    wall REAL NOT NULL,        -- the whole run (build, fit, test, save), seconds
    metrics TEXT NOT NULL,     -- held-out metrics per test set, JSON
    stop_reason TEXT NOT NULL,
    run_dir TEXT,              -- NULL when not saved
    curve TEXT NOT NULL,       -- [[update, held-out sequence accuracy], ...], JSON
    version TEXT NOT NULL,     -- rnnlab's
    finished TEXT NOT NULL DEFAULT (datetime('now'))
)
"""
COLUMNS = ("key", "setting", "seed", "solved", "updates", "seconds", "wall", "metrics",
           "stop_reason", "run_dir", "curve", "version")  # fmt: skip


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (or create) the results file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(path, timeout=30)
        # write-ahead log, no fsync per commit: a killed process loses no committed run
        # (the operating system holds it); only a power cut could lose the last few
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(SCHEMA)
        connection.commit()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{path}: not a sweep results file ({err})") from None
    return connection


def finished(connection: sqlite3.Connection) -> dict[str, bool]:
    """Every recorded run's key, and whether it solved its task."""
    return {key: bool(solved) for key, solved in connection.execute("SELECT key, solved FROM runs")}


def write(connection: sqlite3.Connection, row: dict) -> None:
    """Record one finished run (atomically; a run already recorded is left as it is)."""
    values = [row[c] for c in COLUMNS]
    with connection:  # one transaction
        connection.execute(
            f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})",
            values,
        )


def read(path: str | Path) -> list[dict]:
    """Every recorded run, oldest first, with its JSON fields decoded."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no results yet (run the sweep first)")
    connection = connect(path)
    try:
        cursor = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY rowid")
        rows = [dict(zip(COLUMNS, values, strict=True)) for values in cursor]
    finally:
        connection.close()
    for row in rows:
        for name in ("setting", "metrics", "curve"):
            row[name] = json.loads(row[name])
        row["solved"] = bool(row["solved"])
    return rows
