"""Any OpenAI-compatible chat completions endpoint (ocx serve, vLLM's server, hosted APIs).

Two HTTP clients behind the same retry and concurrency policy:

* ``openai``: the official SDK (``AsyncOpenAI``), imported when used. The default for https
  endpoints: hosted APIs, proxies from the environment, the SDK's headers.
* ``fast``: ocx's lean asyncio client (`fast_http`), the default for plain-http endpoints (local
  servers), where the SDK's ~1 ms of CPU per request would make the client the bottleneck.

At most `concurrency` requests are in flight (that many workers; each sends one request at a
time). 429, 5xx, timeouts and dropped connections are retried with exponential backoff and full
jitter; other errors (400, 401, 404) are not, since the same request cannot succeed. The SDK's
own retries are off so that one policy governs. ocx's `condition` travels as an extra body field
(``extra_body`` in the SDK), and only when set: hosted APIs reject fields they do not know.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence

from ocx.harness.backends import ErrorCallback, Request, ResultCallback

HTTP_CLIENTS = ("auto", "openai", "fast")
_PER_SDK_CLIENT = 8  # connections per AsyncOpenAI (see _SDKSender)


def _content(answer: dict) -> str:
    """The assistant text of a chat completion response body."""
    try:
        return answer["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError(f"not a chat completion: {str(answer)[:300]}") from None


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
            self.clients.append(openai.AsyncOpenAI(base_url=backend.base_url, api_key=backend.api_key,
                                                   max_retries=0, timeout=backend.timeout, http_client=http))

    async def complete(self, worker: int, body: dict, extra: dict | None) -> str:
        # The SDK's documented raw request (`post(..., cast_to=httpx.Response)`): its auth,
        # headers and error classes, without the typed path's per-request transformation and
        # pydantic parsing, which cost more CPU than the rest of the request together.
        client = self.clients[worker // _PER_SDK_CLIENT]
        response = await client.post("/chat/completions", body={**body, **(extra or {})}, cast_to=self._httpx.Response)
        return _content(response.json())

    def retryable(self, exc: BaseException) -> bool:
        o = self._openai
        return isinstance(exc, (o.RateLimitError, o.InternalServerError, o.APITimeoutError, o.APIConnectionError))

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class _FastSender:
    def __init__(self, backend: OpenAIBackend):
        from ocx.harness.backends.fast_http import FastHTTPClient

        self.client = FastHTTPClient(backend.base_url, api_key=backend.api_key, timeout=backend.timeout,
                                     max_connections=backend.concurrency)

    async def complete(self, worker: int, body: dict, extra: dict | None) -> str:
        return _content(await self.client.post_json("/chat/completions", {**body, **(extra or {})}))

    def retryable(self, exc: BaseException) -> bool:
        from ocx.harness.backends.fast_http import HTTPStatusError

        if isinstance(exc, HTTPStatusError):
            return exc.retryable
        return isinstance(exc, (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError))

    async def close(self) -> None:
        await self.client.close()


class OpenAIBackend:
    def __init__(self, base_url: str, model_name: str, *, api_key: str | None = None, concurrency: int = 64,
                 timeout: float = 600.0, max_retries: int = 8, backoff: float = 0.5, max_backoff: float = 30.0,
                 http_client: str = "auto"):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if http_client not in HTTP_CLIENTS:
            raise ValueError(f"http_client must be one of {', '.join(HTTP_CLIENTS)}, got {http_client!r}")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        # Local servers need no key, but clients insist on sending one.
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        if http_client == "auto":
            http_client = "openai" if self.base_url.startswith("https://") else "fast"
        self.http_client = http_client

    def identity(self) -> dict:
        return {"kind": "openai", "base_url": self.base_url, "model": self.model_name}

    def generate(self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback) -> None:
        asyncio.run(self._generate(requests, on_result, on_error))

    def close(self) -> None:
        pass

    async def _generate(self, requests, on_result, on_error) -> None:
        sender = _SDKSender(self) if self.http_client == "openai" else _FastSender(self)
        pending = iter(requests)

        async def worker(number: int) -> None:
            for request in pending:  # a shared iterator: each request goes to exactly one worker
                try:
                    text = await self._complete(sender, number, request)
                except Exception as exc:  # reported per request; the runner decides what a failure means
                    on_error(request.index, exc)
                    continue
                on_result(request.index, text)

        try:
            await asyncio.gather(*(worker(n) for n in range(self.concurrency)))
        finally:
            await sender.close()

    def _body(self, request: Request) -> dict:
        sampling = request.sampling
        body = {"model": self.model_name, "messages": list(request.messages), "temperature": sampling.temperature,
                "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        return body

    async def _complete(self, sender, worker: int, request: Request) -> str:
        extra = {"condition": request.condition} if request.condition else None
        body = self._body(request)
        for attempt in range(self.max_retries + 1):
            try:
                return await sender.complete(worker, body, extra)
            except Exception as exc:
                if attempt == self.max_retries or not sender.retryable(exc):
                    raise
            await asyncio.sleep(self._delay(attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, attempt: int) -> float:
        # Full jitter: many workers hitting a 429 together must not retry in lockstep.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))
