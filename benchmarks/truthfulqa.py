"""TruthfulQA (MC1, lettered options), zero-shot, as in the Orca paper.

Paper: Lin et al., "TruthfulQA: Measuring How Models Mimic Human Falsehoods" (2021),
https://arxiv.org/abs/2109.07958; the lettered zero-shot form is Orca's (Mukherjee et al., 2023).
Data: OpenChat's ``eval_data/zs/truthfulqa_orca/truthfulqa_mc.jsonl`` (684 questions).
OpenChat matcher: the first character of the response that is an option letter.
"""

from __future__ import annotations

from ocx.benchmarks.choice import ChoiceSuite

SUITE = ChoiceSuite(
    name="truthfulqa",
    version="1.1",
    source="TruthfulQA MC (Lin et al., 2021), zero-shot as Orca; "
    "OpenChat eval_data zs/truthfulqa_orca",
    folder="zs/truthfulqa_orca",
)
