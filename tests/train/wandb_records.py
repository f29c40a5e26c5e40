"""Read a W&B run's transaction log (`run-<id>.wandb`) offline, for tests.

The file is LevelDB's log format as W&B writes it: a 7-byte header (":W&B", magic 0xBEE1,
version), then 32 KiB blocks of records, each with a 7-byte header (CRC-32C, little-endian
length, type: 1 full, 2 first, 3 middle, 4 last piece) and a serialized `wandb.proto` Record.
wandb's Python package no longer ships a reader (its Go core does the reading).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def _payloads(data: bytes):
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, "not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # the block's tail is padding
            pos += left_in_block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        if kind == 0 and length == 0:
            pos += left_in_block
            continue
        piece = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            yield piece
        elif kind == 2:
            pending = piece
        elif kind == 3:
            pending += piece
        elif kind == 4:
            yield pending + piece
            pending = b""


def wandb_history(run_file: Path) -> list[dict]:
    """Every `run.log(...)` row of the run, as {key: value}."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for payload in _payloads(Path(run_file).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows
