"""Trusted side of HumanEval+ checking: decode what a sandbox wrote, compare as EvalPlus does.

Runs in the ocx process, never in a sandbox, and never runs code: a sandboxed run's stdout
is parsed strictly (:func:`parse_stream`) into plain values, and :func:`judge_part` compares
them with the expected outputs the way ``evalplus/eval/__init__.py`` (v0.3.1,
``unsafe_execute``) does:

* ``out == exp``, else, when the tolerance is non-zero, the same type, the same length and
  ``numpy.allclose(out, exp, rtol=1e-07, atol=atol)``;
* the tolerance is *sticky*: it starts as the problem's ``atol`` and becomes 1e-6 at the first
  input whose expected output is all floats, for the rest of that part (base or plus);
* ``find_zero`` (HumanEval/32) is judged by its polynomial: ``|poly(xs, out)| <= atol``.

The stream is JSON lines (see ``humaneval_check.py``); anything else in it (stray bytes,
invalid UTF-8, frames out of order, unknown tags, nesting past ``MAX_DEPTH``) makes the part
fail with a short reason. Nothing in the stream is a verdict.

Fast path: the expected outputs are kept as the exact bytes the producer wrote for them
(:class:`ExpectedOutputs`, decoded only when needed). An output frame whose value is
byte-for-byte the expected value's bytes is the same value after decoding, so it equals the
expected output (``out == exp``) without decoding either; the bytes compared are the
candidate's data, and the decision is made here. Values holding a NaN (never equal to
itself) and ``find_zero`` (judged by its polynomial) always take the full path, and so does
any frame that is not byte-identical (``1`` against ``1.0``, ``-0.0``, a forged ``{"i": ...}``):
it is parsed strictly and compared as EvalPlus does. On HumanEval+'s largest outputs (tens of
megabytes per problem) this skips parsing and walking millions of values per program.
"""

from __future__ import annotations

import array
import base64
import json
import math
import re
from dataclasses import dataclass, field

MAX_DEPTH = 120  # the producer nests at most 100 levels (plus its frame)
_TAGS = {"i", "f", "t", "d", "F", "M"}
_OUT_HEAD = re.compile(rb'\["out",(0|[1-9][0-9]*),')
_OUT_TAIL = re.compile(
    rb",(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\]"
)  # the time, then the frame's end
_NAN = b'{"f":"nan"}'


class _SameAsExpected:
    """An output whose bytes were those of the expected output (see the module docstring)."""

    def __repr__(self) -> str:
        return "SAME_AS_EXPECTED"


SAME_AS_EXPECTED = _SameAsExpected()


class Malformed(ValueError):
    """The stream is not what the harness writes."""


@dataclass
class PartOutputs:
    """What one part (base or plus) produced: values in input order, then how it ended."""

    name: str
    outputs: list = field(default_factory=list)
    times: list = field(default_factory=list)
    """Each output's seconds (the reference's; None where the frame gives none: a candidate's)."""
    error: str | None = None
    """The sample's own failure at input ``len(outputs)`` (an exception, a per-input timeout,
    an unserialisable output)."""
    ended: str | None = None
    """How the producer's child ended: "exit", "timeout", "died (...)", or None if never said."""


def decode(value, depth: int = 0):
    """A value in the restricted form, back to Python (int, float, str, bool, None, list, tuple,
    dict)."""
    if depth > MAX_DEPTH:
        raise Malformed("nested too deep")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TAGS:
        ((tag, inner),) = value.items()
        return _decode_tagged(tag, inner, depth)
    raise Malformed("unknown value form")


def _decode_tagged(tag: str, inner, depth: int):
    if tag == "i" and isinstance(inner, str):  # hex: linear to parse, whatever its length
        try:
            return int(inner, 16)
        except ValueError:
            raise Malformed("bad integer") from None
    if tag == "f" and inner in ("nan", "inf", "-inf"):
        return float(inner)
    if tag == "t" and isinstance(inner, list):
        return tuple(decode(v, depth + 1) for v in inner)
    if tag == "F" and isinstance(inner, str):
        return _doubles(inner).tolist()
    if tag == "M" and isinstance(inner, list) and len(inner) == 2:
        return _mixed_numbers(*inner)
    if tag == "d" and isinstance(inner, list):
        pairs = [decode(p, depth + 1) for p in inner]
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise Malformed("bad dict")
        try:
            return {k: v for k, v in pairs}
        except TypeError:
            raise Malformed("unhashable dict key") from None
    raise Malformed(f"bad {tag!r} value")


def _base64(text) -> bytes:
    if not isinstance(text, str):
        raise Malformed("bad blob")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error
        raise Malformed("bad blob") from None


def _doubles(text) -> array.array:
    """A blob of float64 values (``humaneval_check._number_blob``: the machine's own byte order)."""
    data = _base64(text)
    if len(data) % 8:
        raise Malformed("bad blob")
    values = array.array("d")
    values.frombytes(data)
    return values


def _mixed_numbers(blob, mask_text) -> list:
    """A list of ints and floats: the values' blob, and one mask byte per value (1: an int,
    which its float64 must hold exactly)."""
    values, mask = _doubles(blob).tolist(), _base64(mask_text)
    if len(mask) != len(values) or mask.translate(None, b"\0\1"):
        raise Malformed("bad blob mask")
    numbers = []
    for value, is_int in zip(values, mask):
        if is_int:
            if not (math.isfinite(value) and value.is_integer()):
                raise Malformed("bad int in blob")
            value = int(value)
        numbers.append(value)
    return numbers


class ExpectedOutputs:
    """A part's expected outputs as the producer's bytes per value, decoded on first use.

    ``raw[i]`` is None where the fast path must not be used (the value holds a NaN)."""

    def __init__(self, raw: list[bytes], decoded: list | None = None) -> None:
        self.raw = [None if _NAN in value else value for value in raw]
        self._raw = raw
        self._decoded: dict[int, object] = dict(enumerate(decoded)) if decoded is not None else {}

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index: int):
        if index not in self._decoded:
            self._decoded[index] = decode(json.loads(self._raw[index]))
        return self._decoded[index]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


def _fast_output(raw: bytes, index: int, expected: list | None) -> float | None | bool:
    """If frame ``raw`` is ``["out",index,<expected bytes>]``: None, the time it gives in
    ``["out",index,<expected bytes>,<time>]``; else False (not this fast path)."""
    if expected is None or index >= len(expected) or expected[index] is None:
        return False
    head = b'["out",%d,' % index
    value = expected[index]
    end = len(head) + len(value)
    if not raw.startswith(head) or not raw.startswith(value, len(head)):
        return False
    if len(raw) == end + 1 and raw.endswith(b"]"):
        return None
    tail = _OUT_TAIL.fullmatch(raw, end)
    return False if tail is None else float(tail[1])


def raw_outputs(data: bytes, parts: list[str]) -> dict[str, PartOutputs]:
    """A stream this process has already parsed in full (``parse_stream``) before storing it, read
    again without decoding: each part's outputs as the bytes of each value. Raises ``Malformed``."""
    found: dict[str, PartOutputs] = {}
    current: PartOutputs | None = None
    for number, raw in enumerate(_lines(data)):
        head = _OUT_HEAD.match(raw)
        if head is not None:
            cut = raw.rfind(b",")
            tail = _OUT_TAIL.fullmatch(raw, cut)
            if (
                current is None
                or tail is None
                or int(head[1]) != len(current.outputs)
                or cut < head.end()
            ):
                raise Malformed(f"line {number + 1}: bad output")
            current.outputs.append(raw[head.end() : cut])
            current.times.append(float(tail[1]))
            continue
        frame = _frame(raw, number)
        if frame[0] == "part" and current is None and len(frame) == 2 and frame[1] in parts:
            current = found[frame[1]] = PartOutputs(frame[1])
        elif (
            frame[0] == "end"
            and current is not None
            and frame[1:2] == [current.name]
            and len(frame) == 3
        ):
            current.ended, current = str(frame[2])[:100], None
        elif frame[0] == "err" and current is not None:
            current.error = str(frame[2] if len(frame) > 2 else "")[:300]
        else:
            raise Malformed(f"line {number + 1}: unexpected frame")
    return found


def parse_stream(
    data: bytes, parts: list[str], expected: dict[str, list] | None = None
) -> list[PartOutputs]:
    """The parts in ``data``; raises ``Malformed`` for anything the harness would not write.

    With ``expected`` (a part's ``ExpectedOutputs.raw``), an output whose bytes are the expected
    value's is recorded as ``SAME_AS_EXPECTED`` instead of being decoded."""
    parser = StreamParser(parts, expected)
    parser.feed(data)
    return parser.close()


class StreamParser:
    """``parse_stream`` fed piece by piece, as a sandboxed run writes its stream, judging each
    output as it arrives (``judges``: a :class:`PartJudge` per part name).

    :meth:`feed` says when the rest of the run cannot change its verdict: an output was judged
    wrong (``wrong`` names its part; EvalPlus's ``fast_check`` stops a run there too) or the
    stream is malformed (the whole sample fails). The caller may then stop the run; nothing is
    sent into the sandbox but that. The final word is :func:`judge_part` on :meth:`close`'s parts,
    which fails the part at that same output."""

    def __init__(
        self,
        parts: list[str],
        expected: dict[str, list] | None = None,
        judges: dict[str, PartJudge] | None = None,
    ) -> None:
        self.parts, self.expected, self.judges = parts, expected or {}, judges or {}
        self.found: list[PartOutputs] = []
        self.current: PartOutputs | None = None
        self.wrong: str | None = None
        self.error: Malformed | None = None
        self._pending: list[bytes] = []  # pieces of a line whose newline has not arrived
        self._lines = 0
        self._newline_last = False

    def feed(self, data: bytes) -> bool:
        """Parse what ``data`` completes; True once the run may be stopped (see the class
        docstring)."""
        if data and self.error is None:
            self._newline_last = data.endswith(b"\n")
            try:
                self._feed(data)
            except Malformed as exc:
                self.error = exc
        return self.error is not None or self.wrong is not None

    def close(self) -> list[PartOutputs]:
        """The parts (a last line without its newline counts, as in ``parse_stream``); raises
        ``Malformed``."""
        if self.error is None and not self._newline_last:  # also when nothing was written: "empty"
            line, self._pending = b"".join(self._pending), []
            try:
                self._line(line)
            except Malformed as exc:
                self.error = exc
        if self.error is not None:
            raise self.error
        if self.current is not None:
            self.found.append(self.current)  # the producer itself was killed (or stopped) mid-part
            self.current = None
        return self.found

    def _feed(self, data: bytes) -> None:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._pending:
                self._pending.append(data[start:end])
                line, self._pending = b"".join(self._pending), []
            else:
                line = data[start:end]
            self._line(line)
            start = end + 1
        if start < len(data):
            self._pending.append(data[start:])

    def _line(self, raw: bytes) -> None:
        number, self._lines = self._lines, self._lines + 1
        current = self.current
        if current is not None and current.error is None:
            seconds = _fast_output(raw, len(current.outputs), self.expected.get(current.name))
            if seconds is not False:
                current.outputs.append(SAME_AS_EXPECTED)
                current.times.append(seconds)
                self._judge(current)
                return
        frame = _frame(raw, number)
        kind = frame[0]
        if kind == "part":
            if (
                current is not None
                or len(self.found) >= len(self.parts)
                or frame[1:] != [self.parts[len(self.found)]]
            ):
                raise Malformed(f"line {number + 1}: unexpected part start")
            self.current = PartOutputs(self.parts[len(self.found)])
        elif current is None:
            raise Malformed(f"line {number + 1}: {kind!r} outside a part")
        elif kind == "end":
            if frame[1:2] != [current.name] or len(frame) != 3 or not isinstance(frame[2], str):
                raise Malformed(f"line {number + 1}: bad end")
            current.ended = frame[2][:100]
            self.found.append(current)
            self.current = None
        else:
            _add_output(current, frame, number)
            if kind == "out":
                self._judge(current)

    def _judge(self, part: PartOutputs) -> None:
        judge = self.judges.get(part.name)
        if judge is not None and not judge.take(part.outputs[-1]) and self.wrong is None:
            self.wrong = part.name


def _frame(raw: bytes, number: int) -> list:
    if not raw:
        raise Malformed(f"line {number + 1}: empty")
    try:
        frame = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed(f"line {number + 1}: not JSON ({type(exc).__name__})") from None
    if not isinstance(frame, list) or not frame or frame[0] not in ("part", "end", "out", "err"):
        raise Malformed(f"line {number + 1}: not a frame")
    return frame


def _add_output(part: PartOutputs, frame: list, number: int) -> None:
    if (
        part.error is not None
        or len(frame) < 3
        or frame[1] != len(part.outputs)
        or type(frame[1]) is not int
    ):
        raise Malformed(f"line {number + 1}: output out of order")
    if frame[0] == "err":
        if len(frame) != 3 or not isinstance(frame[2], str):
            raise Malformed(f"line {number + 1}: bad error")
        part.error = frame[2][:300]
        return
    timed = len(frame) == 4 and isinstance(frame[3], (int, float)) and type(frame[3]) is not bool
    if len(frame) != 3 and not timed:
        raise Malformed(f"line {number + 1}: bad output")
    part.outputs.append(decode(frame[2]))
    part.times.append(float(frame[3]) if timed else None)


def is_floats(x) -> bool:
    """EvalPlus's ``is_floats``: a float, or a non-empty list/tuple of floats only."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def poly(xs: list, x: float) -> float:
    """EvalPlus's ``_poly`` oracle for HumanEval/32."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def _allclose(out, exp, atol: float) -> bool:
    import numpy as np  # only when a tolerance is in play

    try:
        return bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
    except Exception:  # ragged lists, strings...: numpy refuses, EvalPlus's assert fails
        return False


def _equal(out, exp) -> bool:
    try:
        return bool(out == exp)
    except RecursionError:
        return False


def output_matches(out, exp, inp, atol: float, entry_point: str) -> tuple[bool, float]:
    """(matches, the tolerance for the next input): one step of EvalPlus's loop."""
    if entry_point == "find_zero":
        try:
            return abs(poly(*inp, out)) <= atol, atol
        except Exception:
            return False, atol
    exact = _equal(out, exp)
    if atol == 0 and is_floats(exp):
        atol = 1e-6  # sticky for the rest of the part, as in EvalPlus
    if exact or atol == 0:
        return exact, atol
    if type(out) is not type(exp) or (isinstance(exp, (list, tuple)) and len(out) != len(exp)):
        return False, atol
    return _allclose(out, exp, atol), atol


class PartJudge:
    """EvalPlus's loop over one part's outputs, taking them one at a time in input order: each
    output is compared with its expected output, the sticky tolerance carried from one to the
    next. Used by :func:`judge_part` and, while a run streams, by :class:`StreamParser`."""

    def __init__(self, expected, inputs: list, atol: float, entry_point: str) -> None:
        self.expected, self.inputs, self.atol, self.entry_point = (
            expected,
            inputs,
            atol,
            entry_point,
        )
        self.taken = 0
        self.wrong_at: int | None = None
        self._scanned = 0

    def take(self, out) -> bool:
        """False if ``out`` (the output for the next input) is wrong, or an earlier one was.

        An output ``SAME_AS_EXPECTED`` matches; the sticky tolerance still counts the expected
        outputs it skipped, looked at (decoded) only when a later output is not the same.
        Outputs past the last input are not looked at (EvalPlus stops at its last input)."""
        if self.wrong_at is not None:
            return False
        index, self.taken = self.taken, self.taken + 1
        if index >= len(self.expected) or out is SAME_AS_EXPECTED:
            return True
        if self.atol == 0 and any(is_floats(self.expected[k]) for k in range(self._scanned, index)):
            self.atol = 1e-6  # set by an expected output the fast path skipped
        ok, self.atol = output_matches(
            out, self.expected[index], self.inputs[index], self.atol, self.entry_point
        )
        self._scanned = index + 1
        if not ok:
            self.wrong_at = index
        return ok


def judge_part(
    got: PartOutputs, expected, inputs: list, atol: float, entry_point: str
) -> tuple[str, dict | None]:
    """("pass" | "fail" | "timeout", failure or None), EvalPlus's statuses: a sample's own
    error or per-input timeout is "fail"; a run that stops without one is "timeout"."""
    judge = PartJudge(expected, inputs, atol, entry_point)
    for index in range(len(expected)):
        if index >= len(got.outputs):
            if got.error is not None:
                return "fail", {"input": index, "error": got.error}
            # EvalPlus reports a run that ends without a status (killed, exited early) as a timeout.
            return "timeout", {"input": index, "error": f"no output ({got.ended or 'killed'})"}
        if not judge.take(got.outputs[index]):
            return "fail", {"input": index, "error": "wrong output"}
    return "pass", None
