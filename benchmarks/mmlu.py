"""MMLU, 5-shot chain-of-thought, as Chain-of-Thought Hub.

Paper: Hendrycks et al., "Measuring Massive Multitask Language Understanding" (2020),
https://arxiv.org/abs/2009.03300. Prompts: Chain-of-Thought Hub's MMLU CoT prompts (Fu et al.,
2023, https://github.com/FranxYao/chain-of-thought-hub), as shipped in OpenChat's
``eval_data/fs_cothub/mmlu`` (57 subjects, 13,985 questions; each demonstration ends
"The answer is (B)."). OpenChat matcher: the first "(A)".."(D)" after the last "answer is", else
the guess "(C)" (reported here as unmatched).
"""

from __future__ import annotations

from ocx.benchmarks.base import MultipleChoice, Sample
from ocx.benchmarks.common import option_letters
from ocx.benchmarks.extract import extract_letter
from ocx.benchmarks.fewshot_cot import FewShotCoTSuite
from ocx.benchmarks.multiple_choice import mmlu_multiple_choice


class MMLU(FewShotCoTSuite):
    name = "mmlu"
    version = "1.1"
    source = (
        "MMLU (Hendrycks et al., 2020), 5-shot CoT prompts from Chain-of-Thought Hub; "
        "OpenChat eval_data fs_cothub/mmlu"
    )
    max_fewshot = 5
    """Log-likelihood scoring takes its demonstrations from the CoT prompt's five (MMLU's dev
    split)."""

    def answer_key(self, record: dict, subset: str) -> tuple[str, dict]:
        letters = option_letters(record["options"])
        label = record["label"]
        if not (isinstance(label, str) and label.strip("()") in letters):
            raise ValueError(
                f"field 'label' holds {label!r}, not one of the options {record['options']!r}"
            )
        gold = label.strip("()")
        meta = {"subset": subset, "labels": [gold], "options": list(letters), "label_raw": label}
        return gold, meta

    def multiple_choice(self, sample: Sample, num_fewshot: int = 0) -> MultipleChoice:
        """lm-eval's MMLU prompt ("...\\nA. ..\\nD. ..\\nAnswer:", options " A".." D") with the
        first `num_fewshot` demonstrations of the record's own prompt, their reasoning dropped."""
        if not 0 <= num_fewshot <= self.max_fewshot:
            raise ValueError(
                f"mmlu takes 0 to {self.max_fewshot} demonstrations, not {num_fewshot}"
            )
        return mmlu_multiple_choice(
            sample.question, sample.meta["subset"], sample.gold, num_fewshot
        )

    def find_answer(self, response: str, sample: Sample) -> str | None:
        return extract_letter(response, "".join(sample.meta["options"]))

    def is_correct(self, answer: str, sample: Sample) -> bool:
        return answer in sample.meta["labels"]


SUITE = MMLU()
