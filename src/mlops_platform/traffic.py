"""Simulated live traffic from the generator's customers, and their labels arriving later.

A simulated month comes from the same population and drift scenarios as `mlops data
generate`: the same customers, seed and start month give the same customers, so traffic
matches the store. `simulate` either POSTs the month to the running service's `/predict`,
or (offline, for tests) predicts it here and writes `prediction_log` rows itself.
`deliver_labels` writes the month's ground truth into `credit_labels`, as it arrives.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_platform import db, logstore
from mlops_platform.config import get_settings
from mlops_platform.data.generator import (
    DriftScenario,
    GeneratedMonth,
    GeneratorConfig,
    generate_months,
)
from mlops_platform.data.loader import upsert_frame
from mlops_platform.dates import months_between
from mlops_platform.errors import InvalidInput
from mlops_platform.monitoring.windows import utc_naive
from mlops_platform.schema import FEATURE_NAMES

if TYPE_CHECKING:
    from mlops_platform.model import CreditScoreModel

# Logged rows are this far apart in created_at when no rate is given: 10 a second.
LOG_SPACING = timedelta(milliseconds=100)


@dataclass(frozen=True)
class TrafficResult:
    """What a simulation sent, where, and what came back."""

    target: Literal["service", "log"]
    records: int
    seconds: float
    predicted: dict[str, int]
    model_version: str | None = None
    last_request_id: str | None = None  # of the service's last answer, to trace it


def traffic_month(
    customers: int,
    month: date,
    scenario: DriftScenario = "none",
    seed: int = 42,
    *,
    start: date | None = None,
    drift_from: date | None = None,
) -> GeneratedMonth:
    """The generator's `month` for a population that began in `start` (default: `month`).

    A drift scenario starts at `drift_from` (default: `month`) and reaches full strength
    three months later, as in `mlops data generate`.
    """
    if month.day != 1:
        raise InvalidInput(f"month must be the first day of a month, got {month}")
    first = start or month
    if first > month:
        raise InvalidInput(f"start {first} is after the simulated month {month}")
    config = GeneratorConfig(
        customers=customers,
        months=months_between(first, month) + 1,
        start=first,
        seed=seed,
        drift=scenario,
        drift_from=(drift_from or month) if scenario != "none" else None,
    )
    # Earlier months are generated only for the population's state; keep the last.
    return deque(generate_months(config), maxlen=1)[0]


def feature_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the service takes them: the 22 features, JSON types, None for missing."""
    features = frame[list(FEATURE_NAMES)]
    return features.astype(object).where(features.notna(), None).to_dict("records")


def _pick(frame: pd.DataFrame, count: int | None, seed: int, month: date) -> pd.DataFrame:
    """`count` customer rows in random order (repeating customers when count is larger)."""
    if count is None:
        return frame
    rng = np.random.default_rng([seed, 7, month.year, month.month])
    rows = rng.choice(len(frame), size=count, replace=count > len(frame))
    return frame.iloc[rows].reset_index(drop=True)


def simulate(
    customers: int,
    month: date,
    scenario: DriftScenario = "none",
    count: int | None = None,
    rate: float | None = None,
    target: Literal["service", "log"] = "service",
    service_url: str | None = None,
    seed: int = 42,
    *,
    start: date | None = None,
    drift_from: date | None = None,
    model: CreditScoreModel | None = None,
    model_version: str | None = None,
    at: datetime | str | None = None,
    url: str | None = None,
    with_challenger: bool = False,
) -> TrafficResult:
    """Send `count` records (default: every customer once) of the simulated month.

    `service`: POST to `/predict` with customer_id and month, one record per request at
    `rate` requests per second, or in batches of SERVING_MAX_BATCH as fast as it answers.
    `log`: predict with `model` (default: the champion) and insert the rows, created_at
    from `at` (default: now) onwards, 1/`rate` seconds apart; `with_challenger` also logs
    the `challenger` alias's prediction of each request as role shadow, as the service does.
    """
    generated = traffic_month(customers, month, scenario, seed, start=start, drift_from=drift_from)
    frame = _pick(generated.features, count, seed, month)
    if target == "service":
        return _post(frame, month, rate, service_url)
    if target == "log":
        first = utc_naive(at) if at is not None else datetime.now(UTC).replace(tzinfo=None)
        spacing = timedelta(seconds=1 / rate) if rate else LOG_SPACING
        return _log(frame, month, model, model_version, first, spacing, url, with_challenger)
    raise InvalidInput(f"target must be 'service' or 'log', got {target!r}")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]


def _post(
    frame: pd.DataFrame, month: date, rate: float | None, service_url: str | None
) -> TrafficResult:
    import httpx

    settings = get_settings()
    base_url = service_url or settings.service_url
    records = [
        {**record, "customer_id": customer_id, "month": month.isoformat()}
        for record, customer_id in zip(feature_records(frame), frame["customer_id"], strict=True)
    ]
    predicted: Counter[str] = Counter()
    versions: set[str] = set()
    request_ids: deque[str] = deque(maxlen=1)
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=60) as client:

        def post(body: Any) -> list[dict[str, Any]]:
            response = client.post("/predict", json=body)
            if response.status_code != 200:
                raise RuntimeError(
                    f"{base_url}/predict answered {response.status_code}: {response.text[:500]}"
                )
            answer = response.json()
            answers = answer if isinstance(answer, list) else [answer]
            versions.update(p["model_version"] for p in answers if "model_version" in p)
            request_ids.extend(p["request_id"] for p in answers if "request_id" in p)
            return answers

        if rate:
            for number, record in enumerate(records):
                # Keep to the schedule from the start, so slow answers do not lower the rate.
                delay = started + number / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                predicted.update(p["predicted_class"] for p in post(record))
        else:
            for batch in _chunks(records, settings.serving_max_batch):
                predicted.update(p["predicted_class"] for p in post(list(batch)))
    return TrafficResult(
        "service",
        len(records),
        time.perf_counter() - started,
        dict(predicted),
        # The champion may change mid-run (hot reload): then all versions are listed.
        ",".join(sorted(versions)) or None,
        request_ids[0] if request_ids else None,
    )


def alias_model(alias: str) -> tuple[CreditScoreModel, str]:
    """The model holding `alias`, loaded from the registry, and its version."""
    import mlflow
    from mlflow import MlflowClient

    from mlops_platform import registry, tracking

    tracking.configure()
    name = registry.model_name()
    version = str(MlflowClient().get_model_version_by_alias(name, alias).version)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
    return model, version


def _log(
    frame: pd.DataFrame,
    month: date,
    model: CreditScoreModel | None,
    model_version: str | None,
    first: datetime,
    spacing: timedelta,
    url: str | None,
    with_challenger: bool = False,
) -> TrafficResult:
    from mlops_platform import registry

    if model is None:
        model, model_version = alias_model(registry.CHAMPION)
    elif model_version is None:
        raise ValueError("pass model_version together with model")
    started = time.perf_counter()
    records = [
        {**features, "customer_id": customer_id, "month": month}
        for features, customer_id in zip(feature_records(frame), frame["customer_id"], strict=True)
    ]
    request_ids = [str(uuid.uuid4()) for _ in records]
    created_at = [first + spacing * number for number in range(len(records))]
    scorers = [(model, model_version, logstore.CHAMPION_ROLE)]
    if with_challenger:
        scorers.append((*alias_model(registry.CHALLENGER), logstore.SHADOW_ROLE))
    batches = [_scored(frame, records, request_ids, created_at, *scorer) for scorer in scorers]
    logstore.store(logstore.table(batches), url)
    return TrafficResult(
        "log",
        len(records),
        time.perf_counter() - started,
        dict(Counter(batches[0].predicted_classes)),
        model_version,
    )


def _scored(
    frame: pd.DataFrame,
    records: list[dict[str, Any]],
    request_ids: list[str],
    created_at: list[datetime],
    model: CreditScoreModel,
    model_version: str,
    role: str,
) -> logstore.ScoredBatch:
    """One model's predictions of the records, as the service logs them."""
    from mlops_platform import registry
    from mlops_platform.model import predicted_classes

    started = time.perf_counter()
    probabilities = model.predict_proba(frame)
    latency_ms = (time.perf_counter() - started) * 1_000 / max(len(frame), 1)
    return logstore.ScoredBatch(
        records, probabilities, predicted_classes(probabilities).tolist(),
        model.unseen_categories(records), request_ids, created_at,
        model_name=registry.model_name(), model_version=model_version,
        latency_ms=latency_ms, role=role,
    )  # fmt: skip


def deliver_labels(
    customers: int,
    month: date,
    scenario: DriftScenario = "none",
    seed: int = 42,
    *,
    start: date | None = None,
    drift_from: date | None = None,
    observed_at: datetime | str | None = None,
    url: str | None = None,
) -> int:
    """Write the simulated month's labels into `credit_labels`.

    They are observed 3–40 days after the month, as generated, unless `observed_at` says
    they arrive at that moment (a demo that cannot wait weeks for ground truth).
    """
    generated = traffic_month(customers, month, scenario, seed, start=start, drift_from=drift_from)
    labels = generated.labels
    if observed_at is not None:
        labels = labels.assign(observed_at=utc_naive(observed_at))
    with db.transaction(url) as connection:
        return upsert_frame(connection, "credit_labels", labels)
