"""From engine token IDs to OpenAI choices: incremental detokenization and stop strings.

Shared by every engine, so the text a client sees does not depend on the backend. Stop token
IDs (the template's EOT) are counted in `usage` but never decoded. Stop strings are matched
on the decoded text; while streaming, a tail that could still become a stop string is held
back, so a stop string never reaches the client, even in part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from ocx.adapters.serve.engine import Engine, SamplingSettings
from ocx.harness.tokenizers import Tokenizer


class IncrementalDecoder:
    """Decodes a growing list of token IDs into text deltas.

    Decoding one token at a time loses sentencepiece's word-boundary spaces and splits
    multi-byte characters, so each delta is the difference between decoding a short window
    of recent tokens with and without the newest ones (vLLM's prefix/read offsets). A delta
    ending in U+FFFD (an incomplete UTF-8 sequence) waits for the next token.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def push(self, ids: list[int] | tuple[int, ...], final: bool = False) -> str:
        self.ids.extend(ids)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read])
        after = self.tokenizer.decode(self.ids[self.prefix:])
        if (after.endswith("\ufffd") and not final) or len(after) <= len(before):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before):]


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


@dataclass
class ChoiceState:
    """One choice's progress; `text` is what has been released to the client so far."""

    index: int
    text: str = ""
    completion_tokens: int = 0
    finish_reason: str | None = None


async def run_choice(engine: Engine, request_id: str, prompt_ids: list[int], settings: SamplingSettings,
                     tokenizer: Tokenizer, stops: tuple[str, ...], state: ChoiceState) -> AsyncIterator[str]:
    """Stream one choice's text deltas, updating `state`; ends with `state.finish_reason` set."""
    decoder = IncrementalDecoder(tokenizer)
    pending = ""  # decoded text not yet released (may be the start of a stop string)
    async with aclosing(engine.generate(request_id, prompt_ids, settings)) as steps:
        async for step in steps:
            state.completion_tokens += len(step.token_ids)
            ids = step.token_ids
            if step.finish_reason == "stop" and ids and ids[-1] in settings.stop_token_ids:
                ids = ids[:-1]
            pending += decoder.push(ids, final=step.finish_reason is not None)
            cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                # A stop string: release the text before it and end the sequence in the engine.
                delta, state.finish_reason = pending[:cut], "stop"
                state.text += delta
                if delta:
                    yield delta
                await engine.abort(request_id)
                return
            if step.finish_reason is not None:
                state.finish_reason = step.finish_reason
                delta, pending = pending, ""
            else:
                keep = _held_back(pending, stops)
                delta, pending = pending[:len(pending) - keep], pending[len(pending) - keep:]
            state.text += delta
            if delta:
                yield delta
    if state.finish_reason is None:
        raise RuntimeError(f"engine ended sequence {request_id} without a finish reason")
