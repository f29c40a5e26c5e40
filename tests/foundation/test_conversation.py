"""The conversation schema: every problem named by file, line and field, all at once."""

from __future__ import annotations

import json

import pytest

from ocx.harness.conversation import parse_jsonl_line, read_conversations
from ocx.harness.errors import InputError


def _write(tmp_path, lines):
    path = tmp_path / "convs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_valid_file_reads_with_condition_system_and_weights(tmp_path):
    path = _write(
        tmp_path,
        [
            json.dumps(
                {
                    "condition": "GPT4",
                    "system": "S",
                    "items": [
                        {"role": "user", "content": "a", "weight": 0},
                        {"role": "assistant", "content": "b", "weight": 1.5},
                    ],
                }
            )
        ],
    )
    (conv,) = read_conversations(path, require_weights=True)
    assert conv.condition == "GPT4" and conv.system == "S" and conv.items[1].weight == 1.5


@pytest.mark.parametrize(
    "line, field, words",
    [
        ("{not json", None, "malformed JSON"),
        ('{"items": [{"role": "user", "content": "a"}]}', "items[0].weight", "missing weight"),
        (
            '{"items": [{"role": "user", "content": "a", "weight": "high"}]}',
            "items[0].weight",
            "must be a number",
        ),
        (
            '{"items": [{"role": "robot", "content": "a", "weight": 1}]}',
            "items[0].role",
            "unknown role 'robot'",
        ),
        ('{"items": [{"role": "user", "content": "a", "weight": -1}]}', "items[0].weight", ">= 0"),
        ('{"items": []}', "items", "empty conversation"),
        (
            '{"items": [{"role": "user", "content": 5, "weight": 1}]}',
            "items[0].content",
            "must be a string",
        ),
        (
            '{"condition": 3, "items": [{"role": "user", "content": "a", "weight": 1}]}',
            "condition",
            "must be a string",
        ),
    ],
)
def test_each_bad_line_names_file_line_and_field(line, field, words):
    with pytest.raises(InputError) as err:
        parse_jsonl_line(line, file="data.jsonl", line=7, require_weights=True)
    problem = err.value.problems[0]
    assert (problem.file, problem.line, problem.field) == ("data.jsonl", 7, field)
    assert words in problem.message
    assert str(problem).startswith("data.jsonl:7")


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    path = _write(
        tmp_path,
        ['{"items": []}', '{"items": [{"role": "user", "content": "ok", "weight": 1}]}', "nope"],
    )
    with pytest.raises(InputError) as err:
        read_conversations(path, require_weights=True)
    assert [p.line for p in err.value.problems] == [1, 3]


def test_weights_are_optional_for_inference(tmp_path):
    path = _write(tmp_path, ['{"items": [{"role": "user", "content": "hi"}]}'])
    assert read_conversations(path)[0].items[0].weight is None
