"""The narrow interface between the HTTP layer and a generation backend.

An engine takes prompt token IDs (the chat template's exact encoding, never text) and streams
back the token IDs it generates for one sequence. The HTTP layer owns everything textual:
detokenization, stop strings, OpenAI's response shapes. A request with `n` choices is `n`
engine sequences (seeds `seed`, `seed + 1`, ...), so each can stop or be cancelled on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingSettings:
    """How one sequence is sampled; the OpenAI request fields after validation."""

    max_tokens: int
    stop_token_ids: tuple[int, ...]
    """Token IDs that end the turn (the template's EOT); they are counted but never shown."""
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    incremental: bool = True
    """False: the caller needs only the result (no streaming, no stop strings), so an engine
    may send all tokens in one final step (vLLM's FINAL_ONLY), saving per-token work."""


@dataclass(frozen=True)
class Step:
    """Tokens an engine produced since its last step for one sequence.

    `finish_reason` is set on the last step: "stop" when the last token is one of the stop
    token IDs, "length" when `max_tokens` was reached.
    """

    token_ids: tuple[int, ...]
    finish_reason: FinishReason | None = None


class EngineOverloaded(RuntimeError):
    """The engine's queue is full; the server answers 503."""


class SequenceFailed(RuntimeError):
    """One sequence failed inside the engine (its sampling or its forward pass raised).

    Only that sequence's request fails; the cause is logged by the engine, and the message
    holds no internal detail, so the HTTP layer may show it to the client.
    """


class Engine(Protocol):
    """A generation backend (transformers or vLLM)."""

    name: str

    async def start(self) -> None:
        """Load weights and start background work; called once when the app starts."""

    async def shutdown(self) -> None:
        """Stop background work and free resources; pending sequences end."""

    def generate(self, request_id: str, prompt_ids: list[int], settings: SamplingSettings) -> AsyncIterator[Step]:
        """Stream the steps of one sequence. Cancelling the iteration aborts the sequence."""

    async def abort(self, request_id: str) -> None:
        """Stop a sequence early (client disconnect, stop string found); a no-op when done."""
