"""POST /v1/chat/completions: prompt encoding, limits, and the two response forms.

A request becomes `n` engine sequences run concurrently (seeds `seed + i`). Non-streaming
waits for all and answers one JSON object; streaming sends OpenAI's `chat.completion.chunk`
events as server-sent events, ending with `data: [DONE]`. Either way the client going away
cancels every sequence of the request. With `logprobs: true`, each choice (and each streamed
chunk) carries its tokens' log-probabilities in OpenAI's shape (`logprobs_format`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from ocx.adapters.serve.engine import Engine, SequenceFailed
from ocx.adapters.serve.generation import ChoiceState, merge, run_all, stream_choice
from ocx.adapters.serve.logprobs_format import chat_logprobs, token_texts
from ocx.adapters.serve.model import ServedModel
from ocx.adapters.serve.protocol import SEED_MIN, ApiError, ChatCompletionRequest
from ocx.harness.sampling import BASIC_FIELDS, Sampling
from ocx.harness.templates.encode import encode_prompt

log = logging.getLogger("ocx.serve")


@dataclass
class Prepared:
    """A validated request, ready for the engine."""

    id: str
    created: int
    model_name: str
    prompt_ids: list[int]
    settings: list[Sampling]
    stops: tuple[str, ...]
    request: ChatCompletionRequest

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    def sequences(self) -> int:
        return len(self.settings)


def prepare(
    request: ChatCompletionRequest, model: ServedModel, honoured: frozenset[str] = BASIC_FIELDS
) -> Prepared:
    """Check the request against the model and the engine's `honoured` sampling fields, and
    encode its prompt; raises ApiError."""
    request.check_supported()
    check_sampling(
        Sampling(
            top_k=request.top_k,
            min_p=float(request.min_p),
            repetition_penalty=float(request.repetition_penalty),
            logprobs=request.logprob_alternatives(),
        ),
        honoured,
    )
    name = resolve_name(model, request.model)
    _check_condition(request.condition, model)
    messages = [{"role": m.role, "content": m.text()} for m in request.messages]
    try:
        prompt_ids = encode_prompt(
            model.template, model.tokenizer, messages, condition=request.condition
        )
    except ValueError as exc:  # e.g. a condition holding a reserved character
        raise ApiError(400, str(exc), param="condition") from exc
    return Prepared(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model_name=name,
        prompt_ids=prompt_ids,
        settings=_sampling(request, model, len(prompt_ids)),
        stops=request.stops(),
        request=request,
    )


def resolve_name(model: ServedModel, requested: str) -> str:
    """The name responses report for a request's `model`; a 404 when it is not this model."""
    name = model.resolve(requested)
    if name is None:
        raise ApiError(
            404,
            f"The model `{_clip(requested)}` does not exist. Served: {', '.join(model.names[:3])}",
            param="model",
            code="model_not_found",
        )
    return name


def _clip(text: str, limit: int = 80) -> str:
    """A client's string as echoed in an error: never the whole of a huge one."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_sampling(probe: Sampling, honoured: frozenset[str]) -> None:
    """Refuse a request whose `probe` (its sampling fields, before any tokenizing) sets a field
    the engine would ignore."""
    ignored = probe.unsupported(honoured)
    if ignored:
        raise ApiError(
            400,
            f"{ignored[0]} is not supported by this server's engine; leave it at its default "
            "(or serve with --engine vllm)",
            param=ignored[0],
            code="unsupported_parameter",
        )


def _check_condition(condition: str | None, model: ServedModel) -> None:
    # The condition goes into the role headers, which are tokenized with control tokens: a
    # condition holding `<|end_of_turn|>` would forge turns instead of naming a mode.
    for token in model.tokenizer.specials if condition else ():
        if token in condition:
            raise ApiError(
                400, f"condition must not contain the special token {token!r}", param="condition"
            )


def generation_error(request_id: str, exc: BaseException) -> ApiError:
    """What a client is told when its generation fails in the engine (the cause is only logged)."""
    if isinstance(exc, ApiError):
        return exc
    if not isinstance(exc, SequenceFailed):  # the transformers engine logs its own failures
        log.error("request %s: generation failed", request_id, exc_info=exc)
    return ApiError(
        500,
        f"generation failed for request {request_id}; other requests are unaffected "
        "(the cause is in the server log)",
        type="server_error",
        code="generation_failed",
    )


def _sampling(
    request: ChatCompletionRequest, model: ServedModel, prompt_tokens: int
) -> list[Sampling]:
    room = model.context_length - prompt_tokens
    wanted = request.requested_max_tokens()
    if room < 1 or (wanted is not None and wanted > room):
        asked = f"{prompt_tokens} in the messages" + (
            f", {wanted} in the completion" if wanted else ""
        )
        raise ApiError(
            400,
            f"This model's maximum context length is {model.context_length} tokens; "
            f"the request needs more ({asked}). Shorten the messages or max_tokens.",
            param="messages",
            code="context_length_exceeded",
        )
    return [
        request_sampling(
            request,
            i,
            max_tokens=wanted or room,
            stop_token_ids=model.stop_token_ids,
            logprobs=request.logprob_alternatives(),
        )
        for i in range(request.n)
    ]


def request_sampling(request, index: int, **fields) -> Sampling:
    """Choice `index`'s sampling settings from the fields chat and text completion requests
    share; `fields` adds those that differ (max_tokens, stop_token_ids, logprobs, ...)."""
    return Sampling(
        stop=request.stops(),
        temperature=float(request.temperature),
        top_p=float(request.top_p),
        top_k=request.top_k,
        min_p=float(request.min_p),
        repetition_penalty=float(request.repetition_penalty),
        presence_penalty=float(request.presence_penalty),
        frequency_penalty=float(request.frequency_penalty),
        seed=None if request.seed is None else choice_seed(request.seed, index),
        incremental=request.stream or bool(request.stop),
        **fields,
    )


def choice_seed(seed: int, index: int) -> int:
    """`seed + index`, wrapped into the signed 64-bit range every engine's generator accepts."""
    return (seed + index - SEED_MIN) % 2**64 + SEED_MIN


def _usage(prep: Prepared, states: list[ChoiceState]) -> dict:
    completion = sum(s.completion_tokens for s in states)
    prompt = len(prep.prompt_ids)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _logprobs(prep: Prepared, model: ServedModel, tokens) -> dict | None:
    """A choice's `logprobs` object for `tokens`, or None when the request asked for none."""
    if not prep.request.logprobs:
        return None
    return chat_logprobs(token_texts(model.tokenizer), tokens, prep.request.top_logprobs or 0)


def _choice(engine: Engine, model: ServedModel, prep: Prepared, states: list[ChoiceState]):
    def start(i: int):
        return stream_choice(
            engine,
            f"{prep.id}-{i}",
            prep.prompt_ids,
            prep.settings[i],
            model.tokenizer,
            prep.stops,
            states[i],
        )

    return start


async def complete(engine: Engine, model: ServedModel, prep: Prepared) -> dict:
    """The non-streaming response object."""
    states = [ChoiceState(i) for i in range(len(prep.settings))]
    start = _choice(engine, model, prep, states)

    async def drain(i: int) -> None:
        async with aclosing(start(i)) as deltas:
            async for _ in deltas:
                pass

    await run_all([drain(i) for i in range(len(states))])
    choices = [
        {
            "index": s.index,
            "message": {"role": "assistant", "content": s.text},
            "logprobs": _logprobs(prep, model, s.logprobs),
            "finish_reason": s.finish_reason,
        }
        for s in states
    ]
    return {**response_fields(prep, "chat.completion", choices), "usage": _usage(prep, states)}


def response_fields(prep, kind: str, choices: list[dict]) -> dict:
    """What every chat or text completion response and stream chunk starts with (`prep`: either
    endpoint's Prepared request)."""
    return {
        "id": prep.id,
        "object": kind,
        "created": prep.created,
        "model": prep.model_name,
        "choices": choices,
    }


def sse_chunk(
    prep, kind: str, choices: list[dict], usage: dict | None = None, with_usage: bool = False
) -> str:
    """One server-sent event; with `with_usage` it has a `usage` field (null but in the last)."""
    body = response_fields(prep, kind, choices)
    if with_usage:
        body["usage"] = usage
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _chunk(prep: Prepared, choices: list[dict], **usage) -> str:
    return sse_chunk(prep, "chat.completion.chunk", choices, **usage)


def stream(engine: Engine, model: ServedModel, prep: Prepared) -> AsyncIterator[str]:
    """Server-sent events for a streaming request."""
    include_usage = bool(prep.request.stream_options and prep.request.stream_options.include_usage)
    states = [ChoiceState(i) for i in range(len(prep.settings))]
    usage = (
        (lambda: _chunk(prep, [], usage=_usage(prep, states), with_usage=True))
        if include_usage
        else None
    )
    return event_stream(prep.id, _chunks(engine, model, prep, states, include_usage), usage)


async def _chunks(
    engine: Engine,
    model: ServedModel,
    prep: Prepared,
    states: list[ChoiceState],
    include_usage: bool,
) -> AsyncIterator[str]:
    for s in states:
        yield _chunk(
            prep,
            [
                {
                    "index": s.index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            with_usage=include_usage,
        )
    async for index, delta in merge(len(states), _choice(engine, model, prep, states)):
        if delta is not None:
            choice = {
                "index": index,
                "delta": {"content": delta.text},
                "logprobs": _logprobs(prep, model, delta.logprobs),
                "finish_reason": None,
            }
        else:
            choice = {
                "index": index,
                "delta": {},
                "logprobs": None,
                "finish_reason": states[index].finish_reason,
            }
        yield _chunk(prep, [choice], with_usage=include_usage)


async def event_stream(
    request_id: str, chunks: AsyncIterator[str], usage_chunk: Callable[[], str] | None
) -> AsyncIterator[str]:
    """`chunks`, then the usage chunk (when the client asked for one), then `[DONE]`, for chat and
    completions alike. The headers are sent by then, so a generation failure is reported
    in-band, as OpenAI does; closing this stream closes `chunks` (cancelling its sequences)."""
    async with aclosing(chunks) as events:
        try:
            async for event in events:
                yield event
        except Exception as exc:
            yield f"data: {json.dumps(generation_error(request_id, exc).body())}\n\n"
            yield "data: [DONE]\n\n"
            return
    if usage_chunk is not None:
        yield usage_chunk()
    yield "data: [DONE]\n\n"
