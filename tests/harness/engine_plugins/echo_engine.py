"""The engine docs/extending.md adds: every answer is the same fixed text, then the end of turn.

A complete token-streaming engine: it takes the prompt's token IDs and a `Sampling`, and
yields `Step`s of generated token IDs. It needs no weights, so it runs anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ocx.adapters.serve.engine import Step
from ocx.harness.sampling import Sampling

ANSWER = "The answer is 4."


class EchoEngine:
    name = "echo"

    def __init__(self, checkpoint):
        self.tokens = [*checkpoint.tokenizer.encode_text(ANSWER), checkpoint.eot_id]

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def generate(
        self, request_id: str, prompt_ids: list[int], settings: Sampling
    ) -> AsyncIterator[Step]:
        tokens = self.tokens[: settings.max_tokens]
        yield Step(tuple(tokens), "stop" if tokens[-1] in settings.stop_token_ids else "length")

    async def abort(self, request_id: str) -> None: ...


def build(checkpoint, options) -> EchoEngine:
    """The registry's factory: `register_engine("echo", "echo_engine:build")`."""
    return EchoEngine(checkpoint)
