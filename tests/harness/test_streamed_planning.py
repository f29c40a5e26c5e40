"""A backend that pulls its requests one at a time gets them planned lazily (cache keys computed
while the first answers come in); what a run records must not depend on that."""

from __future__ import annotations

from ocx.benchmarks.base import Extraction, Sample
from ocx.harness.cache import ResponseCache
from ocx.harness.runner import Runner


class _Suite:
    """Questions with duplicates (the same prompt three times) spread over several planning
    spans."""

    name, version, source, generation = "dups", "1", "test", {}

    def load(self, data, limit=None):
        questions = [f"q{i % 150}" if i % 97 else "dup" for i in range(300)]
        samples = [
            Sample(f"id{i}", q, [{"role": "user", "content": q}], q.upper())
            for i, q in enumerate(questions)
        ]
        return samples[:limit]

    def prompt(self, sample):
        return sample.messages

    def extract(self, response, sample, matcher="ocx"):
        return Extraction(response, True, matcher)

    def score(self, extraction, sample):
        return extraction.answer == sample.gold


class _Backend:
    def __init__(self, pulls: bool):
        self.pulls_requests = pulls
        self.asked: list[str] = []
        self.kinds: list[type] = []

    def identity(self):
        return {"kind": "fake"}

    def generate(self, requests, on_result, on_error):
        self.kinds.append(type(requests))
        for request in requests:  # answers each as it pulls it, as the HTTP workers do
            content = request.messages[-1]["content"]
            self.asked.append(content)
            on_result(request.index, content.upper())

    def close(self):
        pass


def _run(tmp_path, pulls: bool, name: str, warm: int | None):
    with ResponseCache(tmp_path / f"{name}.sqlite") as cache:
        if warm is not None:  # some answers cached by an earlier, smaller run
            Runner(_Backend(pulls), cache).run([_Suite()], None, limit=warm)
        backend = _Backend(pulls)
        run = Runner(backend, cache).run([_Suite()], None)
    return run, backend


def test_lazily_planned_runs_record_exactly_what_listed_runs_record(tmp_path):
    for warm in (None, 70):
        lazy, lazy_backend = _run(tmp_path, True, f"lazy{warm}", warm)
        listed, listed_backend = _run(tmp_path, False, f"listed{warm}", warm)
        assert lazy_backend.kinds != [list] and listed_backend.kinds == [list]
        assert [r.to_dict() for r in lazy.records] == [r.to_dict() for r in listed.records]
        assert lazy.summaries == listed.summaries and lazy.summaries["dups"].accuracy == 1.0
        assert (lazy.sent, lazy.cached) == (listed.sent, listed.cached)
        assert sorted(lazy_backend.asked) == sorted(listed_backend.asked)
        assert len(lazy_backend.asked) == len(set(lazy_backend.asked))  # every prompt asked once


def test_a_fully_cached_run_asks_the_backend_nothing(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        Runner(_Backend(True), cache).run([_Suite()], None)
        backend = _Backend(True)
        run = Runner(backend, cache).run([_Suite()], None)
    assert backend.kinds == [] and run.sent == 0 and run.summaries["dups"].accuracy == 1.0


class _JSONBackend(_Backend):
    takes_messages_json = True

    def __init__(self, pulls: bool):
        super().__init__(pulls)
        self.requests = []

    def generate(self, requests, on_result, on_error):
        for request in requests:
            self.requests.append(request)
            on_result(request.index, request.messages[-1]["content"].upper())


def test_each_request_carries_its_prompts_canonical_json_when_the_backend_takes_it(tmp_path):
    from ocx.benchmarks.base import canonical_json

    for pulls in (True, False):
        for system_prompt in (None, 'Be "brief".\n'):
            backend = _JSONBackend(pulls)
            with ResponseCache(None) as cache:
                Runner(backend, cache, system_prompt=system_prompt).run([_Suite()], None)
            assert len(backend.requests) == 151  # 150 distinct questions and "dup"
            for request in backend.requests:
                assert request.messages_json == canonical_json(list(request.messages))
                assert (request.messages[0]["content"] == system_prompt) == (
                    system_prompt is not None
                )
    plain = _Backend(
        True
    )  # a backend that does not ask for it gets none (no bytes held for nothing)
    original = plain.generate
    seen = []
    plain.generate = lambda requests, on_result, on_error: original(
        (seen.append(r.messages_json) or r for r in requests), on_result, on_error
    )
    with ResponseCache(None) as cache:
        Runner(plain, cache).run([_Suite()], None)
    assert seen and set(seen) == {None}
