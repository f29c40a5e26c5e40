"""MATH, 4-shot chain-of-thought, as Chain-of-Thought Hub / Minerva.

Paper: Hendrycks et al., "Measuring Mathematical Problem Solving With the MATH Dataset" (2021),
https://arxiv.org/abs/2103.03874. Prompts: the 4-shot chain-of-thought prompt (Lewkowycz et al.,
2022, Minerva) as shipped in OpenChat's ``eval_data/fs_cothub/math/MATH.jsonl`` (the 5,000 test
problems; demonstrations end "The answer is $...$"). The reference answer is the last ``\\boxed``
expression of the reference solution. ocx compares answers with :mod:`ocx.benchmarks.math_equiv`;
OpenChat's matcher grades with its PRM800K-style grader (:mod:`ocx.benchmarks.openchat_grader`).
"""

from __future__ import annotations

import re

from ocx.benchmarks.base import Extraction, Sample, check_matcher
from ocx.benchmarks.common import CHAIN_OF_THOUGHT, load_subsets, user_messages
from ocx.benchmarks.extract import answer_phrases, last_boxed
from ocx.benchmarks.math_equiv import math_equal
from ocx.benchmarks.openchat_grader import grade_answer_limited
from ocx.benchmarks.openchat_match import fs_cothub_math_match_answer, math_ground_truth


def extract_math_answer(response: str) -> str | None:
    """The final answer of a worked solution: the last ``\\boxed{}`` or "The answer is ..."."""
    candidates: list[tuple[int, str]] = []
    boxed = last_boxed(response)
    if boxed:
        candidates.append(boxed)
    for position, rest in answer_phrases(response):
        inner = last_boxed(rest)
        if inner:
            candidates.append((position, inner[1]))
            continue
        rest = rest.replace("\\$", "")  # an escaped dollar is currency, not inline math
        inline = re.search(r"\$+([^$]+)\$+", rest) or re.search(r"\\\((.+?)\\\)", rest)
        text = inline.group(1) if inline else re.split(r"\.\s|\.$", rest.strip())[0]
        text = text.strip().rstrip(".").strip()
        if text:
            candidates.append((position, text))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1] or None


class MATH:
    name = "math"
    version = "1.1"
    source = "MATH test (Hendrycks et al., 2021), 4-shot CoT (Minerva prompt); OpenChat eval_data fs_cothub/math"
    generation = dict(CHAIN_OF_THOUGHT)

    def _build(self, record: dict, subset: str, index: int) -> Sample:
        solution = record["_metadata"]["solution"]
        meta = record["_metadata"]
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=record["question"],
            messages=user_messages(record["question"]),
            gold=math_ground_truth(solution),
            meta={"subset": subset, "level": meta.get("level"), "type": meta.get("type")},
        )

    def load(self, data, limit=None):
        return load_subsets(data, self.name, "fs_cothub/math", self._build, limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        if matcher == "openchat":
            matched, text = fs_cothub_math_match_answer({}, response)
            return Extraction(text, matched, "openchat")
        answer = extract_math_answer(response)
        return Extraction(answer, answer is not None, "ocx")

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        if extraction.matcher == "openchat":
            # OpenChat grades the (truncated) response even when no answer was matched.
            return grade_answer_limited(extraction.answer, sample.gold)
        return extraction.matched and math_equal(extraction.answer, sample.gold)


SUITE = MATH()
