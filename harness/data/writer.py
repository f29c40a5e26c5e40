"""`ocx data tokenize`: stream JSONL files through worker processes into a tokenized dataset.

Memory stays bounded: lines are read in chunks of `chunk_size` lines (and at most
`CHUNK_MAX_BYTES`), at most `2 * workers` chunks are in flight, a line longer than
`max_line_bytes` is refused (named by file:line) without being read whole, and a long message
is tokenized only as far as the context length reaches (`encode_prefix`). Results are written
in input order, one Parquet row group per chunk, so the output bytes depend only on the input
(not on the number of workers or timing). Everything is written into a temporary sibling
directory that is renamed at the end; on any error (bad input, a full disk) it is removed, so
a failed run leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.data.chunks import ChunkResult, Line, init_worker, process_chunk
from ocx.harness.errors import InputError, InputProblem

FORMAT = "ocx-tokenized"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 1000
CHUNK_MAX_BYTES = 16 << 20
"""A chunk also ends once its lines hold this many bytes (long lines make short chunks)."""
MAX_LINE_BYTES = 16 << 20
"""Longest line accepted by default (`--max-line-bytes`): 16 MiB is ~4M tokens, 500 times an 8k
context, of which everything past the context would be cut anyway."""
SMALL_INPUT_BYTES = 1 << 20


@dataclass
class _Totals:
    lines: int = 0
    conversations: int = 0
    tokens: int = 0
    supervised_tokens: int = 0
    skipped_invalid: int = 0
    no_supervised: int = 0
    truncated: int = 0
    conditions: dict[str, dict] = field(default_factory=dict)

    def add(self, result: ChunkResult) -> None:
        self.conversations += len(result.lengths)
        self.tokens += int(result.lengths.sum())
        self.supervised_tokens += int((result.weights != 0).sum())
        self.no_supervised += result.no_supervised
        self.truncated += result.truncated
        bounds = [0, *result.lengths.cumsum().tolist()]
        for i, cond in enumerate(result.conditions):
            entry = self.conditions.setdefault(cond, {"conversations": 0, "weight_sum": 0.0})
            entry["conversations"] += 1
            entry["weight_sum"] += float(
                result.weights[bounds[i] : bounds[i + 1]].sum(dtype="float64")
            )


@dataclass
class _Input:
    path: Path
    sha256: str = ""
    lines: int = 0


def _lines(item: _Input, max_line_bytes: int, on_bytes: Callable[[int], None]) -> Iterator[Line]:
    """(file, number, bytes) per non-blank line; an over-long line becomes an InputProblem,
    read in 1 MiB pieces (for the file's sha256) and never held whole."""
    digest = hashlib.sha256()
    with open(item.path, "rb") as f:
        number = 0
        while raw := f.readline(max_line_bytes + 1):
            number += 1
            digest.update(raw)
            on_bytes(len(raw))
            size = len(raw)
            if size > max_line_bytes:
                while not raw.endswith(b"\n") and (raw := f.readline(1 << 20)):
                    digest.update(raw)
                    on_bytes(len(raw))
                    size += len(raw)
                yield (
                    str(item.path),
                    number,
                    InputProblem(
                        str(item.path),
                        number,
                        None,
                        f"line of {size:,} bytes is longer than the {max_line_bytes:,}-byte "
                        "limit (--max-line-bytes); split or shorten the conversation",
                    ),
                )
            elif raw.strip():
                yield str(item.path), number, raw
        item.lines = number
    item.sha256 = digest.hexdigest()


def _read_chunks(
    inputs: list[_Input],
    chunk_size: int,
    on_bytes: Callable[[int], None],
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    nbytes = 0
    for item in inputs:
        for line in _lines(item, max_line_bytes, on_bytes):
            chunk.append(line)
            nbytes += len(line[2]) if isinstance(line[2], bytes) else 0
            if len(chunk) >= chunk_size or nbytes >= CHUNK_MAX_BYTES:
                yield chunk
                chunk, nbytes = [], 0
    if chunk:
        yield chunk


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("input_ids", pa.list_(pa.int32())),
            pa.field("labels", pa.list_(pa.int32())),
            pa.field("weights", pa.list_(pa.float32())),
            pa.field("length", pa.int32()),
            pa.field("condition", pa.string()),
        ]
    )


def _table(result: ChunkResult, schema):
    import numpy as np
    import pyarrow as pa

    offsets = pa.array(
        np.concatenate([[0], np.cumsum(result.lengths, dtype=np.int64)]).astype(np.int32)
    )
    columns = [
        pa.ListArray.from_arrays(offsets, pa.array(values))
        for values in (result.input_ids, result.labels, result.weights)
    ]
    columns += [pa.array(result.lengths, pa.int32()), pa.array(result.conditions, pa.string())]
    return pa.Table.from_arrays(columns, schema=schema)


class _Chunks:
    """Runs `process_chunk` in order: in-process for one worker, else a bounded pool window."""

    def __init__(self, workers: int, model_type: str, tokenizer: str):
        self.workers, self.init_args, self.pool = workers, (model_type, tokenizer), None

    def __enter__(self) -> _Chunks:
        if self.workers > 1:
            # spawn, not fork: the parent may already run threads (rich, pyarrow).
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(self.workers, initializer=init_worker, initargs=self.init_args)
        else:
            init_worker(*self.init_args)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def run(
        self, chunks: Iterator[list[Line]], validate_only: Callable[[], bool]
    ) -> Iterator[ChunkResult]:
        if self.pool is None:
            for chunk in chunks:
                yield process_chunk(chunk, validate_only())
            return
        window: deque = deque()
        for chunk in chunks:
            window.append(self.pool.apply_async(process_chunk, (chunk, validate_only())))
            if len(window) >= 2 * self.workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


def _manifest(
    model_type: str, tokenizer: str, inputs: list[_Input], totals: _Totals, chunk_size: int
) -> dict:
    from ocx import __version__
    from ocx.harness.templates import get_template
    from ocx.harness.tokenizers import load_tokenizer

    template = get_template(model_type)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_type": template.name,
        "template_sha256": template.sha256,
        "tokenizer_sha256": load_tokenizer(tokenizer, template.added_tokens).sha256,
        "context_length": template.context_length,
        "inputs": [{"file": i.path.name, "sha256": i.sha256, "lines": i.lines} for i in inputs],
        "counts": {
            "lines": totals.lines,
            "conversations": totals.conversations,
            "tokens": totals.tokens,
            "supervised_tokens": totals.supervised_tokens,
            "skipped_invalid": totals.skipped_invalid,
            "dropped_no_supervised_tokens": totals.no_supervised,
            "truncated_to_context": totals.truncated,
        },
        "conditions": {k: totals.conditions[k] for k in sorted(totals.conditions)},
        "chunk_size": chunk_size,
        "ocx_version": __version__,
    }


@dataclass
class TokenizeJob:
    model_type: str
    tokenizer: str
    inputs: list[Path]
    out: Path
    skip_invalid: bool = False
    workers: int = 1
    chunk_size: int = DEFAULT_CHUNK_SIZE
    overwrite: bool = False
    max_line_bytes: int = MAX_LINE_BYTES


def check_job(job: TokenizeJob) -> None:
    """Everything checkable before reading a line: inputs exist, the tokenizer fits the model
    type, the output is free (or `overwrite`). Raises InputError."""
    from ocx.harness.templates import get_template
    from ocx.harness.tokenizer_check import load_checked_tokenizer

    missing = [
        InputProblem(str(p), None, None, "input file not found")
        for p in job.inputs
        if not Path(p).is_file()
    ]
    if missing:
        raise InputError(missing)
    load_checked_tokenizer(job.tokenizer, get_template(job.model_type))
    if Path(job.out).exists() and not job.overwrite:
        raise InputError(
            InputProblem(
                str(job.out), None, None, "output already exists (pass --overwrite to replace it)"
            )
        )


def tokenize_files(
    job: TokenizeJob,
    progress: Callable[[int, int], None] = lambda nbytes, convs: None,
    *,
    checked: bool = False,
) -> dict:
    """Write the dataset and return its manifest; raise InputError (nothing written) on bad input.

    `check_job` runs first (unless the caller already ran it: `checked`). A full disk or an
    unwritable output folder is an InputError naming the output, with the temporary folder removed.
    """
    if not checked:
        check_job(job)
    out = Path(job.out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        manifest = _write(job, tmp, progress)
        _replace(tmp, out)
        return manifest
    except OSError as exc:  # ENOSPC, EDQUOT, EACCES, EROFS: say where, not a traceback
        reason = exc.strerror or " ".join(str(exc).split())
        raise InputError(
            InputProblem(str(out), None, None, f"cannot write the dataset: {reason}")
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write(job: TokenizeJob, tmp: Path, progress: Callable[[int, int], None]) -> dict:
    from pyarrow import parquet

    inputs = [_Input(Path(p)) for p in job.inputs]
    totals, problems, schema = _Totals(), [], _schema()
    chunks = _read_chunks(inputs, job.chunk_size, lambda n: progress(n, 0), job.max_line_bytes)
    # Starting worker processes costs about a second; small inputs are faster in-process
    # (the output does not depend on the number of workers).
    small = sum(i.path.stat().st_size for i in inputs) < SMALL_INPUT_BYTES
    with (
        _Chunks(1 if small else job.workers, job.model_type, job.tokenizer) as runner,
        parquet.ParquetWriter(tmp / "data.parquet", schema) as writer,
        open(tmp / "skipped.jsonl", "w", encoding="utf-8") as skipped,
    ):
        # After the first bad line (without --skip-invalid) only validate, to report every problem.
        for result in runner.run(chunks, lambda: bool(problems) and not job.skip_invalid):  # noqa: B023 (reads the list as it grows)
            problems += result.problems
            for p in result.problems:
                skipped.write(
                    json.dumps(
                        {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                    )
                    + "\n"
                )
            if problems and not job.skip_invalid:
                continue
            writer.write_table(_table(result, schema))
            totals.add(result)
            progress(0, len(result.lengths))
    if problems and not job.skip_invalid:
        raise InputError(problems)
    totals.lines = sum(i.lines for i in inputs)
    totals.skipped_invalid = len({(p.file, p.line) for p in problems})
    if not problems:
        (tmp / "skipped.jsonl").unlink()
    manifest = _manifest(job.model_type, job.tokenizer, inputs, totals, job.chunk_size)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def _replace(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
