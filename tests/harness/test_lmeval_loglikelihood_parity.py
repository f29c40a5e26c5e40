"""Parity with lm-evaluation-harness 0.4.13 (its own code, in its own cached venv, offline).

lm-eval's `local-completions` model, the way most people score a served model, runs against
`ocx serve` (/v1/completions with `echo` and `logprobs`) on a tiny random Llama, over local
tasks built from lm-eval's own ARC and HellaSwag templates (its `process_docs` imported from
lm-eval itself) and ocx's fixture rows in the Hugging Face schema. The same rows go through
`ocx eval --scoring loglikelihood --no-chat`: every option's log-likelihood, acc and acc_norm
must agree (1e-4), and ocx's log-likelihoods must equal a direct transformers forward pass.

lm-eval is told to tokenize as ocx does: `add_bos_token=True` (its `hf` model's default for
Llama; `local-completions` leaves BOS out unless asked) and the checkpoint's sentencepiece model
as an exact HF tokenizer folder (`exact_hf_tokenizer`: transformers 5's fast Llama tokenizer
differs from sentencepiece on runs of spaces, which HellaSwag's WikiHow rows have). The venv
(`lm-eval[api,hf]==0.4.13`, transformers 5.24, CPU torch) is built on first use under
~/.cache/ocx/bench (tests/perf/peers.py, `lmeval_hf`) and reused.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "loglikelihood_suites"
TASKS = {"arc_easy": "ocx_parity_arc_easy", "hellaswag": "ocx_parity_hellaswag"}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def lmeval_python() -> Path:
    from tests.perf.peers import PeerUnavailable, peer_python

    try:
        return peer_python("lmeval_hf")
    except PeerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the lm-eval parity test must run: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, mistral_tokenizer_file) -> Path:
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("parity") / "tiny", mistral_tokenizer_file, "openchat_3.5"
    )


@pytest.fixture(scope="module")
def served(checkpoint):
    from tests.serve.conftest import free_port, server_process

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "serve",
        "--model",
        str(checkpoint),
        "--port",
        str(port),
        "--served-model-name",
        "tiny",
        "--dtype",
        "float32",
        "--disable-log-requests",
    ]
    with server_process(cmd, port, start_timeout=120) as url:
        yield url


def run_lmeval_against(served: str, checkpoint: Path, python: Path, work: Path) -> dict:
    from tests.perf.lmeval_task import (
        exact_hf_tokenizer,
        run_lmeval,
        write_arc_task,
        write_hellaswag_task,
    )

    tokenizer = exact_hf_tokenizer(checkpoint, work / "tokenizer")
    include = work / "tasks"
    write_arc_task(include, TASKS["arc_easy"], FIXTURES / "ai2_arc/ARC-Easy/test.jsonl")
    write_hellaswag_task(include, TASKS["hellaswag"], FIXTURES / "hellaswag/validation.jsonl")
    # batch_size 4: prompts go as lists of token-ID lists, several per request.
    args = (
        f"model=tiny,base_url={served}/v1/completions,tokenizer_backend=huggingface,tokenizer={tokenizer},"
        "tokenized_requests=True,add_bos_token=True,num_concurrent=1,max_retries=1"
    )
    return run_lmeval(
        python,
        include,
        list(TASKS.values()),
        "local-completions",
        args,
        4,
        work,
        timeout=600,
        builtin_tasks=False,
    )


def ocx_eval(out: Path, *how: str) -> dict[str, list[dict]]:
    """`ocx eval --scoring loglikelihood --no-chat` on the fixture data: samples.jsonl by suite."""
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        *how,
        "--sets",
        *TASKS,
        "--data",
        str(FIXTURES),
        "--scoring",
        "loglikelihood",
        "--no-chat",
        "--output",
        str(out),
        "--no-cache",
        "--quiet",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    by_suite: dict[str, list[dict]] = {}
    for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        by_suite.setdefault(record["suite"], []).append(record)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["scoring"] == "loglikelihood" and results["chat"] is False
    return by_suite


@pytest.fixture(scope="module")
def runs(lmeval_python, checkpoint, served, tmp_path_factory) -> dict:
    """lm-eval against the server, and ocx eval on the local engine and through the server; lm-eval
    runs in a thread beside the two ocx runs (each is its own process: two cores, half the wait)."""
    work = tmp_path_factory.mktemp("runs")
    with ThreadPoolExecutor(1) as pool:
        lmeval = pool.submit(run_lmeval_against, served, checkpoint, lmeval_python, work / "lmeval")
        local = ocx_eval(work / "local", "--model", str(checkpoint))
        http = ocx_eval(
            work / "http",
            "--endpoint",
            f"{served}/v1",
            "--model-name",
            "tiny",
            "--tokenizer",
            str(checkpoint),
        )
        return {"lmeval": lmeval.result(), "local": local, "http": http}


@pytest.fixture(scope="module")
def lmeval(runs):
    return runs["lmeval"]


@pytest.fixture(scope="module")
def ocx_local(runs):
    return runs["local"]


@pytest.fixture(scope="module")
def ocx_http(runs):
    return runs["http"]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE)


def test_lm_eval_poses_the_same_contexts_and_continuations_as_ocx(lmeval, ocx_local):
    for suite, task in TASKS.items():
        samples, records = lmeval["tasks"][task]["samples"], ocx_local[suite]
        assert len(samples) == len(records) > 0
        for sample, record in zip(samples, records):
            assert [a[0] for a in sample["arguments"]] == [record["context"]] * len(
                record["options"]
            ), record["id"]
            assert [a[1] for a in sample["arguments"]] == [
                o["continuation"] for o in record["options"]
            ], record["id"]


def test_lm_eval_local_completions_against_ocx_serve_gets_ocx_eval_s_log_likelihoods_and_accuracy(
    lmeval, ocx_local
):
    for suite, task in TASKS.items():
        theirs, records = lmeval["tasks"][task], ocx_local[suite]
        for sample, record in zip(theirs["samples"], records):
            mine = [o["logprob"] for o in record["options"]]
            theirs_lp = sample["logprobs"]
            assert all(_close(a, b) for a, b in zip(mine, theirs_lp, strict=True)), (
                record["id"],
                mine,
                theirs_lp,
            )
            assert [o["is_greedy"] for o in record["options"]] == sample["greedy"], record["id"]
            assert (record["acc"], record["acc_norm"]) == (
                bool(sample["acc"]),
                bool(sample["acc_norm"]),
            ), record["id"]
        n = len(records)
        assert _close(sum(r["acc"] for r in records) / n, theirs["acc"])
        assert _close(sum(r["acc_norm"] for r in records) / n, theirs["acc_norm"])


def test_ocx_eval_through_its_http_backend_agrees_with_the_local_engine(ocx_local, ocx_http):
    for suite in TASKS:
        for here, there in zip(ocx_local[suite], ocx_http[suite], strict=True):
            pairs = zip(here["options"], there["options"], strict=True)
            assert all(_close(a["logprob"], b["logprob"]) for a, b in pairs), (here, there)
            assert (here["acc"], here["acc_norm"]) == (there["acc"], there["acc_norm"])


def test_ocx_log_likelihoods_equal_a_direct_transformers_forward_pass(checkpoint, ocx_local):
    """The reference: one unbatched float32 forward pass per option over BOS + lm-eval's
    `_encode_pair` split (the context's trailing space moves to the continuation; the
    continuation's IDs are the tail of the whole's), summing log_softmax at its tokens."""
    import sentencepiece
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(checkpoint / "tokenizer.model"))
    bos = tokenizer.bos_id()
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    for suite in TASKS:
        for record in ocx_local[suite]:
            for option in record["options"]:
                context, continuation = record["context"], option["continuation"]
                stripped = context.rstrip()
                continuation = context[len(stripped) :] + continuation
                context_ids = tokenizer.encode(stripped)
                whole = tokenizer.encode(stripped + continuation)
                ids = [bos, *whole]
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                first = 1 + len(context_ids)
                expected = sum(logprobs[i - 1, ids[i]].item() for i in range(first, len(ids)))
                assert _close(option["logprob"], expected), (record["id"], option, expected)
