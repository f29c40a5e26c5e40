"""The surface of a judged or multi-turn suite: one with its own driver (MT-Bench, and any future
judge-based suite), as opposed to a single-prompt suite (:class:`ocx.benchmarks.base.Suite`).

``ocx eval``, ``results.json`` and ``ocx report`` know such a suite only through this protocol:

* **validate**: :meth:`JudgedSuite.check_options` reports every problem with the run's options
  (judge endpoint, data) at once, before any model loads;
* **run**: :meth:`JudgedSuite.run_for_eval` drives the model (and the judge) with the backend,
  response cache and progress the session already has, and returns a summary and the records
  for ``samples.jsonl``; :meth:`JudgedSuite.settings` adds what produced the numbers (its data)
  to ``results.json``;
* **summarise**: the summary's ``scores()`` is the suite's entry under ``results.json``'s
  ``summary``; its ``accuracy`` is the score mapped to 0-1 (kept for tools that read every
  entry's ``accuracy``), but a judged score is never averaged with accuracies: ``average`` is
  over the accuracy suites only;
* **print**: :meth:`JudgedSuite.table` is the rich table ``ocx eval`` prints after the accuracy
  table; :attr:`JudgedSuite.title` and :meth:`JudgedSuite.headline` make its row in
  ``ocx report``'s table of judged scores;
* **report**: :meth:`JudgedSuite.results_problems` checks its entry when a results.json is read
  back, and :meth:`JudgedSuite.report_html` is its section of the HTML report (MT-Bench's radar).

Adding a judge-based suite is one module whose ``SUITE`` satisfies this protocol, plus a line in
``ocx.benchmarks.BUILTIN_SUITES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ocx.harness.cache import ResponseCache
    from ocx.harness.errors import InputProblem
    from ocx.harness.eval_options import EvalOptions


@runtime_checkable
class JudgedSummary(Protocol):
    """What a judged suite's run returns as its summary (beside its records)."""

    name: str
    """The suite's registry name: its key under results.json's ``summary`` and ``suites``."""
    version: str
    source: str
    data_sha256: str
    """sha256 of exactly the data used (results.json's ``suites.<name>.data_sha256``)."""
    sampling: dict
    """The model's sampling settings, as sent (``suites.<name>.sampling``)."""
    n: int
    """How many items were graded (MT-Bench: judged turns)."""
    sent: int
    """Requests sent to the model and the judge in this run (the rest came from the cache)."""
    cached: int
    """Requests answered from the cache."""

    def scores(self) -> dict:
        """The suite's entry in results.json's ``summary`` (with ``accuracy`` on a 0-1 scale)."""
        ...


@runtime_checkable
class JudgedSuite(Protocol):
    """A suite with its own driver, graded by a judge model and/or over several turns."""

    name: str
    version: str
    source: str
    generation: dict
    title: str
    """Its scores' name and scale in tables, e.g. "MT-Bench (1-10)"."""

    def check_options(self, opts: EvalOptions) -> list[InputProblem]:
        """Every problem with the options this suite needs (all at once; [] when none)."""
        ...

    def settings(self, opts: EvalOptions) -> dict:
        """Top-level results.json entries that say what produced its numbers (its data)."""
        ...

    def run_for_eval(
        self, backend: Any, cache: ResponseCache, opts: EvalOptions, progress: Any = None
    ) -> tuple[JudgedSummary, list]:
        """Run it with the session's backend, cache and progress: (summary, records), each
        record with ``to_dict()`` for samples.jsonl."""
        ...

    def table(self, scores: dict, opts: EvalOptions) -> Any:
        """The rich table ``ocx eval`` prints for ``scores`` (its ``summary`` entry)."""
        ...

    def headline(self, scores: dict) -> str:
        """Its overall score as text for one run's cell in ``ocx report`` (e.g. "7.12 ± 0.31")."""
        ...

    def results_problems(self, path: str, scores: dict) -> list[InputProblem]:
        """Problems with its ``summary`` entry in a results.json read back from ``path``."""
        ...

    def report_html(self, documents: list[tuple[str, dict]]) -> str:
        """Its section of the HTML report for (label, results.json) pairs ("" when none has it)."""
        ...


def judged_suites(suites: list) -> list[JudgedSuite]:
    """The judged suites among ``suites``, in order."""
    return [s for s in suites if isinstance(s, JudgedSuite)]


def judged_suites_named(names) -> dict[str, JudgedSuite]:
    """The registered judged suites among ``names`` (suite names read from a results.json): an
    unknown or unloadable name is simply not a judged suite here."""
    from ocx.benchmarks import SuiteUnavailableError, get_suite, registered_suites

    registered = registered_suites()
    found = {}
    for name in dict.fromkeys(names):
        if name not in registered:
            continue
        try:
            suite = get_suite(name)
        except (SuiteUnavailableError, ImportError):
            continue
        if isinstance(suite, JudgedSuite):
            found[name] = suite
    return found
