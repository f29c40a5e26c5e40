from __future__ import annotations

import pytest

from ocx.benchmarks.extract import (
    extract_letter,
    extract_number,
    extract_phrase,
    last_boxed,
    parse_number,
)


@pytest.mark.parametrize(
    "response",
    [
        "The answer is (B).",
        "the answer is B",
        "Answer: B",
        "**Answer: (B)**",
        "The correct answer is **B**.",
        "(B) Cranial",
        "B",
        "B. Cranial cavity",
        "Let's think step by step. The pituitary sits in the sella turcica.\n\n**(B)**",
        "So the answer is: \n\n**(B) Cranial**",
        "A pituitary gland lies in the skull, so the answer is (B).",
        "Among A through D, the answer is option B.",
    ],
)
def test_letter_answers_in_the_forms_chat_models_write_are_found(response):
    assert extract_letter(response, "ABCD") == "B"


def test_the_last_answer_phrase_wins_over_earlier_mentions():
    response = (
        "At first glance the answer is (A). "
        "On reflection that ignores the units, so the answer is (C)."
    )
    assert extract_letter(response, "ABCD") == "C"


@pytest.mark.parametrize(
    "response",
    [
        "I am not sure about this one.",
        "I think it depends on context.",  # "I" is not an option letter here
        "Both (A) and (C) seem plausible.",
        "",
    ],
)
def test_responses_without_a_single_chosen_letter_are_unmatched(response):
    assert extract_letter(response, "ABCD") is None


def test_letters_outside_the_options_are_ignored():
    assert extract_letter("The answer is (E).", "ABCD") is None


@pytest.mark.parametrize(
    "response, number",
    [
        ("She has 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\nThe answer is 18.", "18"),
        ("#### 1,234", "1234"),
        ("Step 1 ... 5 + 5 = 10\n\nFinal answer: $\\boxed{42}$", "42"),
        ("So she earns $1,250.50 per week.", "1250.5"),
        ("The answer is 7 apples.", "7"),
        ("**Answer:** -3", "-3"),
        ("It costs 3/4 of a dollar.\nThe answer is 0.75", "0.75"),
        ("First 12 * 3 = 36.\nThen 36 + 4 = 40.\nSo the total is 40 dollars.", "40"),
    ],
)
def test_numbers_with_commas_units_and_markers_are_extracted(response, number):
    assert extract_number(response) == number


def test_a_marked_answer_beats_numbers_written_after_it():
    assert (
        extract_number("The answer is 18.\nCheck: 16 - 3 - 4 = 9, and 9 x 2 = 18, 2 steps.") == "18"
    )


def test_working_without_a_final_number_is_unmatched():
    assert extract_number("We have 16 eggs and eat 3.\nI cannot determine the rest.") is None


def test_parse_number_is_exact():
    assert parse_number("$1,000.10") == parse_number("1000.1")
    assert parse_number("no digits") is None


def test_the_last_boxed_expression_keeps_nested_braces():
    assert last_boxed(r"first \boxed{1}, then \boxed{\frac{1}{2}}.")[1] == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{unclosed") is None


@pytest.mark.parametrize(
    "response, phrase",
    [
        ("So the answer is No.", "No"),
        ("The answer is **valid**.", "valid"),
        ('So the answer is: "syndrome therefrom"', "syndrome therefrom"),
        ("So the answer is ] ].", "] ]"),
    ],
)
def test_free_form_answers_follow_the_answer_phrase(response, phrase):
    assert extract_phrase(response) == phrase


def test_free_form_without_an_answer_phrase_is_unmatched():
    assert extract_phrase("No") is None
