"""What eval's local engines share: the checkpoint spec, prompt token IDs, and turning
generated IDs back into an answer.

Prompts are built by ocx's own template and exact tokenizer (`encode_prompt`), never by the
engine's tokenizer, so a local model sees exactly the tokens it was trained on; generated IDs
are cut at the template's end-of-turn token and decoded by the same tokenizer. The context
length is the checkpoint spec's (`ocx.harness.checkpoint`), the same one `ocx serve` uses.
"""

from __future__ import annotations

from pathlib import Path

from ocx.harness.backends import Request, Sampling
from ocx.harness.checkpoint import CheckpointSpec, checkpoint_fingerprint, resolve_checkpoint_spec
from ocx.harness.templates.encode import encode_prompt

__all__ = ["LocalModel", "checkpoint_fingerprint", "cut_at_stop"]


class LocalModel:
    """A checkpoint (folder or hub id) with its chat template and tokenizer."""

    def __init__(
        self,
        path: str | Path | None = None,
        model_type: str | None = None,
        *,
        spec: CheckpointSpec | None = None,
    ):
        self.spec = spec if spec is not None else resolve_checkpoint_spec(path, model_type)
        self.path = self.spec.path
        self.template = self.spec.template
        self.tokenizer = self.spec.tokenizer
        self.eot_id = self.spec.eot_id

    def identity(self, kind: str) -> dict:
        return self.spec.identity(kind)

    def max_positions(self) -> int:
        """Prompt plus answer tokens: the checkpoint spec's one context-length rule."""
        return self.spec.context_length

    def prompt_ids(self, request: Request, max_positions: int | None = None) -> list[int]:
        limit = max_positions or self.max_positions()
        ids = encode_prompt(
            self.template, self.tokenizer, list(request.messages), condition=request.condition
        )
        # As OpenChat: keep the end of an over-long prompt (the question and the assistant header),
        # leaving room for at least one new token.
        return ids[-(limit - 1) :]

    def answer(self, generated: list[int], sampling: Sampling) -> str:
        """Text of the generated IDs up to the end of turn, cut at the first stop string."""
        if self.eot_id in generated:
            generated = generated[: generated.index(self.eot_id)]
        return cut_at_stop(self.tokenizer.decode(generated), sampling.stop)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text
