"""The few-shot chain-of-thought suites' shared shape (MMLU, GSM8K, MATH, BBH).

Their prompts are Chain-of-Thought Hub's (Fu et al., 2023,
https://github.com/FranxYao/chain-of-thought-hub), as shipped in OpenChat's
``eval_data/fs_cothub/<suite>``: each record's ``question`` holds the demonstrations, each ending
"The answer is ...", then the question; the model reasons and ends the same way. A suite module
subclasses :class:`FewShotCoTSuite` and gives its name, version, source, ``answer_key`` (a
record's gold answer and scoring data), ``find_answer`` and ``is_correct`` (the ocx matcher); its
OpenChat matcher is its row in :data:`ocx.benchmarks.matchers.PARITY_RULES`.
"""

from __future__ import annotations

from ocx.benchmarks.common import CHAIN_OF_THOUGHT
from ocx.benchmarks.matched import EvalDataSuite


class FewShotCoTSuite(EvalDataSuite):
    @property
    def generation(self) -> dict:
        """Reasoning before the answer needs room: 1,024 tokens, greedy (a copy per call)."""
        return dict(CHAIN_OF_THOUGHT)

    @property
    def folder(self) -> str:
        return f"fs_cothub/{self.name}"
