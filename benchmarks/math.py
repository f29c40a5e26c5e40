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

from ocx.benchmarks.base import Sample
from ocx.benchmarks.extract import answer_phrases, last_boxed
from ocx.benchmarks.fewshot_cot import FewShotCoTSuite
from ocx.benchmarks.math_equiv import math_equal
from ocx.benchmarks.openchat_match import math_ground_truth


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


class MATH(FewShotCoTSuite):
    name = "math"
    version = "1.1"
    source = (
        "MATH test (Hendrycks et al., 2021), 4-shot CoT (Minerva prompt); "
        "OpenChat eval_data fs_cothub/math"
    )

    def answer_key(self, record: dict, subset: str) -> tuple[str, dict]:
        meta = record["_metadata"]
        gold = math_ground_truth(meta["solution"])
        return gold, {"subset": subset, "level": meta.get("level"), "type": meta.get("type")}

    def find_answer(self, response: str, sample: Sample) -> str | None:
        return extract_math_answer(response)

    def is_correct(self, answer: str, sample: Sample) -> bool:
        return math_equal(answer, sample.gold)


SUITE = MATH()
