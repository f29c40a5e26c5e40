"""The one engine interface, for `ocx serve`, `ocx eval` and recipes alike.

Engines are found by name in `ocx.harness.engines` (a lazy registry). An engine takes prompt
token IDs (the chat template's exact encoding, never text) and streams back the token IDs it
generates for one sequence. The HTTP layer owns everything textual:
detokenization, stop strings, OpenAI's response shapes. A request with `n` choices is `n`
engine sequences (seeds `seed`, `seed + 1`, ...), so each can stop or be cancelled on its own.
`ocx eval` drives the same engines through `ocx.harness.backends.engine_backend.EngineBackend`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from ocx.harness.logprobs import Loglikelihood, TokenLogprob
from ocx.harness.sampling import Sampling

FinishReason = Literal["stop", "length"]

SamplingSettings = Sampling
"""The old name of `ocx.harness.sampling.Sampling`, the one sampling type (kept for importers)."""


@dataclass(frozen=True)
class Step:
    """Tokens an engine produced since its last step for one sequence.

    `finish_reason` is set on the last step: "stop" when the last token is one of the stop
    token IDs, "length" when `max_tokens` was reached.
    """

    token_ids: tuple[int, ...]
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    """One per token in `token_ids`, when the sequence's `Sampling.logprobs` is set."""
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None
    """On the first step only, when `Sampling.prompt_logprobs` is set: one per prompt token,
    None for the first (vLLM's shape)."""


class SequenceFailed(RuntimeError):
    """One sequence failed inside the engine (its sampling or its forward pass raised).

    Only that sequence's request fails; the cause is logged by the engine, and the message
    holds no internal detail, so the HTTP layer may show it to the client.
    """


class Engine(Protocol):
    """A generation engine (transformers, vLLM, or one registered in `ocx.harness.engines`).

    The server streams from it; `ocx eval` drives the same object through
    `ocx.harness.backends.engine_backend.EngineBackend`, many sequences at once.
    """

    name: str
    sampling_fields: frozenset[str]
    """The `Sampling` fields this engine honours (optional; default `sampling.BASIC_FIELDS`).
    Requests setting any other field away from its default are refused, not silently ignored."""

    async def start(self) -> None:
        """Load weights and start background work; called once when the app starts."""

    async def shutdown(self) -> None:
        """Stop background work and free resources; pending sequences end."""

    def generate(
        self, request_id: str, prompt_ids: list[int], settings: Sampling
    ) -> AsyncIterator[Step]:
        """Stream the steps of one sequence. Cancelling the iteration aborts the sequence."""

    async def abort(self, request_id: str) -> None:
        """Stop a sequence early (client disconnect, stop string found); a no-op when done."""

    async def loglikelihood(
        self, request_id: str, context_ids: list[int], continuation_ids: list[int]
    ) -> Loglikelihood:
        """Score `continuation_ids` after `context_ids` (optional: eval's `--scoring
        loglikelihood` needs it). Engines batch concurrent calls themselves."""
