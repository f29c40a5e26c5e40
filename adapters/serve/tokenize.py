"""vLLM's tokenizer endpoints: `POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info`.

lm-eval's `local-completions` probes them (its default `tokenizer_backend="auto"`) and, when
they answer, tokenizes through the server: its token IDs are then ocx's exact ones, and it
needs no tokenizer files of its own. As in vLLM (Hugging Face's `encode`), special-token text
in a prompt here is that special token (`"</s>"` is the end-of-text ID): lm-eval finds the
EOS and BOS IDs by encoding their text. Chat and completions prompts keep such text plain.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ocx.adapters.serve.chat import resolve_name
from ocx.adapters.serve.model import ServedModel
from ocx.adapters.serve.protocol import ApiError, DetokenizeRequest, TokenizeRequest
from ocx.harness.tokenizers import Tokenizer


@lru_cache(maxsize=8)
def _special_pattern(tokenizer: Tokenizer) -> re.Pattern | None:
    specials = sorted(tokenizer.specials, key=len, reverse=True)  # the longest match wins
    return re.compile("|".join(map(re.escape, specials))) if specials else None


def encode_with_specials(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token IDs of `text`, special-token text becoming its special token."""
    pattern = _special_pattern(tokenizer)
    if pattern is None:
        return tokenizer.encode_text(text)
    ids, start = [], 0
    for match in pattern.finditer(text):
        if match.start() > start:
            ids += tokenizer.encode_text(text[start : match.start()])
        ids.append(tokenizer.specials[match.group()])
        start = match.end()
    if start < len(text):
        ids += tokenizer.encode_text(text[start:])
    return ids


def _check_model(model: ServedModel, requested: str | None) -> None:
    if requested is not None:
        resolve_name(model, requested)


def tokenize(request: TokenizeRequest, model: ServedModel) -> dict:
    _check_model(model, request.model)
    tokenizer = model.tokenizer
    ids = encode_with_specials(tokenizer, request.prompt)
    bos = tokenizer.special_id(tokenizer.bos_token) if tokenizer.bos_token else None
    if request.add_special_tokens and bos is not None:
        ids.insert(0, bos)
    return {
        "count": len(ids),
        "max_model_len": model.context_length,
        "tokens": ids,
        "token_strs": None,
    }


def detokenize(request: DetokenizeRequest, model: ServedModel) -> dict:
    _check_model(model, request.model)
    vocab = model.tokenizer.vocab_size
    bad = next((t for t in request.tokens if not 0 <= t < vocab), None)
    if bad is not None:
        raise ApiError(
            400,
            f"token ID {bad} is outside the vocabulary (0 to {vocab - 1})",
            param="tokens",
            code="invalid_token_id",
        )
    return {"prompt": model.tokenizer.decode(request.tokens)}


def tokenizer_info(model: ServedModel) -> dict:
    tokenizer = model.tokenizer
    return {
        "tokenizer_class": type(tokenizer).__name__,
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "pad_token": None,
        "model_max_length": model.context_length,
        "vocab_size": tokenizer.vocab_size,
    }
