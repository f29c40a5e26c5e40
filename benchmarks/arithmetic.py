"""Synthetic single-digit addition ("What is 3 + 5?"), the benchmark of the `tiny-crlft` recipe.

Not a published benchmark: it measures whether a tiny model trained on ocx's synthetic C-RLFT
data (ocx.recipes.synthetic) learned the task, and whether the condition steers it. All 100
operand pairs of 0..9 are asked, in a fixed order; the training data draws from the same pairs,
so this is an in-distribution check of learning and conditioning, not of generalisation.
"""

from __future__ import annotations

import re

from ocx.benchmarks.base import DataSource, Extraction, Sample, check_matcher, select_limit
from ocx.recipes.synthetic import MAX_OPERAND, question

_INTEGER = re.compile(r"-?\d+")


class ArithmeticSuite:
    name = "arithmetic"
    version = "1"
    source = "ocx synthetic single-digit addition (recipes/synthetic.py)"
    generation = {"max_tokens": 6, "temperature": 0.0}
    needs_data = False  # the questions are generated: `ocx eval` opens no data source for them

    def load(self, data: DataSource | None = None, limit: int | None = None) -> list[Sample]:
        """The questions are generated, so `data` is not read."""
        samples = [
            Sample(
                id=f"arithmetic/{a}+{b}",
                question=question(a, b),
                messages=[{"role": "user", "content": question(a, b)}],
                gold=str(a + b),
                meta={"a": a, "b": b},
            )
            for a in range(MAX_OPERAND + 1)
            for b in range(MAX_OPERAND + 1)
        ]
        return select_limit([samples], limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return sample.messages

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        """The first integer of the response (the model answers with a bare number)."""
        check_matcher(matcher)
        found = _INTEGER.search(response)
        return Extraction(found.group(0) if found else None, found is not None, matcher)

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        return (
            extraction.matched
            and extraction.answer is not None
            and int(extraction.answer) == int(sample.gold)
        )


SUITE = ArithmeticSuite()
