"""Load a tokenizer for a model type, refusing one that does not belong to it.

A wrong tokenizer is the costliest silent mistake in fine-tuning: a Llama 2 vocabulary under an
openchat_3.5 (Mistral) template tokenizes without any error and trains a model on IDs that mean
other words. Two checks catch it before any work: the template's end-of-turn token must exist,
and a probe text must encode to the IDs the template's base vocabulary gives (recorded from the
vocabulary files in ../shared/tokenizers; vocabularies without a probe skip the second check).
"""

from __future__ import annotations

from pathlib import Path

from ocx.harness.errors import InputError, InputProblem
from ocx.harness.templates import ChatTemplate
from ocx.harness.tokenizers import Tokenizer, load_tokenizer

PROBE_TEXT = "Hello world"
VOCABULARY_PROBES = {
    "mistral-v1": [22557, 1526],
    "llama2": [15043, 3186],
    "llama3": [9906, 1917],
}


def _load(path: str | Path, template: ChatTemplate) -> tuple[Tokenizer | None, str | None]:
    if not str(path).strip():
        return None, "empty path: give a tokenizer.model file or a Hugging Face tokenizer folder"
    if not Path(path).exists():
        return None, "tokenizer not found"
    try:
        return load_tokenizer(path, template.added_tokens), None
    except FileNotFoundError as exc:
        return None, str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # noqa: BLE001 - sentencepiece, tiktoken and tokenizers each raise their own types
        detail = " ".join(str(exc).split())[:200]
        return None, f"not a readable tokenizer ({type(exc).__name__}: {detail})"


def tokenizer_problem(
    path: str | Path, template: ChatTemplate
) -> tuple[Tokenizer | None, str | None]:
    """(tokenizer, None) when `path` is a tokenizer of `template`'s vocabulary, else (None, why)."""
    tok, problem = _load(path, template)
    if problem:
        return None, problem
    vocabulary = template.base_vocabulary
    if tok.special_id(template.eot_token) is None:
        return None, (
            f"has no {template.eot_token!r} token, the end of turn of {template.name}: "
            f"not the {vocabulary} vocabulary this model type uses"
        )
    expected = VOCABULARY_PROBES.get(vocabulary)
    if expected is not None:
        got = tok.encode_text(PROBE_TEXT)
        if got != expected:
            return None, (
                f"encodes {PROBE_TEXT!r} as {got}, but the {vocabulary} vocabulary of "
                f"{template.name} gives {expected}: tokenizer and model type do not match"
            )
    return tok, None


def load_checked_tokenizer(
    path: str | Path, template: ChatTemplate, field: str = "--tokenizer"
) -> Tokenizer:
    """`load_tokenizer` for `template`, or InputError naming the path and its option."""
    tok, problem = tokenizer_problem(path, template)
    if problem:
        raise InputError(InputProblem(str(path) or "''", None, field, problem))
    return tok
