from __future__ import annotations

import subprocess
import sys

import pytest

from ocx.benchmarks import GROUPS, SuiteUnavailableError, get_suite, registered_suites, resolve_sets
from ocx.benchmarks.base import Suite
from ocx.harness.errors import InputError

EIGHT = ["mmlu", "gsm8k", "math", "bbh", "agieval", "bbh_mc", "truthfulqa", "gpqa"]


def test_every_standard_suite_loads_by_name_and_satisfies_the_protocol():
    for name in EIGHT:
        suite = get_suite(name)
        assert isinstance(suite, Suite), name
        assert suite.name == name
        assert suite.version and suite.source and suite.generation["max_tokens"] > 0


def test_groups_expand_in_order_without_duplicates():
    assert resolve_sets(["all"]) == EIGHT
    assert resolve_sets(["cot", "gsm8k", "zero_shot"]) == list(GROUPS["cot"]) + list(
        GROUPS["zero_shot"]
    )


def test_unknown_names_are_all_reported_with_did_you_mean():
    with pytest.raises(InputError) as info:
        resolve_sets(["mmlu", "gsm8", "truthful_qa"])
    message = str(info.value)
    assert "'gsm8'" in message and "did you mean 'gsm8k'" in message
    assert "'truthful_qa'" in message and "'truthfulqa'" in message
    assert len(info.value.problems) == 2


def test_a_registered_suite_whose_module_is_missing_fails_with_a_clear_error(monkeypatch):
    monkeypatch.setitem(
        registered_suites.__globals__["BUILTIN_SUITES"], "ghost", "ocx.benchmarks.ghost_suite:SUITE"
    )
    with pytest.raises(
        SuiteUnavailableError, match="'ghost' is registered as ocx.benchmarks.ghost_suite:SUITE"
    ):
        get_suite("ghost")


def test_importing_the_registry_loads_no_suite_module_and_no_sympy():
    code = (
        "import sys, ocx.benchmarks as b; b.resolve_sets(['all']);"
        "bad = [m for m in sys.modules if m in "
        "('sympy', 'ocx.benchmarks.mmlu', 'ocx.benchmarks.math', 'datasets')];"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
