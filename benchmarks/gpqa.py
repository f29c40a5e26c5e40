"""GPQA Diamond, zero-shot.

Paper: Rein et al., "GPQA: A Graduate-Level Google-Proof Q&A Benchmark" (2023),
https://arxiv.org/abs/2311.12022. Data: OpenChat's ``eval_data/zs/gpqa/diamond.jsonl`` (198
questions, options shuffled once into (A)-(D)); the prompt asks for
'"The correct answer is (insert answer here)"'. OpenChat matcher: the first letter A-D after
"The correct answer is", else the guess "C" (reported here as unmatched).
"""

from __future__ import annotations

from ocx.benchmarks.choice import ChoiceSuite
from ocx.benchmarks.common import CHAIN_OF_THOUGHT
from ocx.benchmarks.multiple_choice import gpqa_multiple_choice

SUITE = ChoiceSuite(
    name="gpqa",
    version="1.1",
    source="GPQA Diamond (Rein et al., 2023), zero-shot; OpenChat eval_data zs/gpqa",
    folder="zs/gpqa",
    # GPQA answers reason at length before "The correct answer is ...".
    generation=dict(CHAIN_OF_THOUGHT),
    # Log-likelihood scoring: lm-eval's GPQA cue "Answer:" and options "(A)".."(D)" replace the
    # instruction to answer in a sentence.
    multiple_choice_format=gpqa_multiple_choice,
)
