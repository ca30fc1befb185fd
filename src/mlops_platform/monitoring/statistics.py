"""Drift statistics of one feature: the reference's shares against the window's counts.

Reports, tables, the HTML page and MLflow list every statistic in `STATISTICS`, so a new
statistic is a function and its entry here. Verdicts use PSI and the chi-square p-value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["numeric", "categorical", "prediction"]
# Shares are floored at this before the PSI's logarithm and the chi-square's division,
# so a bucket that is empty on one side counts as rare, not as infinitely surprising.
EPSILON = 1e-4


def shares_of(counts: Sequence[float]) -> np.ndarray:
    """Counts as shares of their total (all zero for an empty window)."""
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    return values / total if total else np.zeros(len(values))


def psi(reference: Sequence[float], counts: Sequence[float]) -> float:
    """Population stability index of the window's counts (or shares) against the reference."""
    expected = np.maximum(np.asarray(reference, dtype=float), EPSILON)
    actual = np.maximum(shares_of(counts), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def chi_square_p(reference: Sequence[float], counts: Sequence[float]) -> float | None:
    """p-value of the counts being drawn from the reference shares; None without rows."""
    from scipy.stats import chisquare

    observed = np.asarray(counts, dtype=float)
    if not observed.sum():
        return None
    expected = np.maximum(np.asarray(reference, dtype=float), EPSILON)
    expected = expected / expected.sum() * observed.sum()
    return float(chisquare(observed, expected).pvalue)


def js_distance(reference: Sequence[float], counts: Sequence[float]) -> float | None:
    """Jensen-Shannon distance (base 2: 0 same, 1 disjoint) of the shares; None without rows."""
    from scipy.spatial.distance import jensenshannon

    current = shares_of(counts)
    if not current.any():
        return None
    return float(jensenshannon(np.asarray(reference, dtype=float), current, base=2))


@dataclass(frozen=True)
class Statistic:
    """One drift statistic: its report key, its column title and the kinds it applies to."""

    key: str
    title: str
    kinds: frozenset[Kind]
    compute: Callable[[Sequence[float], Sequence[float]], float | None]
    spec: str = ".4f"  # how tables and pages print it


EVERY_KIND: frozenset[Kind] = frozenset({"numeric", "categorical", "prediction"})
STATISTICS = (
    Statistic("psi", "PSI", EVERY_KIND, psi),
    Statistic("p_value", "chi² p", frozenset({"categorical", "prediction"}), chi_square_p, ".2g"),
    Statistic("js_distance", "JS distance", frozenset({"numeric"}), js_distance),
)


def compute(
    kind: Kind, reference: Sequence[float], counts: Sequence[float]
) -> dict[str, float | None]:
    """Every statistic that applies to a feature of this kind, by key (None: not defined)."""
    return {
        statistic.key: statistic.compute(reference, counts)
        for statistic in STATISTICS
        if kind in statistic.kinds
    }


def formatted(scores: Mapping[str, float | None], statistic: Statistic) -> str:
    """A score for tables and pages: blank when it does not apply."""
    value = scores.get(statistic.key)
    return "" if value is None else format(value, statistic.spec)
