"""Log-probabilities in OpenAI's two response shapes, from the engine's `TokenLogprob`s.

* Chat completions: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}`.
* Legacy completions (vLLM's `/v1/completions`): `{"tokens", "token_logprobs", "top_logprobs",
  "text_offset"}`, where `top_logprobs[i]` maps token strings to log-probabilities and holds the
  chosen token besides the `logprobs` likeliest ones, and the first echoed prompt token has
  `null` entries (it has no context). lm-eval's `local-completions` reads exactly this.

A token's `bytes` are its own bytes in the vocabulary (a sentencepiece byte-fallback piece
`<0xE2>` is the one byte 0xE2), so a character split over several tokens is the concatenation
of their `bytes`; its `token` string is those bytes as text, an incomplete UTF-8 sequence
written as `\\xe2` escapes. Log-probabilities that are not finite (a masked token's -inf) are
reported as -9999.0, as vLLM does: JSON has no infinities.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from ocx.harness.logprobs import TokenLogprob
from ocx.harness.tokenizers import Tokenizer

FLOOR = -9999.0
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def finite(logprob: float) -> float:
    """`logprob` as JSON can carry it: -inf and NaN become vLLM's floor."""
    value = float(logprob)
    return value if math.isfinite(value) else FLOOR


@lru_cache(maxsize=8)
def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, character to byte (the inverse of `bytes_to_unicode`)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


class TokenTexts:
    """Each token's own bytes and display string, per tokenizer, cached by token ID."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._bytes: dict[int, bytes] = {}

    def bytes_of(self, token_id: int) -> bytes:
        cached = self._bytes.get(token_id)
        if cached is None:
            cached = self._bytes[token_id] = self._token_bytes(token_id)
        return cached

    def text_of(self, token_id: int) -> str:
        return self.bytes_of(token_id).decode("utf-8", errors="backslashreplace")

    def _token_bytes(self, token_id: int) -> bytes:
        tok = self.tokenizer
        sp = getattr(tok, "sp", None)  # SentencePieceTokenizer
        if sp is not None and 0 <= token_id < sp.vocab_size():
            piece = sp.id_to_piece(token_id)
            byte = _BYTE_PIECE.fullmatch(piece) if sp.is_byte(token_id) else None
            return (
                bytes([int(byte.group(1), 16)])
                if byte
                else piece.replace("\u2581", " ").encode("utf-8")
            )
        enc = getattr(tok, "enc", None)  # TiktokenTokenizer
        if enc is not None:
            try:
                return enc.decode_single_token_bytes(token_id)
            except (KeyError, ValueError):
                pass
        rust = getattr(tok, "tok", None)  # HFJsonTokenizer (byte-level BPE)
        if rust is not None:
            piece = rust.id_to_token(token_id)
            table = _byte_level_decoder()
            if piece is not None and all(c in table for c in piece):
                return bytes(table[c] for c in piece)
        return tok.decode([token_id]).encode("utf-8")


@lru_cache(maxsize=8)
def token_texts(tokenizer: Tokenizer) -> TokenTexts:
    return TokenTexts(tokenizer)


def chat_entry(texts: TokenTexts, token: TokenLogprob, top: int) -> dict:
    """One `choices[].logprobs.content` item, with the `top` likeliest alternatives."""
    return {
        "token": texts.text_of(token.token_id),
        "logprob": finite(token.logprob),
        "bytes": list(texts.bytes_of(token.token_id)),
        "top_logprobs": [
            {"token": texts.text_of(i), "logprob": finite(lp), "bytes": list(texts.bytes_of(i))}
            for i, lp in token.top[:top]
        ],
    }


def chat_logprobs(
    texts: TokenTexts, tokens: list[TokenLogprob] | tuple[TokenLogprob, ...], top: int
) -> dict:
    return {"content": [chat_entry(texts, t, top) for t in tokens]}


def legacy_logprobs(
    texts: TokenTexts,
    token_ids: list[int],
    logprobs: list[TokenLogprob | None],
    offsets: list[int],
    top: int,
) -> dict:
    """vLLM's legacy shape for `token_ids` (aligned with `logprobs` and character `offsets`)."""
    tokens, token_logprobs, top_logprobs = [], [], []
    for token_id, entry in zip(token_ids, logprobs, strict=True):
        tokens.append(texts.text_of(token_id))
        if entry is None:
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        token_logprobs.append(finite(entry.logprob))
        # The chosen token first, then the likeliest ones: lm-eval's greedy test compares the
        # chosen log-probability with the largest value here.
        step = {texts.text_of(entry.token_id): finite(entry.logprob)}
        for alt_id, alt_lp in entry.top[:top]:  # two IDs with one string: the larger value stands
            key = texts.text_of(alt_id)
            step[key] = max(step.get(key, FLOOR), finite(alt_lp))
        top_logprobs.append(step)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": list(offsets),
    }
