"""`ocx eval --scoring loglikelihood`: multiple-choice suites scored by each option's
log-likelihood.

For every sample the suite poses a `MultipleChoice` (`multiple_choice(sample, num_fewshot)`),
the `PairEncoder` turns it into context IDs and one continuation per option (lm-eval's
`_encode_pair`, chat template or plain text), and the backend scores each (context,
continuation) pair once: identical pairs (the same question in two suites, duplicates in the
data) are asked once, and answers are kept in the response cache under a key made of the
scoring mode, the model identity and the token IDs, so a rerun asks nothing. acc and acc_norm
are lm-eval's (`ocx.benchmarks.multiple_choice.score_choices`), with the same intervals as the
generated suites' accuracy (harness/stats.py: Wilson, or clustered by passage).

A backend offers `loglikelihood(requests, on_result, on_error)` over
`ocx.harness.logprobs.LoglikelihoodRequest`s, calling `on_result(index, Loglikelihood)` or
`on_error(index, exc)` once per request (see harness/backends).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ocx.benchmarks.base import (
    DataSource,
    MultipleChoice,
    Sample,
    canonical_json,
    suite_data_sha256,
)
from ocx.benchmarks.multiple_choice import score_choices
from ocx.harness.cache import ResponseCache
from ocx.harness.cached_requests import CachedRequests
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.loglikelihood_encode import EncodedChoice, PairEncoder
from ocx.harness.logprobs import Loglikelihood, LoglikelihoodRequest
from ocx.harness.runner import (
    EvalRun,
    SuiteSummary,
    cluster_keys,
    suite_intervals,
)

SCORING = "loglikelihood"


@dataclass(frozen=True)
class ChoiceRecord:
    """One sample's line in samples.jsonl: every option's log-likelihood and both verdicts.

    `correct` is acc (what `ocx report`'s paired comparison reads); `answer` the predicted
    option."""

    suite: str
    id: str
    context: str
    options: list[dict]
    """Per option: choice, continuation (the text scored), logprob, is_greedy, tokens."""
    gold: list[int]
    pred: int
    pred_norm: int
    acc: bool
    acc_norm: bool
    cached: bool
    cluster: str | None = None

    def to_dict(self) -> dict:
        record = {
            "suite": self.suite,
            "id": self.id,
            "scoring": SCORING,
            "context": self.context,
            "options": self.options,
            "gold": self.gold,
            "pred": self.pred,
            "pred_norm": self.pred_norm,
            "answer": self.options[self.pred]["choice"],
            "correct": self.acc,
            "acc": self.acc,
            "acc_norm": self.acc_norm,
            "cached": self.cached,
        }
        if self.cluster is not None:
            record["cluster"] = self.cluster
        return record


@dataclass
class _PlannedSuite:
    suite: object
    samples: list[Sample]
    questions: list[MultipleChoice]
    encoded: list[EncodedChoice]
    """Filled a span at a time while requests are sent."""
    keys: list[list[str]]
    """keys[sample][option]."""


class LoglikelihoodKeys:
    """Cache keys: sha256 over the scoring mode, the model identity and the token IDs (the
    context's IDs hashed once per sample, each continuation's after them)."""

    def __init__(self, identity: dict):
        self._head = hashlib.sha256(
            b'{"scoring":"loglikelihood","model":' + canonical_json(identity) + b',"context":'
        )

    def keys(self, encoded: EncodedChoice) -> list[str]:
        digest = self._head.copy()
        digest.update(canonical_json(list(encoded.context_ids)))
        keys = []
        for continuation in encoded.continuation_ids:
            one = digest.copy()
            one.update(b',"continuation":' + canonical_json(list(continuation)) + b"}")
            keys.append(one.hexdigest())
        return keys


def check_backend(backend) -> None:
    if not callable(getattr(backend, "loglikelihood", None)):
        raise InputError(
            InputProblem(
                "command line",
                None,
                "--scoring",
                f"this engine ({type(backend).__name__}) cannot score log-likelihoods",
            )
        )


class LoglikelihoodRunner:
    def __init__(
        self,
        backend,
        cache: ResponseCache,
        encoder: PairEncoder,
        *,
        num_fewshot: int = 0,
        progress=None,
    ):
        self.backend = backend
        self.cache = cache
        self.encoder = encoder
        self.num_fewshot = num_fewshot
        self.progress = progress

    def run(self, suites: Sequence, data: DataSource, *, limit: int | None = None) -> EvalRun:
        start = time.perf_counter()
        identity = self.backend.identity()
        loaded = [
            (suite, suite.load(data, limit=limit)) for suite in suites
        ]  # every suite validated first
        planned = [
            self._pose(suite, samples) for suite, samples in loaded
        ]  # and every sample posed
        results, cached_keys, sent = self._score_all(planned, LoglikelihoodKeys(identity))
        summaries, records = {}, []
        for p in planned:
            summary, suite_records = self._summarize(p, results, cached_keys)
            summaries[p.suite.name] = summary
            records += suite_records
        settings = {
            "model": identity,
            "scoring": SCORING,
            "num_fewshot": self.num_fewshot,
            "chat": self.encoder.chat,
            "condition": self.encoder.condition if self.encoder.chat else None,
        }
        return EvalRun(
            summaries,
            records,
            sent=sent,
            cached=len(cached_keys),
            elapsed_s=time.perf_counter() - start,
            settings=settings,
        )

    def _pose(self, suite, samples: list[Sample]) -> _PlannedSuite:
        """Every sample as a MultipleChoice, before any model work (a sample that cannot be posed
        is reported with the others, by id); encoding comes later, a span at a time."""
        questions, problems = [], []
        for sample in samples:
            try:
                questions.append(suite.multiple_choice(sample, num_fewshot=self.num_fewshot))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(
                    InputProblem(
                        f"{suite.name} data",
                        None,
                        sample.id,
                        f"cannot pose as multiple choice: {exc}",
                    )
                )
        if problems:
            raise InputError(problems)
        return _PlannedSuite(suite, samples, questions, [], [])

    def _encode_span(self, p: _PlannedSuite, keyer: LoglikelihoodKeys, count: int) -> range:
        """Encode and key the next `count` samples of `p`; the sample indices done."""
        first = len(p.encoded)
        for sample, question in zip(
            p.samples[first : first + count], p.questions[first : first + count]
        ):
            encoded = self.encoder.encode(question)
            if any(not ids for ids in encoded.continuation_ids):
                raise InputError(
                    InputProblem(
                        f"{p.suite.name} data", None, sample.id, "an option encodes to no tokens"
                    )
                )
            p.encoded.append(encoded)
            p.keys.append(keyer.keys(encoded))
        return range(first, len(p.encoded))

    def _score_all(self, planned: list[_PlannedSuite], keyer: LoglikelihoodKeys):
        """Every option's log-likelihood, from the cache or the backend, through the cached
        request loop (harness/cached_requests.py); (results, cached keys, sent).

        Samples are encoded and looked up a span at a time while the backend pulls requests, so
        the first are scored while later ones are still being tokenized (few-shot contexts are
        kilobytes: encoding all of MMLU takes minutes on a busy CPU)."""
        loop = CachedRequests(
            self.cache,
            self.progress,
            what="log-likelihood requests",
            encode=lambda result: json.dumps(result.to_dict()),
            decode=_decode,
        )
        tasks = [self._task(p) for p in planned]

        def pending():
            for p, task in zip(planned, tasks):
                while len(p.encoded) < len(p.samples):
                    span = self._encode_span(p, keyer, 32)
                    loop.lookup([k for j in span for k in p.keys[j]])
                    for j in span:
                        for continuation, key in zip(p.encoded[j].continuation_ids, p.keys[j]):
                            index = loop.add(key, task, None, '{"scoring": "loglikelihood"}')
                            if index is not None:
                                yield LoglikelihoodRequest(
                                    index, p.encoded[j].context_ids, continuation
                                )

        # Everything cached: the backend (and its model) is never started.
        sent = loop.send(self.backend.loglikelihood, pending(), pulls=True)
        return loop.answers, loop.cached, sent

    def _summarize(
        self, p: _PlannedSuite, results: dict[str, Loglikelihood], cached_keys: set[str]
    ):
        clusters = cluster_keys(p.suite, p.samples)
        records, verdicts = [], []
        for j, (sample, question, enc, keys) in enumerate(
            zip(p.samples, p.questions, p.encoded, p.keys)
        ):
            lls = [results[key] for key in keys]
            verdict = score_choices([ll.logprob for ll in lls], question.choices, question.gold)
            verdicts.append(verdict)
            options = [
                {
                    "choice": choice,
                    "continuation": continuation,
                    "logprob": ll.logprob,
                    "is_greedy": ll.is_greedy,
                    "tokens": len(ids),
                }
                for choice, continuation, ll, ids in zip(
                    question.choices, self._continuations(question), lls, enc.continuation_ids
                )
            ]
            records.append(
                ChoiceRecord(
                    p.suite.name,
                    sample.id,
                    question.context,
                    options,
                    list(question.gold),
                    verdict.pred,
                    verdict.pred_norm,
                    verdict.acc,
                    verdict.acc_norm,
                    all(k in cached_keys for k in keys),
                    clusters[j] if clusters else None,
                )
            )
        acc = [[v.acc] for v in verdicts]
        extra = {"acc_norm": sum(v.acc_norm for v in verdicts) / len(verdicts) if verdicts else 0.0}
        intervals = suite_intervals(acc, clusters, {})
        if verdicts:
            from ocx.harness.stats import accuracy_interval

            intervals.update(
                accuracy_interval([float(v.acc_norm) for v in verdicts], clusters).as_dict(
                    "acc_norm_"
                )
            )
        summary = SuiteSummary(
            p.suite.name,
            p.suite.version,
            p.suite.source,
            suite_data_sha256(p.samples),
            {"scoring": SCORING, "num_fewshot": self.num_fewshot, "chat": self.encoder.chat},
            len(p.samples),
            sum(v.acc for v in verdicts),
            0,
            1,
            extra,
            intervals,
        )
        return summary, records

    def _continuations(self, question: MultipleChoice) -> tuple[str, ...]:
        return question.choices if self.encoder.chat else question.continuations()

    def _task(self, p: _PlannedSuite) -> int | None:
        if self.progress is None:
            return None
        return self.progress.add_task(p.suite.name, total=sum(len(q.choices) for q in p.questions))


def _decode(value: str) -> Loglikelihood:
    data = json.loads(value)
    return Loglikelihood(
        float(data["logprob"]), bool(data["is_greedy"]), tuple(data["token_logprobs"])
    )
