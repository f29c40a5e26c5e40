"""MT-Bench: 80 two-turn questions answered by the model and graded 1-10 by an LLM judge.

Paper: Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena" (NeurIPS 2023),
https://arxiv.org/abs/2306.05685; questions, GPT-4 reference answers and judge prompts from
FastChat's ``llm_judge/data`` (:mod:`ocx.benchmarks.mt_bench_data`). As FastChat's
``gen_model_answer.py`` and ``gen_judgment.py --mode single``:

1. turn 1 through any backend, with FastChat's per-category temperature;
2. turn 2 sees the model's own turn-1 answer;
3. each turn is judged on its own (``single-v1`` / ``single-v1-multi-turn``); for math,
   reasoning and coding the judge also sees the reference answer (``single-math-v1*``).

Every model answer and every judgment goes through the harness response cache, so a killed
run resumes without asking anything twice. Unparseable judgments are kept with their text and
counted, never scored (FastChat drops its ``-1`` ratings from the means the same way).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ocx.benchmarks.mt_bench_data import JUDGES, MTBenchData, Question
from ocx.harness.backends import Request, Sampling
from ocx.harness.cache import request_key
from ocx.harness.cached_requests import CachedRequests
from ocx.harness.judge import JUDGE_SAMPLING, MAX_RATING, MIN_RATING, parse_rating

CATEGORIES = (
    "writing",
    "roleplay",
    "reasoning",
    "math",
    "coding",
    "extraction",
    "stem",
    "humanities",
)
# FastChat gen_model_answer.py temperature_config; max_new_token 1024.
TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
MAX_TOKENS = 1024


@dataclass(frozen=True)
class TurnRecord:
    """One judged turn: what was asked, answered, and what the judge said."""

    question_id: int
    category: str
    turn: int
    messages: list[dict]
    response: str
    judge_prompt: str
    judgment: str
    rating: float | None
    cached: bool

    def to_dict(self) -> dict:
        return {
            "suite": "mt_bench",
            "id": f"mt_bench/{self.question_id}/turn{self.turn}",
            **self.__dict__,
            "parsed": self.rating is not None,
        }


@dataclass
class MTBenchSummary:
    """Scores (1-10) per category and turn: a :class:`~ocx.benchmarks.judged.JudgedSummary`."""

    name: str
    version: str
    source: str
    data_sha256: str
    sampling: dict
    ratings: dict[str, dict[int, list[float]]]
    unparseable: int
    n: int
    judge: dict = field(default_factory=dict)
    sent: int = 0
    """Requests sent to the model and the judge in this run (the rest came from the cache)."""
    cached: int = 0
    per_question: dict[int, list[float]] = field(default_factory=dict)
    """Each question's parsed ratings (both turns): the units the score's bootstrap resamples."""

    def cell(self, category: str | None, turn: int | None) -> float | None:
        """Mean rating of a category (None: all) and turn (None: both turns)."""
        cats = [category] if category else list(self.ratings)
        turns = [turn] if turn else [1, 2]
        values = [r for c in cats for t in turns for r in self.ratings.get(c, {}).get(t, [])]
        return sum(values) / len(values) if values else None

    @property
    def score(self) -> float | None:
        return self.cell(None, None)

    @property
    def accuracy(self) -> float:
        """The average score on a 0-1 scale (score / 10), kept in results.json for old readers;
        never averaged with accuracies."""
        return (self.score or 0.0) / 10

    @property
    def unmatched(self) -> int:
        return self.unparseable

    @property
    def unmatched_rate(self) -> float:
        return self.unparseable / self.n if self.n else 0.0

    def categories(self) -> dict[str, dict[str, float | None]]:
        return {
            c: {"turn1": self.cell(c, 1), "turn2": self.cell(c, 2), "average": self.cell(c, None)}
            for c in self.ratings
        }

    def intervals(self) -> dict:
        """Bootstrap over questions (a question's two turns share its answers and its judge):
        `score_stderr`/`score_ci95` on the 1-10 scale, `stderr`/`ci95` for score / 10."""
        from ocx.harness.stats import bootstrap_ratio

        if not any(self.per_question.values()):
            return {}
        interval = bootstrap_ratio(list(self.per_question.values()), lo=MIN_RATING, hi=MAX_RATING)
        scaled = (
            None if interval.stderr is None else interval.stderr / 10,
            None if interval.ci95 is None else [interval.ci95[0] / 10, interval.ci95[1] / 10],
        )
        return {
            "stderr": scaled[0],
            "ci95": scaled[1],
            "ci_method": "bootstrap",
            **interval.as_dict("score_"),
            "questions": len(self.per_question),
        }

    def scores(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "score": self.score,
            "turn1": self.cell(None, 1),
            "turn2": self.cell(None, 2),
            "n": self.n,
            "unmatched": self.unparseable,
            "unmatched_rate": self.unmatched_rate,
            **self.intervals(),
            "categories": self.categories(),
            "judge": self.judge,
        }


class MTBench:
    """The ``mt_bench`` suite. Multi-turn and judged: a :class:`~ocx.benchmarks.judged.JudgedSuite`
    that ``ocx eval`` runs with its own driver (:meth:`run`), not the single-prompt path."""

    name = "mt_bench"
    version = "1.0"
    source = (
        "MT-Bench (Zheng et al., 2023), FastChat llm_judge data and judge prompts, "
        "single-answer grading"
    )
    generation = {"max_tokens": MAX_TOKENS}
    title = "MT-Bench (1-10)"

    def check_options(self, opts) -> list:
        from ocx.benchmarks.mt_bench_session import check_options

        return check_options(opts.judge_endpoint, opts.judge_model, opts.mt_bench_data)

    def settings(self, opts) -> dict:
        return {"mt_bench_data": opts.mt_bench_data}

    def run_for_eval(self, backend, cache, opts, progress=None):
        from ocx.benchmarks.mt_bench_session import run_for_eval

        return run_for_eval(
            backend,
            cache,
            judge_endpoint=opts.judge_endpoint,
            judge_model=opts.judge_model,
            mt_bench_data=opts.mt_bench_data,
            judge_api_key=opts.judge_api_key,
            condition=opts.condition,
            overrides=opts.overrides,
            limit=opts.limit,
            progress=progress,
        )

    def table(self, scores: dict, opts):
        from ocx.benchmarks.mt_bench_report import mt_bench_table

        return mt_bench_table(scores, title=f"{self.title}, judge {opts.judge_model}")

    def headline(self, scores: dict) -> str:
        from ocx.benchmarks.mt_bench_report import headline

        return headline(scores)

    def results_problems(self, path: str, scores: dict) -> list:
        from ocx.benchmarks.mt_bench_report import results_problems

        return results_problems(path, scores)

    def report_html(self, documents: list[tuple[str, dict]]) -> str:
        from ocx.benchmarks.mt_bench_report import report_section

        return report_section(documents)

    def run(
        self,
        data: MTBenchData,
        backend,
        judge,
        cache,
        *,
        condition: str | None = None,
        overrides: dict | None = None,
        limit: int | None = None,
        progress=None,
    ) -> tuple[MTBenchSummary, list[TurnRecord]]:
        """Answer both turns, judge them, and summarise; everything through ``cache``."""
        questions = data.questions[:limit] if limit is not None else list(data.questions)
        asker = _Asker(cache, progress)
        first_msgs = [[{"role": "user", "content": q.turns[0]}] for q in questions]
        first = asker.ask(
            backend, first_msgs, condition, [_sampling(q, overrides) for q in questions], "turn 1"
        )
        second_msgs = [
            [*m, {"role": "assistant", "content": a}, {"role": "user", "content": q.turns[1]}]
            for q, m, (a, _) in zip(questions, first_msgs, first)
        ]
        second = asker.ask(
            backend, second_msgs, condition, [_sampling(q, overrides) for q in questions], "turn 2"
        )
        judge_msgs, names = [], []
        for q, (a1, _), (a2, _) in zip(questions, first, second):
            for turn in (1, 2):
                name = JUDGES[(turn, q.needs_reference)]
                judge_msgs.append(data.judges[name].messages(**_judge_fields(q, turn, a1, a2)))
                names.append(name)
        judge_sampling = Sampling(**JUDGE_SAMPLING)
        judgments = asker.ask(judge, judge_msgs, None, [judge_sampling] * len(judge_msgs), "judge")
        records = []
        for i, q in enumerate(questions):
            for turn, (messages, answer) in (
                (1, (first_msgs[i], first[i])),
                (2, (second_msgs[i], second[i])),
            ):
                text, cached = judgments[2 * i + turn - 1]
                records.append(
                    TurnRecord(
                        q.id,
                        q.category,
                        turn,
                        messages,
                        answer[0],
                        names[2 * i + turn - 1],
                        text,
                        parse_rating(text),
                        cached and answer[1],
                    )
                )
        summary = summarize(
            records,
            data,
            self,
            judge.identity(),
            {
                "per_category_temperature": TEMPERATURE,
                **_sampling(questions[0], overrides).as_dict(),
            }
            if questions
            else {},
        )
        summary.sent, summary.cached = asker.sent, asker.cached
        return summary, records


def _sampling(q: Question, overrides: dict | None) -> Sampling:
    base = {"temperature": TEMPERATURE.get(q.category, 0.7), "max_tokens": MAX_TOKENS}
    return Sampling.for_suite(base, overrides or {})


def _judge_fields(q: Question, turn: int, answer_1: str, answer_2: str) -> dict[str, str]:
    """The template fields FastChat's run_judge_single fills in."""
    if turn == 1:
        fields = {"question": q.turns[0], "answer": answer_1}
    else:
        fields = {
            "question_1": q.turns[0],
            "question_2": q.turns[1],
            "answer_1": answer_1,
            "answer_2": answer_2,
        }
    if q.needs_reference:
        fields["ref_answer_1"] = q.reference[0]
        if turn == 2:
            fields["ref_answer_2"] = q.reference[1]
    return fields


def summarize(
    records: Sequence[TurnRecord], data: MTBenchData, suite: MTBench, judge: dict, sampling: dict
) -> MTBenchSummary:
    ratings: dict[str, dict[int, list[float]]] = {}
    order = [c for c in CATEGORIES if any(r.category == c for r in records)]
    order += sorted({r.category for r in records} - set(order))
    for category in order:
        ratings[category] = {1: [], 2: []}
    per_question: dict[int, list[float]] = {}
    for r in records:
        per_question.setdefault(r.question_id, [])
        if r.rating is not None:
            ratings[r.category][r.turn].append(r.rating)
            per_question[r.question_id].append(r.rating)
    return MTBenchSummary(
        suite.name,
        suite.version,
        suite.source,
        data.sha256,
        sampling,
        ratings,
        unparseable=sum(r.rating is None for r in records),
        n=len(records),
        judge=judge,
        per_question=per_question,
    )


class _Asker:
    """Asks a backend for many chats through the cached request loop (the runner's, see
    harness/cached_requests.py); returns (text, was_cached) per chat and counts what it sent."""

    def __init__(self, cache, progress=None):
        self.cache = cache
        self.progress = progress
        self.sent = 0
        self.cached = 0

    def ask(
        self,
        backend,
        chats: list[list[dict]],
        condition: str | None,
        samplings: list[Sampling],
        label: str,
    ) -> list[tuple[str, bool]]:
        identity = backend.identity()
        keys = [
            request_key(identity, chat, condition, s.as_dict()) for chat, s in zip(chats, samplings)
        ]
        loop = CachedRequests(self.cache, self.progress, label=f"mt_bench {label}")
        task = None
        if self.progress is not None:  # one bar per phase: turn 1, turn 2, judge
            task = self.progress.add_task(f"mt_bench {label}", total=len(keys))
        loop.lookup(keys)

        def requests():
            for i, (key, chat, sampling) in enumerate(zip(keys, chats, samplings)):
                asked = {"messages": chat, "condition": condition, "sampling": sampling.as_dict()}
                index = loop.add(key, task, i, json.dumps(asked, ensure_ascii=False))
                if index is not None:
                    yield Request(index, tuple(chat), condition, sampling)

        try:
            loop.send(backend.generate, requests(), pulls=getattr(backend, "pulls_requests", False))
        finally:
            self.sent += loop.sent
            self.cached += len(loop.cached)
        return [(loop.answers[k], k in loop.cached) for k in keys]


SUITE = MTBench()
