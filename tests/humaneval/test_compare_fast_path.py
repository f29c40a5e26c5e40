"""The byte-identical fast path of the trusted comparison (benchmarks/humaneval_compare.py) gives
the same verdicts as decoding every value, and the producer's bulk encoding writes the same bytes
as item-by-item encoding. Pure Python: no sandbox runs here."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from ocx.benchmarks.humaneval_compare import (
    SAME_AS_EXPECTED,
    ExpectedOutputs,
    Malformed,
    judge_part,
    parse_stream,
    raw_outputs,
)

PRODUCER = (
    resources.files("ocx.benchmarks").joinpath("humaneval_check.py").read_text(encoding="utf-8")
)


def _producer() -> dict:
    namespace: dict = {"__name__": "producer_under_test"}
    exec(compile(PRODUCER, "humaneval_check.py", "exec"), namespace)
    return namespace


def _frame(index: int, value, seconds: float = 1e-05) -> bytes:
    return json.dumps(["out", index, value, seconds], separators=(",", ":")).encode()


def _stream(*values, part: str = "base") -> bytes:
    lines = [b'["part","%s"]' % part.encode()] + [_frame(i, v) for i, v in enumerate(values)]
    return b"\n".join(lines + [b'["end","%s","exit"]' % part.encode()]) + b"\n"


def _expected(*values) -> ExpectedOutputs:
    return ExpectedOutputs(raw_outputs(_stream(*values), ["base"])["base"].outputs)


def _judge(stream: bytes, expected: ExpectedOutputs, atol: float = 0, entry: str = "f") -> str:
    part = parse_stream(stream, ["base"], {"base": expected.raw})[0]
    return judge_part(part, expected, [[0]] * len(expected), atol, entry)[0]


def test_an_output_with_the_expected_bytes_is_matched_without_being_decoded():
    big = list(range(100_000))
    part = parse_stream(_stream(big, "x"), ["base"], {"base": _expected(big, "x").raw})[0]
    assert part.outputs == [SAME_AS_EXPECTED, SAME_AS_EXPECTED]
    assert part.times == [1e-05, 1e-05]


@pytest.mark.parametrize(
    "got, expected, verdict",
    [
        ([1, 2], [1.0, 2.0], "pass"),  # equal in Python though not byte-identical
        ([True], [1], "pass"),  # EvalPlus's out == exp
        ([1, 3], [1, 2], "fail"),
        ([[1, 2]], [{"t": [1, 2]}], "fail"),  # a list is not a tuple
    ],
)
def test_outputs_that_are_not_byte_identical_are_judged_by_value_as_evalplus_does(
    got, expected, verdict
):
    assert _judge(_stream(*got), _expected(*expected)) == verdict


def test_an_expected_nan_is_never_matched_by_its_bytes():
    nan = {"f": "nan"}
    expected = _expected(nan)
    assert expected.raw == [None]
    assert _judge(_stream(nan), expected) == "fail"  # nan != nan, as in EvalPlus


def test_the_sticky_tolerance_counts_expected_floats_the_fast_path_skipped():
    expected = _expected(0.5, 2.0)
    assert (
        _judge(_stream(0.5, 2.0 + 1e-9), expected) == "pass"
    )  # 1e-6 set by input 0, matched by its bytes
    assert _judge(_stream(0.5, 2.0 + 1e-3), expected) == "fail"
    assert _judge(_stream(1, 2 + 1e-9), _expected(1, 2)) == "fail"  # no float expected: exact only


@pytest.mark.parametrize("forged_tail", [b",1,0.1]", b",0.1] ", b",0.1]]", b"]]", b"] ", b',"x"]'])
def test_bytes_after_a_matching_value_are_parsed_strictly_not_taken_as_a_match(forged_tail):
    line = b'["out",0,[1,2]' + forged_tail
    stream = b'["part","base"]\n' + line + b'\n["end","base","exit"]\n'
    try:
        part = parse_stream(stream, ["base"], {"base": _expected([1, 2]).raw})[0]
    except Malformed:
        return
    assert part.outputs != [SAME_AS_EXPECTED]


def test_a_candidates_frame_without_its_time_matches_by_its_bytes_too():
    stream = b'["part","base"]\n["out",0,[1,2]]\n["out",1,[1,3]]\n["end","base","exit"]\n'
    expected = _expected([1, 2], [1, 2])
    part = parse_stream(stream, ["base"], {"base": expected.raw})[0]
    assert part.outputs == [SAME_AS_EXPECTED, [1, 3]] and part.times == [None, None]
    assert _judge(stream, expected) == "fail"


def test_a_matching_frame_after_the_samples_error_is_out_of_order():
    stream = b'["part","base"]\n["err",0,"boom"]\n' + _frame(1, 7) + b'\n["end","base","exit"]\n'
    with pytest.raises(Malformed):
        parse_stream(stream, ["base"], {"base": _expected(3, 7).raw})


@pytest.mark.parametrize(
    "value",
    [
        [1, 2.5, True, None, "s"],
        [2**53, 1],
        [-(2**53) + 1],
        [float("nan"), 1],
        [float("inf")],
        [10**400, 1.0],
        [],
        (1, 2.5),
        (),
        [[1], [2]],
        [1.5, 2**53],
        [1e300, 3],
        list(range(-5, 5)) * 1000,
    ],
)
def test_bulk_encoding_of_flat_lists_writes_what_item_by_item_encoding_writes(value):
    producer = _producer()
    bulk = json.dumps(producer["encode"](value), separators=(",", ":"), allow_nan=False)
    items = [producer["encode"](v, 1) for v in value]
    one_by_one = json.dumps(
        items if type(value) is list else {"t": items}, separators=(",", ":"), allow_nan=False
    )
    assert bulk == one_by_one


def test_bulk_encoding_still_refuses_subclasses_hidden_in_a_list():
    producer = _producer()

    class Sneaky(int):
        def __eq__(self, other):
            return True

    with pytest.raises(producer["Unserialisable"]):
        producer["encode"]([1, Sneaky(2)])


def test_an_integer_of_millions_of_digits_is_decoded_not_called_malformed():
    from ocx.benchmarks.humaneval_compare import decode

    huge = (1 << (1 << 24)) - 1  # HumanEval/160's canonical solution returns integers this size
    assert decode({"i": format(huge, "x")}) == huge


@pytest.mark.parametrize(
    "value",
    [
        [i / 7 for i in range(100)],
        [1, 3] + [1 + i / 2 for i in range(2, 50)],  # HumanEval/130's shape: ints, then floats
        [-0.0, 0.0] * 10,
        [5e-324, 1.7976931348623157e308] * 8,
        [2**53 - 1] + [0.5] * 20,  # the largest int written as is
    ],
)
def test_long_number_lists_with_floats_go_as_exact_blobs(value):
    from ocx.benchmarks.humaneval_compare import decode

    encoded = _producer()["encode"](value)
    assert set(encoded) <= {"F", "M"}
    back = decode(json.loads(json.dumps(encoded)))
    assert [(type(v), repr(v)) for v in back] == [(type(v), repr(v)) for v in value]


@pytest.mark.parametrize(
    "value",
    [[2**53 + 1] + [0.5] * 20, [float("nan")] + [0.5] * 20, [float("inf")] * 20, [0.5] * 15],
)
def test_lists_a_blob_cannot_hold_exactly_stay_json(value):
    from ocx.benchmarks.humaneval_compare import decode

    encoded = _producer()["encode"](value)
    assert isinstance(encoded, list)
    assert repr(decode(json.loads(json.dumps(encoded)))) == repr(value)


@pytest.mark.parametrize(
    "forged",
    [
        {"F": "!!!!"},
        {"F": "AAAAAAAAAA=="},  # 7 bytes: not whole float64s
        {"F": 5},
        {"M": ["AAAAAAAA4D8=", "AQ=="]},  # 0.5 marked as an int
        {"M": ["AAAAAAAA8H8=", "AQ=="]},  # inf marked as an int
        {"M": ["AAAAAAAA4D8=", "AAE="]},  # one value, two mask bytes
        {"M": ["AAAAAAAA4D8=", "Ag=="]},  # a mask byte that is neither 0 nor 1
        {"M": ["AAAAAAAA4D8="]},
    ],
)
def test_a_forged_number_blob_is_malformed(forged):
    from ocx.benchmarks.humaneval_compare import decode

    with pytest.raises(Malformed):
        decode(forged)
