"""MT-Bench data: questions, reference answers and judge prompts in FastChat's layout.

A folder laid out as FastChat's ``fastchat/llm_judge/data/mt_bench`` plus its judge prompts::

    question.jsonl                 {"question_id", "category", "turns": [q1, q2]}
    reference_answer/gpt-4.jsonl   {"question_id", "choices": [{"turns": [r1, r2]}]}
    judge_prompts.jsonl            {"name", "type", "system_prompt", "prompt_template", ...}

(``judge_prompts.jsonl`` may also sit one level up, where FastChat keeps it.) ``hf:owner/name``
reads the same three files from a Hugging Face dataset repository through ``huggingface_hub``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ocx.benchmarks.data import parse_jsonl
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.judge import JudgePrompt, judge_prompts_from_records

# FastChat's NEED_REF_CATS: the judge sees a reference answer for these.
NEEDS_REFERENCE = ("math", "reasoning", "coding")
REFERENCE_FILE = "reference_answer/gpt-4.jsonl"
JUDGES = {  # (turn, needs reference) -> FastChat judge prompt name
    (1, False): "single-v1",
    (2, False): "single-v1-multi-turn",
    (1, True): "single-math-v1",
    (2, True): "single-math-v1-multi-turn",
}


@dataclass(frozen=True)
class Question:
    id: int
    category: str
    turns: tuple[str, str]
    reference: tuple[str, str] | None

    @property
    def needs_reference(self) -> bool:
        return self.category in NEEDS_REFERENCE


@dataclass(frozen=True)
class MTBenchData:
    questions: list[Question]
    judges: dict[str, JudgePrompt]
    description: str
    sha256: str


def _read(files: dict[str, str], name: str, where: str) -> list[dict]:
    if name not in files:
        raise InputError(InputProblem(f"{where}/{name}", None, "--mt-bench-data", "file not found"))
    return parse_jsonl(files[name], f"{where}/{name}")


def _questions(
    records: list[dict], references: dict[int, tuple[str, str]], where: str
) -> list[Question]:
    questions, problems = [], []
    for line, r in enumerate(records, start=1):
        turns = r.get("turns")
        if not isinstance(r.get("question_id"), int):
            problems.append(InputProblem(where, line, "question_id", "missing or not an integer"))
        elif not isinstance(r.get("category"), str):
            problems.append(InputProblem(where, line, "category", "missing or not a string"))
        elif not (
            isinstance(turns, list) and len(turns) == 2 and all(isinstance(t, str) for t in turns)
        ):
            problems.append(InputProblem(where, line, "turns", "expected a list of two strings"))
        else:
            qid = r["question_id"]
            question = Question(qid, r["category"], (turns[0], turns[1]), references.get(qid))
            if question.needs_reference and question.reference is None:
                problems.append(
                    InputProblem(
                        where,
                        line,
                        "question_id",
                        f"{r['category']} question {qid} has no answer in {REFERENCE_FILE}",
                    )
                )
            questions.append(question)
    if problems:
        raise InputError(problems)
    return questions


def _references(records: list[dict], where: str) -> dict[int, tuple[str, str]]:
    found, problems = {}, []
    for line, r in enumerate(records, start=1):
        try:
            turns = r["choices"][0]["turns"]
            found[int(r["question_id"])] = (str(turns[0]), str(turns[1]))
        except (KeyError, IndexError, TypeError, ValueError):
            problems.append(
                InputProblem(where, line, "choices[0].turns", "expected two reference turns")
            )
    if problems:
        raise InputError(problems)
    return found


def parse_mt_bench(files: dict[str, str], where: str) -> MTBenchData:
    """Build the data from the three files' texts (keyed by their layout names)."""
    references = _references(_read(files, REFERENCE_FILE, where), f"{where}/{REFERENCE_FILE}")
    questions = _questions(
        _read(files, "question.jsonl", where), references, f"{where}/question.jsonl"
    )
    judges = judge_prompts_from_records(
        _read(files, "judge_prompts.jsonl", where), f"{where}/judge_prompts.jsonl"
    )
    missing = sorted({name for name in JUDGES.values()} - set(judges))
    if missing:
        raise InputError(
            InputProblem(
                f"{where}/judge_prompts.jsonl",
                None,
                "name",
                f"missing judge prompts: {', '.join(missing)}",
            )
        )
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode("utf-8") + b"\0")
    return MTBenchData(questions, judges, where, digest.hexdigest())


def load_mt_bench(spec: str | Path) -> MTBenchData:
    """``spec``: a folder in FastChat's layout, or ``hf:owner/name[@revision]``."""
    spec = str(spec)
    if spec.startswith("hf:"):
        return _load_hub(spec)
    root = Path(spec)
    if not root.is_dir():
        raise InputError(InputProblem(spec, None, "--mt-bench-data", "not a directory"))
    files = {}
    for name in ("question.jsonl", REFERENCE_FILE, "judge_prompts.jsonl"):
        for candidate in (root / name, root.parent / name):
            if candidate.is_file():
                files[name] = candidate.read_text(encoding="utf-8")
                break
    return parse_mt_bench(files, str(root))


def _load_hub(spec: str) -> MTBenchData:
    from huggingface_hub import hf_hub_download

    repo, _, revision = spec.removeprefix("hf:").partition("@")
    files = {}
    for name in ("question.jsonl", REFERENCE_FILE, "judge_prompts.jsonl"):
        path = hf_hub_download(repo, name, repo_type="dataset", revision=revision or None)
        files[name] = Path(path).read_text(encoding="utf-8")
    return parse_mt_bench(files, spec)
