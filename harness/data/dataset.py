"""Read a tokenized dataset (`manifest.json` + `data.parquet`) into flat numpy columns.

Columns are kept as one flat array per field plus row offsets, so `ds[i]` is three slices
(no copies) and the whole dataset costs 12 bytes per token in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocx.harness.errors import InputError, InputProblem


@dataclass
class TokenizedDataset:
    """Rows of a tokenized dataset; `ds[i]` is a dict of numpy arrays (see ocx.harness.data)."""

    input_ids: np.ndarray  # int32, all rows concatenated
    labels: np.ndarray  # int32, shifted (label[t] = input_ids[t + 1] where weights[t] > 0, else 0)
    weights: np.ndarray  # float32, shifted loss weights
    offsets: np.ndarray  # int64, row i is [offsets[i], offsets[i + 1])
    conditions: list[str]
    manifest: dict

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        i %= n
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return {
            "input_ids": self.input_ids[start:end],
            "labels": self.labels[start:end],
            "weights": self.weights[start:end],
            "length": end - start,
            "condition": self.conditions[i],
        }


def _flat(column) -> tuple[np.ndarray, np.ndarray]:
    """Values and int64 offsets of a list column, whatever its chunking."""
    combined = column.combine_chunks()
    offsets = np.asarray(combined.offsets, dtype=np.int64)
    values = np.asarray(combined.flatten())
    return values, offsets - offsets[0]


COLUMNS = ("input_ids", "labels", "weights", "condition")
REBUILD = (
    "delete its folder and tokenize again "
    "(a recipe run does that by itself once the folder is gone)"
)


def _read_manifest(path: Path) -> dict:
    from ocx.harness.data.writer import FORMAT, FORMAT_VERSION

    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(
            InputProblem(
                str(path), line, None, f"corrupt manifest ({type(exc).__name__}); {REBUILD}"
            )
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(
            InputProblem(str(path), None, "format", f"not an {FORMAT} manifest; {REBUILD}")
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            InputProblem(
                str(path),
                None,
                "format_version",
                f"is {manifest.get('format_version')!r}, this "
                f"ocx reads {FORMAT_VERSION}; {REBUILD}",
            )
        )
    return manifest


def _read_table(path: Path):
    import pyarrow as pa
    from pyarrow import parquet

    try:
        table = parquet.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise InputError(
            InputProblem(str(path), None, None, f"corrupt Parquet file ({detail}); {REBUILD}")
        ) from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(InputProblem(str(path), None, missing[0], f"column missing; {REBUILD}"))
    return table


def load_tokenized(directory: str | Path) -> TokenizedDataset:
    """Load what `ocx data tokenize` wrote; InputError names the file if it is not or is corrupt."""
    directory = Path(directory)
    manifest_file, data_file = directory / "manifest.json", directory / "data.parquet"
    for f in (manifest_file, data_file):
        if not f.is_file():
            raise InputError(
                InputProblem(
                    str(f),
                    None,
                    None,
                    "not found; is this a directory written by `ocx data tokenize`?",
                )
            )
    manifest = _read_manifest(manifest_file)
    table = _read_table(data_file)
    if len(table) == 0:
        empty = np.zeros(0, np.int32)
        return TokenizedDataset(
            empty, empty, np.zeros(0, np.float32), np.zeros(1, np.int64), [], manifest
        )
    input_ids, offsets = _flat(table.column("input_ids"))
    labels, _ = _flat(table.column("labels"))
    weights, _ = _flat(table.column("weights"))
    return TokenizedDataset(
        input_ids, labels, weights, offsets, table.column("condition").to_pylist(), manifest
    )
