"""On-disk cache of completed generation requests: what makes an interrupted eval resumable.

One sqlite row per answered request, keyed by the sha256 of everything that determines the
answer (model identity, prompt, condition, sampling settings, which of N completions). Answers
are committed in batches: one transaction every `batch_size` answers or every `flush_seconds`,
whichever comes first (a commit per answer cost more than the rest of a fast run's
bookkeeping). A run killed at any point (even SIGKILL) loses at most the one batch not yet
committed, and a rerun sends only what is missing. WAL mode lets a reader (a test, `ocx report`)
look at the cache while a run writes it; `synchronous=NORMAL` is durable across a killed
process (only a power cut can drop the last commits).

A file that is not an ocx cache (corrupt, truncated, something else) is reported as an
InputError naming it and the way out, never as a traceback.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ocx.benchmarks.base import canonical_json
from ocx.harness.errors import InputError, InputProblem

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


def request_key(
    model: Mapping, prompt: object, condition: str | None, sampling: Mapping, completion: int = 0
) -> str:
    """The cache key: sha256 of the canonical JSON of what determines the answer.

    `completion` tells apart the N answers `ocx eval --samples N` asks for the same prompt; the
    first one (0) leaves it out, so its key is the one a single-sample run has always used.
    """
    payload = {"model": model, "prompt": prompt, "condition": condition, "sampling": sampling}
    if completion:
        payload["completion"] = completion
    return hashlib.sha256(canonical_json(payload)).hexdigest()


class RequestKeys:
    """`request_key` for many prompts that share the model, condition, sampling and completion
    index, from each prompt's canonical JSON (which the runner makes once per prompt and also
    hashes into the suite's data hash). The same keys, without serializing the shared fields
    and re-hashing their bytes for every prompt."""

    def __init__(
        self, model: Mapping, condition: str | None, sampling: Mapping, completion: int = 0
    ):
        # canonical_json writes the payload's keys sorted: completion, condition, model, prompt,
        # sampling.
        head = b'{"completion":' + canonical_json(completion) + b"," if completion else b"{"
        self._head = hashlib.sha256(
            head
            + b'"condition":'
            + canonical_json(condition)
            + b',"model":'
            + canonical_json(model)
            + b',"prompt":'
        )
        self._tail = b',"sampling":' + canonical_json(sampling) + b"}"

    def key(self, prompt_json: bytes) -> str:
        """The key of the prompt whose `canonical_json` is `prompt_json`."""
        digest = self._head.copy()
        digest.update(prompt_json)
        digest.update(self._tail)
        return digest.hexdigest()


def _corrupt(path: Path, exc: BaseException) -> InputError:
    return InputError(
        InputProblem(
            str(path),
            None,
            "--cache",
            f"not a readable ocx response cache ({exc}); delete it (answers in it will be "
            "asked again), pass another --cache, or run with --no-cache",
        )
    )


class ResponseCache:
    """A sqlite file of answered requests (None: in memory only). Not thread-safe: use it from
    one thread."""

    def __init__(
        self, path: str | Path | None, *, batch_size: int = 256, flush_seconds: float = 0.5
    ):
        self.path = Path(path) if path is not None else None
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self._pending: list[tuple[str, str, str, float]] = []
        self._lock = (
            threading.Lock()
        )  # the caller's thread and the flusher thread share the connection
        self._closed = threading.Event()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: autocommit; a batch is one explicit transaction (see flush).
            self._db = sqlite3.connect(
                ":memory:" if self.path is None else self.path,
                isolation_level=None,
                timeout=30,
                check_same_thread=False,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from None
        # Commits a batch that stopped growing (the last answers of a run, or answers before a
        # long wait), so no answer stays uncommitted for much more than flush_seconds.
        self._flusher = threading.Thread(
            target=self._flush_periodically, name="ocx-cache-flush", daemon=True
        )
        self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self.flush_seconds):
            try:
                self.flush()
            except InputError:
                return  # reported by the caller's next put/get/close

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        elif row[0] != str(SCHEMA_VERSION):
            raise InputError(
                InputProblem(
                    str(self.path),
                    None,
                    "--cache",
                    f"cache schema {row[0]!r}, this ocx reads {SCHEMA_VERSION}; "
                    "pass a new --cache (or delete this one)",
                )
            )

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """Cached responses for the keys that have one, answers not yet committed included (read
        from the pending batch rather than committed first: a run looks keys up a span at a time,
        and a commit per lookup would undo the batching)."""
        keys = list(keys)
        found: dict[str, str] = {}
        with self._lock:
            self._select(keys, found)
            if self._pending:  # later puts win, as INSERT OR REPLACE makes them on commit
                wanted = set(keys)
                found.update((row[0], row[1]) for row in self._pending if row[0] in wanted)
        return found

    def _select(self, keys: list[str], found: dict[str, str]) -> None:
        # sqlite limits bound parameters per statement (32766 by default); stay well under.
        try:
            for start in range(0, len(keys), 900):
                chunk = keys[start : start + 900]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk
                )
                found.update(rows.fetchall())
        except sqlite3.DatabaseError as exc:  # a file damaged past its header shows only on reading
            raise _corrupt(self.path, exc) from None

    def get(self, key: str) -> str | None:
        return self.get_many([key]).get(key)

    def put(
        self,
        key: str,
        response: str,
        request: Mapping | None = None,
        *,
        request_json: str | None = None,
    ) -> None:
        """Store one answer with what was asked (`request`, or `request_json` already serialized);
        committed with its batch (at the latest `flush_seconds` after the batch's first answer,
        when a later answer arrives, or on flush/close)."""
        if request_json is None:
            request_json = json.dumps(request or {}, ensure_ascii=False)
        row = (key, response, request_json, time.time())
        with self._lock:
            self._pending.append(row)
            full = len(self._pending) >= self.batch_size
        if full:
            self.flush()

    def flush(self) -> None:
        """Commit every pending answer in one transaction."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            try:
                with self._db:  # BEGIN ... COMMIT (rolled back on error)
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "INSERT OR REPLACE INTO responses (key, response, request, created) "
                        "VALUES (?, ?, ?, ?)",
                        pending,
                    )
            except sqlite3.DatabaseError as exc:
                raise _corrupt(self.path, exc) from None

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._closed.set()
        self._flusher.join()
        try:
            self.flush()
        finally:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
