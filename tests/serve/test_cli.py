"""`ocx serve` option parsing and input errors (no server started)."""

from __future__ import annotations

import subprocess
import sys

from ocx.cli.serve import serve


def _serve(*args) -> subprocess.CompletedProcess:
    """`ocx serve ARGS...` in a fresh interpreter (exit code and stderr as a user sees them)."""
    command = [sys.executable, "-c", "from ocx.cli import main; main()", "serve", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _params(args: list[str]) -> dict:
    ctx = serve.make_context("serve", args)
    return ctx.params


def test_api_keys_and_served_names_take_several_values_after_one_flag():
    params = _params(
        [
            "--model",
            "m",
            "--api-keys",
            "k1",
            "k2",
            "--port",
            "9000",
            "--served-model-name",
            "a",
            "b",
            "--api-keys",
            "k3",
        ]
    )
    assert params["api_keys"] == ("k1", "k2", "k3")
    assert params["served_model_name"] == ("a", "b")
    assert params["port"] == 9000 and params["host"] == "127.0.0.1"


def test_defaults_follow_openchat_port_and_loopback_host():
    params = _params(["--model", "m"])
    assert params["port"] == 18888 and params["engine"] is None and params["api_keys"] == ()


def test_a_missing_checkpoint_is_an_input_error_with_exit_code_2(tmp_path):
    r = _serve("--model", tmp_path / "no-such-checkpoint")
    assert r.returncode == 2, r.stderr
    assert "--model" in r.stderr and "no such checkpoint folder" in r.stderr


def test_a_checkpoint_without_model_type_asks_for_model_type(tmp_path):
    r = _serve("--model", tmp_path)
    assert r.returncode == 2 and "--model-type" in r.stderr, r.stderr


def test_empty_or_whitespace_api_keys_are_refused_at_start_up_with_exit_code_2(tmp_path):
    for keys in ([""], ["good", "   "], ["has space"]):
        r = _serve("--model", tmp_path, "--api-keys", *keys)
        assert r.returncode == 2, r.stderr
        assert "--api-keys" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_request_limits_have_options_with_safe_defaults():
    params = _params(["--model", "m", "--max-request-bytes", "4096", "--read-timeout", "2.5"])
    assert params["max_request_bytes"] == 4096 and params["read_timeout"] == 2.5
    defaults = _params(["--model", "m"])
    assert defaults["max_request_bytes"] == 8 * 2**20 and defaults["read_timeout"] == 10.0
