"""Batched training-mode encoding: the same IDs and weights as `encode_conversation`, faster.

Two things make the one-at-a-time path slow on a dataset: rendering the Jinja template for
every conversation, and one tokenizer call per piece. Here the sentinel-rendered prompt is
cached by the conversation's *shape* (its roles, whether it has a system message, its
condition), since the sentinels stand for the contents, the rendered text depends on nothing
else; structure pieces are tokenized once per distinct string, and every content text of a
chunk goes through one `encode_batch` call. The IDs and weights are put together by the same
`ocx.harness.templates.encode.assemble` as `encode_conversation`'s; tests/data check that the
two agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ocx.harness.conversation import Conversation
from ocx.harness.templates import ChatTemplate
from ocx.harness.templates.encode import (
    Encoded,
    assemble,
    encode_structure,
    render_parts,
    require_eot_id,
)
from ocx.harness.tokenizers import Tokenizer

LONG_TEXT_CHARS_PER_TOKEN = 16
"""A text longer than this many characters per allowed token is encoded by `encode_prefix`."""


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_prefix(tokenizer: Tokenizer, text: str, limit: int) -> list[int]:
    """The first `limit` token IDs of `tokenizer.encode_text(text)`, without encoding all of it.

    A 100 MB message truncated to an 8k context needs only its first few kilobytes. Encoding
    a prefix is not enough on its own: the tokens just before the cut may merge differently
    with what follows (a word or a run of spaces split in two). So two prefixes are encoded,
    the second half as long again as the first, and only the tokens they agree on are kept;
    a token both cuts agree on lies before any boundary effect. The prefix doubles until that
    agreed part holds `limit` tokens, or the whole text is encoded.
    """
    chars = 4 * limit + 64
    while chars < len(text):
        short = tokenizer.encode_text(text[:chars])
        if len(short) > limit:
            longer = tokenizer.encode_text(text[: chars + chars // 2])
            agreed = _common_prefix(short, longer)
            if agreed >= limit:
                return short[:limit]
        chars *= 2
    return tokenizer.encode_text(text)[:limit]


@dataclass
class BatchEncoder:
    """Encodes many conversations of one template and tokenizer (training mode)."""

    template: ChatTemplate
    tokenizer: Tokenizer
    _parts: dict[tuple, list[str]] = field(default_factory=dict)
    _structure: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_eot_id(self.template, self.tokenizer)  # fail at construction, not mid-dataset

    def _shape_parts(self, conv: Conversation) -> list[str]:
        """The rendered prompt split into [structure, content index, structure, ...]."""
        key = (tuple(m.role for m in conv.items), bool(conv.system), conv.condition)
        parts = self._parts.get(key)
        if parts is None:
            parts, _ = render_parts(
                self.template, conv, self.tokenizer, inference=False, condition=None
            )
            self._parts[key] = parts
        return parts

    def _structure_ids(self, text: str) -> list[int]:
        ids = self._structure.get(text)
        if ids is None:
            ids = self._structure[text] = encode_structure(text, self.tokenizer)
        return ids

    def encode(
        self, conversations: Sequence[Conversation], max_tokens: int | None = None
    ) -> list[Encoded]:
        """Encode; with `max_tokens`, a content may be cut to its first `max_tokens` tokens
        (the caller truncates each conversation to at most that many, so nothing changes)."""
        shapes = [self._shape_parts(conv) for conv in conversations]
        texts, weights = [], []
        for conv in conversations:
            # The same content order as encode_conversation: system first, then the items.
            if conv.system:
                texts.append(conv.system)
                weights.append(0.0)
            for m in conv.items:
                texts.append(m.content)
                weights.append(m.weight or 0.0)
        content_ids = self._encode_contents(texts, max_tokens)
        out, offset = [], 0
        for conv, parts in zip(conversations, shapes):
            out.append(self._assemble(parts, content_ids, weights, offset))
            # Offsets follow the conversation, not the render: a template may omit a content.
            offset += bool(conv.system) + len(conv.items)
        return out

    def _encode_contents(self, texts: list[str], max_tokens: int | None) -> list[list[int]]:
        long = set()
        if max_tokens is not None:
            long = {
                i for i, t in enumerate(texts) if len(t) > LONG_TEXT_CHARS_PER_TOKEN * max_tokens
            }
        short = [t for i, t in enumerate(texts) if i not in long]
        encode_batch = getattr(self.tokenizer, "encode_batch", None)
        short_ids = iter(
            encode_batch(short) if encode_batch else [self.tokenizer.encode_text(t) for t in short]
        )
        return [
            encode_prefix(self.tokenizer, t, max_tokens) if i in long else next(short_ids)
            for i, t in enumerate(texts)
        ]

    def _assemble(
        self,
        parts: list[str],
        content_ids: list[list[int]],
        content_weights: list[float],
        offset: int,
    ) -> Encoded:
        def content(k: int) -> tuple[list[int], float]:
            return content_ids[offset + k], content_weights[offset + k]

        return assemble(parts, content, self._structure_ids, self.template.eot_token)
