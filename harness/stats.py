"""Error bars and paired tests for evaluation scores. Pure functions: numbers in, numbers out.

What each score gets (see docs/eval.md for the why):

* **accuracy** (a mean of 0/1 verdicts): the standard error lm-evaluation-harness reports
  (sample standard deviation with n - 1, over sqrt(n)) and a Wilson score 95% interval, which
  stays inside [0, 1] and is not degenerate at 0% or 100% on small suites.
* **clustered accuracy** (several questions on one passage, as AGIEval's LSAT-RC and SAT-En):
  the cluster-robust standard error (CR1: sum over clusters of the squared summed residuals,
  times G / (G - 1), over n^2; Miller 2024, "Adding Error Bars to Evals", arXiv:2411.00640) and
  the normal interval mean +- 1.96 SE. With one item per cluster it equals the plain SE.
* **non-binary means** (accuracy over N completions, pass@k per problem, MT-Bench ratings): a
  percentile bootstrap over the units that were sampled (problems, questions), and the bootstrap
  standard deviation as the standard error.

Paired comparison of two runs on the same items: McNemar's exact test for 0/1 verdicts on
independent items (the two-sided binomial test on the discordant pairs), else a paired bootstrap
over items (or clusters), stratified by suite when several suites are compared together.

Bootstraps use a fixed seed, so the same results give the same intervals on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal
BOOTSTRAP_RESAMPLES = 2000
SEED = 1234
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A point estimate with its standard error and 95% interval."""

    estimate: float
    stderr: float | None
    """None when it cannot be estimated (fewer than 2 items)."""
    ci95: tuple[float, float] | None
    method: str
    """"wilson", "clustered" or "bootstrap": how `ci95` was computed."""
    clusters: int | None = None

    def as_dict(self, prefix: str = "") -> dict:
        out = {
            f"{prefix}stderr": self.stderr,
            f"{prefix}ci95": list(self.ci95) if self.ci95 else None,
            f"{prefix}ci_method": self.method,
        }
        if self.clusters is not None:
            out[f"{prefix}clusters"] = self.clusters
        return out


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean as lm-eval's `mean_stderr`: sample stdev (n - 1) / sqrt(n)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    variance = sum((x - mean) ** 2 for x in values) / (n - 1)
    return math.sqrt(variance / n)


def clustered_stderr(values: Sequence[float], clusters: Sequence[Hashable]) -> float | None:
    """Cluster-robust (CR1) standard error of the mean; None with fewer than 2 clusters."""
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster keys")
    n = len(values)
    mean = sum(values) / n if n else 0.0
    sums: dict[Hashable, float] = {}
    for value, cluster in zip(values, clusters):
        sums[cluster] = sums.get(cluster, 0.0) + (value - mean)
    g = len(sums)
    if g < 2:
        return None
    return math.sqrt(g / (g - 1) * sum(s * s for s in sums.values())) / n


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (no continuity correction)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def normal_interval(
    estimate: float, stderr: float | None, lo: float = 0.0, hi: float = 1.0
) -> tuple[float, float]:
    if stderr is None:
        return (lo, hi)
    return (max(lo, estimate - Z95 * stderr), min(hi, estimate + Z95 * stderr))


def _rng(seed: int):
    import numpy as np  # the eval extra's dependency; imported only when a bootstrap runs

    return np.random.default_rng(seed)


def bootstrap_ratio(
    units: Sequence[Sequence[float]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = SEED,
    lo: float = float("-inf"),
    hi: float = float("inf"),
) -> Interval:
    """The mean of all values, resampling whole units (a problem's completions, a question's turns).

    Each unit holds its own values (it may hold none, e.g. a question whose judgments were all
    unparseable); the statistic is sum of values / count of values over the resampled units.
    """
    import numpy as np

    sums = np.array([float(sum(u)) for u in units])
    counts = np.array([len(u) for u in units], dtype=float)
    total = counts.sum()
    if total == 0:
        raise ValueError("no values to estimate from")
    estimate = float(sums.sum() / total)
    if len(units) < 2:
        return Interval(estimate, None, None, "bootstrap")
    picks = _rng(seed).integers(0, len(units), size=(resamples, len(units)))
    picked_counts = counts[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = sums[picks].sum(axis=1) / picked_counts
    stats = stats[picked_counts > 0]
    low, high = np.percentile(stats, [2.5, 97.5])
    return Interval(
        estimate, float(stats.std(ddof=1)), (max(lo, float(low)), min(hi, float(high))), "bootstrap"
    )


def accuracy_interval(
    values: Sequence[float], clusters: Sequence[Hashable] | None = None
) -> Interval:
    """The interval for a mean of per-item scores in [0, 1]: Wilson for 0/1 verdicts on
    independent items, clustered SE when items share a cluster, bootstrap for fractional scores."""
    n = len(values)
    if n == 0:
        return Interval(0.0, None, None, "wilson")
    mean = sum(values) / n
    if clusters is not None and len(set(clusters)) < n:
        se = clustered_stderr(values, clusters)
        return Interval(mean, se, normal_interval(mean, se), "clustered", len(set(clusters)))
    if all(v in (0, 1) for v in values):
        return Interval(mean, mean_stderr(values), wilson_interval(int(sum(values)), n), "wilson")
    return bootstrap_ratio([[v] for v in values], lo=0.0, hi=1.0)


# --- paired comparison of two runs --------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """B minus A on shared items: the difference, its 95% interval, and the two-sided p-value."""

    difference: float
    ci95: tuple[float, float] | None
    p_value: float
    test: str
    n: int
    """Shared items (or clusters, for a clustered bootstrap)."""

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def as_dict(self) -> dict:
        return {
            "difference": self.difference,
            "ci95": list(self.ci95) if self.ci95 else None,
            "p_value": self.p_value,
            "test": self.test,
            "n": self.n,
            "significant": self.significant,
        }


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n fair coin flips (scipy.stats.binomtest(k, n, 0.5))."""
    if n == 0:
        return 1.0
    tail = min(k, n - k)
    # log-space terms: exact enough for the thousands of discordant pairs of a large suite
    log_half = n * math.log(0.5)
    terms = [
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
        for i in range(tail + 1)
    ]
    if 2 * tail == n:
        return 1.0
    return min(1.0, 2 * math.fsum(terms))


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """McNemar's exact test on paired 0/1 verdicts: only items where the runs disagree count."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} verdicts against {len(b)}: pair them on shared items first")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = len(a)
    difference = (only_b - only_a) / n if n else 0.0
    # the interval of the difference in accuracies (Wald, paired; Agresti 2013, 10.1.1)
    if n:
        p01, p10 = only_b / n, only_a / n
        se = math.sqrt(max(0.0, (p01 + p10 - (p01 - p10) ** 2) / n))
        ci = (difference - Z95 * se, difference + Z95 * se)
    else:
        ci = None
    return PairedTest(
        difference, ci, binomial_two_sided_p(only_b, only_a + only_b), "mcnemar-exact", n
    )


def paired_bootstrap(
    strata: Sequence[tuple[Sequence[float], Sequence[float], Sequence[Hashable] | None]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = SEED,
) -> PairedTest:
    """Paired bootstrap of mean(B) - mean(A), averaged over strata (suites) with equal weight.

    Each stratum is (a_scores, b_scores, clusters or None); items (or whole clusters) are
    resampled within their stratum, both runs together, so the pairing is kept. The p-value is
    two-sided: twice the share of resampled differences on the far side of zero.
    """
    import numpy as np

    rng = _rng(seed)
    total = np.zeros(resamples)
    observed, units = 0.0, 0
    for a, b, clusters in strata:
        if len(a) != len(b) or not len(a):
            raise ValueError("each stratum needs the same, non-zero number of items in both runs")
        diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
        keys = list(range(len(diff))) if clusters is None else list(clusters)
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        group = np.array([index[k] for k in keys])
        sums, counts = np.bincount(group, weights=diff), np.bincount(group).astype(float)
        picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
        total += sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
        observed += float(diff.mean())
        units += len(sums)
    total /= len(strata)
    observed /= len(strata)
    low, high = np.percentile(total, [2.5, 97.5])
    p = min(1.0, 2 * min(float((total <= 0).mean()), float((total >= 0).mean())))
    if np.all(total == 0):  # the runs agree on every item
        p = 1.0
    return PairedTest(observed, (float(low), float(high)), p, "paired-bootstrap", units)


def paired_test(
    a: Sequence[float], b: Sequence[float], clusters: Sequence[Hashable] | None = None
) -> PairedTest:
    """McNemar for 0/1 verdicts on independent items; a paired (cluster) bootstrap otherwise."""
    binary = all(v in (0, 1) for v in (*a, *b))
    independent = clusters is None or len(set(clusters)) == len(clusters)
    if binary and independent:
        return mcnemar_exact(a, b)
    return paired_bootstrap([(a, b, clusters)])
