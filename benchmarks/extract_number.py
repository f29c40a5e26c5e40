"""Numbers as chat models write them: "1,000", "$1,000.50", "12.0", "1/2", "25%", "1e3", "twelve".

``parse_number`` reads one number exactly (a ``Fraction``); ``extract_number`` finds the final
answer of a worked solution (GSM8K). An answer marker that holds no readable number makes the
response *unmatched*: the number is never taken from earlier working ("In 2023 she had 18 cats.
The answer is twelve." is 12, not 18 or 2023).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# Optional sign and currency, thousands commas, decimals, exponent, or a fraction "3/4".
NUMBER = re.compile(
    r"(?<![\w.])-?\s?[$€£]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+(?![\w]))?(?:\s*/\s*\d+)?"
    r"|(?<![\w.])-?\.\d+"
)
_MARKUP = re.compile(r"[*_`]+|\\[()\[\]]|\\(?=\$)|\$(?!\s?\d)")
_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_WORD = "|".join([*_UNITS, *_TENS, *_SCALES, "a dozen", "dozen", "half"])
_WORDS = re.compile(rf"\b(?:(?:{_WORD})(?:[\s-]+(?:and\s+)?(?=(?:{_WORD})\b))?)+\b", re.IGNORECASE)
# The rest compiled once too: these run per answer, and pattern strings cost a lookup in re's cache.
_NOT_DIGITS = re.compile(r"[$€£,\s]")
_WORD_BREAK = re.compile(r"[\s-]+")
_SENTENCE_END = re.compile(r"(?<!\d)\.(?!\d)|\.\s|[;\n]")
_HEDGE = re.compile(
    r"^(?:about|approximately|around|roughly|exactly|only|just|a total of|of)\s+", re.I
)
_HASHES = re.compile(r"####\s*([^\n]+)")


def strip_markup(text: str) -> str:
    """Drop markdown emphasis, backticks, ``\\(``/``\\)`` and inline-math dollars around answers."""
    return _MARKUP.sub("", text)


def _to_fraction(raw: str) -> Fraction | None:
    raw = _NOT_DIGITS.sub("", raw)
    if raw.isascii() and raw.isdigit():
        # Most answers and every GSM8K label: the same value as through Decimal, 4x cheaper.
        return Fraction(int(raw))
    try:
        if "/" in raw:
            num, den = raw.split("/")
            return Fraction(Decimal(num)) / Fraction(Decimal(den)) if Decimal(den) != 0 else None
        return Fraction(Decimal(raw))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None


def words_to_number(text: str) -> int | None:
    """ "twelve" -> 12, "twenty-five" -> 25, "one hundred and five" -> 105, "a dozen" -> 12."""
    words = _WORD_BREAK.split(text.lower().replace(" and ", " ").strip())
    if words == ["a", "dozen"] or words == ["dozen"]:
        return 12
    total, current, seen = 0, 0, False
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total, current = total + (current or 1) * _SCALES[word], 0
        else:
            return None
        seen = True
    return total + current if seen else None


def parse_number(text: str) -> Fraction | None:
    """The first number in ``text`` (commas, currency, units, exponent, fraction) exactly, or
    None."""
    m = NUMBER.search(strip_markup(text))
    return _to_fraction(m.group(0)) if m else None


def _number_after_marker(text: str) -> Fraction | None:
    """The answer a marker introduces: "25 - 0 = 18" is 18, "twelve" is 12, "about 5 cm" is 5."""
    text = strip_markup(text).strip()
    # "The answer is 25 - 0 = 18": the value is the result of the expression, after the last "="
    # of the marker's sentence.
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0]
    if "=" in sentence:
        text = sentence.rsplit("=", 1)[1].strip()
    text = _HEDGE.sub("", text)
    number = NUMBER.match(text.lstrip(" :"))
    if number:
        return _to_fraction(number.group(0))
    spelled = _WORDS.match(text.lstrip(" :\"'“"))
    if spelled:
        value = words_to_number(spelled.group(0))
        return Fraction(value) if value is not None else None
    return None


def _markers(response: str) -> list[tuple[int, str]]:
    from ocx.benchmarks.extract import (
        answer_phrases,
        last_boxed,
    )  # the phrase rules live with the letters

    found = [(m.start(), m.group(1)) for m in _HASHES.finditer(response)]
    boxed = last_boxed(response)
    if boxed:
        found.append(boxed)
    return found + answer_phrases(response)


def extract_number(response: str) -> str | None:
    """The final numeric answer of a worked solution, as a plain string, or None.

    The last answer marker decides: ``#### 42``, ``\\boxed{42}``, "The answer is 42", "Answer: $42";
    if it holds no readable number the response is unmatched. Without any marker, the last number
    of the last non-empty line counts (chat models often end "So Janet makes $18 every day.").
    """
    markers = sorted(_markers(response), reverse=True)
    if markers:
        value = _number_after_marker(markers[0][1])
        return format_number(value) if value is not None else None
    lines = [ln for ln in response.strip().split("\n") if ln.strip()]
    if not lines:
        return None
    numbers = [_to_fraction(m.group(0)) for m in NUMBER.finditer(strip_markup(lines[-1]))]
    numbers = [n for n in numbers if n is not None]
    return format_number(numbers[-1]) if numbers else None


def format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    return (
        format(decimal.normalize(), "f")
        if Fraction(decimal) == value
        else f"{value.numerator}/{value.denominator}"
    )


def numbers_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and x == y
