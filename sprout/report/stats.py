"""The statistics of the report, each from a maintained library (statsmodels, scipy), over
one value per user.

- A share of users (a yes/no per user): Wilson's interval for an arm; against the control,
  the score test and Newcomb's interval for the difference (statsmodels).
- A mean of per-user values (a user's rate, or their mean per answer): Student's t interval
  for an arm; against the control, Welch's t-test and its interval for the difference in
  means (scipy). Users are the independent units; Welch does not assume both arms vary
  alike; and the interval is for the very difference the table shows (a rank test would test
  something else than a difference in means).
- A median of per-user values (times): a bootstrap interval for an arm; against the control,
  Mann-Whitney's U test and a bootstrap interval for the difference in medians (scipy).
  Bootstraps are seeded: the same data always gives the same report.

Where there is not enough to compute a figure (no users, no spread), it is None, never NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    test_proportions_2indep,
)

CONFIDENCE = 0.95
SEED = 20
RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """An arm's figure, with its interval and the number of users behind it."""

    users: int
    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Comparison:
    """An arm against the control: the difference (arm minus control), its interval, the
    test's p-value and the test's name."""

    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    test: str


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def share(values: Sequence[bool]) -> Estimate:
    if not values:
        return Estimate(0, None)
    count, users = sum(values), len(values)
    low, high = proportion_confint(count, users, alpha=1 - CONFIDENCE, method="wilson")
    return Estimate(users, count / users, _number(low), _number(high))


def mean(values: Sequence[float]) -> Estimate:
    if not values:
        return Estimate(0, None)
    data = np.asarray(values, dtype=float)
    if len(data) < 2 or np.ptp(data) == 0:
        return Estimate(len(data), float(data.mean()))
    low, high = stats.t.interval(CONFIDENCE, len(data) - 1, loc=data.mean(), scale=stats.sem(data))
    return Estimate(len(data), float(data.mean()), _number(low), _number(high))


def median(values: Sequence[float]) -> Estimate:
    if not values:
        return Estimate(0, None)
    data = np.asarray(values, dtype=float)
    low, high = _bootstrap((data,), _median_of)
    return Estimate(len(data), float(np.median(data)), low, high)


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def compare_shares(arm: Sequence[bool], control: Sequence[bool]) -> Comparison:
    test = "score test, Newcomb interval"
    if not arm or not control:
        return Comparison(None, None, None, None, test)
    counts = (sum(arm), len(arm), sum(control), len(control))
    difference = counts[0] / counts[1] - counts[2] / counts[3]
    # statsmodels also works out ratios it does not return: a share of 0 divides by zero.
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = confint_proportions_2indep(*counts, method="newcomb", alpha=1 - CONFIDENCE)
        p_value = test_proportions_2indep(*counts, method="score").pvalue
    same = counts[0] + counts[2] in {0, counts[1] + counts[3]}  # everyone, or no one
    return Comparison(
        difference, _number(low), _number(high), 1.0 if same else _number(p_value), test
    )


def compare_means(arm: Sequence[float], control: Sequence[float]) -> Comparison:
    test = "Welch's t-test"
    if not arm or not control:
        return Comparison(None, None, None, None, test)
    a, c = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    difference = float(a.mean() - c.mean())
    if len(a) < 2 or len(c) < 2 or (np.ptp(a) == 0 and np.ptp(c) == 0):
        return Comparison(difference, None, None, None, test)
    with warnings.catch_warnings():
        # An arm whose users all have the same value has no spread: exact, not imprecise.
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        result = stats.ttest_ind(a, c, equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    return Comparison(
        difference,
        _number(interval.low),
        _number(interval.high),
        _number(result.pvalue),
        test,
    )


def compare_medians(arm: Sequence[float], control: Sequence[float]) -> Comparison:
    test = "Mann-Whitney U, bootstrap interval"
    if not arm or not control:
        return Comparison(None, None, None, None, test)
    a, c = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    difference = float(np.median(a) - np.median(c))
    p_value = _number(stats.mannwhitneyu(a, c, alternative="two-sided").pvalue)
    low, high = _bootstrap((a, c), _median_difference)
    return Comparison(difference, low, high, p_value, test)


def _median_of(data: np.ndarray[Any, Any], axis: int = -1) -> Any:
    return np.median(data, axis=axis)


def _median_difference(
    arm: np.ndarray[Any, Any], control: np.ndarray[Any, Any], axis: int = -1
) -> Any:
    return np.median(arm, axis=axis) - np.median(control, axis=axis)


def _bootstrap(
    samples: tuple[np.ndarray[Any, Any], ...], statistic: Callable[..., Any]
) -> tuple[float | None, float | None]:
    """A percentile bootstrap interval, resampling users; None without two users a sample
    or without any spread (every resample would be the same)."""
    if any(len(sample) < 2 for sample in samples) or all(np.ptp(s) == 0 for s in samples):
        return None, None
    with warnings.catch_warnings():
        # Few distinct values make degenerate resamples: the interval is then None.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            samples,
            statistic,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(SEED),
        )
    interval = result.confidence_interval
    return _number(interval.low), _number(interval.high)
