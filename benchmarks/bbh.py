"""BIG-Bench Hard, 3-shot chain-of-thought, as Chain-of-Thought Hub.

Paper: Suzgun et al., "Challenging BIG-Bench Tasks and Whether Chain-of-Thought Can Solve Them"
(2022), https://arxiv.org/abs/2210.09261. Prompts: the paper's 3-shot CoT prompts as used by
Chain-of-Thought Hub, shipped in OpenChat's ``eval_data/fs_cothub/bbh`` (27 tasks, 6,511
questions; demonstrations end "So the answer is (D)." or "So the answer is No."). Multiple-choice
tasks are scored by option letter; free-form tasks (boolean expressions, yes/no, valid/invalid,
numbers, Dyck completions, sorted words) by the normalised phrase after "the answer is".
OpenChat matcher: the text after the last "answer is " (a "(X)" option for multiple choice).
"""

from __future__ import annotations

import re

from ocx.benchmarks.base import Extraction, Sample, check_matcher
from ocx.benchmarks.common import CHAIN_OF_THOUGHT, load_subsets, option_letters, user_messages
from ocx.benchmarks.extract import extract_letter, extract_phrase, numbers_equal, parse_number
from ocx.benchmarks.openchat_match import fs_cothub_bbh_match_answer, openchat_is_correct


def normalize_phrase(text: str, subset: str) -> str:
    """Case, quotes, commas and spacing do not matter; Dyck completions ignore all spaces."""
    text = text.strip().strip("\"'“”`").lower()
    if subset == "dyck_languages":
        return re.sub(r"\s+", "", text)
    return " ".join(w for w in re.split(r"[\s,]+", text) if w)


class BBH:
    name = "bbh"
    version = "1.1"
    source = "BIG-Bench Hard (Suzgun et al., 2022), 3-shot CoT prompts as Chain-of-Thought Hub; OpenChat eval_data fs_cothub/bbh"
    generation = dict(CHAIN_OF_THOUGHT)

    def _build(self, record: dict, subset: str, index: int) -> Sample:
        labels = record["label"]
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
            raise ValueError(f"field 'label' holds {labels!r}, not a list of strings")
        options = record["options"]
        letters = option_letters(options) if options else ""
        # Three upstream items (movie_recommendation 164, ruin_names 100 and 145) have options
        # split at commas and a text label such as "Monsters, Inc": they are scored as free-form.
        if letters and not all(re.fullmatch(r"\([A-Z]\)", x) for x in labels):
            letters = ""
        golds = [x.strip("()") for x in labels] if letters else list(labels)
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=record["question"],
            messages=user_messages(record["question"]),
            gold=golds[0],
            meta={
                "subset": subset,
                "labels": golds,
                "options": list(letters),
                "label_raw": labels,
                "options_raw": options,
            },
        )

    def load(self, data, limit=None):
        return load_subsets(data, self.name, "fs_cothub/bbh", self._build, limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        if matcher == "openchat":
            matched, answer = fs_cothub_bbh_match_answer(
                {"options": sample.meta["options_raw"]}, response
            )
            return Extraction(answer, matched, "openchat")
        if sample.meta["options"]:
            answer = extract_letter(response, "".join(sample.meta["options"]))
        else:
            answer = extract_phrase(response)
        return Extraction(answer, answer is not None, "ocx")

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        if extraction.matcher == "openchat":
            return openchat_is_correct(extraction.answer, sample.meta["label_raw"])
        if not extraction.matched:
            return False
        if sample.meta["options"]:
            return extraction.answer in sample.meta["labels"]
        subset = sample.meta["subset"]
        answer = normalize_phrase(extraction.answer, subset)
        for gold in sample.meta["labels"]:
            if answer == normalize_phrase(gold, subset):
                return True
            if (
                parse_number(gold) is not None
                and re.fullmatch(r"-?[\d,.]+", answer)
                and numbers_equal(answer, gold)
            ):
                return True
        return False


SUITE = BBH()
