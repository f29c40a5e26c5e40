"""Model backends behind one small interface: `Backend.generate(requests, on_result, on_error)`.

A backend turns chat requests (OpenAI-style messages plus a condition) into assistant text.
Engines come from one registry (`ocx.harness.engines`): the local ones (transformers, vLLM)
are the same token-streaming engines `ocx serve` runs, driven here by `engine_backend`; the
OpenAI-compatible HTTP client (`openai_http`, several endpoints: `multi_endpoint`) talks to a
server. Each calls `on_result` as soon as an answer is in, so the runner can cache it at once;
each imports its heavy library only when built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ocx.harness.sampling import Sampling  # noqa: F401 (the one sampling type, re-exported here)


@dataclass(frozen=True)
class Request:
    """One generation: the conversation so far and the condition for the assistant's turn."""

    index: int
    messages: tuple[dict, ...]
    condition: str | None
    sampling: Sampling
    messages_json: bytes | None = field(default=None, compare=False, repr=False)
    """`messages` as canonical JSON (`ocx.benchmarks.base.canonical_json`), when the runner has
    made it already (for the cache key): the HTTP client splices it into the body as is."""


ResultCallback = Callable[[int, str], None]
"""on_result(request.index, assistant_text); called once per request answered."""

ErrorCallback = Callable[[int, BaseException], None]
"""on_error(request.index, exception); called once per request given up on."""


class Backend(Protocol):
    def identity(self) -> dict:
        """What makes this backend's answers what they are (cache key and result record)."""

    def generate(
        self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback
    ) -> None:
        """Answer every request, calling on_result or on_error once for each.

        A backend whose class sets `pulls_requests = True` only iterates `requests` once, taking
        one at a time as it has room: the runner then passes a lazy iterable and plans the later
        requests (prompts, cache keys) while the first are in flight. Others get a list."""

    def close(self) -> None: ...
