"""ARC-Easy and ARC-Challenge, zero-shot, scored by log-likelihood exactly as lm-eval 0.4 does.

Paper: Clark et al., "Think you have Solved Question Answering? Try ARC, the AI2 Reasoning
Challenge" (2018), https://arxiv.org/abs/1803.05457. Prompt and options from lm-evaluation-harness
0.4.13 ``tasks/arc/arc_easy.yaml``: context ``"Question: {question}\\nAnswer:"``, options
``choices.text`` after a space, gold ``choices.label.index(answerKey)``; acc and acc_norm.

Data: the test split of the Hugging Face dataset ``allenai/ai2_arc`` (configs ``ARC-Easy``,
``ARC-Challenge``), as JSONL rows ``{"id", "question", "choices": {"text": [...], "label": [...]},
"answerKey"}`` at ``FOLDER/ai2_arc/<config>/test.jsonl``, passed with ``--data FOLDER``.
"""

from __future__ import annotations

from ocx.benchmarks.loglikelihood_only import LoglikelihoodOnlySuite, require_choices


def build_arc(record: dict) -> tuple[str, list[str], int, str]:
    question, choices, answer = record["question"], record["choices"], record["answerKey"]
    if not isinstance(question, str):
        raise ValueError(f"field 'question' must be a string, got {question!r}")
    if not isinstance(choices, dict):
        raise ValueError(
            f"field 'choices' must be an object with 'text' and 'label', got {choices!r}"
        )
    texts = require_choices("choices.text", choices.get("text"))
    labels = choices.get("label")
    if not isinstance(labels, list) or len(labels) != len(texts):
        raise ValueError(f"field 'choices.label' must list one label per choice, got {labels!r}")
    if answer not in labels:
        raise ValueError(f"field 'answerKey' holds {answer!r}, not one of the labels {labels!r}")
    return f"Question: {question}\nAnswer:", texts, labels.index(answer), str(answer)


def _export(config: str) -> str:
    return (
        f'python -c "import datasets; '
        f"datasets.load_dataset('allenai/ai2_arc', '{config}', split='test')"
        f".to_json('FOLDER/ai2_arc/{config}/test.jsonl')\""
    )


ARC_EASY = LoglikelihoodOnlySuite(
    name="arc_easy",
    version="1",
    source="ARC-Easy test (Clark et al., 2018), zero-shot log-likelihood as lm-eval 0.4 "
    "arc_easy; allenai/ai2_arc",
    path="ai2_arc/ARC-Easy/test.jsonl",
    dataset="allenai/ai2_arc ARC-Easy test split",
    export=_export("ARC-Easy"),
    build_record=build_arc,
)

ARC_CHALLENGE = LoglikelihoodOnlySuite(
    name="arc_challenge",
    version="1",
    source="ARC-Challenge test (Clark et al., 2018), zero-shot log-likelihood as lm-eval 0.4 "
    "arc_challenge; "
    "allenai/ai2_arc",
    path="ai2_arc/ARC-Challenge/test.jsonl",
    dataset="allenai/ai2_arc ARC-Challenge test split",
    export=_export("ARC-Challenge"),
    build_record=build_arc,
)
