"""The `mlops` command line: every pipeline step, the same functions the DAGs call."""

from __future__ import annotations

import getpass
import logging
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from mlops_platform import cli_tables
from mlops_platform.errors import PlatformError
from mlops_platform.orchestration import TRIGGER_REASONS

if TYPE_CHECKING:
    from mlops_platform.lineage import DagRun, RequestLineage

console = Console()


class MonthType(click.ParamType):
    """A `YYYY-MM` month, returned as the first day of that month."""

    name = "YYYY-MM"

    def convert(self, value, param, ctx):
        if isinstance(value, date):
            return value
        try:
            year, month = (int(part) for part in value.split("-"))
            if len(value) != 7:
                raise ValueError
            return date(year, month, 1)
        except ValueError:
            self.fail(f"{value!r} is not a month in YYYY-MM form", param, ctx)


class BaseDateType(click.ParamType):
    """A snapshot base date (`YYYY-MM-01`), checked strictly before any SQL runs."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        from mlops_platform.features import parse_base_date

        try:
            return parse_base_date(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


MONTH = MonthType()
BASE_DATE = BaseDateType()


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
    console.print(cli_tables.facts_table(title, rows))


class PlatformGroup(click.Group):
    """Errors that explain themselves (`PlatformError`) print as one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PlatformError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=PlatformGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """MLOps Level 1 platform: feature store, training, registry, serving and monitoring."""


@main.group()
def db() -> None:
    """Feature store and log store schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the database if missing and apply the migrations in sql/ not applied yet."""
    from mlops_platform import db as store

    applied = store.upgrade()
    for migration in applied:
        console.print(f"applied {migration.version:03d}_{migration.name}")
    versions = store.applied_versions()
    console.print(
        f"schema at version {versions[-1]:03d} ({len(applied)} applied now)"
        if versions
        else "no migrations found"
    )


@main.group()
def data() -> None:
    """Generate realistic data or ingest CSV files."""


@data.command("generate")
@click.option("--customers", type=click.IntRange(min=1), default=5_000, show_default=True)
@click.option("--months", type=click.IntRange(1, 240), default=12, show_default=True)
@click.option("--start", type=MONTH, required=True, help="First month, YYYY-MM.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--drift",
    type=click.Choice(["none", "covariate", "concept"]),
    default="none",
    show_default=True,
)
@click.option("--drift-from", type=MONTH, help="First drifted month, YYYY-MM.")
@click.option(
    "--dirty-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of CSV rows that get the public dataset's kinds of dirt.",
)
@click.option(
    "--csv",
    "csv_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write CSV files here instead of loading into the store.",
)
def data_generate(
    customers: int,
    months: int,
    start: date,
    seed: int,
    drift: str,
    drift_from: date | None,
    dirty_rate: float,
    csv_dir: Path | None,
) -> None:
    """Generate customers over months, with late labels and optional drift."""
    from mlops_platform.data.generator import GeneratorConfig, load_into_store, write_csv

    try:
        config = GeneratorConfig(customers, months, start, seed, drift, drift_from, dirty_rate)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if dirty_rate and not csv_dir:
        raise click.UsageError("--dirty-rate only applies to CSV output (--csv DIR)")
    if csv_dir:
        paths = write_csv(config, csv_dir)
        console.print(f"wrote {len(paths)} files to {csv_dir}")
        return
    summary = load_into_store(config)
    print_table(
        "Generated",
        [
            ("customers", summary.customers),
            ("feature rows", summary.feature_rows),
            ("label rows", summary.label_rows),
            ("seconds", f"{summary.seconds:.1f}"),
            ("customer-months / s", f"{summary.rows_per_second:,.0f}"),
        ],
    )


@data.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--year",
    type=click.IntRange(1990, 2100),
    default=2025,
    show_default=True,
    help="Year for files whose Month column holds month names (the public dataset).",
)
@click.option(
    "--announce/--no-announce", default=True, show_default=True,
    help="Post the feature-rows asset event to Airflow, which starts feature_pipeline.",
)  # fmt: skip
def data_ingest(files: tuple[str, ...], year: int, announce: bool) -> None:
    """Load CSV files (our layout or the public dataset's), quarantining dirty rows.

    Of clean rows repeating a customer and month, the last in the file wins (superseded).
    """
    from mlops_platform.data.ingest import ingest_csv, new_rows_announcement

    loaded = []
    for file in files:
        result = ingest_csv(Path(file), year=year)
        if result.rows_loaded:
            loaded.append(new_rows_announcement(result))
        print_table(
            f"Ingested {result.file_name}",
            [
                ("rows read", result.rows_read),
                ("rows loaded", result.rows_loaded),
                ("rows quarantined", result.rows_quarantined),
                ("rows superseded", result.rows_superseded),
                ("labels loaded", result.labels_loaded),
            ],
        )
        for reason, count in sorted(result.quarantine_reasons.items(), key=lambda kv: -kv[1]):
            console.print(f"  quarantined {count:>6,}  {reason}")
    if announce and loaded:
        _announce_feature_rows(loaded)


def _announce_feature_rows(announcements: list[dict]) -> None:
    """Tell Airflow through its REST API; the data is loaded either way, so only warn."""
    import httpx
    import urllib3
    from airflow_client.client.exceptions import OpenApiException

    from mlops_platform.airflow_api import AirflowApi
    from mlops_platform.orchestration import features_asset_uri

    uri = features_asset_uri()
    try:
        airflow = AirflowApi.for_settings()
        for announcement in announcements:
            airflow.post_asset_event(uri, announcement)
    except (OSError, LookupError, httpx.HTTPError, urllib3.exceptions.HTTPError,
            OpenApiException) as error:  # fmt: skip
        console.print(
            f"[yellow]Airflow was not told ({type(error).__name__}: {error});"
            " trigger feature_pipeline yourself, or ingest again once Airflow runs[/]"
        )
    else:
        console.print(f"asset {uri} updated in Airflow: feature_pipeline starts")


@main.group()
def features() -> None:
    """Point-in-time training snapshots."""


@features.command("build")
@click.option("--base-dt", type=BASE_DATE, required=True, help="Snapshot date, YYYY-MM-01.")
@click.option("--lookback-months", type=click.IntRange(1, 120), help="Months of history.")
def features_build(base_dt: date, lookback_months: int | None) -> None:
    """Build (or rebuild) the training snapshot for a base date."""
    from mlops_platform.features import build_snapshot

    build = build_snapshot(base_dt, lookback_months)
    print_table(
        f"Snapshot {build.base_dt}",
        [
            ("build id", build.build_id),
            ("lookback months", build.lookback_months),
            ("rows", build.row_count),
            ("customers", build.customer_count),
            ("content hash", build.content_hash),
        ],
    )


@features.command("prune")
@click.option(
    "--build", "build_ids", type=int, multiple=True, help="Prune exactly this build (repeatable)."
)
@click.option(
    "--retention-days",
    type=click.IntRange(min=0),
    help="Keep builds superseded more recently (default: SNAPSHOT_RETENTION_DAYS).",
)
@click.option("--dry-run", is_flag=True, help="List what would be pruned; delete nothing.")
def features_prune(build_ids: tuple[int, ...], retention_days: int | None, dry_run: bool) -> None:
    """Delete the rows of superseded snapshot builds no registered model version uses.

    The current build of each base date and every build a registered version names are
    always kept; others once superseded for the retention period (or named by --build).
    """
    from mlops_platform.lineage import prune_snapshots

    pruned = prune_snapshots(build_ids, retention_days=retention_days, dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    for build in pruned:
        console.print(
            f"{verb} build {build.build_id} of {build.base_dt} ({build.row_count:,} rows)"
        )
    console.print(f"{len(pruned)} build(s) {verb}")


@main.command("validate")
@click.option("--base-dt", type=BASE_DATE, required=True, help="Snapshot date, YYYY-MM-01.")
def validate(base_dt: date) -> None:
    """Check a snapshot before training; exits non-zero when a rule fails."""
    from mlops_platform.validation import validate_snapshot

    report = validate_snapshot(base_dt)
    for failure in report.failures:
        console.print(f"[red]FAIL[/red] {failure}")
    verdict = "[green]passed[/green]" if report.passed else "[red]failed[/red]"
    console.print(
        f"snapshot {report.base_dt} (build {report.build_id}, {report.row_count:,} rows) {verdict}"
    )
    if not report.passed:
        sys.exit(1)


@main.command("train")
@click.option("--base-dt", type=BASE_DATE, required=True, help="Snapshot date, YYYY-MM-01.")
@click.option("--trials", type=click.IntRange(min=1), help="Search trials (default: TRAIN_TRIALS).")
@click.option(
    "--time-budget",
    type=click.FloatRange(min=1),
    help="Seconds after which no new trial starts (default: TRAIN_TIME_BUDGET_S).",
)
@click.option(
    "--reason",
    type=click.Choice(TRIGGER_REASONS),
    default="manual",
    show_default=True,
    help="Why this training runs; recorded as lineage.",
)
@click.option("--dag-run-id", help="Airflow DAG run that triggered this training.")
def train(
    base_dt: date,
    trials: int | None,
    time_budget: float | None,
    reason: str,
    dag_run_id: str | None,
) -> None:
    """Train on a validated snapshot, log to MLflow, register, and run the champion gate."""
    from mlops_platform.training import gate_candidate, train_candidate

    candidate = train_candidate(
        base_dt, trials=trials, time_budget_s=time_budget, reason=reason, dag_run_id=dag_run_id
    )
    console.print(f"MLflow run {candidate.run_id}, registered version {candidate.version}")
    console.print(cli_tables.gate_table(gate_candidate(candidate)))


@main.command("lineage")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
def lineage(request_id: str, as_json: bool) -> None:
    """Trace a logged prediction to its model, run, snapshot, DAG runs, commit and deployments."""
    from mlops_platform.lineage import trace

    found = trace(request_id)
    if as_json:
        click.echo(found.to_json())
    else:
        print_lineage(found)


def print_lineage(found: RequestLineage) -> None:
    """The request, then one table per version that scored it."""
    console.print(
        f"[bold]Request {found.request_id}[/] at {found.created_at:%Y-%m-%d %H:%M:%S} UTC,"
        f" customer {found.customer_id or '—'}, features of {found.feature_month or '—'}"
    )
    console.print(", ".join(f"{name}={value}" for name, value in found.features.items()))
    for scored in found.scored_by:
        run, snapshot = scored.run, scored.snapshot
        rows: list[tuple[str, object]] = [
            ("prediction", f"{scored.predicted_class} {scored.probabilities}"),
            ("registered", "yes" if scored.registered else "[red]not in the registry[/]"),
        ]
        if run is not None:
            rows += [
                ("MLflow run", f"{run.run_name} ({run.run_id}), {run.status}"),
                ("experiment", f"{run.experiment_name} ({run.experiment_id})"),
                ("link", run.link),
                *((name, f"{value:.4f}") for name, value in run.metrics.items()),
            ]
        rows += [
            ("git commit", scored.git_commit or "—"),
            ("training DAG run", _dag_run_text(scored.training_dag_run)),
        ]
        if snapshot is not None:
            verdict = "[green]yes[/]" if snapshot.resolvable else f"[red]no[/]: {snapshot.problem}"
            rows += [
                ("snapshot", f"{snapshot.base_dt}, build {snapshot.build_id}"),
                ("content hash", snapshot.content_hash or snapshot.recorded_hash or "—"),
                ("rows", f"{snapshot.rows_present:,} stored of {snapshot.row_count or 0:,}"),
                ("resolvable", verdict),
                ("snapshot DAG run", _dag_run_text(snapshot.built_by)),
            ]
        rows += [
            (f"{d.created_at:%Y-%m-%d %H:%M} {d.action}", f"{d.reason} ({d.actor})")
            for d in scored.deployments
        ]
        title = f"{scored.role}: {scored.model_name} v{scored.model_version}"
        console.print(cli_tables.facts_table(title, rows))


def _dag_run_text(run: DagRun | None) -> str:
    return "—" if run is None else f"{run.dag_id or '?'} / {run.run_id}"


@main.command("mlflow-server")
def mlflow_server() -> None:
    """Run the MLflow tracking server (MariaDB backend, proxied artifacts) in the foreground."""
    from mlops_platform.tracking import run_server

    run_server()


@main.group()
def model() -> None:
    """The registered model: aliases, manual promotion, rollback."""


def _registry():
    """The registry module with the MLflow client configured (imported lazily: it is slow)."""
    from mlops_platform import registry, tracking

    tracking.configure()
    return registry


@model.command("status")
@click.option("--history", type=click.IntRange(min=0), default=10, show_default=True)
def model_status(history: int) -> None:
    """Show aliases, versions, their metrics and lineage, and the deployment history."""
    registry = _registry()
    console.print(cli_tables.status_table(registry.status()))
    if history:
        console.print(cli_tables.history_table(registry.deployment_history(limit=history)))


@model.command("promote")
@click.argument("version")
@click.option("--reason", required=True, help="Why; recorded in the deployment history.")
def model_promote(version: str, reason: str) -> None:
    """Make VERSION the champion now, bypassing the gate (recorded as manual_promote)."""
    replaced = _registry().promote(version, reason, actor=getpass.getuser())
    console.print(f"champion is now v{version}" + (f" (was v{replaced})" if replaced else ""))


@model.command("promote-live")
@click.argument("report_id", type=click.IntRange(min=1))
def model_promote_live(report_id: int) -> None:
    """Promote the challenger if shadow report REPORT_ID (`mlops monitor shadow`) says it
    beat the champion on live labelled requests; recorded as promote, reason shadow."""
    promoted, why = _registry().promote_on_live_evidence(report_id, actor=getpass.getuser())
    console.print(f"champion is now v{promoted}: {why}" if promoted else f"no promotion: {why}")


@model.command("stop-canary")
@click.argument("performance_reports", nargs=-1, required=True, type=click.IntRange(min=1))
def model_stop_canary(performance_reports: tuple[int, ...]) -> None:
    """Remove the challenger if one of PERFORMANCE_REPORTS (`mlops monitor performance`)
    says its canary traffic degraded; recorded as canary_rollback."""
    stopped, why = _registry().stop_degraded_canary(performance_reports, actor=getpass.getuser())
    console.print(f"challenger v{stopped} removed: {why}" if stopped else f"canary kept: {why}")


@model.command("rollback")
@click.option("--reason", default="manual rollback", show_default=True)
def model_rollback(reason: str) -> None:
    """Put the champion back on the previous champion in one step."""
    console.print(f"champion is now v{_registry().rollback(reason, actor=getpass.getuser())}")


@main.group()
def batch() -> None:
    """Batch serving: score every active customer with the champion."""


@batch.command("score")
@click.option(
    "--date", "score_date", type=click.DateTime(["%Y-%m-%d"]), required=True,
    help="Score date, YYYY-MM-DD: features of the latest month before its month are scored.",
)  # fmt: skip
def batch_score(score_date) -> None:
    """Replace the date's batch_predictions with a fresh scoring (what the DAG runs)."""
    from mlops_platform.batch import score_customers, scored_classes

    result = score_customers(score_date.date())
    print_table(
        f"Batch scoring for {result.score_date}",
        [
            ("customers scored", result.rows),
            ("model version", result.model_version),
            *((f"  {name}", count) for name, count in scored_classes(result.score_date).items()),
            ("seconds", f"{result.seconds:.1f}"),
        ],
    )


@main.command("serve")
def serve() -> None:
    """Run the BentoML prediction service (`bentoml serve serving.service:…`)."""
    from mlops_platform.stack import run_serving

    run_serving()


@main.command(
    "airflow", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def airflow(arguments: tuple[str, ...]) -> None:
    """Run `airflow ARGUMENTS` with this project's AIRFLOW_HOME, DAGs folder and defaults."""
    from mlops_platform.stack import run_airflow

    run_airflow(list(arguments))


@main.group()
def stack() -> None:
    """The native stack: MariaDB, MLflow, Airflow and the prediction service."""


@stack.command("up")
@click.option("--foreground", is_flag=True, help="Run under honcho here instead of detaching.")
@click.option("--wait", type=click.IntRange(min=0), default=240, show_default=True)
def stack_up(foreground: bool, wait: int) -> None:
    """Start every service; detached, it waits until they are ready and prints the URLs."""
    from mlops_platform import stack as native

    if foreground:
        sys.exit(native.run_foreground())
    native.up(timeout=wait, progress=console.print)
    _print_stack_status()


@stack.command("init")
def stack_init() -> None:
    """Refuse placeholder secrets, then apply the migrations (compose's init service)."""
    import os

    from mlops_platform import db as store
    from mlops_platform.stack import refuse_placeholders

    refuse_placeholders(dict(os.environ))
    applied = store.upgrade()
    console.print(f"store ready ({len(applied)} migrations applied now)")


@stack.command("down")
def stack_down() -> None:
    """Stop every service the stack started."""
    from mlops_platform.stack import stop

    console.print("stack stopped" if stop() else "the stack was not running")


@stack.command("status")
def stack_status() -> None:
    """Show which services are up, and where."""
    _print_stack_status()


@stack.command("mariadb")
def stack_mariadb() -> None:
    """Run a project-local mariadbd on FEATURE_STORE_URL's port (data under MLOPS_DATA_DIR)."""
    from mlops_platform.stack import run_local_mariadb

    run_local_mariadb()


def _print_stack_status() -> None:
    from mlops_platform.stack import airflow_environment, status

    table = Table(title="Stack", title_justify="left")
    for header in ("service", "state", "url"):
        table.add_column(header)
    colours = {"ready": "green", "up": "yellow", "down": "red"}
    for name, (state, url) in status().items():
        table.add_row(name, f"[{colours[state]}]{state}[/]", url)
    console.print(table)
    home = airflow_environment()["AIRFLOW_HOME"]
    console.print(
        f"Airflow admin password: {home}/simple_auth_manager_passwords.json.generated"
        " (or set AIRFLOW_ADMIN_PASSWORD)"
    )


@main.command("demo")
@click.option("--size", type=click.Choice(["small", "full"]), default="full", show_default=True)
@click.option(
    "--stack",
    type=click.Choice(["native", "compose", "running"]),
    default="native",
    show_default=True,
    help="native: start local processes; compose: start the containers and run the loop"
    " inside them; running: a fresh stack already up (AIRFLOW_URL, SERVING_URL).",
)
def demo(size: str, stack: str) -> None:
    """Run the whole Level 1 loop on a stack and print a summary."""
    from mlops_platform.demo import run

    run(size, stack)


class MomentType(click.ParamType):
    """An ISO date or date-time; a time without a zone is UTC."""

    name = "ISO-TIME"

    def convert(self, value, param, ctx):
        from datetime import datetime

        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO date or date-time", param, ctx)


MOMENT = MomentType()
window_start = click.option(
    "--start", type=MOMENT, help="Window start (default: end - DRIFT_WINDOW_HOURS)."
)
window_end = click.option("--end", type=MOMENT, help="Window end (default: this hour, UTC).")


@main.group()
def drift() -> None:
    """Data drift of logged predictions against the champion's training profile."""


@drift.command("check")
@window_start
@window_end
@click.option("--model-version", help="Version to check (default: the champion).")
def drift_check(start, end, model_version: str | None) -> None:
    """PSI and chi-square per feature, counted in MariaDB; stores a report and an HTML page."""
    from mlops_platform.monitoring.drift import check

    report = check(start, end, model_version)
    console.print(cli_tables.drift_table(report))
    if report.html_path:
        console.print(f"HTML report: {report.html_path}")


@main.group()
def monitor() -> None:
    """Live accuracy from late labels, and the retrain decision."""


@monitor.command("performance")
@window_start
@window_end
@click.option("--model-version", help="Only this version (default: every version in the window).")
def monitor_performance(start, end, model_version: str | None) -> None:
    """Accuracy, macro-F1 and per-class recall of the labels that arrived in the window."""
    from mlops_platform.monitoring.performance import performance

    report = performance(start, end, model_version=model_version)
    console.print(cli_tables.performance_table(report))


@monitor.command("estimate")
@window_start
@window_end
@click.option("--model-version", help="Version to estimate (default: the champion).")
@click.option(
    "--labels-until",
    type=MOMENT,
    help="The realised side counts labels seen before this (default: the window's end).",
)
def monitor_estimate(start, end, model_version: str | None, labels_until) -> None:
    """Accuracy and macro-F1 estimated without labels (CBPE), beside the realised ones.

    Also adds the realised accuracy to the estimate of the window ESTIMATE_SETTLE_DAYS back.
    """
    from mlops_platform.monitoring.estimate import check
    from mlops_platform.monitoring.reports import load_reports

    current, settled = check(start, end, model_version, labels_until=labels_until)
    ids = [current.report_id, *settled]
    stored = load_reports(ids)
    console.print(cli_tables.estimate_table([stored[i] for i in ids]))


@monitor.command("shadow")
@window_end
def monitor_shadow(end) -> None:
    """Champion against challenger on the same labelled requests (SHADOW_WINDOW_DAYS back):
    accuracy, macro-F1, McNemar's test and the verdict the live-evidence gate acts on."""
    from mlops_platform.monitoring.shadow import compare

    comparisons = compare(end)
    if not comparisons:
        console.print("no request was scored in shadow in the window: is a challenger set?")
    for comparison in comparisons:
        console.print(cli_tables.shadow_table(comparison))


@monitor.command("decide")
@click.argument("drift_report", type=click.IntRange(min=1))
@click.argument("performance_reports", nargs=-1, type=click.IntRange(min=1))
def monitor_decide(drift_report: int, performance_reports: tuple[int, ...]) -> None:
    """retrain (drift or performance, with the report id), ok, or insufficient-data.

    Decides from stored reports: DRIFT_REPORT from `mlops drift check` and the
    PERFORMANCE_REPORTS of the same window from `mlops monitor performance`.
    """
    from mlops_platform.monitoring.decision import decide

    console.print(cli_tables.decision_table(decide(drift_report, performance_reports)))


@monitor.command("record-trigger")
@click.argument("report_id", type=int)
@click.argument("run_id")
def monitor_record_trigger(report_id: int, run_id: str) -> None:
    """Note on a report which training run it triggered (starts the cooldown)."""
    from mlops_platform.monitoring.reports import record_trigger

    record_trigger(report_id, run_id)


@monitor.command("exporter")
@click.option("--host", help="Interface to bind (default: EXPORTER_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: EXPORTER_PORT).")
def monitor_exporter(host: str | None, port: int | None) -> None:
    """Serve model-quality gauges for Prometheus (/metrics) and log Alertmanager's alerts."""
    from mlops_platform.alerting.exporter import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(host, port)


@main.group()
def traffic() -> None:
    """Simulated traffic and arriving labels, to watch drift appear."""


def population_options(command):
    """The options that pick the same simulated customers as `mlops data generate`."""
    for option in reversed(
        [
            click.option("--customers", type=click.IntRange(min=1), required=True),
            click.option("--month", type=MONTH, required=True, help="Simulated month, YYYY-MM."),
            click.option("--start", type=MONTH, help="First month of the generated history."),
            click.option(
                "--scenario", type=click.Choice(["none", "covariate", "concept"]), default="none"
            ),
            click.option("--drift-from", type=MONTH, help="First drifted month."),
            click.option("--seed", type=int, default=42, show_default=True),
        ]
    ):
        command = option(command)
    return command


@traffic.command("simulate")
@population_options
@click.option("--count", type=click.IntRange(min=1), help="Records (default: each customer once).")
@click.option("--rate", type=click.FloatRange(min=0.01), help="Requests (or log rows) per second.")
@click.option(
    "--target", type=click.Choice(["service", "log"]), default="service", show_default=True
)
@click.option("--service-url", help="Default: http://SERVING_HOST:SERVING_PORT.")
@click.option("--at", type=MOMENT, help="log target: created_at of the first row (default: now).")
def traffic_simulate(customers, month, start, scenario, drift_from, seed, count, rate, target,
                     service_url, at) -> None:  # fmt: skip
    """Send a simulated month to the service, or write it straight into prediction_log."""
    from mlops_platform.traffic import simulate

    result = simulate(
        customers, month, scenario, count, rate, target, service_url, seed,
        start=start, drift_from=drift_from, at=at,
    )  # fmt: skip
    console.print(
        f"{result.records:,} records to the {result.target} in {result.seconds:.1f} s:"
        f" {result.predicted}"
    )


@traffic.command("labels")
@population_options
@click.option("--now", "arrive_now", is_flag=True, help="Labels arrive now, not weeks later.")
def traffic_labels(customers, month, start, scenario, drift_from, seed, arrive_now) -> None:
    """Write the simulated month's ground truth into credit_labels."""
    from datetime import UTC, datetime

    from mlops_platform.traffic import deliver_labels

    written = deliver_labels(
        customers, month, scenario, seed, start=start, drift_from=drift_from,
        observed_at=datetime.now(UTC) if arrive_now else None,
    )  # fmt: skip
    console.print(f"{written:,} labels written")
