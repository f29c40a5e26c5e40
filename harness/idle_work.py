"""Work the runner does between answers, while its requests are in flight.

Against a fast endpoint the client's event loop is idle most of the time (it waits on the
server), and everything the runner does after the last answer adds straight to the wall time.
So each answer is extracted the moment it arrives; what is left (cached answers) is extracted
afterwards as before. Extraction is pure and fast; scoring is not moved here, since some
scorers take seconds (MATH's sympy, HumanEval's sandbox). (The suite data hash used to advance
here too; it now costs little enough to be made with the cache keys, see harness/plan.py.)
"""

from __future__ import annotations

from ocx.benchmarks.base import Extraction


class IdleWork:
    """Per-answer extraction for a list of planned suites."""

    def __init__(self, planned: list, matcher: str):
        self.planned = planned
        self.matcher = matcher
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

    def extraction(
        self, suite_index: int, sample_index: int, completion: int, text: str
    ) -> Extraction:
        """The answer's extraction: the one made on arrival, else made now."""
        found = self.extractions.get((suite_index, sample_index, completion))
        if found is not None:
            return found
        p = self.planned[suite_index]
        return p.suite.extract(text, p.samples[sample_index], self.matcher)
