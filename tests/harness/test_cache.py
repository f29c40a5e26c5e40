from ocx.harness.cache import ResponseCache, request_key

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


def test_a_second_connection_sees_each_answer_as_soon_as_it_is_put(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as writer, ResponseCache(path) as reader:
        writer.put("k", "v")
        assert reader.get("k") == "v"
