"""Any OpenAI-compatible chat completions endpoint (ocx serve, vLLM's server, hosted APIs).

The official `openai` package (AsyncOpenAI), imported when a backend is built. At most
`concurrency` requests are in flight (a semaphore); 429, 5xx, timeouts and dropped connections
are retried with exponential backoff and jitter, other errors (400, 401, 404) are not, since
sending the same request again cannot fix them. The OpenAI client's own retries are off so
that one policy governs. ocx's `condition` travels as an extra body field, and only when set:
hosted APIs reject fields they do not know.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence

from ocx.harness.backends import ErrorCallback, Request, ResultCallback


class OpenAIBackend:
    def __init__(self, base_url: str, model_name: str, *, api_key: str | None = None, concurrency: int = 64,
                 timeout: float = 600.0, max_retries: int = 8, backoff: float = 0.5, max_backoff: float = 30.0):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        # Local servers need no key, but the client insists on one.
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def identity(self) -> dict:
        return {"kind": "openai", "base_url": self.base_url, "model": self.model_name}

    def generate(self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback) -> None:
        asyncio.run(self._generate(requests, on_result, on_error))

    def close(self) -> None:
        pass

    def _client(self):
        import httpx
        import openai

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        http = openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0,
                                  timeout=self.timeout, http_client=http)

    async def _generate(self, requests, on_result, on_error) -> None:
        client = self._client()
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(request: Request) -> None:
            async with semaphore:
                try:
                    text = await self._complete(client, request)
                except Exception as exc:  # reported per request; the runner decides what a failure means
                    on_error(request.index, exc)
                    return
            on_result(request.index, text)

        try:
            await asyncio.gather(*(one(r) for r in requests))
        finally:
            await client.close()

    def _body(self, request: Request) -> dict:
        sampling = request.sampling
        body = {"model": self.model_name, "messages": list(request.messages), "temperature": sampling.temperature,
                "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        return body

    async def _complete(self, client, request: Request) -> str:
        import openai

        retryable = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                     openai.APIConnectionError)
        extra = {"condition": request.condition} if request.condition else None
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.chat.completions.create(**self._body(request), extra_body=extra)
                return response.choices[0].message.content or ""
            except retryable:
                if attempt == self.max_retries:
                    raise
                await asyncio.sleep(self._delay(attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, attempt: int) -> float:
        # Full jitter: many workers hitting a 429 together must not retry in lockstep.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))
