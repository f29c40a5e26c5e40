"""Synthetic single-digit addition ("What is 3 + 5?"), the benchmark of the `tiny-crlft` recipe.

Not a published benchmark: it measures whether a tiny model trained on ocx's synthetic C-RLFT
data (ocx.recipes.synthetic) learned the task, and whether the condition steers it. All 100
operand pairs of 0..9 are asked, in a fixed order; the training data draws from the same pairs,
so this is an in-distribution check of learning and conditioning, not of generalisation.
"""

from __future__ import annotations

import re

from ocx.benchmarks.base import DataSource, Sample, select_limit
from ocx.benchmarks.matched import MatchedSuite
from ocx.recipes.synthetic import MAX_OPERAND, question

_INTEGER = re.compile(r"-?\d+")


class ArithmeticSuite(MatchedSuite):
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

    def find_answer(self, response: str, sample: Sample) -> str | None:
        """The first integer of the response (the model answers with a bare number)."""
        found = _INTEGER.search(response)
        return found.group(0) if found else None

    def is_correct(self, answer: str, sample: Sample) -> bool:
        return int(answer) == int(sample.gold)


SUITE = ArithmeticSuite()
