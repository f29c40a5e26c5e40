"""The CI regression check: every template reproduces its documented token IDs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ocx.harness.templates import ChatTemplate, get_template
from ocx.harness.templates.check import bundled_fixture_paths, check_case, run_checks
from ocx.harness.tokenizers import load_tokenizer


def _cases(model_type: str) -> list[dict]:
    cases = []
    for path in bundled_fixture_paths():
        data = json.loads(path.read_text())
        cases += [
            dict(c, _tokenizers=data["tokenizers"])
            for c in data["cases"]
            if c["model_type"] == model_type
        ]
    return cases


def test_every_documented_and_ocx_fixture_passes(shared_dir):
    results = list(run_checks(bundled_fixture_paths(), [shared_dir]))
    assert len(results) >= 26
    failures = [f"{r.name}\n{r.detail}" for r in results if r.status != "pass"]
    assert not failures, "\n".join(failures)


def test_templates_check_command_passes_and_reports_counts(shared_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocx.cli.__main__",
            "templates",
            "check",
            "--shared",
            str(shared_dir),
            "--require-all",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\d+ passed, 0 failed, 0 skipped", out.stdout)


def _output_literals(source: str) -> list[tuple[int, int]]:
    """Spans of string literals that the template writes into the prompt."""
    spans = []
    for line_match in re.finditer(r"^.*\{\{-.*$", source, flags=re.M):
        if "raise_exception" in line_match.group(0):
            continue
        for lit in re.finditer(r'"([^"]+)"', line_match.group(0)):
            spans.append((line_match.start() + lit.start(1), line_match.start() + lit.end(1)))
    return spans


@pytest.mark.parametrize(
    "model_type",
    [
        "openchat_3.5",
        "openchat_3.6",
        "openchat_v3.2",
        "openchat_v3.1_llama2",
        "llama3_instruct",
        "chatml",
        "zephyr",
    ],
)
def test_changing_one_character_of_a_template_fails_the_check(model_type, shared_dir):
    template = get_template(model_type)
    cases = _cases(model_type)
    vocab = cases[0]["tokenizer"]
    tok = load_tokenizer(shared_dir / cases[0]["_tokenizers"][vocab]["file"], template.added_tokens)
    spans = _output_literals(template.source)
    assert spans, f"no output literals found in {model_type}"
    survivors = []
    for start, end in spans:
        for pos in (start, end - 1):  # first and last character of every literal
            mutated = (
                template.source[:pos]
                + ("#" if template.source[pos] != "#" else "%")
                + template.source[pos + 1 :]
            )
            changed = ChatTemplate.from_source(model_type, mutated)
            if all(_passes(changed, tok, c) for c in cases if c["tokenizer"] == vocab):
                survivors.append(template.source[start:end])
    assert not survivors, f"fixtures of {model_type} do not notice a change in: {survivors}"


def _passes(template: ChatTemplate, tok, case: dict) -> bool:
    import ocx.harness.templates.check as check

    original = check.get_template
    check.get_template = lambda name: template
    try:
        return check_case(case, tok) is None
    except Exception:  # a template that no longer renders fails the check too
        return False
    finally:
        check.get_template = original
