"""The conversation schema every part of ocx shares, and its JSONL reader.

One JSON object per line, the format OpenChat's trainer reads::

    {"condition": "GPT4 Correct", "system": "",
     "items": [{"role": "user", "content": "Hi", "weight": 0.0},
               {"role": "assistant", "content": "Hello!", "weight": 1.0}]}

`condition` and `system` may be empty or absent; `weight` is required for training and
ignored for inference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ocx.harness.errors import InputError, InputProblem

ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    weight: float | None = None


@dataclass(frozen=True)
class Conversation:
    items: tuple[Message, ...]
    condition: str = ""
    system: str = ""

    @classmethod
    def from_messages(cls, messages: list[dict], condition: str = "") -> Conversation:
        """Build from OpenAI-style messages; a leading system message becomes `system`."""
        system = ""
        items = []
        for m in messages:
            if m["role"] == "system":
                system = (system + "\n" + m["content"]) if system else m["content"]
            else:
                items.append(Message(m["role"], m["content"], m.get("weight")))
        return cls(tuple(items), condition, system)

    def to_dict(self) -> dict:
        return {
            "condition": self.condition,
            "system": self.system,
            "items": [
                {"role": m.role, "content": m.content}
                | ({} if m.weight is None else {"weight": m.weight})
                for m in self.items
            ],
        }


@dataclass
class _Checker:
    """Collects the problems of one JSON object, each naming its field."""

    file: str
    line: int | None
    problems: list[InputProblem] = field(default_factory=list)

    def fail(self, field_name: str | None, message: str) -> None:
        self.problems.append(InputProblem(self.file, self.line, field_name, message))


def _check_weight(check: _Checker, where: str, raw: object, require: bool) -> float | None:
    if raw is None:
        if require:
            check.fail(where, "missing weight (training needs a numeric loss weight per message)")
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        check.fail(where, f"weight must be a number, got {type(raw).__name__} {raw!r}")
        return None
    if not math.isfinite(raw) or raw < 0:
        check.fail(where, f"weight must be a finite number >= 0, got {raw!r}")
        return None
    return float(raw)


def _parse_items(check: _Checker, raw_items: object, require_weights: bool) -> list[Message]:
    if not isinstance(raw_items, list):
        check.fail("items", f"must be a list of messages, got {type(raw_items).__name__}")
        return []
    if not raw_items:
        check.fail("items", "empty conversation: at least one message is needed")
        return []
    messages = []
    for i, item in enumerate(raw_items):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            check.fail(where, f"must be an object, got {type(item).__name__}")
            continue
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            check.fail(
                f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            check.fail(f"{where}.content", f"must be a string, got {type(content).__name__}")
        weight = _check_weight(check, f"{where}.weight", item.get("weight"), require_weights)
        if role in ROLES and isinstance(content, str):
            messages.append(Message(role, content, weight))
    return messages


def parse_conversation(
    obj: object, *, file: str = "<input>", line: int | None = None, require_weights: bool = False
) -> Conversation:
    """Validate one decoded JSON object; raise InputError listing every problem in it."""
    check = _Checker(file, line)
    if not isinstance(obj, dict):
        check.fail(None, f"expected a JSON object, got {type(obj).__name__}")
        raise InputError(check.problems)
    for name in ("condition", "system"):
        value = obj.get(name, "")
        if value is not None and not isinstance(value, str):
            check.fail(name, f"must be a string, got {type(value).__name__}")
    if isinstance(obj.get("condition"), str) and (
        "\ue000" in obj["condition"] or "\ue001" in obj["condition"]
    ):
        check.fail(
            "condition",
            "contains a reserved character (U+E000/U+E001, used to mark contents in templates)",
        )
    items = _parse_items(check, obj.get("items"), require_weights)
    if check.problems:
        raise InputError(check.problems)
    return Conversation(tuple(items), obj.get("condition") or "", obj.get("system") or "")


def parse_jsonl_line(text: str, *, file: str, line: int, require_weights: bool) -> Conversation:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            InputProblem(file, line, None, f"malformed JSON: {exc.msg} (column {exc.colno})")
        ) from None
    return parse_conversation(obj, file=file, line=line, require_weights=require_weights)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for every non-blank line; InputError on non-UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    InputProblem(str(path), number, None, f"not valid UTF-8 (byte {exc.start})")
                ) from None
            if text.strip():
                yield number, text


def read_conversations(path: str | Path, *, require_weights: bool = False) -> list[Conversation]:
    """Read a whole JSONL file, reporting the problems of every line at once."""
    conversations, problems = [], []
    for number, text in iter_jsonl(path):
        try:
            conversations.append(
                parse_jsonl_line(text, file=str(path), line=number, require_weights=require_weights)
            )
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return conversations
