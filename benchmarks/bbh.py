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

from ocx.benchmarks.base import Sample
from ocx.benchmarks.common import option_letters
from ocx.benchmarks.extract import extract_letter, extract_phrase, numbers_equal, parse_number
from ocx.benchmarks.fewshot_cot import FewShotCoTSuite


def normalize_phrase(text: str, subset: str) -> str:
    """Case, quotes, commas and spacing do not matter; Dyck completions ignore all spaces."""
    text = text.strip().strip("\"'“”`").lower()
    if subset == "dyck_languages":
        return re.sub(r"\s+", "", text)
    return " ".join(w for w in re.split(r"[\s,]+", text) if w)


class BBH(FewShotCoTSuite):
    name = "bbh"
    version = "1.1"
    source = (
        "BIG-Bench Hard (Suzgun et al., 2022), 3-shot CoT prompts as Chain-of-Thought Hub; "
        "OpenChat eval_data fs_cothub/bbh"
    )

    def answer_key(self, record: dict, subset: str) -> tuple[str, dict]:
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
        meta = {
            "subset": subset,
            "labels": golds,
            "options": list(letters),
            "label_raw": labels,
            "options_raw": options,
        }
        return golds[0], meta

    def find_answer(self, response: str, sample: Sample) -> str | None:
        if sample.meta["options"]:
            return extract_letter(response, "".join(sample.meta["options"]))
        return extract_phrase(response)

    def is_correct(self, answer: str, sample: Sample) -> bool:
        if sample.meta["options"]:
            return answer in sample.meta["labels"]
        subset = sample.meta["subset"]
        answer = normalize_phrase(answer, subset)
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
