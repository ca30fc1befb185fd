"""The paired comparison's statistics and verdict, on counts whose answers are known."""

from __future__ import annotations

from datetime import datetime

import pytest

from mlops_platform.config import get_settings
from mlops_platform.monitoring.shadow import _by_pair, judge, mcnemar_p_value

GOOD = {"accuracy": 0.80, "macro_f1": 0.78}
POOR = {"accuracy": 0.60, "macro_f1": 0.55}


@pytest.mark.parametrize(
    ("champion_only", "challenger_only", "expected"),
    [
        (5, 5, 1.0),  # as many discordant pairs each way: no evidence
        (0, 10, 2 / 1024),  # 2 · P(X ≤ 0), X ~ Bin(10, ½)
        (1, 9, 2 * 11 / 1024),  # 2 · (1 + 10) / 2¹⁰
        (9, 1, 2 * 11 / 1024),  # symmetric
        (0, 0, 1.0),
    ],
)
def test_the_exact_mcnemar_p_value(champion_only: int, challenger_only: int, expected: float):
    assert mcnemar_p_value(champion_only, challenger_only) == pytest.approx(expected)


def test_the_p_value_stays_finite_for_large_counts() -> None:
    p_value = mcnemar_p_value(4_000, 6_000)
    assert 0 < p_value < 1e-80


def test_the_challenger_wins_only_with_enough_labels_a_margin_and_significance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHADOW_MIN_LABELLED", "300")
    get_settings.cache_clear()
    try:
        wins = judge(1_000, POOR, GOOD, 40, 240, mcnemar_p_value(40, 240))
        too_few = judge(100, POOR, GOOD, 4, 24, mcnemar_p_value(4, 24))
        no_margin = judge(1_000, GOOD, {**GOOD, "macro_f1": 0.785}, 40, 90, 1e-5)
        not_significant = judge(1_000, POOR, GOOD, 50, 60, mcnemar_p_value(50, 60))
        champion_better = judge(1_000, GOOD, POOR, 240, 40, mcnemar_p_value(240, 40))
    finally:
        get_settings.cache_clear()

    assert wins[0] == "challenger-better" and all(wins[1].values())
    assert wins[2].startswith("challenger better: macro_f1 0.7800 against 0.5500 (+0.2300)")
    assert too_few[0] == "insufficient-data" and "300 needed" in too_few[2]
    assert no_margin[0] == "ok" and not no_margin[1]["beats_by_margin"]
    assert not_significant[0] == "ok" and "McNemar p <= 0.05" in not_significant[2]
    assert champion_better[0] == "ok" and not champion_better[1]["significant"]


def test_counts_are_split_by_version_pair_and_each_challenger_keeps_its_latest_champion():
    early, late = datetime(2025, 6, 1, 10), datetime(2025, 6, 1, 12)
    rows = [
        ("1", "3", "Good", "Good", "Poor", 7, early),
        ("2", "3", "Poor", "Standard", "Poor", 5, late),  # the champion was rolled to v2
        ("2", "3", "Good", "Good", "Good", 2, late),
    ]

    (pair, counts), *others = _by_pair(rows).items()

    assert pair == ("2", "3") and others == []
    assert counts.sum() == 7 and counts[2, 1, 2] == 5 and counts[0, 0, 0] == 2
