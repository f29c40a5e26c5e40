"""The zero-shot multiple-choice suites' shared shape (AGIEval, BBH-MC, TruthfulQA, GPQA).

Each of those modules configures one ``ChoiceSuite``: its data folder in the ``eval_data`` layout
(its OpenChat matcher is its row in :data:`ocx.benchmarks.matchers.PARITY_RULES`). Records look
like ``{"question": "...A: Among A through D, the answer is", "label": ["D"],
"options": ["A", "B", "C", "D"]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from ocx.benchmarks.base import MultipleChoice, Sample
from ocx.benchmarks.common import ZERO_SHOT, option_letters
from ocx.benchmarks.extract import extract_letter
from ocx.benchmarks.matched import EvalDataSuite
from ocx.benchmarks.multiple_choice import lettered_multiple_choice


@dataclass(frozen=True)
class ChoiceSuite(EvalDataSuite):
    name: str
    version: str
    source: str
    folder: str
    """Folder of the suite's JSONL files in the eval_data layout, e.g. ``"zs/gpqa"``."""
    generation: dict = field(default_factory=lambda: dict(ZERO_SHOT))
    multiple_choice_format: Callable[[str, str, list[str]], MultipleChoice] = (
        lettered_multiple_choice
    )
    """How a record is posed for log-likelihood scoring (`--scoring loglikelihood`): by default its
    own answer cue ("Among A through D, the answer is") followed by " A", " B", ..."""
    max_fewshot: ClassVar[int] = 0  # zero-shot data: no demonstrations to take

    def multiple_choice(self, sample: Sample, num_fewshot: int = 0) -> MultipleChoice:
        if num_fewshot > self.max_fewshot:
            raise ValueError(
                f"{self.name} is zero-shot: --num-fewshot {num_fewshot} is more than its "
                f"{self.max_fewshot}"
            )
        return self.multiple_choice_format(
            sample.question, sample.meta["options"], sample.meta["labels"]
        )

    def answer_key(self, record: dict, subset: str) -> tuple[str, dict]:
        letters = option_letters(record["options"])
        labels = record["label"]
        # Not checked against the options: OpenChat's SAT-En line 57 has label D with options A-C
        # (option D was lost upstream). Kept as OpenChat scores it; no letter extracted can match.
        if (
            not isinstance(labels, list)
            or not labels
            or not all(str(x).isalpha() and len(str(x)) == 1 for x in labels)
        ):
            raise ValueError(f"field 'label' holds {labels!r}, not a list of option letters")
        golds = [str(x) for x in labels]
        meta = {"subset": subset, "labels": golds, "options": list(letters), "label_raw": labels}
        return golds[0], meta

    def find_answer(self, response: str, sample: Sample) -> str | None:
        # Gold letters count as options too (SAT-En line 57 answers D but lists only A-C).
        options = sample.meta["options"] + sample.meta["labels"]
        return extract_letter(response, "".join(sorted({x for x in options if "A" <= x <= "Z"})))

    def is_correct(self, answer: str, sample: Sample) -> bool:
        return answer in sample.meta["labels"]
