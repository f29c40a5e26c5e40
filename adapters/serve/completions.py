"""POST /v1/completions: OpenAI's legacy text completions, as vLLM serves them.

No chat template: a text prompt is the tokenizer's BOS plus the text's tokens (vLLM's
`add_special_tokens`), a token-ID prompt is used as given. `prompt` may hold several prompts;
each gets `n` choices, numbered `prompt_index * n + j` (choice j of every prompt uses the seed
`seed + j`, so a prompt's answer does not depend on its neighbours). `echo` puts the prompt
before the completion, and with `logprobs` its tokens' log-probabilities too (the first one
`null`), taken from the prefill pass of the very sequence that generates: `max_tokens` 0 with
`echo` scores the prompt only (vLLM generates one token and drops it; so does this). This is
the request lm-eval's `local-completions` sends for log-likelihoods.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from ocx.adapters.serve.chat import (
    check_sampling,
    event_stream,
    request_sampling,
    resolve_name,
    response_fields,
    sse_chunk,
)
from ocx.adapters.serve.engine import Engine
from ocx.adapters.serve.generation import (
    ChoiceState,
    Delta,
    IncrementalDecoder,
    merge,
    run_all,
    stream_choice,
)
from ocx.adapters.serve.logprobs_format import legacy_logprobs, token_texts
from ocx.adapters.serve.model import ServedModel
from ocx.adapters.serve.protocol import ApiError, CompletionRequest
from ocx.harness.sampling import BASIC_FIELDS, Sampling
from ocx.harness.tokenizers import Tokenizer


@dataclass
class _Echo:
    """A prompt's text and the character offset where each of its tokens starts."""

    text: str
    offsets: list[int] = field(default_factory=list)


def _echo(tokenizer: Tokenizer, prompt: list[int]) -> _Echo:
    """Decoded token by token, so the offsets index the very text returned."""
    decoder, pieces, offsets, length = IncrementalDecoder(tokenizer), [], [], 0
    for k, token in enumerate(prompt):
        offsets.append(length)
        pieces.append(decoder.push([token], final=k == len(prompt) - 1))
        length += len(pieces[-1])
    return _Echo("".join(pieces), offsets)


@dataclass
class Prepared:
    """A validated completions request: its prompts' token IDs and one `Sampling` per choice."""

    id: str
    created: int
    model_name: str
    prompts: list[list[int]]
    settings: list[Sampling]
    """Choice `i` completes prompt `i // request.n`."""
    stops: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    request: CompletionRequest
    echoes: list[_Echo] | None = None
    """With `echo`: each prompt's text and token offsets (decoded here, off the event loop)."""

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p) for p in self.prompts)

    def sequences(self) -> int:
        return len(self.settings)

    def prompt_of(self, choice: int) -> list[int]:
        return self.prompts[choice // self.request.n]


def prepare(
    request: CompletionRequest,
    model: ServedModel,
    honoured: frozenset[str] = BASIC_FIELDS,
    max_sequences: int = 2**31,
) -> Prepared:
    """Check the request against the model, the engine and the server's capacity, and tokenize
    its prompts; raises ApiError."""
    request.check_supported()
    scored = request.logprobs if request.echo else None
    try:
        check_sampling(
            Sampling(
                top_k=request.top_k,
                min_p=float(request.min_p),
                repetition_penalty=float(request.repetition_penalty),
                logprobs=request.logprobs,
                prompt_logprobs=scored,
            ),
            honoured,
        )
    except ApiError as exc:
        if exc.param != "prompt_logprobs":
            raise
        raise ApiError(
            400,
            "echo with logprobs (the prompt's log-probabilities) is not supported by this server's "
            "engine",
            param="echo",
            code="unsupported_parameter",
        ) from None
    name = resolve_name(model, request.model)
    raw = request.prompt_list()
    if len(raw) * request.n > max_sequences:
        raise ApiError(
            400,
            f"{len(raw)} prompts x n={request.n} is more sequences than this server runs at once "
            f"({max_sequences}, --max-pending); send fewer per request",
            param="prompt",
        )
    prompts = _tokenize(raw, model.tokenizer, request.add_special_tokens)
    stop_ids = _stop_token_ids(model)
    settings = []
    for prompt in prompts:
        max_tokens = _max_tokens(request, model, len(prompt))
        settings += [
            request_sampling(
                request,
                j,
                max_tokens=max_tokens,
                stop_token_ids=stop_ids,
                logprobs=request.logprobs,
                prompt_logprobs=scored,
            )
            for j in range(request.n)
        ]
    echoes = [_echo(model.tokenizer, p) for p in prompts] if request.echo else None
    return Prepared(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model_name=name,
        prompts=prompts,
        settings=settings,
        stops=request.stops(),
        stop_token_ids=stop_ids,
        request=request,
        echoes=echoes,
    )


def _stop_token_ids(model: ServedModel) -> tuple[int, ...]:
    """The end of turn and the tokenizer's end of text: a base model ends with the latter."""
    tokenizer = model.tokenizer
    eos = tokenizer.special_id(tokenizer.eos_token) if tokenizer.eos_token else None
    return tuple(dict.fromkeys([*model.stop_token_ids, *([eos] if eos is not None else [])]))


def _tokenize(raw: list, tokenizer: Tokenizer, add_bos: bool) -> list[list[int]]:
    texts = [(i, p) for i, p in enumerate(raw) if isinstance(p, str)]
    for i, text in texts:
        if not text:
            raise ApiError(400, f"prompt {i} is empty", param="prompt")
    bos = tokenizer.special_id(tokenizer.bos_token) if add_bos and tokenizer.bos_token else None
    encoded = dict(
        zip((i for i, _ in texts), tokenizer.encode_batch([t for _, t in texts]) if texts else [])
    )
    prompts = []
    vocab = tokenizer.vocab_size
    for i, p in enumerate(raw):
        if isinstance(p, str):
            prompts.append(([bos] if bos is not None else []) + list(encoded[i]))
            continue
        if not p:
            raise ApiError(400, f"prompt {i} is an empty list of token IDs", param="prompt")
        bad = next((t for t in p if not 0 <= t < vocab), None)
        if bad is not None:
            raise ApiError(
                400,
                f"prompt {i}: token ID {bad} is outside the vocabulary (0 to {vocab - 1})",
                param="prompt",
                code="invalid_token_id",
            )
        prompts.append(list(p))
    return prompts


def _max_tokens(request: CompletionRequest, model: ServedModel, prompt_tokens: int) -> int:
    room = model.context_length - prompt_tokens
    wanted = request.max_tokens
    needed = max(wanted or 1, 1)  # max_tokens 0 still samples (and drops) one token
    if room < needed:
        asked = f"{prompt_tokens} in the prompt" + (
            f", {wanted} in the completion" if wanted else ""
        )
        raise ApiError(
            400,
            f"This model's maximum context length is {model.context_length} tokens; "
            f"the request needs more ({asked}). Shorten the prompt or max_tokens.",
            param="prompt",
            code="context_length_exceeded",
        )
    return room if wanted is None else needed


class _Choice:
    """One choice as the client sees it: the echoed prompt, then the generated text."""

    def __init__(self, engine: Engine, model: ServedModel, prep: Prepared, index: int):
        self.engine, self.model, self.prep, self.index = engine, model, prep, index
        self.prompt = prep.prompt_of(index)
        self.state = ChoiceState(index)
        self.generates = prep.request.max_tokens != 0
        self.echo = prep.echoes[index // prep.request.n] if prep.echoes is not None else None

    def sequence(self) -> AsyncIterator[Delta]:
        return stream_choice(
            self.engine,
            f"{self.prep.id}-{self.index}",
            self.prompt,
            self.prep.settings[self.index],
            self.model.tokenizer,
            self.prep.stops,
            self.state,
            context=tuple(self.prompt),
            keep_stop_token=True,
        )

    def logprobs(self, token_ids: list[int], entries, offsets: list[int]) -> dict | None:
        if self.prep.request.logprobs is None:
            return None
        return legacy_logprobs(
            token_texts(self.model.tokenizer),
            token_ids,
            list(entries),
            offsets,
            self.prep.request.logprobs,
        )

    def echoed(self) -> tuple[str, dict | None]:
        """The prompt's text, and its logprobs (which the engine's first step brought)."""
        entries = self.state.prompt_logprobs or (None,) * len(self.prompt)
        return self.echo.text, self.logprobs(self.prompt, entries, self.echo.offsets)

    def generated(self, delta: Delta) -> tuple[str, dict | None]:
        """A generated delta and its tokens' logprobs (the last ones released into `state`)."""
        first = len(self.state.token_ids) - len(delta.logprobs)
        base = len(self.echo.text) if self.echo else 0
        offsets = [base + o for o in self.state.offsets[first:]]
        return delta.text, self.logprobs(self.state.token_ids[first:], delta.logprobs, offsets)

    def completion_tokens(self) -> int:
        return self.state.completion_tokens if self.generates else 0

    def finish_reason(self) -> str | None:
        return self.state.finish_reason if self.generates else "length"


def _join(parts: list[tuple[str, dict | None]]) -> tuple[str, dict | None]:
    text = "".join(t for t, _ in parts)
    logs = [lp for _, lp in parts if lp is not None]
    if not logs:
        return text, None
    return text, {key: [v for lp in logs for v in lp[key]] for key in logs[0]}


async def _pieces(choice: _Choice) -> AsyncIterator[tuple[str, dict | None]]:
    """The choice's text pieces with their logprobs: the echo with the first generated delta
    (the engine's first step carries the prompt's logprobs), then each delta."""
    echo_due = choice.echo is not None
    async with aclosing(choice.sequence()) as deltas:
        async for delta in deltas:
            if not choice.generates:  # max_tokens 0: the one sampled token is dropped
                continue
            parts = [choice.echoed()] if echo_due else []
            echo_due = False
            yield _join([*parts, choice.generated(delta)])
    if echo_due:  # nothing generated (max_tokens 0, or no text before a stop): the echo alone
        yield choice.echoed()


def _usage(prep: Prepared, choices: list[_Choice]) -> dict:
    completion = sum(c.completion_tokens() for c in choices)
    return {
        "prompt_tokens": prep.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prep.prompt_tokens + completion,
    }


def _choices(engine: Engine, model: ServedModel, prep: Prepared) -> list[_Choice]:
    return [_Choice(engine, model, prep, i) for i in range(prep.sequences())]


async def complete(engine: Engine, model: ServedModel, prep: Prepared) -> dict:
    """The non-streaming `text_completion` object."""
    choices = _choices(engine, model, prep)
    collected: list[list] = [[] for _ in choices]

    async def drain(i: int) -> None:
        async with aclosing(_pieces(choices[i])) as pieces:
            async for piece in pieces:
                collected[i].append(piece)

    await run_all([drain(i) for i in range(len(choices))])
    out = []
    for c, parts in zip(choices, collected):
        text, logprobs = _join(parts)
        if logprobs is None and prep.request.logprobs is not None:
            logprobs = c.logprobs([], [], [])
        out.append(
            {
                "index": c.index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": c.finish_reason(),
            }
        )
    return {**response_fields(prep, "text_completion", out), "usage": _usage(prep, choices)}


def _chunk(prep: Prepared, choices: list[dict], **usage) -> str:
    return sse_chunk(prep, "text_completion", choices, **usage)


def stream(engine: Engine, model: ServedModel, prep: Prepared) -> AsyncIterator[str]:
    """Server-sent `text_completion` chunks, then the usage chunk when asked for, then [DONE]."""
    include_usage = prep.request.include_usage()
    choices = _choices(engine, model, prep)
    usage = (
        (lambda: _chunk(prep, [], usage=_usage(prep, choices), with_usage=True))
        if include_usage
        else None
    )
    return event_stream(prep.id, _text_chunks(prep, choices, include_usage), usage)


async def _text_chunks(
    prep: Prepared, choices: list[_Choice], include_usage: bool
) -> AsyncIterator[str]:
    async for index, piece in merge(len(choices), lambda i: _pieces(choices[i])):
        if piece is not None:
            body = {"index": index, "text": piece[0], "logprobs": piece[1], "finish_reason": None}
        else:
            body = {
                "index": index,
                "text": "",
                "logprobs": None,
                "finish_reason": choices[index].finish_reason(),
            }
        yield _chunk(prep, [body], with_usage=include_usage)
