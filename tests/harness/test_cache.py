import signal
import subprocess
import sys
import time

import pytest

from ocx.harness.cache import ResponseCache, request_key
from ocx.harness.errors import InputError

MODEL = {"kind": "openai", "base_url": "http://x/v1", "model": "m"}
SAMPLING = {"temperature": 0.0, "max_tokens": 16}
MESSAGES = [{"role": "user", "content": "2+2?"}]


def test_cache_key_changes_with_every_part_of_the_request():
    base = request_key(MODEL, MESSAGES, "GPT4 Correct", SAMPLING)
    assert base == request_key(dict(reversed(MODEL.items())), MESSAGES, "GPT4 Correct", SAMPLING)
    variants = [
        request_key({**MODEL, "model": "other"}, MESSAGES, "GPT4 Correct", SAMPLING),
        request_key(MODEL, [{"role": "user", "content": "2+3?"}], "GPT4 Correct", SAMPLING),
        request_key(MODEL, MESSAGES, None, SAMPLING),
        request_key(MODEL, MESSAGES, "GPT4 Correct", {**SAMPLING, "temperature": 0.7}),
    ]
    assert len({base, *variants}) == 5


def test_answers_survive_closing_and_reopening_the_cache(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        cache.put("k1", "first")
        cache.put("k2", "second", {"messages": MESSAGES})
    with ResponseCache(path) as cache:
        assert cache.get_many(["k1", "k2", "k3"]) == {"k1": "first", "k2": "second"}
        assert cache.get("k3") is None
        assert len(cache) == 2


def test_lookups_of_more_keys_than_sqlite_allows_in_one_statement_work(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        for i in range(2000):
            cache.put(f"k{i}", str(i))
        found = cache.get_many(f"k{i}" for i in range(-10, 2010))
    assert len(found) == 2000 and found["k1999"] == "1999"


def test_a_second_connection_sees_an_answer_once_its_batch_is_flushed(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path, flush_seconds=60) as writer, ResponseCache(path) as reader:
        writer.put("k", "v")
        assert reader.get("k") is None  # still in the open batch
        writer.flush()
        assert reader.get("k") == "v"


def test_a_batch_that_stops_growing_is_committed_within_flush_seconds(tmp_path):
    path = tmp_path / "c.sqlite"
    with (
        ResponseCache(path, batch_size=1000, flush_seconds=0.05) as writer,
        ResponseCache(path) as reader,
    ):
        writer.put("k", "v")  # no later answer arrives to trigger the commit
        deadline = time.monotonic() + 5
        while reader.get("k") is None:
            assert time.monotonic() < deadline, "the pending answer was never committed"
            time.sleep(0.01)


def test_a_full_batch_is_committed_at_once_in_one_transaction(tmp_path):
    path = tmp_path / "c.sqlite"
    with (
        ResponseCache(path, batch_size=3, flush_seconds=60) as writer,
        ResponseCache(path) as reader,
    ):
        for i in range(7):
            writer.put(f"k{i}", str(i))
        assert len(reader.get_many(f"k{i}" for i in range(7))) == 6  # two full batches; k6 pending


_KILLED_WRITER = """
import os, signal, sys
from ocx.harness.cache import ResponseCache
cache = ResponseCache(sys.argv[1], batch_size=int(sys.argv[2]), flush_seconds=3600)
for i in range(int(sys.argv[3])):
    cache.put(f"k{i}", str(i))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_with_sigkill_loses_at_most_the_one_open_batch(tmp_path):
    path = tmp_path / "c.sqlite"
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path), "64", "1000"], timeout=60
    )
    assert done.returncode == -signal.SIGKILL
    with ResponseCache(path) as cache:
        kept = cache.get_many(f"k{i}" for i in range(1000))
    assert (
        len(kept) == 1000 - 1000 % 64
    )  # 15 full batches committed, the open one (40 answers) lost
    assert set(kept) == {f"k{i}" for i in range(len(kept))}  # whole batches, in order: no holes


@pytest.mark.parametrize(
    "content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 5000]
)
def test_a_corrupt_cache_is_an_input_error_naming_the_file_and_the_way_out(tmp_path, content):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        with ResponseCache(path) as cache:
            cache.get_many(["k"])
    message = str(caught.value)
    assert str(path) in message and "delete it" in message and "--no-cache" in message


def test_an_in_memory_cache_works_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ResponseCache(None) as cache:
        cache.put("k", "v")
        assert cache.get("k") == "v"
    assert list(tmp_path.iterdir()) == []


def test_a_lookup_sees_answers_still_in_the_open_batch_without_committing_them(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path, flush_seconds=60) as writer, ResponseCache(path) as reader:
        writer.put("k", "old")
        writer.flush()
        writer.put("k", "new")  # a later answer to the same key wins, as on commit
        writer.put("other", "v")
        assert writer.get_many(["k", "other", "missing"]) == {"k": "new", "other": "v"}
        assert reader.get_many(["k", "other"]) == {"k": "old"}  # the lookup committed nothing
        writer.flush()
        assert reader.get_many(["k", "other"]) == {"k": "new", "other": "v"}
