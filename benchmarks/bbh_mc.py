"""BIG-Bench Hard, multiple-choice form, zero-shot, as in the Orca paper.

Paper: Suzgun et al., "Challenging BIG-Bench Tasks and Whether Chain-of-Thought Can Solve Them"
(2022), https://arxiv.org/abs/2210.09261; the multiple-choice zero-shot variant is Orca's
(Mukherjee et al., 2023, https://arxiv.org/abs/2306.02707). Data: OpenChat's
``eval_data/zs/bbh_mc_orca`` (23 tasks, 5,517 questions; yes/no and free-form tasks recast as
lettered options). OpenChat matcher: the first character of the response that is an option letter.
"""

from __future__ import annotations

from ocx.benchmarks.choice import ChoiceSuite

SUITE = ChoiceSuite(
    name="bbh_mc",
    version="1.1",
    source="BIG-Bench Hard (Suzgun et al., 2022), multiple choice, zero-shot as Orca; "
    "OpenChat eval_data zs/bbh_mc_orca",
    folder="zs/bbh_mc_orca",
)
