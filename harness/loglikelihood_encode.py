"""Token IDs for log-likelihood scoring: a context and each option's continuation.

As lm-evaluation-harness's `_encode_pair` (lm_eval/api/model.py, 0.4.x): trailing whitespace of
the context moves to the front of the continuation (so " A" after "Answer:" is tokenized as a
word start, not as a lone space token), and the continuation's IDs are the tail of the encoded
whole, `encode(context + continuation)[len(encode(context)):]`, so a token spanning the seam
is the one the model would see in running text. BOS is prepended as the tokenizer does (HF's
`add_special_tokens=True`, lm-eval's default for causal models): ocx's exact tokenizers set
`bos_token` only when their model adds one.

Two prompt modes:

- plain (`--no-chat`, base models): the context is plain text and the continuation follows it
  with the suite's target delimiter (" A"), exactly lm-eval's `hf` model without a chat template.
- chat (default): the context is one user turn through ocx's chat template and the condition,
  ending with the assistant header; each option is the assistant's answer, so its IDs are what
  the template gives an assistant message of that text (ocx tokenizes message content on its
  own, as OpenChat trains). The delimiter is dropped, as lm-eval 0.4 does under
  `apply_chat_template` (`target_delimiter = ""` when the task has no `gen_prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ocx.benchmarks.base import MultipleChoice


@dataclass(frozen=True)
class EncodedChoice:
    """One sample's context IDs and each option's continuation IDs (in `choices` order)."""

    context_ids: tuple[int, ...]
    continuation_ids: tuple[tuple[int, ...], ...]


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's first step: the context's trailing whitespace moves to the continuation."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + continuation


class PairEncoder:
    """Encodes `MultipleChoice` samples for one tokenizer (and, in chat mode, one template and
    condition); the same inputs always give the same IDs, which the cache keys are made of."""

    def __init__(
        self,
        tokenizer,
        *,
        chat: bool,
        template=None,
        condition: str | None = None,
        system_prompt: str | None = None,
    ):
        if chat and template is None:
            raise ValueError("chat scoring needs the model's chat template")
        self.tokenizer = tokenizer
        self.chat = chat
        self.template = template
        self.condition = condition
        self.system_prompt = system_prompt
        self._tails: dict[str, tuple[int, ...]] = {}
        bos = tokenizer.bos_token
        bos_id = tokenizer.special_id(bos) if bos else None
        self.prefix: tuple[int, ...] = (bos_id,) if bos_id is not None else ()

    def describe(self) -> dict:
        """What the IDs depend on besides the text (for results.json)."""
        return {"chat": self.chat, "bos": bool(self.prefix)}

    def encode(self, mc: MultipleChoice) -> EncodedChoice:
        if self.chat:
            return self._encode_chat(mc)
        return self._encode_plain(mc.context, mc.continuations())

    def _encode_plain(self, context: str, continuations: Sequence[str]) -> EncodedChoice:
        if not context:
            return self._encode_empty_context(continuations)
        texts = [context]
        for continuation in continuations:
            ctx, cont = split_trailing_space(context, continuation)
            texts.append(ctx + cont)
        stripped = context.rstrip()
        encoded = self.tokenizer.encode_batch([stripped, *texts[1:]])
        context_ids = (*self.prefix, *encoded[0])
        return EncodedChoice(
            context_ids, tuple(tuple(ids[len(encoded[0]) :]) for ids in encoded[1:])
        )

    def _encode_empty_context(self, continuations: Sequence[str]) -> EncodedChoice:
        """lm-eval: an empty context is conditioned on the prefix token (BOS, else EOS)."""
        prefix = self.prefix or _eos(self.tokenizer)
        return EncodedChoice(
            prefix, tuple(tuple(self.tokenizer.encode_text(c)) for c in continuations)
        )

    def _encode_chat(self, mc: MultipleChoice) -> EncodedChoice:
        from ocx.harness.templates.encode import encode_prompt

        context_ids = encode_prompt(
            self.template, self.tokenizer, self.messages(mc.context), condition=self.condition
        )
        # No target delimiter under a chat template (lm-eval 0.4): the option is the answer itself.
        return EncodedChoice(
            tuple(context_ids), tuple(self._assistant_ids(choice) for choice in mc.choices)
        )

    def _assistant_ids(self, choice: str) -> tuple[int, ...]:
        """What the template adds after the generation prompt for an assistant message `choice`.

        ocx tokenizes each message's content on its own (templates/encode.py), so these IDs do not
        depend on the user's text: they are found once per option text with a stand-in question
        (one encode of each long few-shot context per sample instead of one per option)."""
        if choice not in self._tails:
            from ocx.harness.templates.encode import encode_prompt

            messages = self.messages("?")
            head = encode_prompt(self.template, self.tokenizer, messages, condition=self.condition)
            whole = encode_prompt(
                self.template,
                self.tokenizer,
                [*messages, {"role": "assistant", "content": choice}],
                condition=self.condition,
            )
            if whole[: len(head)] != head:
                raise ValueError(
                    f"the {self.template.name} template renders an assistant answer that does not "
                    "continue its generation prompt"
                )
            self._tails[choice] = tuple(whole[len(head) :])
        return self._tails[choice]

    def messages(self, context: str) -> list[dict]:
        system = (
            [{"role": "system", "content": self.system_prompt}]
            if self.system_prompt is not None
            else []
        )
        return [*system, {"role": "user", "content": context}]


def _eos(tokenizer) -> tuple[int, ...]:
    eos = tokenizer.eos_token
    token = tokenizer.special_id(eos) if eos else None
    if token is None:
        raise ValueError(
            "an empty context needs a BOS or EOS token to condition on; the tokenizer has neither"
        )
    return (token,)
