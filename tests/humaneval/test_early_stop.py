"""A run stops at its first wrong output (EvalPlus's ``fast_check``), judged outside the sandbox.

The trusted parent parses and judges a run's stream piece by piece as it arrives
(``StreamParser`` with a ``PartJudge`` per part); at the first wrong output it has the sandbox
kill the run. These tests pin down that the piecewise parse is the whole-stream parse, that
the stop comes exactly at the output ``judge_part`` fails (so a verdict never changes), that a
stopped job leaves the reused sandbox working, and that wrong programs stop costing time.
"""

from __future__ import annotations

import json
import random
import sys
import time

import pytest

from ocx.benchmarks.humaneval_compare import (
    ExpectedOutputs,
    Malformed,
    PartJudge,
    StreamParser,
    judge_part,
    parse_stream,
)

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="the sandbox relies on Linux namespaces"
)


def _frames(*frames) -> bytes:
    return b"".join(json.dumps(f, separators=(",", ":")).encode() + b"\n" for f in frames)


def _expected(*values) -> ExpectedOutputs:
    return ExpectedOutputs([json.dumps(v, separators=(",", ":")).encode() for v in values])


STREAM = (
    _frames(
        ["part", "base"],
        ["out", 0, 1, 0.1],
        ["out", 1, {"t": [1, 2]}, 0.2],
        ["out", 2, 0.5, 0.0],
        ["end", "base", "exit"],
        ["part", "plus"],
        ["out", 0, "x" * 5000, 1e-05],
        ["err", 1, "ValueError: no"],
    )
    + b'["end","plus","exit"]'
)  # the last line lacks its newline
EXPECTED = {"base": _expected(1, {"t": [1, 2]}, 0.5), "plus": _expected("x" * 5000, "y")}


def _summary(parts):
    return [(p.name, [repr(o) for o in p.outputs], p.times, p.error, p.ended) for p in parts]


@pytest.mark.parametrize("seed", range(8))
def test_a_stream_fed_in_any_pieces_parses_as_the_whole_stream_does(seed):
    rng = random.Random(seed)
    raw = {name: e.raw for name, e in EXPECTED.items()}
    cuts = (
        sorted(rng.sample(range(1, len(STREAM)), 12)) if seed else list(range(1, len(STREAM)))
    )  # 0: byte by byte
    parser = StreamParser(["base", "plus"], raw)
    for start, end in zip([0, *cuts], [*cuts, len(STREAM)]):
        assert parser.feed(STREAM[start:end]) is False
    assert _summary(parser.close()) == _summary(parse_stream(STREAM, ["base", "plus"], raw))


def test_an_empty_or_broken_stream_is_malformed_fed_whole_or_in_pieces():
    for data in (b"", b"\n", b'["part","base"]\nnot json\n'):
        with pytest.raises(Malformed):
            parse_stream(data, ["base"])
        parser = StreamParser(["base"])
        for byte in range(len(data)):
            parser.feed(data[byte : byte + 1])
        with pytest.raises(Malformed):
            parser.close()


def test_the_parser_asks_to_stop_at_the_first_wrong_output_exactly_where_judge_part_fails():
    expected, inputs = _expected(1, 2, 3, 4), [[0]] * 4
    lines = _frames(
        ["part", "base"],
        ["out", 0, 1, 0.0],
        ["out", 1, 2, 0.0],
        ["out", 2, 99, 0.0],
        ["out", 3, 4, 0.0],
    ).splitlines(keepends=True)
    parser = StreamParser(
        ["base"], {"base": expected.raw}, {"base": PartJudge(expected, inputs, 0, "f")}
    )
    asks = [parser.feed(line) for line in lines]
    assert asks == [False, False, False, True, True] and parser.wrong == "base"
    status, why = judge_part(parser.close()[0], expected, inputs, 0, "f")
    assert (status, why["input"]) == ("fail", 2)


def test_a_malformed_line_asks_to_stop_and_the_sample_fails():
    parser = StreamParser(["base"], None, {"base": PartJudge(_expected(1), [[0]], 0, "f")})
    assert parser.feed(b'["part","base"]\n["out",0,{"forged":1},0.0]\n') is True
    with pytest.raises(Malformed):
        parser.close()


def test_the_sticky_float_tolerance_carries_across_pieces_so_a_close_float_is_not_a_stop():
    # The first expected output is all floats (tolerance becomes 1e-6); the candidate's first output
    # is byte-identical (never decoded), its second is off by 1e-9: EvalPlus passes it, so no stop.
    expected = _expected(0.5, 1.0)
    parser = StreamParser(
        ["base"], {"base": expected.raw}, {"base": PartJudge(expected, [[0], [1]], 0, "f")}
    )
    assert parser.feed(_frames(["part", "base"], ["out", 0, 0.5, 0.0])) is False
    assert parser.feed(_frames(["out", 1, 1.000000001, 0.0])) is False
    assert judge_part(parser.close()[0], expected, [[0], [1]], 0, "f") == ("pass", None)


@linux_only
@pytest.mark.bwrap
def test_a_stopped_job_is_killed_at_once_and_the_same_sandbox_runs_the_next_job():
    from ocx.harness.sandbox import SandboxLimits
    from ocx.harness.sandbox_worker import SandboxWorker

    limits = SandboxLimits(timeout_s=30, cpu_seconds=30, memory_bytes=1 << 30)
    slow = "import os, time\nos.write(1, b'wrong\\n')\ntime.sleep(25)\nos.write(1, b'late\\n')"
    with SandboxWorker() as worker:
        start = time.monotonic()
        run = worker.run(slow, b"", limits, watch=lambda chunk: b"wrong" in chunk)
        assert run.status == "stopped" and run.stdout == b"wrong\n", run
        assert time.monotonic() - start < 15, "the stop must not wait for the job"
        sandbox = worker._proc.pid
        # A stop that arrives after its job ended is stale: the next job must not be killed by it.
        quick = worker.run(
            "import os\nos.write(1, b'done\\n')", b"", limits, watch=lambda chunk: True
        )
        after = worker.run("import os, time\ntime.sleep(0.5)\nos.write(1, b'fine')", b"", limits)
        assert quick.status in ("ok", "stopped") and (after.status, after.stdout) == (
            "ok",
            b"fine",
        ), after
        assert worker._proc.pid == sandbox, "a stop must not cost a new sandbox"


@linux_only
@pytest.mark.bwrap
def test_a_program_wrong_on_its_first_input_stops_at_once_and_its_plus_part_still_runs():
    from ocx.benchmarks.humaneval_exec import check_program

    # Base: wrong on the first input, then 0.8 s per input (each under its 1 s limit):
    # 5.6 s if run out.
    # Plus: right. EvalPlus fails base at input 0 and still runs plus, which passes.
    problem = {
        "prompt": "def add(xs):\n",
        "canonical_solution": "    return sum(xs)\n",
        "entry_point": "add",
        "base_input": [[[1, 2]]] + [[[i]] for i in range(7)],
        "plus_input": [[[5, 6]], [[7]]],
        "atol": 0,
    }
    program = (
        "import time\ndef add(xs):\n    if xs == [1, 2]:\n        return -1\n"
        "    if len(xs) == 1 and xs[0] < 7:\n        time.sleep(0.8)\n    return sum(xs)\n"
    )
    result = check_program(program, problem)
    assert (result.base, result.plus) == ("fail", "pass"), result
    assert result.failure == {"part": "base", "input": 0, "error": "wrong output"}
    assert result.wall_s < 4.5, f"the wrong run was not stopped: {result.wall_s} s"
