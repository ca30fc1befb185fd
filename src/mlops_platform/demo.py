"""`make demo`: the whole MLOps Level 1 loop on the native stack, with a closing summary.

The story runs on the real calendar, because monitoring judges real request times:
twelve months of history end last month, and from five months ago a concept drift
changes how credit scores follow from behaviour. The first champion is trained the way
the feature pipeline ran back then (before the drift). Live traffic for last month then
meets that champion, its labels arrive, the monitoring DAG sees live accuracy fall and
triggers retraining on recent months. The new model passes the gate into shadow: it
scores the next traffic beside the champion without answering it, the next monitoring
run compares the two on the same labelled requests and promotes it on that live
evidence, and the service hot-reloads it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import make_url, text

from mlops_platform.airflow_api import GENERATED_PASSWORDS
from mlops_platform.config import Settings, get_settings
from mlops_platform.dates import add_months, month_of

console = Console(width=max(Console().width, 120))
DRIFT_STARTED_MONTHS_AGO = 5
HISTORY_MONTHS = 12
# Pre-drift traffic comes from this month, when the first champion's data was current.
NORMAL_TRAFFIC_MONTHS_AGO = 7
DEMO_DAGS = {"feature_pipeline", "continuous_training", "monitoring", "batch_prediction"}


@dataclass(frozen=True)
class DemoSize:
    customers: int
    normal_requests: int
    drifted_requests: int
    trials: int
    min_rows: int


SIZES = {
    "small": DemoSize(
        customers=1_500, normal_requests=300, drifted_requests=900, trials=1, min_rows=200
    ),
    "full": DemoSize(
        customers=20_000, normal_requests=2_000, drifted_requests=6_000, trials=3, min_rows=500
    ),
}


def pace_environment(size: DemoSize) -> dict[str, str]:
    """Settings that set the story's pace, for every stack process, native or in compose."""
    return {
        "SERVING_POLL_INTERVAL_S": "5",
        "MLOPS_LOOKBACK_MONTHS": "3",
        "TRAIN_TRIALS": str(size.trials),
        "DRIFT_MIN_ROWS": str(size.min_rows),
        "PERFORMANCE_MIN_LABELLED": str(size.min_rows),
        # A retrained model earns production on live traffic: shadow first, then promotion.
        "GATE_SHADOW_FIRST": "true",
        "SHADOW_MIN_LABELLED": str(size.min_rows),
        # Scheduled runs would compete with the story's explicit ones.
        "FEATURE_PIPELINE_SCHEDULE": "none",
        "MONITORING_SCHEDULE": "none",
        "BATCH_PREDICTION_SCHEDULE": "none",
    }


def native_environment(settings: Settings, size: DemoSize, run: str) -> dict[str, str]:
    """The native demo's settings: its own databases and files, and the story's pace."""
    data = settings.mlops_data_dir.resolve() / "demo"
    server = make_url(settings.feature_store_url)
    return {
        "FEATURE_STORE_URL": server.set(database=f"mlops_demo_{run}").render_as_string(False),
        "MLFLOW_BACKEND_STORE_URI": server.set(database=f"mlflow_demo_{run}").render_as_string(
            False
        ),
        "MLFLOW_ARTIFACTS_DESTINATION": str(data / "mlflow-artifacts"),
        "AIRFLOW_HOME": str(data / "airflow"),
        "SERVING_CACHE_DIR": str(data / "champion-cache"),
        "SERVING_SPOOL_DIR": str(data / "spool"),
        **pace_environment(size),
    }


def wait_for(check: Callable[[], Any], what: str, timeout: float, interval: float = 3) -> Any:
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {what} …"):
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


def service_metadata(url: str) -> dict | None:
    try:
        response = httpx.get(f"{url}/metadata", timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def drop_earlier_demo_databases(settings: Settings, keep: str) -> None:
    """Earlier demo runs left their databases behind; their servers are stopped by now."""
    from mlops_platform import db

    server = make_url(settings.feature_store_url)
    with db.get_engine(server).connect() as connection:
        names = connection.execute(
            text(
                "SELECT schema_name FROM information_schema.schemata"
                " WHERE (schema_name LIKE :store OR schema_name LIKE :registry)"
                " AND schema_name NOT LIKE :current"
            ),
            {"store": "mlops\\_demo\\_%", "registry": "mlflow\\_demo\\_%",
             "current": f"%{keep}"},
        ).scalars().all()  # fmt: skip
    for name in names:
        db.drop_database(server.set(database=name))


def run(size_name: str = "full", stack_name: str = "native") -> None:
    """Run the loop end to end and print the summary; the stack keeps running afterwards.

    native: start the native stack with fresh demo databases; compose: start the compose
    stack and tell the story from a container inside it; running: tell it against a fresh
    stack that is already up (what the compose container does).
    """
    size = SIZES[size_name]
    if stack_name == "compose":
        from mlops_platform import compose

        print_urls(compose.run_demo(size_name, pace_environment(size), console.print))
        return
    started = time.monotonic()
    if stack_name == "native":
        settings, airflow = start_native_stack(size)
        where = native_urls(settings)
    else:
        settings, airflow = attach_to_running_stack()
        where = []
    first, second, evidence = tell_story(settings, size, airflow)
    step(11, "batch_prediction in Airflow: every active customer scored by the new champion")
    score_in_batch(airflow)
    step(12, "Summary")
    print_summary(first, second, evidence, where, started)


def start_native_stack(size: DemoSize) -> tuple[Settings, Any]:
    """Fresh demo databases and files, then the native stack; its settings and Airflow."""
    from mlops_platform import stack
    from mlops_platform.airflow_api import AirflowApi

    base = get_settings()
    if stack.running_pid(base):
        raise RuntimeError("a stack is already running; stop it with `make down` first")
    run_tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    # A fresh Airflow home, registry artifacts and caches: each demo tells the whole story.
    shutil.rmtree(base.mlops_data_dir / "demo", ignore_errors=True)
    os.environ.update(native_environment(base, size, run_tag))
    get_settings.cache_clear()
    settings = get_settings()
    step(1, "Start the native stack (MariaDB, MLflow, Airflow, BentoML)")
    stack.up(settings, timeout=300, progress=console.print)
    drop_earlier_demo_databases(settings, keep=run_tag)
    return settings, AirflowApi.for_settings(settings, Path(os.environ["AIRFLOW_HOME"]))


def attach_to_running_stack() -> tuple[Settings, Any]:
    """A stack that is up already (compose); the story needs it fresh."""
    from mlops_platform import airflow_api

    settings = get_settings()
    step(1, f"Attach to the running stack (Airflow at {settings.airflow_api_url})")
    wait_for(lambda: airflow_api.healthy(settings.airflow_api_url), "Airflow to be healthy", 300)
    airflow = airflow_api.AirflowApi.for_settings(settings)
    wait_for(lambda: airflow.dag_ids() >= DEMO_DAGS, "Airflow to parse the DAGs", 180)
    if airflow.runs("feature_pipeline"):
        raise RuntimeError(
            "the demo tells its story on a fresh stack, and this one has run feature_pipeline"
            " before; `docker compose down -v` removes the stack and its data"
        )
    return settings, airflow


def tell_story(settings: Settings, size: DemoSize, airflow: Any) -> tuple[dict, dict, Any]:
    """Steps 2 to 10: history, first champion, traffic, drift, retraining, shadow scoring,
    promotion on live evidence, hot reload.

    Returns the service's metadata for the first and the second champion, and the shadow
    comparison that promoted the second.
    """
    from mlops_platform import traffic
    from mlops_platform.data.generator import GeneratorConfig, load_into_store

    this_month = month_of(datetime.now(UTC))
    first_month = add_months(this_month, -HISTORY_MONTHS)
    drift_from = add_months(this_month, -DRIFT_STARTED_MONTHS_AGO)
    drifted_month = add_months(this_month, -1)
    normal_month = add_months(this_month, -NORMAL_TRAFFIC_MONTHS_AGO)
    population = {"start": first_month, "drift_from": drift_from}

    service = settings.service_url

    step(
        2,
        f"Generate {HISTORY_MONTHS} months, {size.customers:,} customers, from {first_month:%Y-%m}",
    )
    summary = load_into_store(
        GeneratorConfig(
            size.customers, HISTORY_MONTHS, first_month, drift="concept", drift_from=drift_from
        )
    )
    console.print(
        f"{summary.feature_rows:,} customer-months with labels in {summary.seconds:.0f} s"
    )

    step(
        3,
        f"feature_pipeline for {drift_from:%Y-%m} in Airflow; its asset starts continuous_training",
    )
    wait_for(lambda: airflow.dag_ids() >= DEMO_DAGS, "Airflow to parse the DAGs", 180)
    for dag_id in sorted(DEMO_DAGS):
        airflow.unpause(dag_id)
    airflow.trigger("feature_pipeline", logical_date=datetime.combine(drift_from, dt_time(), UTC))
    first_training = wait_for(lambda: airflow.finished_run("continuous_training"),
                              "the asset-triggered training", 900)  # fmt: skip
    console.print(f"continuous_training {first_training.dag_run_id} succeeded")

    step(4, "Serve the champion and send normal traffic")
    first = wait_for(lambda: service_metadata(service), "the service to load the champion", 300)
    console.print(f"serving {first['model_name']} v{first['version']}")
    # Each worker process polls the alias on its own; give the others one interval.
    time.sleep(settings.serving_poll_interval_s + 2)
    traffic.simulate(size.customers, normal_month, "concept", size.normal_requests,
                     service_url=service, **population)  # fmt: skip

    step(5, f"Traffic switches to {drifted_month:%Y-%m} (drifted), and its labels arrive")
    traffic.simulate(size.customers, drifted_month, "concept", size.drifted_requests,
                     service_url=service, **population)  # fmt: skip
    time.sleep(2 * settings.serving_log_flush_interval_s + 1)  # let the log writer flush
    traffic.deliver_labels(size.customers, drifted_month, "concept",
                           observed_at=datetime.now(UTC), **population)  # fmt: skip

    step(6, "monitoring in Airflow: drift, live accuracy, decision")
    monitoring_run = airflow.trigger("monitoring")
    wait_for(lambda: airflow.finished_run("monitoring", monitoring_run), "monitoring", 300)
    retraining = wait_for(
        lambda: airflow.finished_run("continuous_training", f"retrain__{monitoring_run}"),
        "the retraining that monitoring triggered", 900,
    )  # fmt: skip
    console.print(f"continuous_training {retraining.dag_run_id} succeeded")

    step(7, "The gate's decision: the new model passes, and scores in shadow first")
    from mlops_platform import registry, tracking
    from mlops_platform.cli_tables import history_table

    tracking.configure()
    console.print(history_table(registry.deployment_history(limit=5)))

    step(8, "The challenger scores the same traffic in shadow (logged, never answered)")
    shadowing = wait_for(
        lambda: (m := service_metadata(service)) and m["challenger"] and m,
        "the service to load the challenger", 120, interval=2,
    )  # fmt: skip
    time.sleep(settings.serving_poll_interval_s + 2)  # every worker polls on its own
    shadowed = traffic.simulate(size.customers, drifted_month, "concept", size.drifted_requests,
                                service_url=service, **population)  # fmt: skip
    console.print(
        f"{shadowed.records:,} requests answered by v{shadowing['version']} and scored in"
        f" shadow by v{shadowing['challenger']['version']}; trace one with"
        f" `mlops lineage {shadowed.last_request_id}`"
    )
    time.sleep(2 * settings.serving_log_flush_interval_s + 1)

    step(9, "monitoring in Airflow: the paired live comparison promotes the challenger")
    evidence_run = airflow.trigger("monitoring")
    wait_for(lambda: airflow.finished_run("monitoring", evidence_run), "monitoring", 300)
    evidence = shadow_evidence()

    step(10, "The service hot-reloads the new champion")
    second = wait_for(
        lambda: (m := service_metadata(service)) and m["version"] != first["version"] and m,
        "the service to pick up the new champion", 120, interval=2,
    )  # fmt: skip
    console.print(f"serving {second['model_name']} v{second['version']} (was v{first['version']})")
    traffic.simulate(size.customers, drifted_month, "concept", size.drifted_requests,
                     service_url=service, **population)  # fmt: skip
    time.sleep(2 * settings.serving_log_flush_interval_s + 1)
    return first, second, evidence


def shadow_evidence() -> Any:
    """The shadow report behind the latest promotion, shown as the comparison it records."""
    from mlops_platform import registry
    from mlops_platform.cli_tables import shadow_table
    from mlops_platform.monitoring import reports, shadow

    promotion = next(
        (d for d in registry.deployment_history(limit=5) if d.reason.startswith("shadow:")), None
    )
    if promotion is None:
        raise RuntimeError("monitoring did not promote the challenger on live evidence")
    report_id = promotion.metrics["shadow_report_id"]
    evidence = shadow.from_report(reports.load_reports([report_id])[report_id])
    console.print(shadow_table(evidence))
    return evidence


def score_in_batch(airflow: Any) -> None:
    """Run the batch scoring DAG once and show what it stored."""
    from mlops_platform.batch import scored_classes

    run_id = airflow.trigger("batch_prediction")
    run = wait_for(lambda: airflow.finished_run("batch_prediction", run_id), "batch scoring", 300)
    score_date = (run.logical_date or run.run_after).date()
    classes = scored_classes(score_date)
    console.print(
        f"batch_prediction {run_id} scored {sum(classes.values()):,} customers for {score_date}: "
        + ", ".join(f"{name} {count:,}" for name, count in classes.items())
    )


def step(number: int, title: str) -> None:
    console.rule(f"[bold]{number}. {title}")


def native_urls(settings: Settings) -> list[tuple[str, str]]:
    """Where the native stack's UIs are, for the summary."""
    passwords = Path(os.environ["AIRFLOW_HOME"]) / GENERATED_PASSWORDS
    return [
        ("Airflow UI", f"{settings.airflow_api_url}  (admin; password in {passwords})"),
        ("MLflow UI", f"http://{settings.mlflow_host}:{settings.mlflow_port}"),
        ("Swagger UI", f"{settings.service_url}/"),
        ("Stop the stack", "make down"),
    ]


def print_urls(where: list[tuple[str, str]]) -> None:
    urls = Table(title="Where to look", title_justify="left", show_header=False)
    for label, url in where:
        urls.add_row(label, url)
    console.print(urls)


def print_summary(
    first: dict, second: dict, evidence: Any, where: list[tuple[str, str]], started: float
) -> None:
    from mlops_platform import tracking
    from mlops_platform.cli_tables import drift_table, performance_table, series_table, shadow_table
    from mlops_platform.monitoring import runs
    from mlops_platform.monitoring.drift import check
    from mlops_platform.monitoring.performance import performance

    live = performance(now=datetime.now(UTC))
    table = Table(title="Champions before and after the drift", title_justify="left")
    for header in ("version", "role", "trained on", "test macro-F1", "live macro-F1", "labelled"):
        table.add_column(header)
    for metadata, role in ((first, "before"), (second, "after")):
        version = str(metadata["version"])
        measured = live.version(version)
        table.add_row(
            f"v{version}", role, str(metadata.get("base_dt")),
            f"{metadata['metrics'].get('test_macro_f1', float('nan')):.3f}",
            f"{measured.metrics['macro_f1']:.3f}" if measured and measured.labelled else "-",
            str(measured.labelled if measured else 0),
        )  # fmt: skip
    console.print(table)
    console.print(shadow_table(evidence))
    console.print(performance_table(live))
    versions = [str(first["version"]), str(second["version"])]
    for version in versions:  # both versions' latest window joins their monitoring runs
        console.print(drift_table(check(now=datetime.now(UTC), model_version=version)))
    console.print(
        series_table(
            get_settings().mlflow_monitoring_experiment,
            runs.over_time_link(),
            runs.version_series(versions),
        )
    )
    console.print(f"training runs with their test metrics: {tracking.training_runs_link()}")
    if where:
        print_urls(where)
    console.print(f"demo finished in {(time.monotonic() - started) / 60:.1f} min")
