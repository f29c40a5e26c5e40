"""Prompts are serialized by a fast path (harness/messages_json.py) for their cache keys, the data
hash and the HTTP body; its bytes must be exactly canonical_json's, or every cache key and
recorded data_sha256 would change. Checked on every code point and on hostile mixes."""

from __future__ import annotations

import json
import random

import pytest

from ocx.benchmarks.base import canonical_json
from ocx.harness.messages_json import json_string, messages_json

HOSTILE = [
    '"',
    "\\",
    "\\n",
    "\\u0041",
    "\n",
    "\r",
    "\t",
    "\b",
    "\f",
    "\x00",
    "\x1f",
    "\x7f",
    "é",
    "ß",
    "中",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\U0001f600",
    "</script>",
    "{",
    "}",
    ",",
    ":",
]


def plain(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def test_every_code_point_is_escaped_as_json_dumps_escapes_it():
    points = [
        chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000
    ]  # lone surrogates: see below
    for start in range(0, len(points), 251):  # in runs, with newlines and quotes between them
        text = '\n"'.join(points[start : start + 251])
        assert json_string(text) == plain(text), hex(ord(points[start]))
    for code in range(0x80):
        assert json_string(chr(code)) == plain(chr(code)), hex(code)


def test_random_mixes_of_hostile_text_give_the_same_bytes_as_json_dumps():
    rng = random.Random(13)
    alphabet = HOSTILE + [chr(c) for c in range(0x20, 0x7F)]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert json_string(text) == plain(text), repr(text)
        messages = [
            {"role": "system", "content": text[::-1]},
            {"role": "user", "content": text, text[:3]: text[-3:]},
        ]
        assert messages_json(messages) == plain(messages), repr(messages)


def test_a_long_few_shot_prompt_gives_the_same_bytes_as_json_dumps():
    prompt = 'Q: Wie heißt „das“?\nA: "x"\t\\ 😀. The answer is 4.\n\n' * 400 + "Q: 中?\nA:"
    messages = [{"role": "user", "content": prompt}]
    assert messages_json(messages) == plain(messages) == canonical_json(messages)


@pytest.mark.parametrize(
    "value",
    [
        [],
        [{}],
        [{}, {}],
        (({"role": "user", "content": "tuple"}),),
        [{"role": "user", "content": None}],
        [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
        [{"role": "user", "n": 1.5, "ok": True}],
        [{1: "int key"}],
        [["not", "a", "dict"]],
        "a string",
        None,
        {"role": "user"},
    ],
    ids=repr,
)
def test_other_shapes_fall_back_to_canonical_json(value):
    assert messages_json(value) == plain(value)


def test_a_lone_surrogate_fails_as_canonical_json_fails():
    with pytest.raises(UnicodeEncodeError):
        canonical_json("\ud800")
    with pytest.raises(UnicodeEncodeError):
        messages_json([{"role": "user", "content": "x\ud800"}])
