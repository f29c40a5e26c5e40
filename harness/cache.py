"""On-disk cache of completed generation requests: what makes an interrupted eval resumable.

One sqlite row per answered request, keyed by the sha256 of everything that determines the
answer (model identity, prompt, condition, sampling settings, which of N completions). Each
row is committed on its own, so a run killed at any point (even SIGKILL) keeps every answer
it had received, and a rerun sends only what is missing. WAL mode lets a reader (a test, `ocx report`) look at the
cache while a run writes it; `synchronous=NORMAL` is durable across a killed process (only a
power cut can drop the last commits), and is what keeps a commit per answer cheap.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    request TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def request_key(model: Mapping, prompt: object, condition: str | None, sampling: Mapping, completion: int = 0) -> str:
    """The cache key: sha256 of the canonical JSON of what determines the answer.

    `completion` tells apart the N answers `ocx eval --samples N` asks for the same prompt; the
    first one (0) leaves it out, so its key is the one a single-sample run has always used.
    """
    payload = {"model": model, "prompt": prompt, "condition": condition, "sampling": sampling}
    if completion:
        payload["completion"] = completion
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A sqlite file of answered requests. Not thread-safe: use it from one thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so every put is its own committed transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._check_schema()

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise ValueError(f"{self.path}: cache schema {row[0]}, this ocx reads {SCHEMA_VERSION}; use a new --cache")

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """Cached responses for the keys that have one."""
        keys = list(keys)
        found: dict[str, str] = {}
        # sqlite limits bound parameters per statement (32766 by default); stay well under.
        for start in range(0, len(keys), 900):
            chunk = keys[start:start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk)
            found.update(rows.fetchall())
        return found

    def get(self, key: str) -> str | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, response: str, request: Mapping | None = None) -> None:
        """Store one answer, committed before this returns."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, response, request, created) VALUES (?, ?, ?, ?)",
            (key, response, json.dumps(request or {}, ensure_ascii=False), time.time()),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
