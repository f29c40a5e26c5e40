"""A bounded loopback load test: 64 concurrent clients x 8 requests each, zero errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest

CLIENTS, REQUESTS_EACH = 64, 8


@pytest.mark.slow
def test_64_concurrent_clients_times_8_requests_complete_without_errors(server_url):
    from openai import AsyncOpenAI

    async def one_client(client, c: int) -> list[int]:
        tokens = []
        for i in range(REQUESTS_EACH):
            messages = [{"role": "user", "content": f"client {c} request {i}: say something"}]
            if i % 2:
                stream = await client.chat.completions.create(
                    model="tiny-chat",
                    messages=messages,
                    max_tokens=4,
                    seed=c * 100 + i,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                usage = [chunk.usage async for chunk in stream if chunk.usage][-1]
            else:
                usage = (
                    await client.chat.completions.create(
                        model="tiny-chat", messages=messages, max_tokens=4, seed=c * 100 + i
                    )
                ).usage
            tokens.append(usage.completion_tokens)
        return tokens

    async def run():
        # The pool drops idle connections well before the server's 5 s keep-alive closes them: on a
        # starved machine a pooled connection reused at the server's deadline fails mid-request.
        limits = httpx.Limits(
            max_connections=CLIENTS, max_keepalive_connections=CLIENTS, keepalive_expiry=2.0
        )
        async with httpx.AsyncClient(limits=limits, timeout=120) as http:
            client = AsyncOpenAI(
                base_url=f"{server_url}/v1", api_key="x", http_client=http, max_retries=0
            )
            return await asyncio.gather(*(one_client(client, c) for c in range(CLIENTS)))

    results = asyncio.run(run())  # any error status raises here
    assert len(results) == CLIENTS and all(len(r) == REQUESTS_EACH for r in results)
    assert all(1 <= t <= 4 for r in results for t in r)
    assert httpx.get(f"{server_url}/health").json()["pending"] == 0
