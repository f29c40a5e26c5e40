"""Planning an eval: each sample's prompt, cache keys (one per completion) and each suite's data
hash.

Every suite is loaded (and so validated) before any model work. The per-sample planning can then
run all at once (`plan_suites`) or a span of samples at a time (`PlanBuilder.extend`), which lets
the runner send the first requests while later ones are still being keyed. Each prompt is built
and serialized once (harness/messages_json.py): the one canonical JSON serves the cache keys, the
data hash and the HTTP body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ocx.benchmarks.base import DataSource, Sample, Suite, hash_sample
from ocx.harness.backends import Sampling
from ocx.harness.cache import RequestKeys
from ocx.harness.messages_json import messages_json as canonical_messages_json


@dataclass
class PlannedSuite:
    suite: Suite
    samples: list[Sample]
    samplings: list[Sampling]
    """One per completion index: the suite's settings, the seed (if any) moved on by the index."""
    keys: list[list[str]]
    """keys[sample][completion]."""
    prompts: list[list[dict]]
    """What is sent for each sample: the suite's prompt, after the system prompt if any."""
    data_sha256: str
    """`suite_data_sha256(samples)`: the samples used, as results.json records them."""

    @property
    def sampling(self) -> Sampling:
        return self.samplings[0]

    def all_keys(self) -> list[str]:
        return [key for sample_keys in self.keys for key in sample_keys]


def completion_sampling(sampling: Sampling, completion: int) -> Sampling:
    """The settings for completion `completion`: seed + completion when a seed is set, so the N
    answers to one prompt are N draws rather than one draw N times."""
    if sampling.seed is None or completion == 0:
        return sampling
    return replace(sampling, seed=sampling.seed + completion)


class PlanBuilder:
    """Fills in one loaded suite's prompts, cache keys and data hash, a span of samples at a time
    (so the runner can send the first requests while later ones are still being planned)."""

    def __init__(
        self,
        suite: Suite,
        samples: list[Sample],
        *,
        condition: str | None,
        overrides: dict,
        identity: dict,
        completions: int,
        system_prompt: str | None,
    ):
        base = Sampling.for_suite(suite.generation, overrides)
        samplings = [completion_sampling(base, i) for i in range(completions)]
        self.keyers = [
            RequestKeys(identity, condition, s.as_dict(), completion=i)
            for i, s in enumerate(samplings)
        ]
        self.system = (
            [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
        )
        self.digest = hashlib.sha256()
        self.planned = PlannedSuite(suite, samples, samplings, [], [], "")
        self.prompt_json: dict[int, bytes] = {}
        """sample index -> `canonical_json` of its prompt, for the span `extend` planned last
        (what the HTTP client sends: serialized once for the key, spliced into the body)."""
        if not samples:
            self.planned.data_sha256 = self.digest.hexdigest()

    @property
    def done(self) -> bool:
        return len(self.planned.prompts) == len(self.planned.samples)

    def extend(self, count: int) -> range:
        """Plan the next `count` samples (fewer at the end); the sample indices planned."""
        p, suite = self.planned, self.planned.suite
        start = len(p.prompts)
        self.prompt_json = {}
        for j, sample in enumerate(p.samples[start : start + count], start):
            prompt = [*self.system, *suite.prompt(sample)]
            messages_json = canonical_messages_json(sample.messages)
            # Few-shot prompts are kilobytes: serialize the prompt again only if it differs.
            prompt_json = (
                messages_json if prompt == sample.messages else canonical_messages_json(prompt)
            )
            hash_sample(self.digest, sample, messages_json)
            p.prompts.append(prompt)
            p.keys.append([keyer.key(prompt_json) for keyer in self.keyers])
            self.prompt_json[j] = prompt_json
        if self.done:
            p.data_sha256 = self.digest.hexdigest()
        return range(start, len(p.prompts))


def load_suites(
    suites: Sequence[Suite],
    data: DataSource,
    *,
    limit: int | None,
    condition: str | None,
    overrides: dict,
    identity: dict,
    completions: int = 1,
    system_prompt: str | None = None,
) -> list[PlanBuilder]:
    """Load (and so validate) every suite before any model work; each sample is planned later."""
    return [
        PlanBuilder(
            suite,
            suite.load(data, limit=limit),
            condition=condition,
            overrides=overrides,
            identity=identity,
            completions=completions,
            system_prompt=system_prompt,
        )
        for suite in suites
    ]


def plan_suites(suites: Sequence[Suite], data: DataSource, **options) -> list[PlannedSuite]:
    """Load every suite and compute each sample's prompt, cache keys (one per completion) and the
    suite's data hash (no model work yet); `options` as for `load_suites`. Each prompt is built
    and serialized once here: the one canonical JSON serves the cache keys and the data hash."""
    builders = load_suites(suites, data, **options)
    for builder in builders:
        builder.extend(len(builder.planned.samples))
    return [builder.planned for builder in builders]
