"""E-mail notifications: champion-gate decisions, retrain triggers and pipeline failures.

Each mail is built from what the tasks stored (the gate's `deployments` row, the report that
called for retraining) and sent through SMTP_*. An empty SMTP_TO turns mails off, and an SMTP
outage is a logged warning: a notification never fails the task it reports on.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from mlops_platform.config import Settings, get_settings

if TYPE_CHECKING:
    from mlops_platform.monitoring.reports import StoredReport
    from mlops_platform.registry import Deployment

SUBJECT_PREFIX = "[mlops]"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    subject: str
    body: str


def gate_decision_message(deployment: Deployment) -> Notification:
    """The gate's decision as its `deployments` row recorded it: verdict, reason, metrics."""
    name, version = deployment.model_name, deployment.version
    if deployment.action == "promote":
        verdict, headline = "promoted to champion", f"promoted version {version} of {name}"
    elif deployment.action == "shadow":
        verdict = "passed, scoring in shadow"
        headline = f"passed version {version} of {name}; it scores in shadow as challenger"
    else:
        verdict, headline = "rejected", f"rejected version {version} of {name}; it stays challenger"
    metrics = deployment.metrics or {}
    # A promotion on live evidence records the challenger's live metrics as the candidate's.
    candidate = metrics.get("candidate") or metrics.get("challenger") or {}
    champion = metrics.get("champion") or {}
    against = f"v{deployment.previous_version}" if deployment.previous_version else "no champion"
    lines = [
        f"The champion gate {headline}.",
        f"Judged against: {against}",
        f"Reason: {deployment.reason}",
        "",
        f"{'metric':<20} {'candidate':>10} {'champion':>10}",
        *(
            f"{name:<20} {value:>10.4f} {_number(champion.get(name)):>10}"
            for name, value in sorted(candidate.items())
        ),
        "",
        "Checks: "
        + ", ".join(
            f"{check} {'passed' if ok else 'FAILED'}"
            for check, ok in sorted((metrics.get("checks") or {}).items())
        ),
        f"Decided by {deployment.actor} at {deployment.created_at:%Y-%m-%d %H:%M:%S} UTC"
        f" (deployments row {deployment.deployment_id}).",
    ]
    subject = f"{name} v{version} {verdict}"
    return Notification(f"{SUBJECT_PREFIX} {subject}", "\n".join(lines))


def retrain_message(report: StoredReport) -> Notification:
    """Why monitoring started a retraining run, as the report that called for it stored it."""
    stats = report.stats
    lines = [
        f"Monitoring triggered retraining run {report.triggered_run or '(not recorded)'}"
        f" because {report.kind} report {report.report_id} found '{report.decision}'.",
        f"Model: {report.model_name} v{report.model_version}",
        f"Window: {report.window.label()} ({report.row_count} rows)",
    ]
    if report.kind == "drift":
        lines += [
            f"Drift share (importance-weighted): {_number(report.drift_share)}",
            f"Drifted features: {', '.join(stats.get('drifted', [])) or 'none'}",
            f"Severe: {', '.join(stats.get('severe', [])) or 'none'}",
        ]
    else:
        live = stats.get("metrics", {})
        baseline = stats.get("baseline_test_macro_f1")
        lines += [
            f"Live accuracy {_number(live.get('accuracy'))},"
            f" macro-F1 {_number(live.get('macro_f1'))} (test macro-F1 {_number(baseline)})",
            f"Note: {stats.get('note', '')}",
        ]
    subject = f"retraining {report.model_name}: {report.kind} on v{report.model_version}"
    return Notification(f"{SUBJECT_PREFIX} {subject}", "\n".join(lines))


def failure_message(
    dag_id: str, task_id: str, run_id: str, try_number: int, error: Any, log_url: str
) -> Notification:
    """A task failed for good (its retries are spent): where, which try, the error, the log."""
    lines = [
        f"Task {task_id} of DAG {dag_id} failed in run {run_id} (try {try_number}).",
        f"Error: {type(error).__name__}: {error}" if error is not None else "Error: not given",
        f"Log: {log_url}",
    ]
    subject = f"{dag_id}.{task_id} failed"
    return Notification(f"{SUBJECT_PREFIX} {subject}", "\n".join(lines))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def send(notification: Notification, settings: Settings | None = None) -> bool:
    """Mail it to SMTP_TO; False when notifications are off or the server failed (logged)."""
    settings = settings or get_settings()
    recipients = settings.notification_recipients
    if not recipients:
        return False
    message = EmailMessage()
    message["Subject"] = notification.subject
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message.set_content(notification.body)
    connect = smtplib.SMTP_SSL if settings.smtp_ssl else smtplib.SMTP
    try:
        with connect(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
    except OSError as error:  # smtplib.SMTPException is an OSError too
        # The pipeline's work is done or failed already; a lost mail must not change that.
        log.warning(
            "notification %r not sent through %s:%s: %s",
            notification.subject,
            settings.smtp_host,
            settings.smtp_port,
            error,
        )
        return False
    return True


class PlatformNotifier(BaseNotifier):
    """Mails what `compose` builds from the task's context; nothing while SMTP_TO is empty."""

    def compose(self, context: Mapping[str, Any]) -> Notification:
        raise NotImplementedError

    def notify(self, context: Mapping[str, Any]) -> None:
        if get_settings().notification_recipients:
            send(self.compose(context))


class GateDecisionNotifier(PlatformNotifier):
    """On the gate task's success: its decision, read from the `deployments` row it wrote."""

    def compose(self, context: Mapping[str, Any]) -> Notification:
        from mlops_platform import registry

        ti = context["ti"]
        decision = ti.xcom_pull(task_ids=ti.task_id)
        return gate_decision_message(registry.gate_deployment(decision["version"]))


class RetrainTriggerNotifier(PlatformNotifier):
    """After a retrain trigger is recorded: the report `decide_task_id` passed on by id."""

    def __init__(self, decide_task_id: str) -> None:
        super().__init__()
        self.decide_task_id = decide_task_id

    def compose(self, context: Mapping[str, Any]) -> Notification:
        from mlops_platform.monitoring.reports import load_reports

        conf = context["ti"].xcom_pull(task_ids=self.decide_task_id, key="conf")
        return retrain_message(load_reports([conf["report_id"]])[conf["report_id"]])


class PipelineFailureNotifier(PlatformNotifier):
    """On any task's final failure: the DAG, task, run, try, error and log link."""

    def compose(self, context: Mapping[str, Any]) -> Notification:
        ti = context["ti"]
        return failure_message(
            ti.dag_id, ti.task_id, ti.run_id, ti.try_number, context.get("exception"), ti.log_url
        )
