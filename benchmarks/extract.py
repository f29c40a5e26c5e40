"""The ocx matcher's answer extraction: pure functions over a model's response text.

They find the answer a chat model actually gave, in the forms such models use ("The answer is
(B).", "**Answer: B**", "(B) Cranial", ``#### 42``, ``\\boxed{...}``, "$1,234 dollars"), and return
None when there is none. They never fall back to a default guess: a response without a
recognisable answer is *unmatched* and scored wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# "the answer is", "The correct answer is:", "Answer:", "final answer is" ... (case-insensitive).
_ANSWER_PHRASE = re.compile(
    r"(?:\banswer\s*(?:is|would be|will be|should be)?\s*(?:[:=]|\bis\b)?|\bchoice\s+is|\boption\s+is)\s*[:=]?\s*",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"[*_`$]+")


def _strip_markup(text: str) -> str:
    """Drop markdown emphasis, backticks and inline-math dollars that wrap answers."""
    return _MARKUP.sub("", text)


def answer_phrases(response: str) -> list[tuple[int, str]]:
    """(position, text after the phrase up to the end of its line) for every answer phrase."""
    found = []
    for m in re.finditer(r"answer|choice\s+is|option\s+is", response, re.IGNORECASE):
        phrase = _ANSWER_PHRASE.match(response, m.start())
        if phrase is None:
            continue
        rest = response[phrase.end():].split("\n", 1)[0]
        if not rest.strip() and phrase.end() < len(response):
            # "The answer is:\n\n**(B)**": the answer sits on the next non-empty line.
            following = [ln for ln in response[phrase.end():].split("\n") if ln.strip()]
            rest = following[0] if following else ""
        found.append((m.start(), rest))
    return found


def _letter_at_start(text: str, letters: str) -> str | None:
    """The option letter a text begins with: "(B)", "B", "B.", "B)", "[B]", "**B**", "B:"."""
    text = _strip_markup(text).strip()
    m = re.match(r"^[\(\[]?([A-Z])(?:[\)\]]|(?=[\s.,:;!]|$))", text)
    if m and m.group(1) in letters:
        return m.group(1)
    return None


def extract_letter(response: str, letters: str) -> str | None:
    """The option letter (one of ``letters``) a response chose, or None.

    In order: the last answer phrase followed by a letter ("the answer is (B)", "Answer: **B**");
    a response that starts with the letter ("(B) Cranial", "B"); the last bold letter ("**(B)**");
    the only distinct parenthesised option letter in the whole response.
    """
    for _, rest in reversed(answer_phrases(response)):
        rest = re.sub(r"^\s*(?:option|choice|letter)\s+", "", _strip_markup(rest), flags=re.IGNORECASE)
        letter = _letter_at_start(rest, letters)
        if letter:
            return letter
    letter = _letter_at_start(response, letters)
    if letter:
        return letter
    bold = [m.group(1) for m in re.finditer(r"\*\*\s*\(?([A-Z])\)?[.:]?\s*\*\*", response) if m.group(1) in letters]
    if bold:
        return bold[-1]
    parenthesised = {m.group(1) for m in re.finditer(r"\(([A-Z])\)", response) if m.group(1) in letters}
    if len(parenthesised) == 1:
        return parenthesised.pop()
    return None


def last_boxed(text: str) -> tuple[int, str] | None:
    """(position, content) of the last ``\\boxed{...}`` or ``\\fbox{...}``, braces balanced."""
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for m in reversed(starts):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return m.start(), text[m.end():i - 1].strip()
    return None


# A number as models write it: optional sign and currency, thousands commas, decimals, fractions.
NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")


def parse_number(text: str) -> Fraction | None:
    """A number written with commas, currency, units or a trailing period, exactly, or None."""
    text = _strip_markup(text).strip().rstrip(".")
    m = NUMBER.search(text)
    if m is None:
        return None
    raw = m.group(0).replace("$", "").replace(",", "").replace(" ", "")
    try:
        if "/" in raw:
            num, den = raw.split("/")
            return Fraction(Decimal(num)) / Fraction(Decimal(den)) if Decimal(den) != 0 else None
        return Fraction(Decimal(raw))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None


def extract_number(response: str) -> str | None:
    """The final numeric answer of a worked solution, as a plain string, or None.

    Marked answers win, the last one in the text: ``#### 42``, ``\\boxed{42}``, "The answer is 42",
    "Answer: $42". Without a marker, a number in the last non-empty line counts (chat models
    often end with "So Janet makes $18 every day."), but a response whose last line has no
    number is unmatched rather than guessed from earlier working.
    """
    candidates: list[tuple[int, str]] = []
    candidates += [(m.start(), m.group(1)) for m in re.finditer(r"####\s*([^\n]+)", response)]
    boxed = last_boxed(response)
    if boxed:
        candidates.append(boxed)
    candidates += answer_phrases(response)
    for _, text in sorted(candidates, reverse=True):
        if parse_number(text) is not None:
            return _format_number(parse_number(text))
    lines = [ln for ln in response.strip().split("\n") if ln.strip()]
    if lines:
        numbers = [m.group(0) for m in NUMBER.finditer(_strip_markup(lines[-1]))]
        numbers = [n for n in numbers if parse_number(n) is not None]
        if numbers:
            return _format_number(parse_number(numbers[-1]))
    return None


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    return format(decimal.normalize(), "f") if Fraction(decimal) == value else f"{value.numerator}/{value.denominator}"


def numbers_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and x == y


def extract_phrase(response: str) -> str | None:
    """The free-form answer after the last answer phrase ("So the answer is No."), or None."""
    phrases = answer_phrases(response)
    for _, rest in reversed(phrases):
        text = _strip_markup(rest).strip().strip("\"'“”").strip()
        text = re.sub(r"[.!]\s*$", "", text).strip().strip("\"'“”").strip()
        if text:
            return text
    return None
