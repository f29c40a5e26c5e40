"""AGIEval (English multiple-choice subsets), zero-shot, as in the AGIEval and Orca papers.

Paper: Zhong et al., "AGIEval: A Human-Centric Benchmark for Evaluating Foundation Models" (2023),
https://arxiv.org/abs/2304.06364; zero-shot setting as used by Orca (Mukherjee et al., 2023).
Data: OpenChat's ``eval_data/zs/agieval`` (AQuA-RAT, LogiQA-en, LSAT-AR/LR/RC, SAT-En with and
without passage, SAT-Math; 2,546 questions), prompts ending "A: Among A through E, the answer is".
OpenChat matcher: the first capital letter A-F anywhere in the response (AGIEval's post_process).
"""

from __future__ import annotations

import hashlib

from ocx.benchmarks.choice import ChoiceSuite


class AGIEval(ChoiceSuite):
    def cluster_key(self, sample) -> str | None:
        """The passage a question shares with others (LSAT-RC, SAT-En, LSAT-AR, LogiQA: the text
        before its final "Q:"), so standard errors count 40 passages as 40 draws, not 269."""
        passage, marker, _ = sample.question.rpartition("Q:")
        if not marker or not passage.strip():
            return None
        digest = hashlib.sha256(passage.strip().encode("utf-8")).hexdigest()[:16]
        return f"{sample.meta.get('subset', '')}/passage/{digest}"


SUITE = AGIEval(
    name="agieval",
    version="1.1",
    source="AGIEval (Zhong et al., 2023), English MC subsets, zero-shot as Orca; "
    "OpenChat eval_data zs/agieval",
    folder="zs/agieval",
)
