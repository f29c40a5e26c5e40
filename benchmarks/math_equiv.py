"""The ocx matcher's math answer equivalence: normalise, split, compare exactly, then sympy.

``math_equal(pred, gold)`` accepts the forms the same value takes in model answers and MATH
solutions: ``\\frac{1}{2}``, ``\\dfrac12``, ``1/2``, ``0.5``; ``10\\%``; ``5\\text{ cm}``, ``5 cm``;
``x = 3``; ``90^\\circ``; ``1,000``; ``\\sqrt{2}/2`` vs ``\\frac{\\sqrt2}{2}``; tuples and
intervals (brackets must agree, elements in order); sets and bare lists of solutions (any order).
Symbolic comparisons run in :mod:`ocx.benchmarks.sympy_worker` under a time limit; a timeout
counts as "not equal" and never hangs the run.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from fractions import Fraction

from ocx.benchmarks.sympy_worker import DEFAULT_TIMEOUT_S, default_worker

log = logging.getLogger(__name__)

_DROP = [
    r"\left",
    r"\right",
    r"\!",
    r"\,",
    r"\;",
    r"\:",
    r"\displaystyle",
    r"\$",
    "$",
    "~",
]  # "\$" before "$"
_UNIT_WORDS = r"(?:[a-zA-Z]+(?:\^\d)?\s*)+"


def _unwrap_text(s: str) -> str:
    # "\text{(C)}" -> "(C)", "\textbf{x}" -> "x", "\mbox{cm}" -> "cm"
    return re.sub(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}", r"\1", s)


def normalize_math(text: str) -> str:
    """A canonical string for a math answer (no sympy): same string => same answer."""
    s = " ".join(text.split())  # newlines and runs of spaces (MATH has "square\nunits")
    for token in _DROP:
        s = s.replace(token, "")
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    s = re.sub(r"\^\s*\{?\\circ\}?|°", "", s)
    s = s.replace(r"\%", "").replace("%", "").strip().rstrip(".")
    # Units written as trailing \text{ cm} / \mbox{ units} after a value.
    s = re.sub(r"(?<=\S)\s*\\(?:text|mbox)\{\s*[a-zA-Z][a-zA-Z ^\d]*\}\s*$", "", s)
    s = _unwrap_text(s)
    s = s.strip().rstrip(".").strip()
    # A plain number followed by unit words: "5 cm", "12 square inches".
    m = re.fullmatch(r"(-?[\d.,/]+)\s+" + _UNIT_WORDS, s)
    if m:
        s = m.group(1)
    # "x = 5", "k=3": keep the value (short left-hand sides only, as Hendrycks' normaliser).
    if s.count("=") == 1 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1]
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)  # \frac12
    s = re.sub(r"\\sqrt\s*(\d+|[a-z])", r"\\sqrt{\1}", s)  # \sqrt2
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s.replace(" ", "")):
        s = s.replace(",", "")
    s = s.replace(" ", "")
    if s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]):
        s = s[1:-1]
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _split_top(s: str) -> list[str]:
    """Split on commas not nested in brackets or braces."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return [p for p in parts if p]


def _structure(s: str) -> tuple[str, list[str]]:
    """(kind, elements): kind is "set" (unordered), "(]"-style brackets (ordered) or "" (single)."""
    if s.startswith(r"\{") and s.endswith(r"\}"):
        return "set", _split_top(s[2:-2])
    if (
        len(s) > 2
        and s[0] in "(["
        and s[-1] in ")]"
        and _balanced(
            s[1:-1].replace("(", "{").replace(")", "}").replace("[", "{").replace("]", "}")
        )
    ):
        inner = _split_top(s[1:-1])
        if len(inner) > 1:
            return s[0] + s[-1], inner
    parts = _split_top(s)
    return ("set" if len(parts) > 1 else ""), parts


def _as_fraction(s: str) -> Fraction | None:
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s)
    try:
        if m:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) else value
        if re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)(/\d+)?", s):
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _element_equal(a: str, b: str, timeout: float) -> bool:
    if a == b:
        return True
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    try:
        return bool(
            default_worker().call("ocx.benchmarks.math_sympy", "sympy_equal", (a, b), timeout)
        )
    except TimeoutError:
        log.warning(
            "sympy comparison of %r and %r timed out after %g s; counted as not equal",
            a,
            b,
            timeout,
        )
        return False
    except RuntimeError as exc:
        log.debug("sympy could not compare %r and %r: %s", a, b, exc)
        return False


def math_equal(pred: str | None, gold: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when ``pred`` is the same mathematical answer as ``gold``."""
    if pred is None:
        return False
    a, b = normalize_math(pred), normalize_math(gold)
    if not a:
        return False
    if a == b or a.lower() == b.lower():
        return True
    kind_a, elems_a = _structure(a)
    kind_b, elems_b = _structure(b)
    if kind_a != kind_b or len(elems_a) != len(elems_b):
        return False
    if kind_a != "set":
        return all(_element_equal(x, y, timeout) for x, y in zip(elems_a, elems_b))
    if Counter(elems_a) == Counter(elems_b):
        return True
    # Unordered: greedy matching is exact here because equality of values is transitive.
    remaining = list(elems_b)
    for x in elems_a:
        match = next((i for i, y in enumerate(remaining) if _element_equal(x, y, timeout)), None)
        if match is None:
            return False
        remaining.pop(match)
    return True
