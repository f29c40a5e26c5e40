"""Multiple-choice samples for log-likelihood scoring, and lm-eval's acc / acc_norm over them.

`ocx eval --scoring loglikelihood` poses each sample as a `MultipleChoice` (context, options,
gold) through the suite's `multiple_choice(sample, num_fewshot)`, and compares the options by
the summed log-probability of their continuations, as lm-evaluation-harness's
`multiple_choice` output type does (lm_eval/api/task.py, `process_results`):

- acc: the option with the highest log-likelihood (the first one on a tie, `np.argmax`);
- acc_norm: the highest log-likelihood per character of the option (`len(choice)`, the
  delimiter not counted);
- a sample with several accepted answers is correct when the prediction is any of them.

MMLU's data here is Chain-of-Thought Hub's 5-shot CoT prompt; `parse_cothub_mmlu` takes the
question, its options and the five dev-split demonstrations (question, options, final answer)
back out of it, so lm-eval's MMLU prompt can be rebuilt with 0 to 5 demonstrations and the
chain-of-thought dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ocx.benchmarks.base import MultipleChoice, SuiteHooks

LETTERS = "ABCD"


def supports_loglikelihood(suite) -> bool:
    return SuiteHooks.of(suite).supports_loglikelihood()


# --- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceVerdict:
    """acc and acc_norm of one sample, with the predictions they came from."""

    pred: int
    pred_norm: int
    acc: bool
    acc_norm: bool


def _argmax(values: Sequence[float]) -> int:
    """numpy's argmax: the first index of the maximum (NaN counts as the maximum, as in numpy)."""
    best = 0
    for i, value in enumerate(values):
        if math.isnan(value):
            return i
        if value > values[best]:
            best = i
    return best


def score_choices(
    logprobs: Sequence[float], choices: Sequence[str], gold: Sequence[int]
) -> ChoiceVerdict:
    """lm-eval's acc and acc_norm for one sample (`len(choice)` characters for acc_norm)."""
    if len(logprobs) != len(choices) or not choices:
        raise ValueError(f"{len(logprobs)} log-likelihoods for {len(choices)} options")
    pred = _argmax(logprobs)
    # lm-eval divides by the character count of the choice; an empty choice would divide by 0
    # there too (it yields inf/nan); count it as 1 so one odd option cannot crash a run.
    pred_norm = _argmax([lp / max(1, len(choice)) for lp, choice in zip(logprobs, choices)])
    return ChoiceVerdict(pred, pred_norm, pred in gold, pred_norm in gold)


# --- MMLU: Chain-of-Thought Hub's prompt taken apart, lm-eval's prompt put together ---------


@dataclass(frozen=True)
class MMLUQuestion:
    question: str
    options: tuple[str, str, str, str]
    answer: str | None = None
    """The letter, for demonstrations; None for the question asked."""


@dataclass(frozen=True)
class CotHubPrompt:
    subject: str
    demos: tuple[MMLUQuestion, ...]
    question: MMLUQuestion


_HEADER = re.compile(
    r"The following are multiple choice questions \(with answers\) about (?P<subject>.+?)\.\n\n"
)
# A demonstration: "Q: ...\n(A) .. (D) ..\nA: Let's think step by step. ... The answer is (X).\n\n"
_THINK = "\nA: Let's think step by step."
_ANSWER = re.compile(r"The answer is \(([A-Z])\)\.\n\n")
_ASK = _THINK


class MMLUParseError(ValueError):
    pass


def _split_options(body: str, letters: str = LETTERS) -> tuple[str, tuple[str, ...]]:
    """ "question\n(A) w (B) x (C) y (D) z" -> (question, (w, x, y, z)); `letters` past D are
    taken while they follow in order (one Chain-of-Thought Hub demonstration has an (E))."""
    start = body.rfind("\n(A)")
    if start < 0:
        raise MMLUParseError("no '(A)' option line")
    question, line = body[:start], body[start + 1 :]
    cuts, at = [], 0
    for index, letter in enumerate(letters):
        found = line.find(f"({letter})", at)
        if found < 0:
            if index < len(LETTERS):
                raise MMLUParseError(f"no option ({letter})")
            break
        cuts.append(found)
        at = found + 3
    options = tuple(line[a + 3 : b].strip() for a, b in zip(cuts, [*cuts[1:], len(line)]))
    return question.strip(), options


def parse_cothub_mmlu(prompt: str) -> CotHubPrompt:
    """The subject, the demonstrations and the question of one fs_cothub/mmlu prompt.

    Demonstrations with other than four options are left out (lm-eval's MMLU prompt has A-D):
    Chain-of-Thought Hub's college chemistry prompt has one with an (E). Its formal logic and
    human aging prompts hold four demonstrations, not five."""
    prompt = prompt.lstrip(
        "\n"
    )  # conceptual physics and electrical engineering start with a blank line
    header = _HEADER.match(prompt)
    if header is None:
        raise MMLUParseError(
            "no 'The following are multiple choice questions (with answers) about ...' header"
        )
    if not prompt.endswith(_ASK):
        raise MMLUParseError('the prompt does not end with "A: Let\'s think step by step."')
    rest = prompt[header.end() : -len(_ASK)]
    demos, at = [], 0
    while rest.startswith(
        "Q: ", at
    ):  # str.find, not one regex: 14k prompts of ~5 kB parse in a second
        think = rest.find(_THINK, at)
        answer = _ANSWER.search(rest, think) if think >= 0 else None
        if answer is None:
            break
        question, options = _split_options(rest[at + 3 : think], "ABCDEFGHIJ")
        if len(options) == len(LETTERS) and answer[1] in LETTERS:
            demos.append(MMLUQuestion(question, options, answer[1]))  # type: ignore[arg-type]
        at = answer.end()
    if at == 0:
        raise MMLUParseError("no demonstration ending 'The answer is (X).'")
    question, options = _split_options(rest[at:].removeprefix("Q: "))
    return CotHubPrompt(header["subject"], tuple(demos), MMLUQuestion(question, options))  # type: ignore[arg-type]


def mmlu_block(q: MMLUQuestion) -> str:
    """lm-eval's MMLU `doc_to_text`: "{question}\\nA. ..\\nD. ..\\nAnswer:"."""
    lines = [
        q.question.strip(),
        *(f"{letter}. {text}" for letter, text in zip(LETTERS, q.options)),
        "Answer:",
    ]
    return "\n".join(lines)


def mmlu_context(subject: str, demos: Sequence[MMLUQuestion], question: MMLUQuestion) -> str:
    """lm-eval's MMLU context: description, K demonstrations answered " X" and separated by a
    blank line (its `fewshot_delimiter`), then the question ending "Answer:"."""
    description = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    shots = "".join(f"{mmlu_block(d)} {d.answer}\n\n" for d in demos)
    return description + shots + mmlu_block(question)


def mmlu_multiple_choice(prompt: str, subset: str, gold: str, num_fewshot: int) -> MultipleChoice:
    """lm-eval's MMLU prompt with the first `num_fewshot` demonstrations of the record's prompt (all
    it has when it holds fewer: the three subjects noted in `parse_cothub_mmlu` have four)."""
    parsed = parse_cothub_mmlu(prompt)
    subject = subset.replace(
        "_", " "
    )  # lm-eval's description uses the task name, spaces for underscores
    context = mmlu_context(subject, parsed.demos[:num_fewshot], parsed.question)
    return MultipleChoice(context, tuple(LETTERS), (LETTERS.index(gold),))


# --- the zero-shot lettered suites (AGIEval, BBH-MC, TruthfulQA, GPQA) ------------------------

GPQA_FORMAT = '\n\nFormat your response as follows: "The correct answer is (insert answer here)".'


def lettered_multiple_choice(
    question: str, letters: Sequence[str], labels: Sequence[str]
) -> MultipleChoice:
    """A record whose prompt ends with its own answer cue ("... Among A through D, the answer is"):
    the options are its letters, continuations " A", " B", ... A gold letter the record does not
    list as an option (OpenChat's SAT-En line 57) matches no option, so the sample counts wrong."""
    gold = tuple(i for i, letter in enumerate(letters) if letter in labels)
    return MultipleChoice(question, tuple(letters), gold)


def gpqa_multiple_choice(
    question: str, letters: Sequence[str], labels: Sequence[str]
) -> MultipleChoice:
    """GPQA's prompt asks for a sentence format, which no option continues: the instruction gives
    way to lm-eval's GPQA cue ("...\\nAnswer:") with options "(A)".."(D)"
    (`gpqa_diamond_zeroshot`)."""
    if not question.endswith(GPQA_FORMAT):
        raise ValueError(
            "the GPQA prompt does not end with its 'Format your response as follows' instruction"
        )
    context = question[: -len(GPQA_FORMAT)].rstrip("\n") + "\nAnswer:"
    choices = tuple(f"({letter})" for letter in letters)
    return MultipleChoice(
        context, choices, tuple(i for i, letter in enumerate(letters) if letter in labels)
    )
