"""What lm-eval's `local-completions` needs from ocx serve: vLLM's tokenizer endpoints (its
default `tokenizer_backend="auto"` probes them) and the log-likelihood answer its own
`parse_logprobs` reads. The last test runs lm-eval's code itself, in its own venv when one is
cached (tests/perf/peers.py builds it; the full parity run is tests/harness' lm-eval test)."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from tests.serve.conftest import running_server
from tests.serve.fake_logprobs import LogprobEngine, prompt_logprob


@pytest.fixture(scope="module")
def url(served_model):
    with running_server(LogprobEngine([7, 8]), served_model) as u:
        yield u


def test_tokenize_reads_special_token_text_as_the_special_token_as_vllm_does(url, served_model):
    tok = served_model.tokenizer
    r = httpx.post(
        f"{url}/tokenize", json={"prompt": "Hello world</s>", "add_special_tokens": False}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tokens"] == [*tok.encode_text("Hello world"), tok.special_id("</s>")]
    assert (
        body["count"] == len(body["tokens"])
        and body["max_model_len"] == served_model.context_length
    )
    with_bos = httpx.post(f"{url}/tokenize", json={"prompt": "Hello", "model": "tiny-chat"}).json()[
        "tokens"
    ]
    assert with_bos == [tok.special_id("<s>"), *tok.encode_text("Hello")]


def test_detokenize_inverts_tokenize_and_refuses_ids_outside_the_vocabulary(url, served_model):
    ids = served_model.tokenizer.encode_text("Grüße, 世界 𝔘")
    assert httpx.post(f"{url}/detokenize", json={"tokens": ids}).json() == {
        "prompt": "Grüße, 世界 𝔘"
    }
    for tokens in ([-1], [10**9], "abc", [True]):
        r = httpx.post(f"{url}/detokenize", json={"tokens": tokens})
        assert r.status_code == 400 and r.json()["error"]["param"].startswith("tokens"), r.text
    r = httpx.post(f"{url}/tokenize", json={"prompt": "x", "model": "other"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_tokenizer_info_names_the_special_tokens(url, served_model):
    info = httpx.get(f"{url}/tokenizer_info").json()
    assert (info["eos_token"], info["bos_token"]) == ("</s>", "<s>")
    assert info["model_max_length"] == served_model.context_length


LMEVAL_SCRIPT = """
import json, sys
from types import SimpleNamespace
import requests
from lm_eval.models.openai_completions import LocalCompletionsAPI
from lm_eval.utils import RemoteTokenizer, check_remote_tokenizer_support

base, contexts, continuations = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tok = RemoteTokenizer(base + "/v1/completions")
prompts = [c + k for c, k in zip(contexts, continuations)]
payload = LocalCompletionsAPI._create_payload(SimpleNamespace(model="tiny-chat"), prompts,
                                              generate=False, seed=1234)
out = requests.post(base + "/v1/completions", json=payload, timeout=60).json()
scores = LocalCompletionsAPI.parse_logprobs(out, tokens=prompts, ctxlens=[len(c) for c in contexts])
print(json.dumps({"auto": check_remote_tokenizer_support(base + "/v1/completions"),
                  "eos": tok.eos_token_id, "bos": tok.bos_token_id,
                  "encoded": tok.encode("Hello world"), "scores": scores}))
"""


def test_lm_evals_own_client_code_tokenizes_remotely_and_parses_the_answer(url, served_model):
    from tests.perf.peers import PeerUnavailable, peer_python

    # The parity test's venv (tests/harness/test_lmeval_loglikelihood_parity.py): one lm-eval build
    try:
        python = peer_python("lmeval_hf")
    except PeerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so lm-eval's own client code must run: {exc}", pytrace=False)
        pytest.skip(str(exc))
    contexts, continuations = [[1, 415, 5565], [1, 22557, 28725, 1526]], [[302, 4843], [28723]]
    done = subprocess.run(
        [str(python), "-c", LMEVAL_SCRIPT, url, json.dumps(contexts), json.dumps(continuations)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    tok = served_model.tokenizer
    assert result["auto"] is True
    assert (result["eos"], result["bos"]) == (tok.special_id("</s>"), tok.special_id("<s>"))
    assert result["encoded"] == tok.encode_text("Hello world")
    expected = [
        [sum(prompt_logprob(k) for k in range(len(c), len(c) + len(k_))), True]
        for c, k_ in zip(contexts, continuations)
    ]
    assert result["scores"] == expected
