"""harness/stats.py against hand-computed values and scipy/numpy reference computations."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ocx.harness.stats import (
    Z95,
    accuracy_interval,
    binomial_two_sided_p,
    bootstrap_ratio,
    clustered_stderr,
    mcnemar_exact,
    mean_stderr,
    paired_bootstrap,
    paired_test,
    wilson_interval,
)


def test_stderr_of_seven_correct_in_ten_is_the_lm_eval_value_computed_by_hand():
    values = [1] * 7 + [0] * 3
    # sample variance: (7 * 0.3^2 + 3 * 0.7^2) / 9 = 2.1 / 9; stderr = sqrt(2.1 / 9 / 10)
    assert mean_stderr(values) == pytest.approx(math.sqrt(2.1 / 90), rel=1e-12)


def test_stderr_matches_numpy_sample_std_over_sqrt_n():
    rng = random.Random(0)
    values = [rng.random() for _ in range(333)]
    assert mean_stderr(values) == pytest.approx(
        np.std(values, ddof=1) / math.sqrt(len(values)), rel=1e-12
    )


def test_stderr_of_a_single_item_is_unknown_not_zero():
    assert mean_stderr([1]) is None
    assert accuracy_interval([1]).stderr is None


def test_clustered_stderr_with_one_item_per_cluster_equals_the_plain_stderr():
    values = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1]
    assert clustered_stderr(values, list(range(len(values)))) == pytest.approx(
        mean_stderr(values), rel=1e-12
    )


def test_clustered_stderr_matches_the_cr1_formula_computed_by_hand():
    values = [1, 1, 1, 0, 0, 0, 1, 0]
    clusters = ["p1", "p1", "p1", "p2", "p2", "p2", "p3", "p3"]
    mean = 0.5
    residual_sums = [3 * (1 - mean), 3 * (0 - mean), (1 - mean) + (0 - mean)]  # 1.5, -1.5, 0
    expected = math.sqrt(3 / 2 * sum(s * s for s in residual_sums)) / 8
    assert clustered_stderr(values, clusters) == pytest.approx(expected, rel=1e-12)


def test_questions_on_one_passage_that_agree_widen_the_interval():
    # 40 passages of 5 questions each, every passage all right or all wrong: 40 draws, not 200
    values = [1.0 if p % 2 else 0.0 for p in range(40) for _ in range(5)]
    clusters = [p for p in range(40) for _ in range(5)]
    plain, clustered = accuracy_interval(values), accuracy_interval(values, clusters)
    assert clustered.method == "clustered" and clustered.clusters == 40
    assert clustered.stderr > 2 * plain.stderr
    assert clustered.ci95[1] - clustered.ci95[0] > 2 * (plain.ci95[1] - plain.ci95[0])


def test_wilson_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 5), (5, 5), (7, 10), (571, 1000), (1, 14042)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(k, n)
        assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-9), (k, n)


def test_a_perfect_score_on_five_items_still_has_a_wide_interval():
    interval = accuracy_interval([1, 1, 1, 1, 1])
    assert interval.estimate == 1.0 and interval.ci95[1] == 1.0
    assert interval.ci95[0] < 0.6


def test_mcnemar_exact_p_matches_scipy_binomtest_on_the_discordant_pairs():
    stats = pytest.importorskip("scipy.stats")
    for only_a, only_b in [(0, 0), (1, 0), (3, 9), (10, 10), (40, 62), (1200, 1290), (0, 17)]:
        a = [1] * only_a + [0] * only_b + [1] * 5 + [0] * 4
        b = [0] * only_a + [1] * only_b + [1] * 5 + [0] * 4
        test = mcnemar_exact(a, b)
        expected = (
            1.0 if only_a + only_b == 0 else stats.binomtest(only_b, only_a + only_b, 0.5).pvalue
        )
        assert test.p_value == pytest.approx(expected, rel=1e-9, abs=1e-15), (only_a, only_b)
        assert test.difference == pytest.approx((only_b - only_a) / len(a))


def test_binomial_p_is_one_when_both_runs_win_equally_often():
    assert binomial_two_sided_p(10, 20) == 1.0


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    # known distribution: Bernoulli-ish scores from a Beta; 200 experiments of 150 units each
    rng = np.random.default_rng(7)
    true_mean, hits = 0.3, 0
    for experiment in range(200):
        units = [[float(x)] for x in rng.beta(3, 7, size=150)]  # mean 0.3
        interval = bootstrap_ratio(units, resamples=1000, seed=experiment)
        hits += interval.ci95[0] <= true_mean <= interval.ci95[1]
    assert 0.89 <= hits / 200 <= 0.99, hits


def test_bootstrap_ratio_weights_units_by_their_number_of_values():
    interval = bootstrap_ratio([[10.0, 10.0, 10.0], [1.0]])
    assert interval.estimate == pytest.approx(31 / 4)


def test_bootstrap_stderr_is_close_to_the_analytic_stderr_for_a_plain_mean():
    rng = np.random.default_rng(3)
    values = rng.normal(5, 2, size=400)
    interval = bootstrap_ratio([[float(v)] for v in values], resamples=4000)
    assert interval.stderr == pytest.approx(mean_stderr(list(values)), rel=0.08)


def test_same_inputs_give_the_same_bootstrap_interval():
    units = [[float(i % 7)] for i in range(50)]
    assert bootstrap_ratio(units).ci95 == bootstrap_ratio(units).ci95


def test_paired_bootstrap_finds_a_real_improvement_and_not_a_null_one():
    rng = np.random.default_rng(11)
    a = (rng.random(600) < 0.5).astype(float)
    better = np.where(rng.random(600) < 0.2, 1.0, a)  # B fixes about 10% of items
    assert paired_bootstrap([(a, better, None)]).significant
    noise = np.where(rng.random(600) < 0.05, 1 - a, a)  # B flips 5% of items either way
    assert not paired_bootstrap([(a, noise, None)]).significant


def test_paired_bootstrap_agrees_with_mcnemar_on_a_large_binary_sample():
    rng = np.random.default_rng(5)
    a = (rng.random(2000) < 0.55).astype(float)
    b = np.where(rng.random(2000) < 0.06, 1.0, a)
    exact, boot = mcnemar_exact(list(a), list(b)), paired_bootstrap([(a, b, None)])
    assert exact.significant == boot.significant
    assert boot.difference == pytest.approx(exact.difference)


def test_identical_runs_are_never_significantly_different():
    a = [1, 0, 1, 1, 0] * 20
    assert paired_test(a, a).p_value == 1.0
    assert paired_bootstrap([(a, a, None)]).p_value == 1.0


def test_paired_test_uses_the_cluster_bootstrap_when_items_share_a_passage():
    a = [1, 0, 1, 0] * 10
    b = [1, 1, 1, 0] * 10
    clusters = [i // 4 for i in range(40)]
    assert paired_test(a, b).test == "mcnemar-exact"
    assert paired_test(a, b, clusters).test == "paired-bootstrap"
    assert paired_test([0.5, 1.0], [1.0, 1.0]).test == "paired-bootstrap"


def test_normal_interval_uses_the_1_96_quantile():
    stats = pytest.importorskip("scipy.stats")
    assert Z95 == pytest.approx(stats.norm.ppf(0.975), rel=1e-12)
