"""The openchat matcher reproduces OpenChat 3.6.1's match_answer.py; expected values checked by hand
against its source (first-letter rules, last number, `answer is` split, default guesses)."""

from __future__ import annotations

from ocx.benchmarks import get_suite
from ocx.benchmarks.base import Sample
from ocx.benchmarks.openchat_grader import grade_answer, grade_answer_limited


def _mc(suite: str, gold: str = "B", options: str = "ABCD") -> Sample:
    meta = {"subset": "t", "labels": [gold], "options": list(options), "label_raw": [gold]}
    return Sample(f"{suite}/t/0", "q", [{"role": "user", "content": "q"}], gold, meta)


def _mmlu(gold: str = "B") -> Sample:
    meta = {"subset": "t", "labels": [gold], "options": list("ABCD"), "label_raw": f"({gold})"}
    return Sample("mmlu/t/0", "q", [{"role": "user", "content": "q"}], gold, meta)


def test_zero_shot_sets_take_the_first_option_letter_anywhere_in_the_response():
    suite = get_suite("truthfulqa")
    e = suite.extract("Based on the evidence, (B) is right.", _mc("truthfulqa"), "openchat")
    assert (e.answer, e.matched) == ("B", True)  # "Based" starts with B
    e = suite.extract("After checking, the answer is (D).", _mc("truthfulqa"), "openchat")
    assert e.answer == "A"  # "After": OpenChat's rule really picks A here
    assert not suite.score(e, _mc("truthfulqa"))


def test_agieval_takes_the_first_capital_a_to_f():
    suite = get_suite("agieval")
    e = suite.extract("The answer is E", _mc("agieval", "E", "ABCDE"), "openchat")
    assert (e.answer, e.matched) == ("E", True)
    e = suite.extract("none of these", _mc("agieval", "E", "ABCDE"), "openchat")
    assert (e.answer, e.matched) == ("", False)


def test_gpqa_guesses_c_without_the_phrase_and_reports_it_unmatched():
    suite, sample = get_suite("gpqa"), _mc("gpqa", "C")
    e = suite.extract("I think it is (C).", sample, "openchat")
    assert (e.answer, e.matched) == ("C", False)
    assert suite.score(e, sample)  # OpenChat scores its own guess
    assert suite.extract("I think it is (C).", sample, "ocx").matched


def test_mmlu_guesses_c_and_compares_by_substring_of_the_label():
    suite = get_suite("mmlu")
    e = suite.extract("I don't know.", _mmlu("C"), "openchat")
    assert (e.answer, e.matched) == ("(C)", False)
    assert suite.score(e, _mmlu("C"))
    ocx = suite.extract("I don't know.", _mmlu("C"))
    assert (ocx.answer, ocx.matched) == (None, False) and not suite.score(ocx, _mmlu("C"))
    e = suite.extract("So the answer is (A) or maybe (B)", _mmlu("A"), "openchat")
    assert (e.answer, e.matched) == ("(A)", True)


def test_gsm8k_takes_the_last_number_even_inside_thousands():
    suite = get_suite("gsm8k")
    sample = Sample(
        "gsm8k/t/0", "q", [], "1234", {"subset": "t", "labels": ["1234"], "label_raw": ["1234"]}
    )
    e = suite.extract("The answer is 1,234.", sample, "openchat")
    assert (e.answer, e.matched) == ("234", True) and not suite.score(e, sample)
    assert suite.score(suite.extract("The answer is 1,234.", sample), sample)


def test_bbh_splits_on_answer_is_and_keeps_free_form_text():
    suite = get_suite("bbh")
    free = Sample(
        "bbh/navigate/0",
        "q",
        [],
        "No",
        {
            "subset": "navigate",
            "labels": ["No"],
            "options": [],
            "label_raw": ["No"],
            "options_raw": None,
        },
    )
    e = suite.extract("So the answer is No.", free, "openchat")
    assert (e.answer, e.matched) == ("No", True) and suite.score(e, free)
    e = suite.extract("no answer phrase", free, "openchat")
    assert (e.answer, e.matched) == ("no answer phrase", False)
    mc = Sample(
        "bbh/snarks/0",
        "q",
        [],
        "A",
        {
            "subset": "snarks",
            "labels": ["A"],
            "options": ["A", "B"],
            "label_raw": ["(A)"],
            "options_raw": ["(A)", "(B)"],
        },
    )
    assert suite.extract("So the answer is (A).", mc, "openchat").answer == "(A)"


def test_math_grades_the_text_after_the_answer_is_with_the_prm800k_grader():
    suite = get_suite("math")
    sample = Sample("math/MATH/0", "q", [], r"\frac{1}{2}", {"subset": "MATH"})
    e = suite.extract("Thus x = 1/2. The answer is $\\frac{1}{2}$", sample, "openchat")
    assert (e.answer, e.matched) == ("$\\frac{1}{2}$", True) and suite.score(e, sample)
    e = suite.extract("We get 0.5 in the end", sample, "openchat")
    assert e.matched is False


def test_the_prm800k_grader_port_keeps_its_rules():
    assert grade_answer("0.5", r"\frac{1}{2}")
    assert grade_answer(r"\frac{2}{4}", r"\frac{1}{2}") is False  # unreduced fractions are wrong
    assert grade_answer("1,000", "1000")
    assert grade_answer("(1,2)", "(1, 2)")
    assert grade_answer_limited("2^(2^(2^(2^100)))", "1", timeout=5) is False
