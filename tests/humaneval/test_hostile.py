"""Hostile HumanEval samples: forgeries of a verdict score 0, floods and junk fail only the sample.

Every forging sample below returns a *wrong* answer and tries to make it count anyway, with a
trick RL-trained models are known to find. The verdict is reached outside the sandbox by
comparing output values, so each must fail.
"""

from __future__ import annotations

import sys

import pytest

from ocx.benchmarks.humaneval_exec import check_many, check_program

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox relies on Linux namespaces"),
    pytest.mark.bwrap,
]

PROMPT = 'def add(xs):\n    """Sum of xs."""\n'
CANONICAL = "    return sum(xs)\n"
PROBLEM = {
    "task_id": "test/add",
    "prompt": PROMPT,
    "canonical_solution": CANONICAL,
    "entry_point": "add",
    "base_input": [[[1, 2]], [[]]],
    "plus_input": [[[5, -5, 7]], [list(range(100))]],
    "atol": 0,
}

FORGERIES = {
    "always_true_eq": "    class Yes:\n        def __eq__(self, other):\n"
    "            return True\n"
    "        __hash__ = object.__hash__\n    return Yes()\n",
    "int_subclass_eq": "    class Int(int):\n        def __eq__(self, other):\n"
    "            return True\n"
    "        __hash__ = int.__hash__\n    return Int(-1)\n",
    "pass_record_on_every_fd": (
        "    import os, json\n"
        "    for fd in range(64):\n"
        "        for line in (['end', 'base', 'exit'], {'base': 'pass', 'plus': 'pass'},"
        " ['out', 0, 3, 0.0]):\n"
        "            try:\n                os.write(fd, (json.dumps(line) + '\\n').encode())\n"
        "            except OSError:\n                pass\n"
        "    return -1\n"
    ),
    "report_through_getframe": (
        "    import sys\n    frame = sys._getframe()\n"
        "    while frame is not None:\n"
        "        for name in ('report', '_emit', 'emit'):\n"
        "            fn = frame.f_globals.get(name)\n"
        "            if callable(fn):\n"
        "                for i in range(4):\n                    fn(['out', i, 'pass', 0.0])\n"
        "        frame = frame.f_back\n"
        "    return -1\n"
    ),
    "patch_the_checker": (
        "    import sys\n    frame = sys._getframe()\n"
        "    while frame is not None:\n"
        "        g = frame.f_globals\n"
        "        for name in ('encode', '_matches', 'judge_part', 'output_matches', '_equal'):\n"
        "            if name in g:\n                g[name] = lambda *a, **k: True\n"
        "        frame = frame.f_back\n"
        "    return -1\n"
    ),
    "copy_the_canonical_solution": (
        "    import gc\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, str) and 'return sum(xs)' in obj and obj is not None:\n"
        "            ns = {}\n"
        "            exec('def add(xs):\\n' + obj.split('def add(xs):')[-1], ns)\n"
        "            return ns['add'](xs)\n"
        "    return -1\n"
    ),
    "exit_before_comparison": "    import os\n    os._exit(0)\n",
    "disable_the_alarm_and_sleep": (
        "    import signal, time\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    time.sleep(120)\n    return sum(xs)\n"
    ),
}

JUNK = {
    "flood_the_channel": "    import os\n    for fd in range(3, 64):\n        try:\n"
    "            while True:\n                os.write(fd, b'x' * (1 << 20))\n"
    "        except OSError:\n            pass\n    return sum(xs)\n",
    "deeply_nested_json_on_the_channel": "    import os\n    for fd in range(3, 64):\n"
    "        try:\n"
    "            os.write(fd, b'[' * 1000000 + b'\\n')\n"
    "        except OSError:\n            pass\n    return sum(xs)\n",
    "invalid_utf8_on_the_channel": "    import os\n    for fd in range(3, 64):\n        try:\n"
    "            os.write(fd, b'\\xff\\xfe[\"out\", 0, 3, 0]\\n')\n"
    "        except OSError:\n            pass\n    return sum(xs)\n",
    "deeply_nested_return_value": "    x = []\n    for _ in range(100000):\n"
    "        x = [x]\n    return x\n",
    "cyclic_return_value": "    x = []\n    x.append(x)\n    return x\n",
    "huge_return_value": "    return 'x' * (512 << 20)\n",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_a_forged_verdict_with_a_wrong_answer_scores_zero(name):
    result = check_program(PROMPT + FORGERIES[name], PROBLEM)
    assert not result.passed_base and not result.passed_plus, (name, result)


def test_junk_on_the_channel_fails_only_that_sample_and_every_check_finishes():
    names = sorted(JUNK)
    jobs = [(PROMPT + JUNK[n], PROBLEM) for n in names] + [(PROMPT + CANONICAL, PROBLEM)]
    results = check_many(jobs, workers=2)
    for name, result in zip(names, results):
        assert not result.passed_base and result.failure and len(result.failure["error"]) <= 300, (
            name,
            result,
        )
    assert results[-1].passed_plus, results[-1]


def test_a_correct_sample_that_writes_to_its_own_stdout_and_stderr_still_passes():
    noisy = (
        "    import os, sys\n    os.write(1, b'debug')\n    os.write(2, b'warn')\n"
        "    print('hi')\n    return sum(xs)\n"
    )
    assert check_program(PROMPT + noisy, PROBLEM).passed_plus


def test_float_tolerance_is_sticky_for_the_rest_of_a_run_as_in_evalplus():
    prompt = "def f(l):\n"
    problem = {
        "task_id": "test/f",
        "prompt": prompt,
        "entry_point": "f",
        "atol": 0,
        "canonical_solution": "    return [[x + 1 for x in l]] if len(l) > 1 else float(l[0])\n",
        "base_input": [[[0.5]], [[1.0, 2.0]]],
        "plus_input": [[[2.0]], [[0.1, 0.7]]],
    }
    # Input 1 expects a nested list (not "all floats"), answered 1e-9 off: it passes only
    # because input 0 expected a float, which switched the run to EvalPlus's 1e-6 tolerance.
    answer = prompt + "    return [[x + 1 + 1e-9 for x in l]] if len(l) > 1 else float(l[0])\n"
    result = check_program(answer, problem)
    assert (result.base, result.plus) == ("pass", "pass"), result
    reordered = {
        **problem,
        "base_input": problem["base_input"][::-1],
        "plus_input": problem["plus_input"][::-1],
    }
    result = check_program(answer, reordered)
    assert (result.base, result.plus) == ("fail", "fail"), result
