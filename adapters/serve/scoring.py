"""Log-likelihood scoring for the transformers engine: many requests, few forward passes.

lm-evaluation-harness scores a multiple-choice item by the summed log-probability of each
option's tokens after the question. Done one request at a time with full logits, most of the
work is the lm_head over every position and the question read once per option. Here the
engine's worker takes every waiting request at once and:

- splits each into *windows* (`windows`): the tokens the model reads and the continuation
  tokens scored at its last positions. A context + continuation longer than the model's
  `max_positions` keeps its last tokens, exactly as lm-eval's `hf` model does; a continuation
  longer than `max_positions` on its own is scored in disjoint rolling windows (lm-eval's
  `loglikelihood_rolling` idea) instead of being cut.
- merges windows whose model input is identical into one *row* (lm-eval's logits cache: the
  options " A", " B", " C", " D" after one question are one row, each option reading its own
  token from the same last position);
- runs the longest rows first, in batches of similar length under a padded-token budget,
  left-padded so every row's scored positions sit at the tail, with only those last positions
  through the lm_head (`logits_to_keep`) and normalized there (logsumexp; never a Python loop
  over the vocabulary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ocx.adapters.serve.batching import left_pad
from ocx.harness.logprobs import Loglikelihood


@dataclass
class ScoreRequest:
    """One `Engine.loglikelihood` call on its way to the worker."""

    request_id: str
    context_ids: list[int]
    continuation_ids: list[int]
    emit: Callable[[Loglikelihood | BaseException], None]


@dataclass(frozen=True)
class Window:
    """The model reads `input_ids`; its last `len(targets)` positions predict `targets`, which
    are the continuation's tokens from `offset` on."""

    input_ids: tuple[int, ...]
    targets: tuple[int, ...]
    offset: int


def windows(context: list[int], continuation: list[int], max_positions: int) -> list[Window]:
    """The windows that score every continuation token with as much context as fits.

    One window when the continuation fits in `max_positions` (the common case): the last
    `max_positions` tokens before the last one, lm-eval's `(context + continuation)[-(max_length
    + 1):][:-1]`. Longer continuations are covered from the end by disjoint windows.
    """
    if not context:
        raise ValueError(
            "the context is empty: the first continuation token has no context to be scored after "
            "(pass a prefix such as the BOS token, as lm-eval does)"
        )
    if not continuation:
        raise ValueError("the continuation is empty: there is nothing to score")
    tokens = [*context, *continuation]
    first, end = len(context), len(tokens)
    out = []
    while end > first:
        start = max(0, end - 1 - max_positions)
        scored_from = max(first, start + 1)
        out.append(
            Window(
                tuple(tokens[start : end - 1]), tuple(tokens[scored_from:end]), scored_from - first
            )
        )
        end = scored_from
    return out


@dataclass
class _Scoring:
    """A request's partial result while its windows are scored."""

    request: ScoreRequest
    logprobs: list[float | None]
    greedy: list[bool]
    windows_left: int
    done: bool = False


@dataclass
class Row:
    """One model input shared by every window that reads exactly it."""

    input_ids: tuple[int, ...]
    parts: list[tuple[_Scoring, Window]] = field(default_factory=list)

    @property
    def keep(self) -> int:
        """Positions at the tail whose logits some part reads."""
        return max(len(window.targets) for _, window in self.parts)


class ScoringQueue:
    """The worker's waiting scoring requests, as deduplicated rows (worker thread only)."""

    def __init__(
        self, *, max_positions: int, vocab_size: int, token_budget: int = 16384, max_rows: int = 256
    ):
        self.max_positions = max_positions
        self.vocab_size = vocab_size
        self.token_budget = token_budget
        self.max_rows = max_rows
        self._rows: dict[tuple[int, ...], Row] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(self, request: ScoreRequest) -> None:
        """Queue a request, or answer it at once with the error in its input."""
        try:
            self._check_ids(request)
            parts = windows(request.context_ids, request.continuation_ids, self.max_positions)
        except ValueError as exc:
            request.emit(exc)
            return
        state = _Scoring(
            request,
            [None] * len(request.continuation_ids),
            [False] * len(request.continuation_ids),
            len(parts),
        )
        for window in parts:
            self._rows.setdefault(window.input_ids, Row(window.input_ids)).parts.append(
                (state, window)
            )

    def _check_ids(self, request: ScoreRequest) -> None:
        for name, ids in (
            ("context_ids", request.context_ids),
            ("continuation_ids", request.continuation_ids),
        ):
            bad = [t for t in ids if not isinstance(t, int) or not 0 <= t < self.vocab_size]
            if bad:
                raise ValueError(
                    f"{name} holds {bad[0]!r}, not a token ID of this model "
                    f"(0 to {self.vocab_size - 1})"
                )

    def drop(self, request_ids: set[str]) -> None:
        """Forget cancelled requests (their callers are gone)."""
        if not request_ids:
            return
        for key, row in list(self._rows.items()):
            row.parts = [(s, w) for s, w in row.parts if s.request.request_id not in request_ids]
            if not row.parts:
                del self._rows[key]

    def next_batch(self) -> list[Row]:
        """Take the longest waiting row and the next longest that fit the padded-token budget."""
        ordered = sorted(self._rows.values(), key=lambda r: len(r.input_ids), reverse=True)
        width = len(ordered[0].input_ids)
        count = max(1, min(len(ordered), self.max_rows, self.token_budget // max(width, 1)))
        batch = ordered[:count]
        for row in batch:
            del self._rows[row.input_ids]
        return batch

    def finish(self, rows: list[Row], logprobs: list[float], greedy: list[bool]) -> None:
        """Record `forward`'s per-target values (in `rows`' part order); answer finished ones."""
        at = 0
        for row in rows:
            for state, window in row.parts:
                n = len(window.targets)
                state.logprobs[window.offset : window.offset + n] = logprobs[at : at + n]
                state.greedy[window.offset : window.offset + n] = greedy[at : at + n]
                at += n
                state.windows_left -= 1
                if state.windows_left == 0 and not state.done:
                    state.done = True
                    state.request.emit(
                        Loglikelihood(
                            logprob=float(sum(state.logprobs)),
                            is_greedy=all(state.greedy),
                            token_logprobs=tuple(state.logprobs),
                        )
                    )

    def fail(self, rows: list[Row], error: Callable[[str], BaseException]) -> None:
        """Answer every request with a part in `rows` with `error(request_id)`; its other rows are
        dropped."""
        failed = {state.request.request_id: state for row in rows for state, _ in row.parts}
        for state in failed.values():
            if not state.done:
                state.done = True
                state.request.emit(error(state.request.request_id))
        self.drop(set(failed))

    def fail_all(self, error: Callable[[str], BaseException]) -> None:
        self.fail(list(self._rows.values()), error)


@torch.inference_mode()
def forward(model, rows: list[Row], pad_id: int) -> tuple[list[float], list[bool]]:
    """One forward pass over `rows`: every part's target log-probabilities and whether each target
    is the argmax at its position, flattened in `rows`' part order."""
    ids, mask = (t.to(model.device) for t in left_pad([list(r.input_ids) for r in rows], pad_id))
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    keep = max(row.keep for row in rows)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=False,
        logits_to_keep=keep,
    )
    logits = out.logits[:, -keep:].float()  # [B, keep, V]
    batch_index, position, target = [], [], []
    for b, row in enumerate(rows):
        for _, window in row.parts:
            n = len(window.targets)
            batch_index += [b] * n
            position += range(keep - n, keep)
            target += window.targets
    batch_index = torch.tensor(batch_index, device=logits.device)
    position = torch.tensor(position, device=logits.device)
    target = torch.tensor(target, device=logits.device)
    # log_softmax at the few read positions only: the logit minus the log of the normalizer.
    norm = torch.logsumexp(logits, dim=-1)
    values = logits[batch_index, position, target] - norm[batch_index, position]
    greedy = logits.argmax(dim=-1)[batch_index, position] == target
    return values.cpu().tolist(), greedy.cpu().tolist()
