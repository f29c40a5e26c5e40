"""ARC and HellaSwag: lm-eval 0.4's prompts from the Hugging Face rows, log-likelihood only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ocx.benchmarks import get_suite, resolve_sets
from ocx.benchmarks.base import MultipleChoice
from ocx.benchmarks.data import LocalSource
from ocx.benchmarks.hellaswag import preprocess
from ocx.harness.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "loglikelihood_suites"


@pytest.fixture()
def data() -> LocalSource:
    return LocalSource(FIXTURES)


def test_the_three_suites_are_registered_by_their_lm_eval_names():
    assert resolve_sets(["arc_easy", "arc_challenge", "hellaswag"]) == [
        "arc_easy",
        "arc_challenge",
        "hellaswag",
    ]
    for name in ("arc_easy", "arc_challenge", "hellaswag"):
        suite = get_suite(name)
        assert (
            suite.name == name
            and suite.version
            and suite.loglikelihood_only
            and suite.max_fewshot == 0
        )


def test_arc_poses_question_answer_with_the_choice_texts_and_the_index_of_the_answer_key(data):
    samples = get_suite("arc_easy").load(data)
    assert [s.id for s in samples] == [f"arc_easy/test/{i}" for i in range(5)]
    first = get_suite("arc_easy").multiple_choice(samples[0])
    assert first == MultipleChoice(
        context="Question: An astronomer observes that a planet rotates faster after a meteorite "
        "impact. "
        "Which is the most likely effect of this increase in rotation?\nAnswer:",
        choices=(
            "Planetary density will decrease.",
            "Planetary years will become longer.",
            "Planetary days will become shorter.",
            "Planetary gravity will become stronger.",
        ),
        gold=(2,),
    )
    assert first.continuations()[0] == " Planetary density will decrease."
    # Numeric labels ("1".."4") are looked up, not read as indices: answerKey "4" is option 3.
    assert get_suite("arc_easy").multiple_choice(samples[2]).gold == (3,)
    assert samples[2].gold == "4"
    # Three and five options are kept as given.
    assert len(get_suite("arc_easy").multiple_choice(samples[3]).choices) == 3
    assert len(get_suite("arc_easy").multiple_choice(samples[4]).choices) == 5


def test_arc_challenge_reads_its_own_file(data):
    samples = get_suite("arc_challenge").load(data)
    assert len(samples) == 3 and samples[2].meta["record_id"] == "Mercury_7233695"
    assert get_suite("arc_challenge").multiple_choice(samples[2]).gold == (0,)


def test_hellaswag_context_and_endings_are_preprocessed_as_lm_eval_does(data):
    suite = get_suite("hellaswag")
    samples = suite.load(data)
    roof = suite.multiple_choice(samples[0])
    assert roof.context == "Roof shingle removal: A man is sitting on a roof. He"
    assert roof.choices[3] == "starts pulling up roofing on a roof." and roof.gold == (3,)
    # WikiHow rows: " [title]" becomes ". ", other brackets vanish, double spaces close once,
    # and an empty ctx_b leaves the trailing space that strip() then removes.
    shower = suite.multiple_choice(samples[2])
    assert shower.context == (
        "Home and Garden: How to clean a shower. Spray the walls with vinegar. "
        "Fill a spray bottle with white vinegar."
    )
    # A leading bracket leaves a leading space, as in lm-eval (strip() runs before the removal).
    assert shower.choices == (
        " Spray the tiles thoroughly and wait ten minutes.",
        "Pour the vinegar. into the drain.",
        "Drink the vinegar slowly.",
        "Paint the walls red.",
    )
    assert shower.gold == (0,)


def test_preprocess_is_lm_eval_s_including_its_single_pass_of_double_space_removal():
    assert preprocess("  a [title] b [step] c  ") == "a. b c"
    assert preprocess("x    y") == "x  y"  # lm-eval replaces "  " once per pair, not repeatedly


def test_without_data_the_error_says_which_file_to_write_and_how(tmp_path):
    with pytest.raises(InputError) as info:
        get_suite("arc_challenge").load(LocalSource(tmp_path))
    message = str(info.value)
    assert "FOLDER/ai2_arc/ARC-Challenge/test.jsonl" in message and "--data FOLDER" in message
    assert "load_dataset('allenai/ai2_arc', 'ARC-Challenge', split='test')" in message
    with pytest.raises(InputError, match="hellaswag/validation.jsonl"):
        get_suite("hellaswag").load(LocalSource(tmp_path))


@pytest.mark.parametrize(
    "name, path, broken, complaint",
    [
        ("arc_easy", "ai2_arc/ARC-Easy/test.jsonl", {"answerKey": "E"}, "'answerKey' holds 'E'"),
        (
            "arc_easy",
            "ai2_arc/ARC-Easy/test.jsonl",
            {"choices": {"text": ["only one"], "label": ["A"]}},
            "at least two",
        ),
        (
            "arc_easy",
            "ai2_arc/ARC-Easy/test.jsonl",
            {"question": None},
            "'question' must be a string",
        ),
        ("hellaswag", "hellaswag/validation.jsonl", {"label": ""}, "test split has no labels"),
        (
            "hellaswag",
            "hellaswag/validation.jsonl",
            {"label": "7"},
            "not the index of one of the 4 endings",
        ),
        ("hellaswag", "hellaswag/validation.jsonl", {"endings": "a"}, "'endings' must be a list"),
    ],
)
def test_a_bad_row_is_reported_with_its_file_and_line(tmp_path, name, path, broken, complaint):
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    rows = (FIXTURES / path).read_text(encoding="utf-8").splitlines()
    rows[1] = json.dumps({**json.loads(rows[1]), **broken})
    target.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        get_suite(name).load(LocalSource(tmp_path))
    assert f"{path}:2" in str(info.value) and complaint in str(info.value)


def test_a_missing_field_is_named(tmp_path):
    target = tmp_path / "ai2_arc/ARC-Easy/test.jsonl"
    target.parent.mkdir(parents=True)
    row = json.loads(
        (FIXTURES / "ai2_arc/ARC-Easy/test.jsonl").read_text(encoding="utf-8").splitlines()[0]
    )
    del row["answerKey"]
    target.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"test.jsonl:1: answerKey: missing field"):
        get_suite("arc_easy").load(LocalSource(tmp_path))


def test_limit_takes_the_first_rows(data):
    assert [s.id for s in get_suite("arc_easy").load(data, limit=2)] == [
        "arc_easy/test/0",
        "arc_easy/test/1",
    ]


def test_generation_mode_refuses_them_and_says_which_option_to_add(data):
    suite = get_suite("arc_easy")
    sample = suite.load(data)[0]
    for call in (
        lambda: suite.prompt(sample),
        lambda: suite.extract("C", sample),
        lambda: suite.score(None, sample),
    ):
        with pytest.raises(InputError, match="log-likelihood only.*--scoring loglikelihood"):
            call()


def test_few_shot_is_refused_rather_than_silently_zero_shot(data):
    suite = get_suite("hellaswag")
    with pytest.raises(InputError, match="zero-shot only"):
        suite.multiple_choice(suite.load(data)[0], num_fewshot=10)


def test_the_fixture_folder_is_a_usable_data_folder_copy(tmp_path):
    # What a user does: export the splits into one folder and pass it with --data.
    shutil.copytree(FIXTURES, tmp_path / "data")
    assert len(get_suite("hellaswag").load(LocalSource(tmp_path / "data"))) == 3


def test_ocx_eval_in_generation_mode_refuses_them_with_exit_2_and_sends_nothing(
    mock_server, tmp_path
):
    import subprocess
    import sys

    server = mock_server(lambda body: "A")
    cmd = [sys.executable, "-m", "ocx.cli", "eval", "--endpoint", server.url]
    cmd += ["--model-name", "fake", "--sets", "arc_easy", "--data", str(FIXTURES)]
    cmd += ["--output", str(tmp_path / "out"), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert (
        "arc_easy is scored by log-likelihood only" in done.stderr
        and "--scoring loglikelihood" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not server.bodies
    assert not (tmp_path / "out" / "results.json").exists()
