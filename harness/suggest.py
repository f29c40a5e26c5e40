"""One "did you mean" for every name a user can mistype: commands, engines, suites, keys, values.

Every message that rejects a name ends the same way, `...; did you mean 'gsm8k'?`, so users
(and tests) see one wording whichever command or file the name came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: object, choices: Iterable[object], *, n: int = 3, cutoff: float = 0.6):
    """Up to `n` of `choices` closest to `name` (as strings), best first."""
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=cutoff)


def did_you_mean(
    name: object, choices: Iterable[object], *, n: int = 3, cutoff: float = 0.6
) -> str:
    """`"; did you mean 'a' or 'b'?"` to append to an error message, or "" when nothing is close.

    `n=1` names only the closest choice; `cutoff` is difflib's similarity ratio (0 to 1).
    """
    close = close_matches(name, choices, n=n, cutoff=cutoff)
    if not close:
        return ""
    return f"; did you mean {' or '.join(repr(c) for c in close)}?"


def unknown_name(kind: str, name: object, choices: Iterable[object], *, known: bool = True) -> str:
    """`"unknown engine 'vlm'; did you mean 'vllm'? (known: openai, transformers, vllm)"`.

    The one wording for a name that is not in `choices`; `known=False` leaves out the list
    (for long ones the caller shows elsewhere).
    """
    choices = [str(c) for c in choices]
    listed = f" (known: {', '.join(choices)})" if known and choices else ""
    return f"unknown {kind} {str(name)!r}{did_you_mean(name, choices)}{listed}"
