"""The ocx matcher against the table of realistic responses in response_table.py."""

from __future__ import annotations

import pytest

from ocx.benchmarks import get_suite
from ocx.benchmarks.base import Sample
from ocx.benchmarks.bbh import normalize_phrase
from ocx.benchmarks.extract import numbers_equal
from ocx.benchmarks.math_equiv import math_equal

from .response_table import KNOWN_MISSES, ROWS

TARGET_AGREEMENT = 0.99


def _is_free_form(suite: str, context: str | None) -> bool:
    return suite == "bbh" and context is not None and not context.isupper()


def ocx_verdict(suite: str, context: str | None, response: str) -> str | None:
    """What the suite's ocx matcher extracts from ``response`` (None when unmatched)."""
    if _is_free_form(suite, context):
        meta = {
            "subset": context,
            "options": [],
            "labels": [],
            "label_raw": [],
            "options_raw": None,
        }
    else:
        meta = {
            "subset": "table",
            "options": list(context or ""),
            "labels": [],
            "label_raw": [],
            "options_raw": None,
        }
    extraction = get_suite(suite).extract(response, Sample("table/0", "", [], "", meta))
    assert extraction.matched == (extraction.answer is not None), extraction
    return extraction.answer


def agrees(suite: str, context: str | None, got: str | None, expected: str | None) -> bool:
    if got is None or expected is None:
        return got is None and expected is None
    if suite == "gsm8k":
        return numbers_equal(got, expected)
    if suite == "math":
        return math_equal(got, expected)
    if _is_free_form(suite, context):
        return normalize_phrase(got, context) == normalize_phrase(expected, context)
    return got == expected


def test_the_table_is_large_and_covers_every_suite():
    suites = {row[0] for row in ROWS}
    assert suites == {"mmlu", "gsm8k", "math", "bbh", "agieval", "bbh_mc", "truthfulqa", "gpqa"}
    assert len(ROWS) >= 300, len(ROWS)
    assert sum(row[3] is None for row in ROWS) >= 40, (
        "the table must hold many responses that commit to nothing"
    )
    assert len({row[:3] for row in ROWS}) == len(ROWS), "duplicate rows inflate the rate"


def test_the_matcher_agrees_with_the_intended_verdict_on_at_least_99_percent_of_the_table():
    agreeing = sum(agrees(s, c, ocx_verdict(s, c, r), e) for s, c, r, e in ROWS)
    rate = agreeing / len(ROWS)
    assert rate >= TARGET_AGREEMENT, (
        f"agreement {agreeing}/{len(ROWS)} = {rate:.4f} < {TARGET_AGREEMENT}"
    )


@pytest.mark.parametrize(
    "suite, context, response, expected", ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)]
)
def test_each_response_reads_as_the_model_meant(suite, context, response, expected):
    got = ocx_verdict(suite, context, response)
    if (suite, response) in KNOWN_MISSES:
        assert got == KNOWN_MISSES[(suite, response)], "a known miss changed: update KNOWN_MISSES"
        return
    assert agrees(suite, context, got, expected), (
        f"{suite}: {response!r} read as {got!r}, meant {expected!r}"
    )
