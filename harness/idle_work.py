"""Work the runner does between answers, while its requests are in flight.

Against a fast endpoint the client's event loop is idle most of the time (it waits on the
server), and everything the runner does after the last answer (hashing the suite data,
extracting every answer) adds straight to the wall time. So each answer is extracted the moment
it arrives, and the data hash advances a couple of samples per answer; what is left (cached
answers, the rest of the hash) is done afterwards as before. Extraction is pure and fast; scoring
is not moved here, since some scorers take seconds (MATH's sympy, HumanEval's sandbox).
"""

from __future__ import annotations

import hashlib

from ocx.benchmarks.base import Extraction, Sample, sample_hash_line

_HASH_PER_ANSWER = 2  # samples hashed per answer: enough to finish within a run that sends every request


class DataHasher:
    """`suite_data_sha256(samples)`, computed a few samples at a time."""

    def __init__(self, samples: list[Sample]):
        self.samples = samples
        self.done = 0
        self.digest = hashlib.sha256()

    def step(self, count: int) -> int:
        """Hash up to `count` more samples; returns how many were hashed."""
        end = min(len(self.samples), self.done + count)
        for sample in self.samples[self.done:end]:
            self.digest.update(sample_hash_line(sample))
        hashed, self.done = end - self.done, end
        return hashed

    def hexdigest(self) -> str:
        self.step(len(self.samples))
        return self.digest.hexdigest()


class IdleWork:
    """Per-answer extraction and incremental data hashing for a list of planned suites."""

    def __init__(self, planned: list, matcher: str):
        self.planned = planned
        self.matcher = matcher
        self.hashers = [DataHasher(p.samples) for p in planned]
        self.extractions: dict[tuple[int, int, int], Extraction] = {}
        """(suite index, sample index, completion) -> the answer's extraction."""

    def on_answer(self, owners: list[tuple[int, int, int]], text: str) -> None:
        for suite_index, sample_index, completion in owners:
            p = self.planned[suite_index]
            try:
                extraction = p.suite.extract(text, p.samples[sample_index], self.matcher)
            except Exception:  # noqa: BLE001 - redone after the run, where the error surfaces as before
                continue
            self.extractions[(suite_index, sample_index, completion)] = extraction
        budget = _HASH_PER_ANSWER
        for hasher in self.hashers:
            budget -= hasher.step(budget)
            if budget <= 0:
                break

    def extraction(self, suite_index: int, sample_index: int, completion: int, text: str) -> Extraction:
        """The answer's extraction: the one made on arrival, else made now."""
        found = self.extractions.get((suite_index, sample_index, completion))
        if found is not None:
            return found
        p = self.planned[suite_index]
        return p.suite.extract(text, p.samples[sample_index], self.matcher)
