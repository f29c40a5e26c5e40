"""Log-likelihoods from any OpenAI-compatible `/v1/completions` endpoint (ocx serve, vLLM's server).

Each `LoglikelihoodRequest` is one POST of lm-eval's own `local-completions` request: the
context and continuation token IDs as one prompt, `echo: true`, `logprobs: 1`, `max_tokens: 1`,
`temperature: 0`. The server answers every prompt token's log-probability (the first is null)
plus one generated token's; the continuation's are the entries after the context, and a token is
greedy when its log-probability is the largest of its `top_logprobs` (lm-eval's rule). Because
the request is lm-eval's, an endpoint that serves lm-eval serves this too.

Concurrency, retries (429, 5xx, dropped connections, unreadable bodies) and backoff are the
HTTP backend's (`openai_http.OpenAIBackend`). A 2xx answer that parses but lacks what was asked
(no logprobs, too few entries, a value that is not a number) is a `LoglikelihoodResponseError`
for that request, not retried: the endpoint ignores `echo` or `logprobs`, and asking again will
not change that.
"""

from __future__ import annotations

import json
import math

from ocx.harness.logprobs import Loglikelihood, LoglikelihoodRequest, TokenLogprob

SEED = 1234
"""lm-eval's default seed (temperature 0 makes it moot; servers that want one get one)."""


class LoglikelihoodResponseError(ValueError):
    """A completions answer without the echoed log-probabilities a log-likelihood needs."""


def completion_body(model: str, request: LoglikelihoodRequest) -> dict:
    """lm-eval's `local-completions` log-likelihood request for one (context, continuation)."""
    if not request.context_ids:
        raise ValueError(
            f"request {request.index}: the context is empty, and a prompt's first token has no "
            "log-probability (lm-eval puts the end-of-text token there)"
        )
    if not request.continuation_ids:
        raise ValueError(f"request {request.index}: the continuation is empty")
    return {
        "model": model,
        "prompt": [*request.context_ids, *request.continuation_ids],
        "max_tokens": 1,
        "logprobs": 1,
        "echo": True,
        "temperature": 0,
        "seed": SEED,
    }


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise LoglikelihoodResponseError(f"{where} is {str(value)[:40]!r}, not a log-probability")
    return float(value)


def parse_loglikelihood(answer: object, request: LoglikelihoodRequest) -> Loglikelihood:
    """The continuation's log-likelihood from a completions answer to `completion_body`."""
    try:
        choices = answer["choices"]
        choice = min(choices, key=lambda c: c.get("index", 0))
        logprobs = choice["logprobs"]
        values, tops = logprobs["token_logprobs"], logprobs["top_logprobs"]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise LoglikelihoodResponseError(
            "not a completion with logprobs "
            "(does the endpoint serve /v1/completions with echo and logprobs?): "
            f"{json.dumps(answer)[:300]}"
        ) from None
    start, end = len(request.context_ids), len(request.context_ids) + len(request.continuation_ids)
    if (
        not isinstance(values, list)
        or not isinstance(tops, list)
        or min(len(values), len(tops)) < end
    ):
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise LoglikelihoodResponseError(
            f"expected at least {end} token log-probabilities (the echoed prompt), got "
            f"{got}: the endpoint does not echo the prompt's log-probabilities"
        )
    tokens = []
    for k in range(start, end):
        value = _number(values[k], f"token_logprobs[{k}]")
        top = tops[k]
        if not isinstance(top, dict) or not top:
            raise LoglikelihoodResponseError(
                f"top_logprobs[{k}] is {str(top)[:60]!r}, not a token-to-logprob map"
            )
        best = max(_number(v, f"top_logprobs[{k}]") for v in top.values())
        token_id = request.continuation_ids[k - start]
        tokens.append(TokenLogprob(token_id, value, 1 if value >= best else 2))
    return Loglikelihood.from_tokens(tokens)


def completions_sender(backend):
    """The lean HTTP client posting `completion_body`s to `/completions`, parsing each answer
    into a `Loglikelihood` (the transport's retry rules are the chat client's)."""
    from ocx.harness.backends.openai_http import _FastSender

    class CompletionsSender(_FastSender):
        def body(
            self, backend, request: LoglikelihoodRequest
        ) -> tuple[LoglikelihoodRequest, bytes]:
            return request, json.dumps(completion_body(backend.model_name, request)).encode("ascii")

        async def complete(
            self, worker: int, body: tuple[LoglikelihoodRequest, bytes]
        ) -> Loglikelihood:
            request, payload = body
            return parse_loglikelihood(await self.client.post("/completions", (payload,)), request)

    return CompletionsSender(backend)
