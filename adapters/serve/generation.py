"""From engine token IDs to OpenAI choices: incremental detokenization and stop strings.

Shared by every engine, so the text a client sees does not depend on the backend. Stop token
IDs (the template's EOT) are counted in `usage` but never decoded. Stop strings are matched
on the decoded text; while streaming, a tail that could still become a stop string is held
back, so a stop string never reaches the client, even in part.

Log-probabilities travel with the text they belong to: a token is released to the client with
the first character it decodes to, so a token held back (a possible stop string) is held back
with its text, and tokens cut off by a stop string are dropped with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from ocx.adapters.serve.engine import Engine, SamplingSettings, SequenceFailed, Step
from ocx.harness.logprobs import TokenLogprob
from ocx.harness.tokenizers import Tokenizer

CONTEXT_TOKENS = 6
"""Prompt tokens a completion's decoder starts from (vLLM's detokenizer uses 5 plus the last)."""


class IncrementalDecoder:
    """Decodes a growing list of token IDs into text deltas.

    Decoding one token at a time loses sentencepiece's word-boundary spaces and splits
    multi-byte characters, so each delta is the difference between decoding a short window
    of recent tokens with and without the newest ones (vLLM's prefix/read offsets). A delta
    ending in U+FFFD (an incomplete UTF-8 sequence) waits for the next token.
    """

    def __init__(self, tokenizer: Tokenizer, context: list[int] | tuple[int, ...] = ()):
        # `context`: the prompt's last tokens, so the first delta is decoded as a continuation
        # (sentencepiece's " Paris" after "is", not the start-of-text "Paris").
        self.tokenizer = tokenizer
        self.ids: list[int] = list(context[-CONTEXT_TOKENS:]) if context else []
        self.prefix = 0
        self.read = len(self.ids)

    def push(self, ids: list[int] | tuple[int, ...], final: bool = False) -> str:
        self.ids.extend(ids)
        before = self.tokenizer.decode(self.ids[self.prefix : self.read])
        after = self.tokenizer.decode(self.ids[self.prefix :])
        if (after.endswith("\ufffd") and not final) or len(after) <= len(before):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before) :]


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
class Delta:
    """Text released to the client, and the log-probabilities of the tokens it starts with."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass
class ChoiceState:
    """One choice's progress; `text` is what has been released to the client so far."""

    index: int
    text: str = ""
    completion_tokens: int = 0
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)
    """Released tokens, when log-probabilities are tracked (`Sampling.logprobs` set)."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    """Character offset in `text` where each released token's text starts."""
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None


@dataclass
class _Held:
    """Generated tokens whose text has not been released yet."""

    tokens: list[tuple[TokenLogprob, int]] = field(default_factory=list)  # (logprob, start offset)

    def release(self, state: ChoiceState, before: int) -> tuple[TokenLogprob, ...]:
        """Release the tokens whose text starts before offset `before`; returns their logprobs."""
        count = 0
        while count < len(self.tokens) and self.tokens[count][1] < before:
            count += 1
        out, self.tokens = self.tokens[:count], self.tokens[count:]
        for token, start in out:
            state.token_ids.append(token.token_id)
            state.logprobs.append(token)
            state.offsets.append(start)
        return tuple(token for token, _ in out)


def _checked(step: Step, settings: SamplingSettings, first: bool) -> None:
    # An engine that declares logprobs but leaves them out would make the server report nothing
    # where numbers were asked for: fail the sequence instead.
    if settings.logprobs is not None and (
        step.logprobs is None or len(step.logprobs) != len(step.token_ids)
    ):
        raise SequenceFailed("the engine returned no log-probabilities for a step")
    if first and settings.prompt_logprobs is not None and step.prompt_logprobs is None:
        raise SequenceFailed("the engine returned no prompt log-probabilities")


async def stream_choice(
    engine: Engine,
    request_id: str,
    prompt_ids: list[int],
    settings: SamplingSettings,
    tokenizer: Tokenizer,
    stops: tuple[str, ...],
    state: ChoiceState,
    *,
    context: tuple[int, ...] = (),
    keep_stop_token: bool = False,
) -> AsyncIterator[Delta]:
    """Stream one choice's deltas, updating `state`; ends with `state.finish_reason` set.

    `context` primes the decoder (completions continue their prompt's text); `keep_stop_token`
    reports the end-of-turn token's log-probability (legacy completions, as vLLM: lm-eval counts
    on one entry per generated token), though its text is never shown.
    """
    decoder = IncrementalDecoder(tokenizer, context)
    tracked = settings.logprobs is not None
    held = _Held()
    pending = ""  # decoded text not yet released (may be the start of a stop string)
    first = True
    async with aclosing(engine.generate(request_id, prompt_ids, settings)) as steps:
        async for step in steps:
            _checked(step, settings, first)
            if first:
                state.prompt_logprobs, first = step.prompt_logprobs, False
            state.completion_tokens += len(step.token_ids)
            ids, final = step.token_ids, step.finish_reason is not None
            stop_token = step.finish_reason == "stop" and ids and ids[-1] in settings.stop_token_ids
            if stop_token:
                ids = ids[:-1]
            if tracked:  # one token at a time, to know where each one's text starts
                for k, token in enumerate(ids):
                    held.tokens.append((step.logprobs[k], len(state.text) + len(pending)))
                    pending += decoder.push([token], final=final and k == len(ids) - 1)
                if stop_token and keep_stop_token:
                    held.tokens.append((step.logprobs[-1], len(state.text) + len(pending)))
                if final and not ids:
                    pending += decoder.push([], final=True)
            else:
                pending += decoder.push(ids, final=final)
            cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                # A stop string: release the text before it (and its tokens), end the sequence.
                delta, state.finish_reason = pending[:cut], "stop"
                released = held.release(state, len(state.text) + cut)
                state.text += delta
                if delta or released:
                    yield Delta(delta, released)
                await engine.abort(request_id)
                return
            if final:
                state.finish_reason = step.finish_reason
                delta, pending = pending, ""
                released = held.release(state, 2**63)
            else:
                keep = _held_back(pending, stops)
                delta, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                released = held.release(state, len(state.text) + len(delta))
            state.text += delta
            if delta or released:
                yield Delta(delta, released)
    if state.finish_reason is None:
        raise RuntimeError(f"engine ended sequence {request_id} without a finish reason")


async def run_all(coros: list) -> None:
    """Run coroutines concurrently; if one fails or we are cancelled, cancel the rest."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def merge(
    count: int, choice: Callable[[int], AsyncIterator]
) -> AsyncIterator[tuple[int, object]]:
    """(index, item) from `count` streams `choice(i)` as items come; (index, None) when one ends.
    Closing the merged stream (or one stream failing) cancels every stream."""
    if count == 1:  # the common case, without a queue in between
        async with aclosing(choice(0)) as items:
            async for item in items:
                yield 0, item
        yield 0, None
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int) -> None:
        try:
            async with aclosing(choice(i)) as items:
                async for item in items:
                    await queue.put((i, item))
            await queue.put((i, None))
        except Exception as exc:
            await queue.put(exc)

    tasks = [asyncio.ensure_future(pump(i)) for i in range(count)]
    try:
        finished = 0
        while finished < count:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            yield item
            finished += item[1] is None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
