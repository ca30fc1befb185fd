"""Why `continuous_training` runs: the reason follows the trigger, `schedule` included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops_platform.orchestration import TRIGGER_REASONS, announced_reason, training_inputs

DUE = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("feature_runs", "expected"),
    [
        (["scheduled"], "schedule"),
        (["manual"], "new-data"),
        (["asset_triggered"], "new-data"),
        (["scheduled", "manual"], "new-data"),  # new data came too: it is the stronger reason
    ],
)
def test_an_announced_snapshot_carries_why_its_feature_run_ran(
    feature_runs: list[str], expected: str
) -> None:
    extras = [
        {"base_dt": "2026-03-01", "build_id": 1, "reason": announced_reason(run_type)}
        for run_type in feature_runs
    ]
    inputs = training_inputs({}, "asset_triggered", extras, DUE)
    assert (inputs.reason, inputs.base_dt) == (expected, "2026-03-01")
    assert inputs.reason in TRIGGER_REASONS


def test_an_announcement_without_a_reason_is_new_data() -> None:
    assert training_inputs({}, "asset_triggered", [{"base_dt": "2026-02-01"}], DUE).reason == (
        "new-data"
    )


def test_triggered_runs_take_the_reason_they_were_given() -> None:
    params = {"reason": "drift", "report_id": 7}
    assert training_inputs(params, "manual", [], DUE).reason == "drift"
    assert training_inputs({}, "manual", [], DUE).reason == "manual"
