"""One chunk of JSONL lines -> validated, tokenized, shifted numpy columns (runs in workers).

A chunk is a list of (file, line number, raw bytes). The result is flat numpy arrays plus
offsets, which pickle cheaply back to the writer and become Arrow list columns without a copy.
Workers keep their template, tokenizer and encoder caches in a module-level slot filled by
`init_worker`, the standard multiprocessing pattern (a pool initializer cannot return state).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ocx.harness.conversation import parse_jsonl_line
from ocx.harness.errors import InputError, InputProblem

Line = tuple[str, int, "bytes | InputProblem"]
"""(file, line number, the line's bytes), or the problem the reader found with it (too long)."""

# Label of positions that carry no loss (OpenChat's PAD_TOKEN_ID): their weight is 0.
PAD_LABEL = 0


@dataclass
class ChunkResult:
    """Tokenized rows of one chunk, or only its problems when validating."""

    input_ids: np.ndarray  # int32, all rows concatenated
    labels: np.ndarray  # int32, shifted, PAD_LABEL where the weight is 0
    weights: np.ndarray  # float32, shifted
    lengths: np.ndarray  # int32, tokens per row
    conditions: list[str]
    problems: list[InputProblem] = field(default_factory=list)
    no_supervised: int = 0  # conversations dropped: no weighted token left
    truncated: int = 0  # conversations cut to the context length


_WORKER: dict = {}


def init_worker(model_type: str, tokenizer_path: str) -> None:
    from ocx.harness.data.tokenize import BatchEncoder
    from ocx.harness.templates import get_template
    from ocx.harness.tokenizers import load_tokenizer

    template = get_template(model_type)
    tokenizer = load_tokenizer(tokenizer_path, template.added_tokens)
    _WORKER["encoder"] = BatchEncoder(template, tokenizer)
    _WORKER["context_length"] = template.context_length


def _parse(lines: list[Line]):
    convs, problems = [], []
    for file, number, raw in lines:
        if isinstance(raw, InputProblem):
            problems.append(raw)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(InputProblem(file, number, None, f"not valid UTF-8 (byte {exc.start})"))
            continue
        try:
            convs.append(parse_jsonl_line(text, file=file, line=number, require_weights=True))
        except InputError as exc:
            problems.extend(exc.problems)
    return convs, problems


def process_chunk(lines: list[Line], validate_only: bool) -> ChunkResult:
    convs, problems = _parse(lines)
    if validate_only:
        return _empty(problems)
    context = _WORKER["context_length"]
    # One token more than the context: a conversation cut there still counts as truncated.
    encoded = _WORKER["encoder"].encode(convs, max_tokens=context + 1)
    ids, weights, conditions = [], [], []
    no_supervised = truncated = 0
    for conv, enc in zip(convs, encoded):
        if len(enc.input_ids) > context:
            truncated += 1
        tokens, w = _trim(enc.input_ids[:context], enc.weights[:context])
        if not tokens:
            no_supervised += 1
            continue
        ids.append(tokens)
        weights.append(w)
        conditions.append(conv.condition)
    result = _shift(ids, weights, conditions)
    result.problems, result.no_supervised, result.truncated = problems, no_supervised, truncated
    return result


def _trim(tokens: list[int], weights: list[float]) -> tuple[list[int], list[float]]:
    """Drop trailing zero-weight tokens: nothing after the last supervised token is learned."""
    end = len(weights)
    while end and weights[end - 1] == 0:
        end -= 1
    return tokens[:end], weights[:end]


def _shift(ids: list[list[int]], weights: list[list[float]], conditions: list[str]) -> ChunkResult:
    """Row t predicts token t + 1: labels and weights move one to the left, last gets 0."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    flat_ids = np.fromiter(
        (t for row in ids for t in row), dtype=np.int32, count=int(lengths.sum())
    )
    flat_w = np.fromiter((w for row in weights for w in row), dtype=np.float32, count=len(flat_ids))
    last = np.zeros(len(flat_ids), dtype=bool)
    last[np.cumsum(lengths) - 1] = True
    next_w = np.where(last, np.float32(0), np.roll(flat_w, -1)).astype(np.float32)
    labels = np.where(next_w != 0, np.roll(flat_ids, -1), PAD_LABEL).astype(np.int32)
    return ChunkResult(flat_ids, labels, next_w, lengths, conditions)


def _empty(problems: list[InputProblem]) -> ChunkResult:
    return ChunkResult(
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0, np.float32),
        np.zeros(0, np.int32),
        [],
        problems,
    )
