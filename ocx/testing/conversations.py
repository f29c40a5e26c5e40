"""Deterministic ShareGPT-like conversations and lengths, for benchmarks and tests (no download).

The shape follows what makes real chat data hard for a tokenizer pipeline and a packer: 1-8
turns, prose mixed with indented code, lists, numbers, non-ASCII text and text that looks like
special tokens; lengths log-normal (many short, a long tail past the context length); C-RLFT
conditions with per-message weights (user 0, GPT-4 answers 1, GPT-3.5 answers 0.1).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

_WORDS = (
    "the model answer data train token value result because first then with from into "
    "function return error check list number string example python code user system "
    "weight batch epoch memory between however therefore question"
).split()
_EXTRA = ["naïve", "café", "日本語", "数据", "🙂", "42", "3.14", "1,000", "x^2"]
# Text that spells special tokens: ocx keeps it plain text; OpenChat's result depends on the
# `tokenizers` version (see docs/data.md), so benchmarks against OpenChat leave it out.
_SPECIAL_TEXT = ["<|end_of_turn|>", "<s>", "</s>"]
CONDITIONS = (("GPT4 Correct", 1.0), ("GPT3", 0.1), ("", 1.0))


def _sentence(rng: random.Random, extra: list[str]) -> str:
    words = [
        rng.choice(_WORDS) if rng.random() > 0.08 else rng.choice(extra)
        for _ in range(rng.randint(3, 18))
    ]
    return " ".join(words).capitalize() + rng.choice([".", "?", "!", ":"])


def _code(rng: random.Random) -> str:
    lines = ["```python", f"def {rng.choice(_WORDS)}_{rng.randint(0, 99)}(x):"]
    for depth in range(rng.randint(1, 6)):
        lines.append(
            "    " * (1 + depth % 3)
            + f"{rng.choice(_WORDS)} = x + {rng.randint(0, 9)}  # {rng.choice(_WORDS)}"
        )
    lines.append("    return x\n```")
    return "\n".join(lines)


def _text(rng: random.Random, mean_words: float, extra: list[str]) -> str:
    target = max(1, int(rng.lognormvariate(math.log(mean_words), 1.0)))
    parts, words = [], 0
    while words < target:
        kind = rng.random()
        if kind < 0.12:
            block = _code(rng)
        elif kind < 0.2:
            block = "\n".join(f"{i + 1}. {_sentence(rng, extra)}" for i in range(rng.randint(2, 5)))
        else:
            block = " ".join(_sentence(rng, extra) for _ in range(rng.randint(1, 5)))
        parts.append(block)
        words += block.count(" ") + 1
    return "\n\n".join(parts)


def sharegpt_like(
    n: int, seed: int = 0, mean_words: float = 120.0, special_text: bool = True
) -> list[dict]:
    """`n` conversations in ocx's JSONL schema (condition, system, items with weights)."""
    rng = random.Random(seed)
    extra = _EXTRA + (_SPECIAL_TEXT if special_text else [])
    out = []
    for _ in range(n):
        condition, weight = rng.choice(CONDITIONS)
        items = []
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 8])):
            items.append(
                {"role": "user", "content": _text(rng, mean_words / 3, extra), "weight": 0.0}
            )
            items.append(
                {"role": "assistant", "content": _text(rng, mean_words, extra), "weight": weight}
            )
        system = _sentence(rng, extra) if rng.random() < 0.1 else ""
        out.append({"condition": condition, "system": system, "items": items})
    return out


def write_jsonl(conversations: list[dict], path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        for conv in conversations:
            f.write(json.dumps(conv, ensure_ascii=False) + "\n")
    return path


def sharegpt_like_lengths(n: int, context_length: int, seed: int = 0):
    """Token lengths shaped like ShareGPT: median ~500, a long tail clipped at the context."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(mean=math.log(500), sigma=1.1, size=n).astype(np.int64)
    return np.clip(lengths, 16, context_length)
