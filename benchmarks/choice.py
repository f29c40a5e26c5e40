"""The zero-shot multiple-choice suites' shared implementation (AGIEval, BBH-MC, TruthfulQA, GPQA).

Each of those modules configures one ``ChoiceSuite``: its data folder in the ``eval_data`` layout
and OpenChat's matcher for it. Records look like
``{"question": "...A: Among A through D, the answer is", "label": ["D"], "options": ["A", "B", "C", "D"]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from ocx.benchmarks.base import DataSource, Extraction, MultipleChoice, Sample, check_matcher
from ocx.benchmarks.common import ZERO_SHOT, load_subsets, option_letters, user_messages
from ocx.benchmarks.extract import extract_letter
from ocx.benchmarks.multiple_choice import lettered_multiple_choice
from ocx.benchmarks.openchat_match import openchat_is_correct


@dataclass(frozen=True)
class ChoiceSuite:
    name: str
    version: str
    source: str
    folder: str
    """Folder of the suite's JSONL files in the eval_data layout, e.g. ``"zs/gpqa"``."""
    openchat_matcher: Callable[[dict, str], tuple[bool, str]]
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

    def _build(self, record: dict, subset: str, index: int) -> Sample:
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
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=record["question"],
            messages=user_messages(record["question"]),
            gold=str(labels[0]),
            meta={
                "subset": subset,
                "labels": [str(x) for x in labels],
                "options": list(letters),
                "label_raw": labels,
            },
        )

    def load(self, data: DataSource, limit: int | None = None) -> list[Sample]:
        return load_subsets(data, self.name, self.folder, self._build, limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        if matcher == "openchat":
            matched, answer = self.openchat_matcher({"options": sample.meta["options"]}, response)
            return Extraction(answer, matched, "openchat")
        # Gold letters count as options too (SAT-En line 57 answers D but lists only A-C).
        letters = "".join(
            sorted({x for x in sample.meta["options"] + sample.meta["labels"] if "A" <= x <= "Z"})
        )
        letter = extract_letter(response, letters)
        return Extraction(letter, letter is not None, "ocx")

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        if extraction.matcher == "openchat":
            return openchat_is_correct(extraction.answer, sample.meta["label_raw"])
        return extraction.matched and extraction.answer in sample.meta["labels"]
