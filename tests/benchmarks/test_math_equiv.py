from __future__ import annotations

import threading
import time

import pytest

from ocx.benchmarks.math_equiv import math_equal, normalize_math
from ocx.benchmarks.sympy_worker import SympyWorker


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("0.5", r"\frac{1}{2}"),
        (r"\dfrac{1}{2}", r"\frac12"),
        ("1/2", r"\frac{1}{2}"),
        (r"\tfrac{3}{4}", "0.75"),
        (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}"),
        (r"\sqrt{3}/2", r"\frac{\sqrt{3}}{2}"),
        (r"2\pi", r"\pi \cdot 2"),
        (r"\frac{x+1}{2}", r"\frac{1}{2}x+\frac12"),
        (r"10\%", "10"),
        (r"5\text{ cm}", "5"),
        ("12 square inches", "12"),
        ("x = 3", "3"),
        (r"90^\circ", "90"),
        ("1,000", "1000"),
        (r"\$18.90", "18.90"),
        (r"\text{(C)}", "(C)"),
        ("(1, 2)", "(1,2)"),
        (r"(-\infty, 3]", r"(-\infty,3]"),
        (r"\{1, 2\}", r"\{2,1\}"),
        ("2, -1", "-1,2"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    ],
)
def test_equivalent_math_answers_are_equal(pred, gold):
    assert math_equal(pred, gold, timeout=10)


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("3", "4"),
        ("0.3333", r"\frac{1}{3}"),
        (r"(-\infty, 3)", r"(-\infty, 3]"),
        ("(1, 2)", "(2, 1)"),
        ("1, 2", "(1, 2)"),
        (r"\{1, 2\}", r"\{1, 2, 3\}"),
        (r"\sqrt{2}", "1.414"),
        ("", "0"),
        (None, "0"),
        ("__import__('os').system('true')", "0"),
    ],
)
def test_different_math_answers_are_not_equal(pred, gold):
    assert not math_equal(pred, gold, timeout=10)


def test_normalisation_is_plain_string_work():
    assert normalize_math(r"  \left(\dfrac12\right) \text{ units}.") == r"(\frac{1}{2})"


def test_a_pathological_expression_times_out_cleanly_and_the_worker_recovers():
    worker = SympyWorker()
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            worker.call("ocx.benchmarks.math_sympy", "sympy_equal", ("2^(2^(2^(2^100)))", "1"), 1.0)
        assert time.monotonic() - start < 30
        assert (
            worker.call("ocx.benchmarks.math_sympy", "sympy_equal", (r"\sqrt{4}", "2"), 30) is True
        )
    finally:
        worker.close()


def test_math_equal_counts_a_timeout_as_not_equal_from_a_non_main_thread():
    results = []
    thread = threading.Thread(
        target=lambda: results.append(math_equal("2^(2^(2^(2^100)))", "1", timeout=1.0))
    )
    thread.start()
    thread.join(60)
    assert results == [False]
