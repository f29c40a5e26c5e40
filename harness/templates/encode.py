"""Token IDs and C-RLFT loss weights from a chat template.

The template is rendered with each message's content replaced by a sentinel, so the text
that comes out alternates between *structure* (BOS, role headers, EOT) and *content*
references. Each piece is tokenized on its own, as OpenChat does: structure splits at the
tokenizer's special tokens (which become control tokens), content is always plain text
(a user typing ``<|end_of_turn|>`` gets the characters, not the control token).

Weights (training): a message's weight covers its content tokens and the EOT token that
immediately follows its content; BOS, role headers and the system message get 0.
Inference: a conversation ending with a user message gets the generation prompt; one ending
with an assistant message is a prefill, cut right after its content (no EOT).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ocx.harness.conversation import Conversation
from ocx.harness.templates import ChatTemplate
from ocx.harness.tokenizers import Tokenizer

_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    weights: list[float]


@dataclass(frozen=True)
class _Content:
    text: str
    weight: float


def resolve_condition(
    template: ChatTemplate, conv: Conversation, condition: str | None, inference: bool
) -> str:
    """The condition for the role headers.

    An explicit `condition` wins (an explicit "" means no condition). Otherwise the
    conversation's own; failing that, the template's inference condition when prompting and
    none when training (as OpenChat).
    """
    if condition is not None:
        return condition
    if conv.condition:
        return conv.condition
    return template.default_condition if inference else ""


def _template_messages(conv: Conversation) -> tuple[list[dict], list[_Content]]:
    contents, messages = [], []
    if conv.system:
        contents.append(_Content(conv.system, 0.0))
        messages.append({"role": "system", "content": _SENTINEL.format(0)})
    for m in conv.items:
        messages.append({"role": m.role, "content": _SENTINEL.format(len(contents))})
        contents.append(_Content(m.content, m.weight or 0.0))
    return messages, contents


def _check_condition(condition: str) -> None:
    if "\ue000" in condition or "\ue001" in condition:
        raise ValueError("condition contains a reserved character (U+E000/U+E001)")


@lru_cache(maxsize=32)
def _special_pattern(specials: tuple[str, ...]) -> re.Pattern:
    # Longest first, so a special token that contains another is matched whole.
    return re.compile(
        "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
    )


def encode_structure(text: str, tokenizer: Tokenizer) -> list[int]:
    """Template text: its special-token strings become control tokens, the rest plain text."""
    specials = tokenizer.specials
    ids = []
    for chunk in _special_pattern(tuple(specials)).split(text):
        if chunk in specials:
            ids.append(specials[chunk])
        elif chunk:
            ids.extend(tokenizer.encode_text(chunk))
    return ids


def render_parts(
    template: ChatTemplate,
    conv: Conversation,
    tokenizer: Tokenizer,
    *,
    inference: bool,
    condition: str | None,
) -> tuple[list[str], list[_Content]]:
    """The rendered prompt as [structure, content index, structure, ..., structure], and the
    contents the indices refer to (after any prefill cut, before tokenization)."""
    cond = resolve_condition(template, conv, condition, inference)
    _check_condition(cond)
    messages, contents = _template_messages(conv)
    prefill = inference and bool(conv.items) and conv.items[-1].role == "assistant"
    text = template.render(
        messages,
        add_generation_prompt=inference and not prefill,
        condition=cond,
        bos_token=tokenizer.bos_token,
        content_sep="",
    )
    if prefill:
        last = _SENTINEL.format(len(contents) - 1)
        text = text[: text.rindex(last) + len(last)]
    return _SENTINEL_RE.split(text), contents


def require_eot_id(template: ChatTemplate, tokenizer: Tokenizer) -> int:
    """The template's end-of-turn token ID; ValueError when the tokenizer has none."""
    eot_id = tokenizer.special_id(template.eot_token)
    if eot_id is None:
        raise ValueError(
            f"tokenizer has no {template.eot_token!r} token, the end of turn of {template.name}"
        )
    return eot_id


def assemble(
    parts: list[str],
    content: Callable[[int], tuple[list[int], float]],
    structure: Callable[[str], list[int]],
    eot_token: str,
) -> Encoded:
    """IDs and C-RLFT weights from `render_parts` pieces; the one place the weight rule lives.

    `content(k)` gives content k's token IDs and weight, `structure(text)` a structure piece's
    IDs. Content tokens carry their message's weight, structure tokens 0, except the end-of-turn
    token right after a message's content: it carries that message's weight, so the model
    learns to stop where the weighted message stops.
    """
    ids: list[int] = []
    weights: list[float] = []
    last_weight = 0.0
    for i, part in enumerate(parts):
        if i % 2:
            piece, last_weight = content(int(part))
            ids += piece
            weights += [last_weight] * len(piece)
            continue
        piece = structure(part)
        ids += piece
        weights += [0.0] * len(piece)
        follows_content = i > 0
        if follows_content and part.startswith(eot_token):
            weights[len(ids) - len(piece)] = last_weight
    return Encoded(ids, weights)


def encode_conversation(
    template: ChatTemplate,
    tokenizer: Tokenizer,
    conv: Conversation,
    *,
    inference: bool = False,
    condition: str | None = None,
) -> Encoded:
    """Token IDs and one loss weight per token (weights are all 0 in inference mode)."""
    parts, contents = render_parts(
        template, conv, tokenizer, inference=inference, condition=condition
    )
    require_eot_id(template, tokenizer)

    def content(k: int) -> tuple[list[int], float]:
        return tokenizer.encode_text(contents[k].text), 0.0 if inference else contents[k].weight

    return assemble(
        parts, content, lambda text: encode_structure(text, tokenizer), template.eot_token
    )


def encode_prompt(
    template: ChatTemplate,
    tokenizer: Tokenizer,
    messages: list[dict],
    *,
    condition: str | None = None,
) -> list[int]:
    """Inference prompt IDs for OpenAI-style messages (system/user/assistant)."""
    conv = Conversation.from_messages(messages)
    return encode_conversation(
        template, tokenizer, conv, inference=True, condition=condition
    ).input_ids
