"""The runner serializes each prompt once and reuses it for the cache keys and the data hash:
the keys and hashes must be byte for byte the ones the plain definitions give, or every user's
cache would silently miss and every recorded data_sha256 would change."""

from __future__ import annotations

import hashlib
import json

import pytest

from ocx.benchmarks.base import Sample, canonical_json, hash_sample, suite_data_sha256
from ocx.harness.backends import Sampling
from ocx.harness.cache import RequestKeys, request_key
from ocx.harness.runner import plan_suites

MODEL = {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "näive/model"}

SAMPLES = [
    Sample(
        "s/a/0", "What is 2+2?", [{"role": "user", "content": "What is 2+2?"}], "4", {"subset": "a"}
    ),
    # non-ASCII, quotes, backslashes, control characters and a lone surrogate-free emoji
    Sample(
        "s/a/1",
        'Wie heißt „das“?\n\t\\ "x" 😀 \x01',
        [{"role": "user", "content": 'Wie heißt „das“?\n\t\\ "x" 😀 \x01'}],
        "ß",
        {"subset": "a", "labels": ["ß", "ss"], "options": ("(A)", "(B)"), "n": 1.5, "none": None},
    ),
    # the question is not the user message (a suite may format it): no shortcut may be taken
    Sample("s/b/0", "short", [{"role": "user", "content": "Q: short\nA:"}], "x", {}),
    # several messages, extra fields, and a question that equals a later message only
    Sample(
        "s/b/1",
        "hi",
        [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
        "y",
        {},
    ),
    Sample(
        "s/b/2",
        "hi",
        [{"role": "user", "content": "hi", "name": "bob"}],
        "y",
        {"k": {"z": 1, "a": [1, 2]}},
    ),
    Sample("s/b/3", "", [{"role": "user", "content": ""}], "", {}),
]


def plain_line(sample: Sample) -> bytes:
    """The data hash's definition: canonical JSON of the whole sample, one line each."""
    return (
        json.dumps(
            sample.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        + b"\n"
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_a_sample_hashed_piece_by_piece_gives_the_bytes_of_its_canonical_json(sample):
    for messages_json in (None, canonical_json(sample.messages)):
        digest = hashlib.sha256()
        hash_sample(digest, sample, messages_json)
        assert digest.hexdigest() == hashlib.sha256(plain_line(sample)).hexdigest()


def test_the_suite_data_hash_is_the_hash_of_every_sample_line_in_order():
    assert (
        suite_data_sha256(SAMPLES) == hashlib.sha256(b"".join(map(plain_line, SAMPLES))).hexdigest()
    )
    assert suite_data_sha256(SAMPLES) != suite_data_sha256(SAMPLES[::-1])


@pytest.mark.parametrize("condition", [None, "", "GPT4 Correct", 'ünïcode "quoted"'])
@pytest.mark.parametrize("completion", [0, 1, 7])
def test_request_keys_from_a_serialized_prompt_equal_request_key(condition, completion):
    sampling = Sampling(temperature=0.7, max_tokens=1024, seed=3, stop=("\n\n", "Q:")).as_dict()
    keys = RequestKeys(MODEL, condition, sampling, completion=completion)
    for sample in SAMPLES:
        expected = request_key(MODEL, sample.messages, condition, sampling, completion=completion)
        assert keys.key(canonical_json(sample.messages)) == expected
        # and any change to what determines the answer changes the key
        assert (
            keys.key(canonical_json([*sample.messages, {"role": "user", "content": "x"}]))
            != expected
        )


class _Suite:
    name, version, source = "toy", "1", "test"
    generation = {"max_tokens": 64, "temperature": 0.0}

    def __init__(self, reformat: bool):
        self.reformat = reformat

    def load(self, data, limit=None):
        return SAMPLES[:limit]

    def prompt(self, sample):
        if self.reformat:  # a suite whose prompt is not its stored messages
            return [{"role": "user", "content": "Answer: " + sample.messages[-1]["content"]}]
        return [dict(m) for m in sample.messages]


@pytest.mark.parametrize("reformat", [False, True])
@pytest.mark.parametrize("system_prompt", [None, "Be brief."])
def test_planned_keys_and_data_hash_match_the_plain_definitions(reformat, system_prompt):
    suite = _Suite(reformat)
    (planned,) = plan_suites(
        [suite],
        None,
        limit=None,
        condition="GPT4",
        overrides={},
        identity=MODEL,
        completions=2,
        system_prompt=system_prompt,
    )
    sampling = Sampling.for_suite(suite.generation, {})
    system = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    for sample, keys, prompt in zip(SAMPLES, planned.keys, planned.prompts):
        assert prompt == [*system, *suite.prompt(sample)]
        assert keys == [
            request_key(MODEL, prompt, "GPT4", sampling.as_dict()),
            request_key(MODEL, prompt, "GPT4", sampling.as_dict(), completion=1),
        ]
    assert planned.data_sha256 == suite_data_sha256(SAMPLES)
