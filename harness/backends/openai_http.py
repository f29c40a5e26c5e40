"""Any OpenAI-compatible chat completions endpoint (ocx serve, vLLM's server, hosted APIs).

Two HTTP clients behind the same retry and concurrency policy:

* ``openai``: the official SDK (``AsyncOpenAI``), imported when used. The default for https
  endpoints: hosted APIs, proxies from the environment, the SDK's headers.
* ``fast``: ocx's lean asyncio client (`fast_http`), the default for plain-http endpoints (local
  servers), where the SDK's ~1 ms of CPU per request would make the client the bottleneck.

At most `concurrency` requests are in flight (that many workers; each sends one request at a
time). 429, 5xx, timeouts, dropped connections and malformed bodies (garbage or truncated JSON,
JSON that is not a chat completion) are retried with exponential backoff and full jitter, or
after the server's ``Retry-After`` (seconds or an HTTP date, capped at `max_retry_after`) when
it sends one; other errors (400, 401, 404) are not, since the same request cannot succeed. The
SDK's own retries are off so that one policy governs. ocx's `condition` travels as an extra body
field (``extra_body`` in the SDK) whenever one is given, the empty string included (it asks for
no condition, which is not the same as the server's default); None sends none, since hosted
APIs reject fields they do not know. The API key is the one passed in, never an environment
variable: the judge's ``OPENAI_API_KEY`` must not reach the evaluated endpoint.

`OpenAIBackend.loglikelihood` scores log-likelihoods through the endpoint's ``/v1/completions``
(lm-eval's echo + logprobs request; see `http_loglikelihood`) under the same policy.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence

from ocx.harness.backends import ErrorCallback, Request, ResultCallback
from ocx.harness.logprobs import Loglikelihood, LoglikelihoodRequest

HTTP_CLIENTS = ("auto", "openai", "fast")
_PER_SDK_CLIENT = 8  # connections per AsyncOpenAI (see _SDKSender)


class MalformedResponseError(ValueError):
    """A 2xx body that is not a chat completion (garbage, truncated, another shape): retried."""


def _content(answer: dict) -> str:
    """The assistant text of a chat completion response body."""
    try:
        return answer["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise MalformedResponseError(f"not a chat completion: {str(answer)[:300]}") from None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds: "120" or an HTTP date ("Wed, 21 Oct 2026 07:28:00 GMT");
    None when absent or unreadable (then the usual backoff applies)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _SDKSender:
    """The official SDK: one AsyncOpenAI per 8 workers.

    httpx's connection pool scans all of its connections for every request it places, so one
    pool of 64 connections spends more CPU per request than a fast endpoint takes to answer;
    small pools keep that cost flat as concurrency grows.
    """

    def __init__(self, backend: OpenAIBackend):
        import httpx
        import openai

        self._openai, self._httpx = openai, httpx
        self.clients = []
        for start in range(0, backend.concurrency, _PER_SDK_CLIENT):
            size = min(_PER_SDK_CLIENT, backend.concurrency - start)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            http = openai.DefaultAsyncHttpxClient(limits=limits, timeout=backend.timeout)
            self.clients.append(
                openai.AsyncOpenAI(
                    base_url=backend.base_url,
                    api_key=backend.api_key,
                    max_retries=0,
                    timeout=backend.timeout,
                    http_client=http,
                )
            )

    def body(self, backend: OpenAIBackend, request: Request) -> dict:
        return backend.body(request)

    async def complete(self, worker: int, body: dict) -> str:
        # The SDK's documented raw request (`post(..., cast_to=httpx.Response)`): its auth,
        # headers and error classes, without the typed path's per-request transformation and
        # pydantic parsing, which cost more CPU than the rest of the request together.
        client = self.clients[worker // _PER_SDK_CLIENT]
        response = await client.post("/chat/completions", body=body, cast_to=self._httpx.Response)
        try:
            answer = response.json()
        except ValueError:
            raise MalformedResponseError(
                f"a body that is not JSON: {response.text[:200]!r}"
            ) from None
        return _content(answer)

    def retryable(self, exc: BaseException) -> bool:
        o = self._openai
        return isinstance(
            exc,
            (
                o.RateLimitError,
                o.InternalServerError,
                o.APITimeoutError,
                o.APIConnectionError,
                MalformedResponseError,
            ),
        )

    def retry_after(self, exc: BaseException) -> str | None:
        response = getattr(exc, "response", None)
        return response.headers.get("retry-after") if response is not None else None

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class _FastSender:
    """ocx's lean client; each body is written as bytes: the model field, the messages' JSON
    (the runner's canonical JSON, made once for the cache key, spliced in as is) and the other
    fields, serialized once per sampling setting and condition."""

    def __init__(self, backend: OpenAIBackend):
        from ocx.harness.backends.fast_http import FastHTTPClient

        self.client = FastHTTPClient(
            backend.base_url,
            api_key=backend.api_key,
            timeout=backend.timeout,
            max_connections=backend.concurrency,
        )
        self._head = (
            b'{"model": ' + json.dumps(backend.model_name).encode("ascii") + b', "messages": '
        )
        self._tails: dict[tuple, bytes] = {}

    def body(self, backend: OpenAIBackend, request: Request) -> tuple[bytes, bytes, bytes]:
        """The body as three pieces (joined once, with the request head, when sent): the same
        JSON object as `backend.body(request)`, field for field."""
        setting = (request.sampling, request.condition)
        tail = self._tails.get(setting)
        if tail is None:
            fields = backend.body(request)
            del fields["model"], fields["messages"]
            tail = self._tails[setting] = b", " + json.dumps(fields).encode("ascii")[1:]
        messages = request.messages_json
        if messages is None:  # a request not made by the runner: serialize here
            messages = json.dumps(list(request.messages)).encode(
                "ascii"
            )  # ASCII-escaped: the C fast path
        return self._head, messages, tail

    async def complete(self, worker: int, body: tuple[bytes, bytes, bytes]) -> str:
        return _content(await self.client.post("/chat/completions", body))

    def retryable(self, exc: BaseException) -> bool:
        from ocx.harness.backends.fast_http import HTTPStatusError
        from ocx.harness.backends.fast_http import MalformedResponseError as MalformedBody

        if isinstance(exc, HTTPStatusError):
            return exc.retryable
        return isinstance(
            exc,
            (
                OSError,
                asyncio.TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                MalformedBody,
                MalformedResponseError,
            ),
        )

    def retry_after(self, exc: BaseException) -> str | None:
        return getattr(exc, "retry_after", None)

    async def close(self) -> None:
        await self.client.close()


class OpenAIBackend:
    pulls_requests = (
        True  # takes requests one at a time from one iterator: the runner may plan them lazily
    )
    takes_messages_json = True  # the lean client sends `Request.messages_json` as is when it is set

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        api_key: str | None = None,
        concurrency: int = 64,
        timeout: float = 600.0,
        max_retries: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        http_client: str = "auto",
        max_retry_after: float = 120.0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if http_client not in HTTP_CLIENTS:
            raise ValueError(
                f"http_client must be one of {', '.join(HTTP_CLIENTS)}, got {http_client!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        # Local servers need no key, but clients insist on sending one. Never taken from the
        # environment here: OPENAI_API_KEY is usually the judge's, not the evaluated endpoint's.
        self.api_key = api_key or "EMPTY"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        if http_client == "auto":
            http_client = "openai" if self.base_url.startswith("https://") else "fast"
        self.http_client = http_client

    def identity(self) -> dict:
        return {"kind": "openai", "base_url": self.base_url, "model": self.model_name}

    def generate(
        self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback
    ) -> None:
        asyncio.run(self._generate(requests, on_result, on_error))

    def loglikelihood(
        self,
        requests: Iterable[LoglikelihoodRequest],
        on_result: Callable[[int, Loglikelihood], None],
        on_error: Callable[[int, BaseException], None],
    ) -> None:
        """Score each request through the endpoint's `/v1/completions` with echo + logprobs
        (lm-eval's request; see `http_loglikelihood`), `concurrency` at a time, retried as
        `generate` retries; `on_result(index, Loglikelihood)` or `on_error(index, exc)` once
        each."""
        from ocx.harness.backends.http_loglikelihood import completions_sender

        asyncio.run(self._generate(requests, on_result, on_error, make_sender=completions_sender))

    def close(self) -> None:
        pass

    async def _generate(self, requests, on_result, on_error, make_sender=None) -> None:
        if make_sender is not None:
            sender = make_sender(self)
        else:
            sender = _SDKSender(self) if self.http_client == "openai" else _FastSender(self)
        pending = iter(requests)

        async def worker(number: int) -> None:
            for request in pending:  # a shared iterator: each request goes to exactly one worker
                try:
                    text = await self._complete(sender, number, request)
                except (
                    Exception
                ) as exc:  # reported per request; the runner decides what a failure means
                    on_error(request.index, exc)
                    continue
                on_result(request.index, text)

        try:
            await asyncio.gather(*(worker(n) for n in range(self.concurrency)))
        finally:
            await sender.close()

    def body(self, request: Request) -> dict:
        """The chat completions request body, ocx's `condition` included when given."""
        sampling = request.sampling
        body = {
            "model": self.model_name,
            "messages": list(request.messages),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        for name in (
            "presence_penalty",
            "frequency_penalty",
        ):  # OpenAI's own fields, sent only when set
            value = getattr(sampling, name, 0.0)
            if value:
                body[name] = value
        if request.condition is not None:
            body["condition"] = request.condition
        return body

    async def _complete(self, sender, worker: int, request: Request) -> str:
        body = sender.body(self, request)
        for attempt in range(self.max_retries + 1):
            try:
                return await sender.complete(worker, body)
            except Exception as exc:
                if attempt == self.max_retries or not sender.retryable(exc):
                    raise
                delay = self._delay(attempt, retry_after_seconds(sender.retry_after(exc)))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The server's Retry-After when it sent one (capped: a hostile or confused server must
        not park the run for a day), else full jitter, so many workers hitting a 429 together
        do not retry in lockstep."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
