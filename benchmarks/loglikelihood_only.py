"""Suites scored only by log-likelihood (ARC, HellaSwag): their shared loading and refusals.

These suites come from lm-evaluation-harness, where a model is never asked to write an answer:
each option's log-probability after the prompt is compared (`ocx eval --scoring loglikelihood`).
Their data is not in OpenChat's ``eval_data``, so the user exports the Hugging Face dataset as
JSONL into a local folder (``--data FOLDER``); nothing is downloaded, and a missing file says
where to put it and how to make it.

Each suite module gives a ``LoglikelihoodOnlySuite`` its file and a ``build(record) ->
(context, choices, gold_index, gold_label)`` that reproduces lm-eval's task YAML exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ocx.benchmarks.base import DataSource, Extraction, MultipleChoice, Sample
from ocx.benchmarks.common import load_subsets, user_messages
from ocx.harness.errors import InputError, InputProblem

# record -> (context, choices, gold index, gold label as the data writes it)
Builder = Callable[[dict], tuple[str, list[str], int, str]]


class GenerationRefused(InputError):
    """A log-likelihood-only suite was asked to generate (no `--scoring loglikelihood`)."""


@dataclass(frozen=True)
class LoglikelihoodOnlySuite:
    name: str
    version: str
    source: str
    path: str
    """The JSONL file under `--data`, e.g. ``"ai2_arc/ARC-Easy/test.jsonl"``."""
    dataset: str
    """The hub dataset and split `path` holds, e.g. ``"allenai/ai2_arc ARC-Easy test split"``."""
    export: str
    """The command that writes `path` from the hub dataset (shown when the file is missing)."""
    build_record: Builder
    # Zero-shot only: lm-eval draws few-shot demonstrations from the train split with a seeded
    # random sampler whose state runs across documents; ocx does not reproduce that sequence.
    max_fewshot: int = 0
    loglikelihood_only: bool = True
    """Generation mode refuses this suite: `prompt`, `extract` and `score` raise `GenerationRefused`
    (exit 2, before any request); an eval session may check the flag up front instead."""
    generation = {"max_tokens": 1, "temperature": 0.0}  # Suite protocol; never used to generate

    def load(self, data: DataSource, limit: int | None = None) -> list[Sample]:
        folder = self.path.rpartition("/")[0]
        if self.path not in data.list_files(folder):
            raise InputError(
                InputProblem(
                    data.description,
                    None,
                    None,
                    f"no {self.name} data: pass --data FOLDER holding FOLDER/{self.path} "
                    f"({self.dataset} as JSONL; "
                    f"ocx downloads nothing for this suite), e.g. written by: {self.export}",
                )
            )
        return load_subsets(data, self.name, folder, self._build, limit, files=[self.path])

    def _build(self, record: dict, subset: str, index: int) -> Sample:
        context, choices, gold_index, gold_label = self.build_record(record)
        return Sample(
            id=f"{self.name}/{subset}/{index}",
            question=context,
            messages=user_messages(context),
            gold=gold_label,
            meta={
                "subset": subset,
                "choices": choices,
                "gold_index": gold_index,
                "record_id": str(record.get("id", record.get("ind", index))),
            },
        )

    def multiple_choice(self, sample: Sample, num_fewshot: int = 0) -> MultipleChoice:
        if num_fewshot > self.max_fewshot:
            raise InputError(
                InputProblem(
                    "command line",
                    None,
                    "--num-fewshot",
                    f"{self.name} is zero-shot only in ocx (got {num_fewshot})",
                )
            )
        return MultipleChoice(
            context=sample.question,
            choices=tuple(sample.meta["choices"]),
            gold=(sample.meta["gold_index"],),
        )

    def _refuse(self) -> GenerationRefused:
        return GenerationRefused(
            InputProblem(
                "command line",
                None,
                "--sets",
                f"{self.name} is scored by log-likelihood only (as lm-eval defines it): "
                f"add --scoring loglikelihood",
            )
        )

    def prompt(self, sample: Sample) -> list[dict]:
        raise self._refuse()

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        raise self._refuse()

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        raise self._refuse()


def require_choices(field: str, choices: object) -> list[str]:
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) for c in choices)
    ):
        raise ValueError(f"field {field!r} must be a list of at least two strings, got {choices!r}")
    return choices
