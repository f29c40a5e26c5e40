"""`ocx templates check`: the regression check that every template reproduces its fixtures.

Fixtures come from outside ocx: `documented_token_ids.json` holds the IDs published in
OpenChat's model cards; `ocx_token_ids.json` holds ocx's own cases (training weights, system
prompts, conditions, escaping, multi-turn, empty content) whose IDs were computed by
`tests/fixtures/generate_ocx_fixtures.py` with raw sentencepiece/tiktoken on hand-written
pieces, never by ocx's template code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ocx.harness.conversation import Conversation, parse_conversation
from ocx.harness.templates import get_template
from ocx.harness.templates.encode import encode_conversation
from ocx.harness.tokenizers import Tokenizer, load_tokenizer

FIXTURE_FILES = ("documented_token_ids.json", "ocx_token_ids.json")


@dataclass(frozen=True)
class CaseResult:
    name: str
    status: str  # "pass", "fail" or "skip"
    detail: str = ""


def bundled_fixture_paths() -> list[Path]:
    folder = resources.files("ocx.harness.templates") / "fixtures"
    return [Path(str(folder / name)) for name in FIXTURE_FILES]


def _packaged_vocabulary(name: str) -> Path | None:
    """The same vocabularies ship inside PyPI packages (mistral-common, llama-models)."""
    candidates = {
        "mistral-v1": ("mistral_common", "data/tokenizer.model.v1"),
        "llama3": ("llama_models", "llama3/tokenizer.model"),
    }
    if name not in candidates:
        return None
    package, rel = candidates[name]
    try:
        path = Path(str(resources.files(package) / rel))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def find_vocabulary(spec: dict, name: str, roots: list[Path]) -> Path | None:
    for root in roots:
        path = root / spec["file"]
        if path.is_file():
            return path
    return _packaged_vocabulary(name)


def _conversation(case: dict) -> Conversation:
    if "conversation" in case:
        return parse_conversation(case["conversation"])
    return Conversation.from_messages(case["messages"])


def first_difference(expected: list, actual: list) -> int | None:
    for i, (a, b) in enumerate(zip(expected, actual)):
        if a != b:
            return i
    return None if len(expected) == len(actual) else min(len(expected), len(actual))


def _describe_mismatch(what: str, expected: list, actual: list, tok: Tokenizer) -> str:
    i = first_difference(expected, actual)
    window = slice(max(0, i - 3), i + 4)
    show = lambda ids: " ".join(f"{t}:{tok.decode([t])!r}" for t in ids[window])  # noqa: E731
    return (
        f"{what} differ at position {i} (expected {len(expected)} tokens, got {len(actual)})\n"
        f"  expected: {show(expected)}\n  actual:   {show(actual)}"
    )


def check_case(case: dict, tok: Tokenizer) -> str | None:
    """None if the case passes, else a description of the first difference."""
    template = get_template(case["model_type"])
    inference = case.get("mode", "inference") == "inference"
    got = encode_conversation(
        template, tok, _conversation(case), inference=inference, condition=case.get("condition")
    )
    if got.input_ids != case["input_ids"]:
        return _describe_mismatch("input_ids", case["input_ids"], got.input_ids, tok)
    if "weights" in case and got.weights != case["weights"]:
        return _describe_mismatch("weights", case["weights"], got.weights, tok)
    return None


def run_checks(fixture_paths: list[Path], roots: list[Path]) -> Iterator[CaseResult]:
    for path in fixture_paths:
        data = json.loads(Path(path).read_text())
        tokenizers: dict[tuple[str, str], Tokenizer | None] = {}
        for n, case in enumerate(data["cases"]):
            label = case.get("name", case.get("prompt", ""))[:60]
            name = f"{Path(path).name}#{n} {case['model_type']}: {label!r}"
            vocab, key = case["tokenizer"], (case["tokenizer"], case["model_type"])
            if key not in tokenizers:  # added tokens differ per model type on one vocabulary
                file = find_vocabulary(data["tokenizers"][vocab], vocab, roots)
                template = get_template(case["model_type"])
                tokenizers[key] = load_tokenizer(file, template.added_tokens) if file else None
            tok = tokenizers[key]
            if tok is None:
                yield CaseResult(
                    name, "skip", f"vocabulary {vocab!r} not found (pass --shared DIR)"
                )
                continue
            try:
                problem = check_case(case, tok)
            except Exception as exc:  # a template that no longer renders is a failure, not a crash
                problem = f"{type(exc).__name__}: {exc}"
            yield CaseResult(name, "fail" if problem else "pass", problem or "")
