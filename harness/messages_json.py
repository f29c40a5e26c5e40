"""Chat messages as canonical JSON (`ocx.benchmarks.base.canonical_json`), fast.

Every prompt is serialized once per run, for its cache key, the suite's data hash and the HTTP
body, and few-shot prompts are kilobytes. CPython's `json` escapes a string that is not pure
ASCII with `ensure_ascii=False` at about a third of the speed of its ASCII path (per character,
through the string's kind), and then the result is encoded to UTF-8 again; on GSM8K's 8-shot
prompts that was the largest single cost of planning. Here a string is encoded to UTF-8 first
and escaped as bytes with `bytes.replace`, which runs at memory speed. That is the same
escaping: in UTF-8 the only bytes below 0x20, '"' and '\\' are those characters themselves
(every byte of a multi-byte sequence is 0x80 or above), and `json` with `ensure_ascii=False`
escapes exactly those (`\\"`, `\\\\`, `\\n`, `\\r`, `\\t`, `\\b`, `\\f`, other controls as
`\\u00XX`) and writes every other character as itself.

Only the usual message shape takes this path (a list of dicts whose keys and values are all
`str`); anything else is serialized by `canonical_json` itself. The bytes are identical either
way (tests/harness/test_messages_json.py checks them against `json.dumps` on hostile text).
"""

from __future__ import annotations

import re

from ocx.benchmarks.base import canonical_json

# Backslash first: the later replacements add backslashes that must stay single. Newlines, the
# one escape nearly every prompt needs, are replaced last, after one pass that looks for the rest.
_RARE_ESCAPES = (
    (b"\\", b"\\\\"),
    (b'"', b'\\"'),
    (b"\r", b"\\r"),
    (b"\t", b"\\t"),
    (b"\b", b"\\b"),
    (b"\f", b"\\f"),
)
_OTHER_CONTROLS = bytes(c for c in range(0x20) if c not in b"\n\r\t\b\f")
_RARE = b'\\"\r\t\b\f' + _OTHER_CONTROLS
_OTHER_CONTROL = re.compile(b"[" + re.escape(_OTHER_CONTROLS) + b"]")
_SHORT: dict[str, bytes] = {}  # keys and roles recur in every message: escaped once


def _unicode_escape(match: re.Match) -> bytes:
    return b"\\u%04x" % match.group()[0]


def _escaped(text: str) -> bytes:
    """The UTF-8 bytes of `text` as they stand between the quotes of its JSON string."""
    data = text.encode("utf-8")  # lone surrogates raise UnicodeEncodeError, as canonical_json does
    if len(data.translate(None, _RARE)) != len(data):
        for raw, escaped in _RARE_ESCAPES:
            if raw in data:
                data = data.replace(raw, escaped)
        if len(data.translate(None, _OTHER_CONTROLS)) != len(data):
            data = _OTHER_CONTROL.sub(_unicode_escape, data)
    if b"\n" in data:
        data = data.replace(b"\n", b"\\n")
    return data


def json_string(text: str) -> bytes:
    """`canonical_json(text)` for a str: the quoted, escaped UTF-8 JSON string."""
    return b'"' + _escaped(text) + b'"'


def _short(text: str) -> bytes:
    quoted = _SHORT.get(text)
    if quoted is None:
        quoted = json_string(text)
        if len(text) <= 32 and len(_SHORT) < 1024:
            _SHORT[text] = quoted
    return quoted


def messages_json(messages: object) -> bytes:
    """`canonical_json(messages)`, byte for byte."""
    if type(messages) not in (list, tuple):
        return canonical_json(messages)
    parts = [b"["]
    for message in messages:
        if type(message) is not dict or not all(
            type(k) is str and type(v) is str for k, v in message.items()
        ):
            return canonical_json(
                messages
            )  # another shape (None, numbers, nested parts): the general path
        parts.append(b"{" if len(parts) == 1 else b",{")
        for n, key in enumerate(sorted(message)):
            value = message[key]
            parts += (b"," if n else b"", _short(key), b":")
            parts += (_short(value),) if len(value) <= 32 else (b'"', _escaped(value), b'"')
        parts.append(b"}")
    parts.append(b"]")
    return b"".join(parts)
