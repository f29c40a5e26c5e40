"""A backend that pulls its requests gets the first suite's while the later suites still load;
a later suite's bad data still stops the run with its own error, and a backend that takes a list
still gets nothing until every suite has loaded."""

from __future__ import annotations

import threading
import time

import pytest

from ocx.benchmarks.base import Extraction, Sample
from ocx.harness.cache import ResponseCache
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.runner import Runner


class _Suite:
    version, source, generation = "1", "test", {}

    def __init__(self, name: str, size: int = 200, *, before_load=None, bad: bool = False):
        self.name, self.size, self.before_load, self.bad = name, size, before_load, bad

    def load(self, data, limit=None):
        if self.before_load is not None:
            self.before_load()
        if self.bad:
            raise InputError(InputProblem(f"{self.name}.jsonl", 3, "question", "missing field"))
        questions = [f"{self.name} q{i}" for i in range(self.size)]
        return [Sample(f"{self.name}/{i}", q, [{"role": "user", "content": q}], q.upper())
                for i, q in enumerate(questions)][:limit]

    def prompt(self, sample):
        return sample.messages

    def extract(self, response, sample, matcher="ocx"):
        return Extraction(response, True, matcher)

    def score(self, extraction, sample):
        return extraction.answer == sample.gold


class _Backend:
    def __init__(self, pulls: bool, on_first=None):
        self.pulls_requests = pulls
        self.on_first = on_first
        self.asked: list[str] = []

    def identity(self):
        return {"kind": "fake"}

    def generate(self, requests, on_result, on_error):
        for request in requests:
            content = request.messages[-1]["content"]
            self.asked.append(content)
            on_result(request.index, content.upper())
            if len(self.asked) == 1 and self.on_first is not None:
                self.on_first()

    def close(self):
        pass


class _Progress:
    def __init__(self):
        self.tasks: list[tuple[str, int]] = []

    def add_task(self, name, total):
        self.tasks.append((name, total))
        return len(self.tasks) - 1

    def advance(self, task):
        pass


def test_the_first_suites_requests_go_out_while_the_next_suite_is_still_loading(tmp_path):
    first_answered = threading.Event()
    loaded_after_first_answer = []
    second = _Suite("b", before_load=lambda: loaded_after_first_answer.append(first_answered.wait(10)))
    backend = _Backend(True, on_first=first_answered.set)
    progress = _Progress()
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        run = Runner(backend, cache, progress=progress).run([_Suite("a"), second], None)
    assert loaded_after_first_answer == [True]  # suite b was still loading when a's first answer came
    assert run.sent == 400 and run.summaries["a"].accuracy == run.summaries["b"].accuracy == 1.0
    assert [r.id for r in run.records] == [f"a/{i}" for i in range(200)] + [f"b/{i}" for i in range(200)]
    assert progress.tasks == [("a", 200), ("b", 200)]  # one bar per suite, in the order given


def test_a_later_suites_bad_data_stops_the_run_with_its_error_and_keeps_the_answers_so_far(tmp_path):
    first, failing = threading.Event(), threading.Event()

    def fail_after_the_first_answer():
        first.wait(10)
        failing.set()  # the load raises right after this

    def first_answer():
        first.set()
        failing.wait(10)
        time.sleep(0.1)  # the loader thread has raised by now (this thread sleeps without the GIL)

    backend = _Backend(True, on_first=first_answer)
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(InputError, match=r"b\.jsonl:3"):
            Runner(backend, cache).run([_Suite("a", 1000), _Suite("b", before_load=fail_after_the_first_answer,
                                                                  bad=True)], None)
    assert 1 <= len(backend.asked) <= 64  # stopped at the next span of 64, not after all of suite a
    with ResponseCache(tmp_path / "c.sqlite") as cache:  # what was answered is cached for the rerun
        rerun = _Backend(True)
        Runner(rerun, cache).run([_Suite("a", 1000)], None)
    assert set(rerun.asked).isdisjoint(backend.asked) and len(rerun.asked) == 1000 - len(backend.asked)


@pytest.mark.parametrize("pulls", [False, True])
def test_the_first_bad_suite_in_order_is_the_one_reported(tmp_path, pulls):
    backend = _Backend(pulls)
    suites = [_Suite("a"), _Suite("b", bad=True), _Suite("c", bad=True)]
    with ResponseCache(tmp_path / "c.sqlite") as cache, pytest.raises(InputError, match=r"b\.jsonl") as error:
        Runner(backend, cache).run(suites, None)
    assert "c.jsonl" not in str(error.value)
    if not pulls:  # a backend that takes a list gets nothing before every suite has loaded
        assert backend.asked == []


def test_a_bad_first_suite_sends_nothing(tmp_path):
    backend = _Backend(True)
    with ResponseCache(tmp_path / "c.sqlite") as cache, pytest.raises(InputError, match=r"a\.jsonl"):
        Runner(backend, cache).run([_Suite("a", bad=True), _Suite("b")], None)
    assert backend.asked == []
