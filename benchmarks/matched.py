"""Base classes for single-prompt suites whose answer is matched in the response.

A suite built on :class:`MatchedSuite` says only what is its own: how the ocx matcher finds an
answer (``find_answer``) and whether it is right (``is_correct``). ``extract`` and ``score``
dispatch on the matcher: ``"ocx"`` uses those two, a parity matcher (``--matcher openchat``) the
suite's rule in :data:`ocx.benchmarks.matchers.PARITY_RULES`. :class:`EvalDataSuite` adds loading
from OpenChat's ``eval_data`` layout, one user turn per record; its suites say only which folder
holds their data and what a record's answer is (``answer_key``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ocx.benchmarks.base import DataSource, Extraction, Sample, check_matcher
from ocx.benchmarks.common import load_subsets, user_messages
from ocx.benchmarks.matchers import parity_rule


class MatchedSuite(ABC):
    """``prompt``, ``extract`` and ``score`` of the Suite protocol, from the two methods below."""

    name: str

    @abstractmethod
    def find_answer(self, response: str, sample: Sample) -> str | None:
        """The ocx matcher: the answer the response gives, or None when it gives none."""

    @abstractmethod
    def is_correct(self, answer: str, sample: Sample) -> bool:
        """The ocx matcher: whether a matched ``answer`` is right."""

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        rule = parity_rule(matcher, self.name)
        if rule is not None:
            matched, answer = rule.match(response, sample)
            return Extraction(answer, matched, matcher)
        found = self.find_answer(response, sample)
        return Extraction(found, found is not None, matcher)

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        rule = parity_rule(extraction.matcher, self.name)
        if rule is not None and rule.correct is not None:
            return rule.correct(extraction.answer, sample)
        return extraction.matched and self.is_correct(extraction.answer, sample)


class EvalDataSuite(MatchedSuite):
    """A suite read from the JSONL files under ``folder`` in the eval_data layout: each record's
    ``question`` is the whole (few-shot) prompt, sent as one user turn."""

    folder: str
    """Folder of the suite's JSONL files, e.g. ``"zs/gpqa"``; each file is a subset."""

    @abstractmethod
    def answer_key(self, record: dict, subset: str) -> tuple[str, dict]:
        """(gold answer, meta) of a record; raises KeyError/TypeError/ValueError on a bad one."""

    def load(self, data: DataSource, limit: int | None = None) -> list[Sample]:
        return load_subsets(data, self.name, self.folder, self._build, limit)

    def _build(self, record: dict, subset: str, index: int) -> Sample:
        gold, meta = self.answer_key(record, subset)
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=record["question"],
            messages=user_messages(record["question"]),
            gold=gold,
            meta=meta,
        )
