"""GSM8K, 8-shot chain-of-thought, as Chain-of-Thought Hub.

Paper: Cobbe et al., "Training Verifiers to Solve Math Word Problems" (2021),
https://arxiv.org/abs/2110.14168. Prompts: Chain-of-Thought Hub's GSM8K prompt (Fu et al., 2023),
as shipped in OpenChat's ``eval_data/fs_cothub/gsm8k/gsm8k.jsonl`` (the 1,319 test questions;
demonstrations end "The answer is 52"). Answers are compared as exact numbers (commas, currency
and units ignored). OpenChat matcher: the last ``\\d*\\.?\\d+`` in the response.
"""

from __future__ import annotations

from ocx.benchmarks.base import Sample
from ocx.benchmarks.extract import extract_number, numbers_equal, parse_number
from ocx.benchmarks.fewshot_cot import FewShotCoTSuite


class GSM8K(FewShotCoTSuite):
    name = "gsm8k"
    version = "1.1"
    source = (
        "GSM8K test (Cobbe et al., 2021), 8-shot CoT prompt from Chain-of-Thought Hub; "
        "OpenChat eval_data fs_cothub/gsm8k"
    )

    def answer_key(self, record: dict, subset: str) -> tuple[str, dict]:
        labels = record["label"]
        if not (isinstance(labels, list) and labels and parse_number(str(labels[0])) is not None):
            raise ValueError(f"field 'label' holds {labels!r}, not a list holding a number")
        meta = {"subset": subset, "labels": [str(x) for x in labels], "label_raw": labels}
        return str(labels[0]), meta

    def find_answer(self, response: str, sample: Sample) -> str | None:
        return extract_number(response)

    def is_correct(self, answer: str, sample: Sample) -> bool:
        return any(numbers_equal(answer, gold) for gold in sample.meta["labels"])


SUITE = GSM8K()
