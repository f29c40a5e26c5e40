"""The parity matchers (``--matcher openchat``): one table from matcher name to each suite's rules.

The default matcher, ``"ocx"``, is each suite's own ``find_answer`` / ``is_correct``. A parity
matcher reproduces another project's published answer matching exactly, so that its numbers can
be reproduced; its rules for one suite are a :class:`ParityRule`. A suite with no rule under a
matcher is matched the ocx way under it too (its answers need no matching: arithmetic, IFBench).

``openchat``: OpenChat 3.6.1's ``match_answer.py`` (ported in :mod:`ocx.benchmarks.openchat_match`)
and its scoring line ``is_correct = answer in label``; MATH is graded by its PRM800K-style grader
(:mod:`ocx.benchmarks.openchat_grader`), even when nothing matched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ocx.benchmarks.base import Sample
from ocx.benchmarks.openchat_match import (
    fs_cothub_bbh_match_answer,
    fs_cothub_gsm8k_match_answer,
    fs_cothub_math_match_answer,
    fs_cothub_mmlu_match_answer,
    openchat_is_correct,
    zs_agieval_match_answer,
    zs_bbh_mc_orca_truthfulqa_orca_match_answer,
    zs_gpqa_match_answer,
)

# OpenChat's matchers take (task_data, response); task_data is the record's fields they read.
OpenChatMatch = Callable[[dict, str], tuple[bool, str]]


@dataclass(frozen=True)
class ParityRule:
    """One suite's rules under a parity matcher."""

    match: Callable[[str, Sample], tuple[bool, str]]
    """(response, sample) -> (matched, answer); the answer may be the peer's default guess."""
    correct: Callable[[str | None, Sample], bool] | None = None
    """(answer, sample) -> graded correct, matched or not (as the peer grades its guesses);
    None: graded as with the ocx matcher (a matched answer that ``is_correct``)."""


def _no_task_data(match: OpenChatMatch) -> Callable[[str, Sample], tuple[bool, str]]:
    return lambda response, sample: match({}, response)


def _with(field: str, match: OpenChatMatch) -> Callable[[str, Sample], tuple[bool, str]]:
    """OpenChat's task_data ``{"options": ...}`` from the sample's meta ``field``."""
    return lambda response, sample: match({"options": sample.meta[field]}, response)


def _in_label(answer: str | None, sample: Sample) -> bool:
    # OpenChat's label field as it is (MMLU's string "(B)": a substring test; lists: membership).
    return openchat_is_correct(answer, sample.meta["label_raw"])


def _math_graded(answer: str | None, sample: Sample) -> bool:
    from ocx.benchmarks.openchat_grader import grade_answer_limited

    # OpenChat grades the (truncated) response even when no answer was matched.
    return grade_answer_limited(answer, sample.gold)


def _humaneval_program(response: str, sample: Sample) -> tuple[bool, str]:
    # OpenChat writes {"completion": ...} for EvalPlus, which runs prompt + completion: the prompt's
    # helpers (HumanEval/10, 32, 38, 50) stay defined even when the answer leaves them out.
    from ocx.benchmarks.humaneval import openchat_extract

    prompt = sample.meta["prompt"]
    matched, completion = openchat_extract(response, prompt, sample.meta["entry_point"])
    return matched, prompt + completion


_ZERO_SHOT_LETTER = _with("options", zs_bbh_mc_orca_truthfulqa_orca_match_answer)

PARITY_RULES: dict[str, dict[str, ParityRule]] = {
    "openchat": {
        "mmlu": ParityRule(_no_task_data(fs_cothub_mmlu_match_answer), _in_label),
        "gsm8k": ParityRule(_no_task_data(fs_cothub_gsm8k_match_answer), _in_label),
        "math": ParityRule(_no_task_data(fs_cothub_math_match_answer), _math_graded),
        "bbh": ParityRule(_with("options_raw", fs_cothub_bbh_match_answer), _in_label),
        "agieval": ParityRule(_with("options", zs_agieval_match_answer), _in_label),
        "bbh_mc": ParityRule(_ZERO_SHOT_LETTER, _in_label),
        "truthfulqa": ParityRule(_ZERO_SHOT_LETTER, _in_label),
        "gpqa": ParityRule(_with("options", zs_gpqa_match_answer), _in_label),
        "humaneval": ParityRule(_humaneval_program),  # graded by running it, as with ocx
    },
}


def parity_rule(matcher: str, suite: str) -> ParityRule | None:
    """``suite``'s rule under ``matcher``; None for the ocx matcher and for suites without one."""
    return PARITY_RULES.get(matcher, {}).get(suite)
