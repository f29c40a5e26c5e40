"""GSM8K, 8-shot chain-of-thought, as Chain-of-Thought Hub.

Paper: Cobbe et al., "Training Verifiers to Solve Math Word Problems" (2021),
https://arxiv.org/abs/2110.14168. Prompts: Chain-of-Thought Hub's GSM8K prompt (Fu et al., 2023),
as shipped in OpenChat's ``eval_data/fs_cothub/gsm8k/gsm8k.jsonl`` (the 1,319 test questions;
demonstrations end "The answer is 52"). Answers are compared as exact numbers (commas, currency
and units ignored). OpenChat matcher: the last ``\\d*\\.?\\d+`` in the response.
"""

from __future__ import annotations

from ocx.benchmarks.base import Extraction, Sample, check_matcher
from ocx.benchmarks.common import CHAIN_OF_THOUGHT, load_subsets, user_messages
from ocx.benchmarks.extract import extract_number, numbers_equal, parse_number
from ocx.benchmarks.openchat_match import fs_cothub_gsm8k_match_answer, openchat_is_correct


class GSM8K:
    name = "gsm8k"
    version = "1.1"
    source = "GSM8K test (Cobbe et al., 2021), 8-shot CoT prompt from Chain-of-Thought Hub; OpenChat eval_data fs_cothub/gsm8k"
    generation = dict(CHAIN_OF_THOUGHT)

    def _build(self, record: dict, subset: str, index: int) -> Sample:
        labels = record["label"]
        if not (isinstance(labels, list) and labels and parse_number(str(labels[0])) is not None):
            raise ValueError(f"field 'label' holds {labels!r}, not a list holding a number")
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=record["question"],
            messages=user_messages(record["question"]),
            gold=str(labels[0]),
            meta={"subset": subset, "labels": [str(x) for x in labels], "label_raw": labels},
        )

    def load(self, data, limit=None):
        return load_subsets(data, self.name, "fs_cothub/gsm8k", self._build, limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        if matcher == "openchat":
            matched, answer = fs_cothub_gsm8k_match_answer({}, response)
            return Extraction(answer, matched, "openchat")
        number = extract_number(response)
        return Extraction(number, number is not None, "ocx")

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        if extraction.matcher == "openchat":
            return openchat_is_correct(extraction.answer, sample.meta["label_raw"])
        return extraction.matched and any(
            numbers_equal(extraction.answer, gold) for gold in sample.meta["labels"]
        )


SUITE = GSM8K()
