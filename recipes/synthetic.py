"""Synthetic C-RLFT data for the tiny demonstration recipe: single-digit addition.

Mixed quality, as in the C-RLFT paper's setting: one source answers correctly (the "expert",
e.g. condition GPT4, weight 1), another answers wrongly (the "weak" source, condition GPT3,
weight 0.1). A model trained with conditions should answer correctly when prompted with the
expert's condition and reproduce the weak source's mistakes under the weak one.
"""

from __future__ import annotations

import random

MAX_OPERAND = 9  # a, b in 0..9: 100 questions, learnable by a tiny model in minutes on a CPU


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def wrong_answer(a: int, b: int, rng: random.Random) -> int:
    """A plausible mistake: off by one or two, never negative, never the right answer."""
    return max(0, a + b + rng.choice((-2, -1, 1, 2))) if a + b >= 2 else a + b + rng.choice((1, 2))


def arithmetic_conversations(
    *, count: int, quality: str, condition: str, weight: float, seed: int
) -> list[dict]:
    """`count` conversations over random operand pairs, in OpenChat's JSONL schema."""
    rng = random.Random(f"{seed}-{quality}-{condition}")
    rows = []
    for _ in range(count):
        a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
        answer = a + b if quality == "correct" else wrong_answer(a, b, rng)
        rows.append(
            {
                "condition": condition,
                "system": "",
                "items": [
                    {"role": "user", "content": question(a, b), "weight": 0.0},
                    {"role": "assistant", "content": str(answer), "weight": weight},
                ],
            }
        )
    return rows
