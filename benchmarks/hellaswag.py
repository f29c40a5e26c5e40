"""HellaSwag, zero-shot, scored by log-likelihood exactly as lm-eval 0.4 does.

Paper: Zellers et al., "HellaSwag: Can a Machine Really Finish Your Sentence?" (2019),
https://arxiv.org/abs/1905.07830. Prompt and options from lm-evaluation-harness 0.4.13
``tasks/hellaswag``: the context is ``preprocess(activity_label + ": " + ctx_a + " " +
ctx_b.capitalize())``, the options ``preprocess(ending)`` after a space, gold ``int(label)``;
acc and acc_norm. lm-eval scores the validation split (the test split has no labels).

Data: the validation split of the Hugging Face dataset ``Rowan/hellaswag`` as JSONL rows
``{"ind", "activity_label", "ctx_a", "ctx_b", "endings": [...], "label": "3", ...}`` at
``FOLDER/hellaswag/validation.jsonl``, passed with ``--data FOLDER``.
"""

from __future__ import annotations

import re

from ocx.benchmarks.loglikelihood_only import LoglikelihoodOnlySuite, require_choices

_BRACKETED = re.compile(r"\[.*?\]")


def preprocess(text: str) -> str:
    """lm-eval's `tasks/hellaswag/utils.preprocess`: drops WikiHow's bracketed artifacts."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = _BRACKETED.sub("", text)
    return text.replace("  ", " ")


def build_hellaswag(record: dict) -> tuple[str, list[str], int, str]:
    for field in ("activity_label", "ctx_a", "ctx_b"):
        if not isinstance(record[field], str):
            raise ValueError(f"field {field!r} must be a string, got {record[field]!r}")
    endings = require_choices("endings", record["endings"])
    label = record["label"]
    if isinstance(label, bool) or not str(label).strip().isdigit() or int(label) >= len(endings):
        raise ValueError(
            f"field 'label' holds {label!r}, not the index of one of the {len(endings)} endings "
            "(the test split has no labels: use the validation split)"
        )
    context = record["ctx_a"] + " " + record["ctx_b"].capitalize()
    return (
        preprocess(record["activity_label"] + ": " + context),
        [preprocess(e) for e in endings],
        int(label),
        str(label),
    )


SUITE = LoglikelihoodOnlySuite(
    name="hellaswag",
    version="1",
    source="HellaSwag validation (Zellers et al., 2019), zero-shot log-likelihood as lm-eval 0.4 "
    "hellaswag; "
    "Rowan/hellaswag",
    path="hellaswag/validation.jsonl",
    dataset="Rowan/hellaswag validation split",
    export='python -c "import datasets; '
    "datasets.load_dataset('Rowan/hellaswag', split='validation')"
    ".to_json('FOLDER/hellaswag/validation.jsonl')\"",
    build_record=build_hellaswag,
)
