"""Scripted model answers for tests: the gold answer as chat models write it, and a wrong one.

A fake OpenAI server answering every sample with ``realistic_gold_responses(suite, sample)[k]``
must score 100% with the ocx matcher, and with ``wrong_response(suite, sample)`` 0% (with either
matcher; OpenChat's default guesses never hit, because a wrong response always names an answer).
"""

from __future__ import annotations

import re
from fractions import Fraction

from ocx.benchmarks.base import Sample, Suite
from ocx.benchmarks.extract import parse_number

_FLIPS = {
    "yes": "no",
    "no": "yes",
    "true": "false",
    "false": "true",
    "valid": "invalid",
    "invalid": "valid",
}


def _is_letter_sample(suite: Suite, sample: Sample) -> bool:
    return suite.name not in ("gsm8k", "math") and bool(sample.meta.get("options"))


def _letter_responses(letter: str) -> list[str]:
    return [
        f"The answer is ({letter}).",
        f"Let's think step by step. Each option can be checked against the question in turn.\n"
        f"Only one of them survives, so the correct answer is **{letter}**.",
        f"**Answer: ({letter})**",
        f"({letter})",
        letter,
        f"Answer: {letter}",
        f"The correct answer is ({letter}).",
        f"After weighing the options, I choose ({letter}) because it fits best.",
    ]


def _number_responses(gold: str) -> list[str]:
    value = parse_number(gold)
    commas = f"{value.numerator:,}" if value is not None and value.denominator == 1 else gold
    return [
        "Let's compute step by step.\nFirst we add the amounts, then subtract what is used.\n"
        f"The answer is {gold}.",
        f"Working through it: the total comes out as follows.\n#### {gold}",
        f"Putting it together, the final answer is $\\boxed{{{gold}}}$.",
        f"Step 1: find the daily amount.\nStep 2: multiply.\nSo the result is ${commas} in total.",
        f"**Answer:** {commas} dollars",
    ]


def _math_responses(gold: str) -> list[str]:
    gold = " ".join(gold.split())  # a model writes "90\text{ square units}" on one line
    responses = [
        "We simplify step by step.\nCollecting terms gives the result.\n"
        f"Thus the answer is $\\boxed{{{gold}}}$.",
        f"The answer is ${gold}$",
        f"Final answer: \\boxed{{{gold}}}",
        f"I hope it is correct. The final answer is $\\boxed{{{gold}}}$. I hope it is correct.",
    ]
    m = re.fullmatch(r"\\[dt]?frac\{(\d+)\}\{(\d+)\}", gold)
    if m:
        responses.append(f"The answer is {m.group(1)}/{m.group(2)}.")
        responses.append(f"So we get $\\boxed{{\\dfrac{{{m.group(1)}}}{{{m.group(2)}}}}}$.")
    if re.fullmatch(r"-?\d+", gold):
        responses.append(f"The answer is $\\boxed{{{gold}.0}}$")
    return responses


def _phrase_responses(gold: str) -> list[str]:
    return [
        "Let's think step by step.\nWe evaluate the pieces one at a time.\n"
        f"So the answer is {gold}.",
        f"The answer is **{gold}**.",
        f'So the answer is: "{gold}"',
    ]


_KNOWN = ("mmlu", "gsm8k", "math", "bbh", "agieval", "bbh_mc", "truthfulqa", "gpqa")


def _check_known(suite: Suite) -> None:
    if suite.name not in _KNOWN:
        raise ValueError(
            f"no scripted responses for suite {suite.name!r}; give the suite its own "
            "realistic_gold_responses(sample) and wrong_response(sample) methods"
        )


def realistic_gold_responses(suite: Suite, sample: Sample) -> list[str]:
    """Several realistic responses that all give ``sample``'s gold answer.

    Suites outside the standard eight may define ``realistic_gold_responses(sample)`` themselves.
    """
    if hasattr(suite, "realistic_gold_responses"):
        return suite.realistic_gold_responses(sample)
    _check_known(suite)
    if suite.name == "gsm8k":
        return _number_responses(sample.gold)
    if suite.name == "math":
        return _math_responses(sample.gold)
    if _is_letter_sample(suite, sample):
        return _letter_responses(sample.gold)
    return _phrase_responses(sample.gold)


def _wrong_letter(sample: Sample) -> str:
    # BBH snarks line 89 lists only option (A) (its question is truncated upstream): fall back to
    # any other letter.
    choices = [
        x for x in sample.meta["options"] if "A" <= x <= "Z" and x not in sample.meta["labels"]
    ]
    return choices[0] if choices else next(c for c in "ABCDEFGH" if c not in sample.meta["labels"])


def _wrong_math(suite: Suite, sample: Sample) -> str:
    from ocx.benchmarks.math_equiv import math_equal

    for candidate in ("0", "1", "-7", "\\text{xyzzy}"):
        if not math_equal(candidate, sample.gold):
            return candidate
    raise AssertionError(f"no wrong answer found for {sample.id}")


def wrong_response(suite: Suite, sample: Sample) -> str:
    """A realistic response that gives a wrong answer (never matching any accepted label)."""
    if hasattr(suite, "wrong_response"):
        return suite.wrong_response(sample)
    _check_known(suite)
    if suite.name == "gsm8k":
        value = parse_number(sample.gold) or Fraction(0)
        wrong = value + 1
        number = wrong.numerator if wrong.denominator == 1 else float(wrong)
        return f"Let's compute.\nThe answer is {number}."
    if suite.name == "math":
        return f"The answer is $\\boxed{{{_wrong_math(suite, sample)}}}$."
    if _is_letter_sample(suite, sample):
        # "The correct answer is" also satisfies OpenChat's GPQA matcher, so it cannot guess "C".
        return f"The correct answer is ({_wrong_letter(sample)})."
    gold = sample.gold.strip().lower()
    if gold in _FLIPS:
        wrong = _FLIPS[gold]
    elif parse_number(gold) is not None and re.fullmatch(r"-?\d+", gold):
        wrong = str(int(gold) + 1)
    else:
        wrong = "xyzzy"
    return f"Let's think step by step.\nSo the answer is {wrong}."
