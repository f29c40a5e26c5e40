"""The ocx matcher's answer extraction: pure functions over a model's response text.

They find the answer a chat model actually gave, in the forms such models use ("The answer is
(B).", "**Answer: B**", "(B) Cranial", "I pick option C", "（B）", "not A but C", ``#### 42``,
``\\boxed{...}``, "$1,234 dollars", "twelve"), and return None when there is none. They never
fall back to a default guess: a response without a recognisable answer is *unmatched* and
scored wrong. ``tests/benchmarks/response_table.py`` holds the realistic responses (with the
answer each one meant) that these rules are measured against.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from ocx.benchmarks.extract_number import (  # noqa: F401  (re-exported: the suites import them from here)
    NUMBER,
    extract_number,
    format_number,
    numbers_equal,
    parse_number,
    strip_markup,
)

# "the answer is", "The correct answer is:", "Answer:", "**Answer**: ", "final answer would be" ...
# A bare "answer" ("to answer this", "answers") is not a marker: a connector must follow.
_ANSWER_PHRASE = re.compile(
    r"\b(?:answer(?:\s+choice)?|(?:correct|right|best)\s+(?:option|choice)|choice\s+is|option\s+is)[*_]*"
    r"(?:\s*(?:is|was|would\s+be|will\s+be|should\s+be|must\s+be|=|:|-|—)(?![\w]))+[*_]*\s*(?:[:=]\s*)?",
    re.IGNORECASE,
)


def answer_phrases(response: str) -> list[tuple[int, str]]:
    """(position, text after the phrase up to the end of its line) for every answer phrase."""
    found = []
    for m in _ANSWER_PHRASE.finditer(response):
        rest = response[m.end() :].split("\n", 1)[0]
        if not strip_markup(rest).strip() and m.end() < len(response):
            # "The answer is:\n\n**(B)**": the answer sits on the next non-empty line.
            following = [ln for ln in response[m.end() :].split("\n") if strip_markup(ln).strip()]
            rest = following[0] if following else ""
        found.append((m.start(), rest))
    return found


# Compiled once at import: extraction runs per answer (thousands per run), and passing pattern
# strings to re.sub/re.finditer costs a cache lookup in `re` each call.
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LATEX_BOXED = re.compile(r"\\boxed\s*\{([^{}]*)\}")
_EMPHASIS = re.compile(r"[*_`$#]+")


def _normalize(text: str) -> str:
    """Full-width forms to ASCII ("（Ｂ）" -> "(B)"); markdown emphasis, LaTeX wrappers dropped."""
    text = unicodedata.normalize("NFKC", text)
    text = _LATEX_TEXT.sub(r"\1", text)
    text = _LATEX_BOXED.sub(r"\1", text)
    return _EMPHASIS.sub("", text)


def _letter_token(letters: str) -> str:
    """One option letter: "(B)", "(b)", "[B]", "B)", "B." or a bare capital "B" that is a word.

    Case matters here (the lead phrases around it are case-insensitive): a bare lowercase "a" is
    an article, so lowercase letters count only in brackets, before ")" or ending a line.
    """
    upper = "".join(sorted({x for x in letters if "A" <= x <= "Z"}))
    lower, ending = upper.lower(), upper.lower().replace("a", "").replace("i", "")
    if not upper:
        return r"(?!x)x"
    token = (
        rf"[(\[]\s*(?P<p>[{upper}{lower}])\s*[)\]]"
        rf"|(?P<b>[{upper}])(?![\w'’])|(?P<l>[{lower}])(?=\))"
    )
    return f"(?:{token}|(?P<e>[{ending}])(?=\\s*[.!]?\\s*(?:$|\\n)))" if ending else f"(?:{token})"


def _hit(m: re.Match) -> str:
    return (m.group("p") or m.group("b") or m.group("l") or m.groupdict().get("e")).upper()


# (lead, strict): phrases that introduce the chosen letter. A strict lead ("so", "it is") needs
# punctuation or the end of the line after the letter, so "So A is wrong" is not a choice of A.
_LEADS = [
    # "the answer is (B)", "Answer: B) ...", "The correct option is C", "answer choice: (D)"
    (
        r"\b(?:answer(?:\s+choice)?|(?:correct|right|best)\s+(?:option|choice|letter|one)|choice|option)"
        r"(?:\s*(?:is|was|would\s+be|will\s+be|should\s+be|must\s+be|=|:|-|—)(?!\w))+"
        r"\s*(?:probably|likely|definitely|clearly|therefore|thus)?\s*[:,]?\s*(?:option|choice|letter)?\s*",
        False,
    ),
    # "I pick option B", "I'd go with (C)", "I will choose D", "my choice is A"
    (
        r"\b(?:i(?:'d|'ll|\s+would|\s+will|\s+should)?\s+(?:pick|choose|select|go\s+with|opt\s+for)"
        r"|(?:my|final)\s+(?:answer|choice|pick|selection|verdict)\s+(?:is|would\s+be))\s*:?\s*(?:option|choice|letter)?\s*",
        False,
    ),
    # "I believe it is (B)", "it's C.", "so it must be (D)"
    (
        r"\b(?:it|this|that)(?:\s+is|'s|\s+must\s+be|\s+would\s+be|\s+should\s+be)\s+(?:option\s+)?",
        True,
    ),
    # "Therefore, (B).", "So: C"
    (r"\b(?:so|thus|therefore|hence)\s*[,:]?\s*(?:option\s+)?", True),
    # "not A but C"
    (
        r"\bnot\s+(?:option\s+)?\(?[A-Za-z]\)?(?:\s*\([^()]{0,40}\))?\s*,?\s*but\s+(?:rather\s+)?(?:option\s+)?",
        False,
    ),
]
_AFTER = {False: r"(?=[\s.,;:!?)\]'\"]|$)", True: r"(?=\s*(?:[.,;:!)\]]|$|\n))"}
# After the letter: "(C) is correct", "C is the right answer", "Option B is the best choice".
_CORRECT_AFTER = (
    r"(?i:\s*(?:is|would\s+be|seems)\s+(?:the\s+)?(?:most\s+)?(?:correct|right|best|true|accurate)\b"
    r"|\s+is\s+the\s+answer\b)"
)
_MORE_LETTERS = r"(?i:\s*(?:,|/|&|\band\b|\bor\b)\s*(?:option\s+)?){token}"


_NEGATED_BEFORE = re.compile(r"(?i:\b(?:not|if|whether)\s+(?:option\s+)?)$")
_BRACKETED_AT_START = re.compile(r"\s*[(\[]\s*([A-Za-z])\s*[)\]]")


@functools.lru_cache(maxsize=256)
def _letter_patterns(
    letters: str,
) -> tuple[tuple[re.Pattern, ...], re.Pattern, re.Pattern, re.Pattern]:
    """The letter rules compiled for one set of option letters (suites reuse a handful of sets):
    (one pattern per lead, more letters after a hit, "(C) is correct", a letter at the start)."""
    token = _letter_token(letters)
    leads = tuple(re.compile(f"(?i:{lead})" + token + _AFTER[strict]) for lead, strict in _LEADS)
    return (
        leads,
        re.compile(_MORE_LETTERS.format(token=token)),
        re.compile(r"(?i:(?:option\s+|choice\s+)?)" + token + _CORRECT_AFTER),
        re.compile(
            r"\s*(?:option\s+|choice\s+)?" + token + r"(?=\s*(?:[.):\]]|[-–—]\s|$|\n))",
            re.IGNORECASE,
        ),
    )


def _mentions(text: str, letters: str) -> list[tuple[int, str | None]]:
    """(position, letter) for every place the text says a letter is the answer; None = ambiguous."""
    leads, more_letters, correct_after, _ = _letter_patterns(letters)
    found: list[tuple[int, str | None]] = []
    for lead in leads:
        for m in lead.finditer(text):
            ambiguous = more_letters.match(text[m.end() :])
            found.append((m.start(), None if ambiguous else _hit(m)))
    for m in correct_after.finditer(text):
        if not _NEGATED_BEFORE.search(text[max(0, m.start() - 12) : m.start()]):
            found.append((m.start(), _hit(m)))
    return found


def _letter_at_start(text: str, letters: str) -> str | None:
    """A response that begins with its choice: "(B) Cranial", "B", "B.", "B)", "[B]", "B: ...",
    "Option B"."""
    m = _letter_patterns(letters)[3].match(text)
    if m is None:
        m = _BRACKETED_AT_START.match(text)
        return m.group(1).upper() if m and m.group(1).upper() in letters else None
    return _hit(m) if _hit(m) in letters else None


_BOLD_LETTER = re.compile(r"\*\*\s*\(?([A-Z])\)?[.:]?\s*\*\*")
_ONLY_A_LETTER = re.compile(r"\s*[(\[]?\s*[A-Za-z]\s*[)\].]?\s*")
_PARENTHESISED = re.compile(r"\(([A-Z])\)")
_PARENTHESISED_WRONG = re.compile(
    r"\(([A-Z])\)\s*(?:is|seems|would be)\s+(?:wrong|incorrect|false)"
)


def extract_letter(response: str, letters: str) -> str | None:
    """The option letter (one of ``letters``) a response chose, or None.

    In order: the last place the text says which letter is the answer ("the answer is (B)",
    "I pick option C", "(C) is correct", "not A but C"; two letters there, "A or B", make it
    unmatched); a response that starts with its letter ("(B) Cranial", "B"); a last line that is
    only a letter; the last bold letter ("**(B)**"); the only distinct parenthesised capital in
    the response. Negated letters ("the answer is not A", "A is wrong") are never chosen.
    """
    letters = "".join(x for x in letters if "A" <= x <= "Z")
    bold = [m.group(1) for m in _BOLD_LETTER.finditer(response) if m.group(1) in letters]
    text = _normalize(response)
    mentions = [
        (pos, letter)
        for pos, letter in _mentions(text, letters)
        if letter is None or letter in letters
    ]
    if mentions:
        return max(mentions, key=lambda m: m[0])[1]
    for candidate in (text, _last_line(text)):
        letter = _letter_at_start(candidate, letters)
        if letter and (candidate is text or _ONLY_A_LETTER.fullmatch(candidate)):
            return letter
    if bold:
        return bold[-1]
    parenthesised = {m.group(1) for m in _PARENTHESISED.finditer(text) if m.group(1) in letters}
    negated = {m.group(1) for m in _PARENTHESISED_WRONG.finditer(text)}
    chosen = parenthesised - negated
    return chosen.pop() if len(chosen) == 1 and len(parenthesised) <= 2 else None


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().split("\n") if ln.strip()]
    return lines[-1] if lines else ""


_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> tuple[int, str] | None:
    """(position, content) of the last ``\\boxed{...}`` or ``\\fbox{...}``, braces balanced."""
    starts = list(_BOX_OPEN.finditer(text))
    for m in reversed(starts):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return m.start(), text[m.end() : i - 1].strip()
    return None


_REASON_OR_NEXT_SENTENCE = re.compile(r",?\s+(?:because|since|as|given that)\b|\s+\(|[.!]\s+[A-Z]")
_FINAL_STOP = re.compile(r"[.!]\s*$")


def extract_phrase(response: str) -> str | None:
    """The free-form answer after the last answer phrase ("So the answer is No."), or None.

    A reason after the answer ("Yes, because ...") is not part of it.
    """
    for _, rest in reversed(answer_phrases(response)):
        text = _normalize(rest).strip()
        text = _REASON_OR_NEXT_SENTENCE.split(text, maxsplit=1)[0]
        text = text.strip().strip("\"'“”").strip()
        text = _FINAL_STOP.sub("", text).strip().strip("\"'“”").strip()
        if text:
            return text
    return None
