"""MMLU, 5-shot chain-of-thought, as Chain-of-Thought Hub.

Paper: Hendrycks et al., "Measuring Massive Multitask Language Understanding" (2020),
https://arxiv.org/abs/2009.03300. Prompts: Chain-of-Thought Hub's MMLU CoT prompts (Fu et al.,
2023, https://github.com/FranxYao/chain-of-thought-hub), as shipped in OpenChat's
``eval_data/fs_cothub/mmlu`` (57 subjects, 13,985 questions; each demonstration ends
"The answer is (B)."). OpenChat matcher: the first "(A)".."(D)" after the last "answer is", else
the guess "(C)" (reported here as unmatched).
"""

from __future__ import annotations

from ocx.benchmarks.base import Extraction, MultipleChoice, Sample, check_matcher
from ocx.benchmarks.common import CHAIN_OF_THOUGHT, load_subsets, option_letters, user_messages
from ocx.benchmarks.extract import extract_letter
from ocx.benchmarks.multiple_choice import mmlu_multiple_choice
from ocx.benchmarks.openchat_match import fs_cothub_mmlu_match_answer, openchat_is_correct


class MMLU:
    name = "mmlu"
    version = "1.1"
    source = "MMLU (Hendrycks et al., 2020), 5-shot CoT prompts from Chain-of-Thought Hub; OpenChat eval_data fs_cothub/mmlu"
    generation = dict(CHAIN_OF_THOUGHT)
    max_fewshot = 5
    """Log-likelihood scoring takes its demonstrations from the CoT prompt's five (MMLU's dev split)."""

    def _build(self, record: dict, subset: str, index: int) -> Sample:
        letters = option_letters(record["options"])
        label = record["label"]
        if not (isinstance(label, str) and label.strip("()") in letters):
            raise ValueError(
                f"field 'label' holds {label!r}, not one of the options {record['options']!r}"
            )
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=record["question"],
            messages=user_messages(record["question"]),
            gold=label.strip("()"),
            meta={
                "subset": subset,
                "labels": [label.strip("()")],
                "options": list(letters),
                "label_raw": label,
            },
        )

    def load(self, data, limit=None):
        return load_subsets(data, self.name, "fs_cothub/mmlu", self._build, limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def multiple_choice(self, sample: Sample, num_fewshot: int = 0) -> MultipleChoice:
        """lm-eval's MMLU prompt ("...\\nA. ..\\nD. ..\\nAnswer:", options " A".." D") with the first
        `num_fewshot` demonstrations of the record's own prompt, their reasoning dropped."""
        if not 0 <= num_fewshot <= self.max_fewshot:
            raise ValueError(
                f"mmlu takes 0 to {self.max_fewshot} demonstrations, not {num_fewshot}"
            )
        return mmlu_multiple_choice(
            sample.question, sample.meta["subset"], sample.gold, num_fewshot
        )

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        if matcher == "openchat":
            matched, answer = fs_cothub_mmlu_match_answer({}, response)
            return Extraction(answer, matched, "openchat")
        letter = extract_letter(response, "".join(sample.meta["options"]))
        return Extraction(letter, letter is not None, "ocx")

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        if extraction.matcher == "openchat":
            # OpenChat's label is the string "(B)", so `answer in label` is a substring test.
            return openchat_is_correct(extraction.answer, sample.meta["label_raw"])
        return extraction.matched and extraction.answer in sample.meta["labels"]


SUITE = MMLU()
