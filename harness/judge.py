"""An LLM judge behind an OpenAI-compatible endpoint: judge prompts, requests and ratings.

Single-answer grading as in FastChat's ``llm_judge`` (Zheng et al., "Judging LLM-as-a-Judge with
MT-Bench and Chatbot Arena", 2023, https://arxiv.org/abs/2306.05685): the judge is asked for a
1-10 rating written as ``[[rating]]``. :func:`parse_rating` reads it robustly and returns None
for anything it cannot read with confidence; an unparseable judgment is recorded as such and
never turned into a score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocx.harness.errors import InputError, InputProblem

JUDGE_SAMPLING = {"temperature": 0.0, "max_tokens": 2048}  # FastChat's judge settings
MIN_RATING, MAX_RATING = 1.0, 10.0

# "[[8]]", "[[ 8.5 ]]", "[[8/10]]"; FastChat's pattern is r"\[\[(\d+\.?\d*)\]\]".
_DOUBLE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?\]\]")
# FastChat's fallback, "[8]", only after the word rating ("Rating: [8]"), so a list index or a
# citation "[1]" elsewhere in the explanation is not taken for the verdict.
_SINGLE = re.compile(r"rating\W{0,3}\[\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?\]", re.IGNORECASE)


def parse_rating(judgment: str) -> float | None:
    """The judge's 1-10 rating, or None if the judgment holds no unambiguous rating in range.

    Accepts ``[[n]]`` (also with spaces or ``/10``), else FastChat's fallback ``[n]`` right after
    the word "rating". The same value repeated is fine; different values (which one is the
    verdict?) or a value outside 1-10 make the judgment unparseable rather than guessed at.
    """
    found = [float(m) for m in _DOUBLE.findall(judgment)] or [
        float(m) for m in _SINGLE.findall(judgment)
    ]
    if not found:
        return None
    if len(set(found)) > 1:
        return None
    rating = found[-1]
    return rating if MIN_RATING <= rating <= MAX_RATING else None


@dataclass(frozen=True)
class JudgePrompt:
    """One entry of FastChat's ``judge_prompts.jsonl``."""

    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str = "[[rating]]"

    def messages(self, **fields: str) -> list[dict]:
        """The judge's chat: the system prompt and the filled-in template."""
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.prompt_template.format(**fields)},
        ]


def judge_prompts_from_records(records: list[dict], where: str) -> dict[str, JudgePrompt]:
    """Judge prompts by name; every bad record is reported with its line."""
    prompts, problems = {}, []
    for line, record in enumerate(records, start=1):
        missing = [
            k
            for k in ("name", "type", "system_prompt", "prompt_template")
            if not isinstance(record.get(k), str)
        ]
        if missing:
            problems.append(InputProblem(where, line, missing[0], "missing or not a string"))
            continue
        prompts[record["name"]] = JudgePrompt(
            record["name"],
            record["type"],
            record["system_prompt"],
            record["prompt_template"],
            record.get("output_format", "[[rating]]"),
        )
    if problems:
        raise InputError(problems)
    return prompts


def make_judge_backend(
    endpoint: str, model: str, *, api_key: str | None = None, concurrency: int = 16
):
    """The judge as an OpenAI-compatible client (the same client `ocx eval --endpoint` uses)."""
    from ocx.harness.backends.openai_http import OpenAIBackend

    return OpenAIBackend(endpoint, model, api_key=api_key, concurrency=concurrency)
