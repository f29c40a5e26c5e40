"""Model backends behind one small interface: `Backend.generate(requests, on_result, on_error)`.

A backend turns chat requests (OpenAI-style messages plus a condition) into assistant text.
Three exist: an OpenAI-compatible HTTP client (`openai_http`), the vLLM offline engine
(`vllm`) and transformers (`transformers`). Each calls `on_result` as soon as an answer is in,
so the runner can cache it at once; each imports its heavy library only when built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; part of every cache key and recorded in every result."""

    temperature: float = 0.0
    """0 is greedy decoding."""
    top_p: float = 1.0
    max_tokens: int = 2048
    """Most new tokens per answer (chain-of-thought sets need room; OpenChat uses the context)."""
    seed: int | None = None
    """Sampling seed, for temperature > 0 (backends that support one)."""
    stop: tuple[str, ...] = ()
    """Strings that end an answer (not included in it), besides the template's end of turn."""

    @classmethod
    def for_suite(cls, generation: dict, overrides: dict) -> Sampling:
        """A suite's own settings (its `generation`) with the user's overrides on top."""
        known = {k: v for k, v in {**generation, **overrides}.items() if k in cls.__dataclass_fields__}
        if "stop" in known:
            known["stop"] = tuple(known["stop"] or ())
        return cls(**known)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """One generation: the conversation so far and the condition for the assistant's turn."""

    index: int
    messages: tuple[dict, ...]
    condition: str | None
    sampling: Sampling


ResultCallback = Callable[[int, str], None]
"""on_result(request.index, assistant_text); called once per request answered."""

ErrorCallback = Callable[[int, BaseException], None]
"""on_error(request.index, exception); called once per request given up on."""


class Backend(Protocol):
    def identity(self) -> dict:
        """What makes this backend's answers what they are (cache key and result record)."""

    def generate(self, requests: Sequence[Request], on_result: ResultCallback, on_error: ErrorCallback) -> None:
        """Answer every request, calling on_result or on_error once for each.

        A backend whose class sets `pulls_requests = True` only iterates `requests` once, taking
        one at a time as it has room: the runner then passes a lazy iterable and plans the later
        requests (prompts, cache keys) while the first are in flight. Others get a list."""

    def close(self) -> None: ...
