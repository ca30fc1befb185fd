"""Notification mails: built from stored rows and reports, sent over real SMTP to a local sink."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace

import pytest

from mlops_platform.alerting.notify import (
    Notification,
    PipelineFailureNotifier,
    failure_message,
    gate_decision_message,
    retrain_message,
    send,
)
from mlops_platform.config import Settings, get_settings
from mlops_platform.monitoring.reports import StoredReport
from mlops_platform.monitoring.windows import Window
from mlops_platform.registry import Deployment
from tests.smtp_sink import free_port, smtp_sink

# The sink takes a login without TLS, which aiosmtpd rightly warns about; tests only.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
WINDOW = Window(datetime(2026, 3, 1, 10), datetime(2026, 3, 2, 10))


def deployment(action: str, previous: str | None) -> Deployment:
    return Deployment(
        deployment_id=41,
        model_name="credit_score",
        version="7",
        previous_version=previous,
        action=action,
        reason="drift: macro_f1 0.7012 beats champion 0.6820 by 0.0192",
        actor="airflow",
        metrics={
            "candidate": {"macro_f1": 0.7012, "accuracy": 0.73},
            "champion": {"macro_f1": 0.682, "accuracy": 0.71} if previous else None,
            "checks": {"floor": True, "class_share": action == "promote"},
        },
        created_at=datetime(2026, 3, 2, 10, 5, 7),
    )


def report(kind: str, stats: dict, drift_share: float | None = None) -> StoredReport:
    return StoredReport(
        report_id=12, kind=kind, model_name="credit_score", model_version="3", window=WINDOW,
        row_count=1_800, stats=stats, drift_share=drift_share,
        decision="drift" if kind == "drift" else "degraded", triggered_run="retrain__scheduled_1",
    )  # fmt: skip


@pytest.fixture
def mail_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:
    """Point the settings at an SMTP port with recipients; settings reload on each call."""

    def configure(port: int, to: str = "ops@example.org, ml@example.org", **extra: str) -> None:
        for name, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TO": to,
                            "SMTP_TIMEOUT_S": "3", **extra}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def test_a_promotion_mail_names_the_version_the_champion_it_beat_and_the_metrics() -> None:
    mail = gate_decision_message(deployment("promote", "5"))
    assert mail.subject == "[mlops] credit_score v7 promoted to champion"
    assert "promoted version 7 of credit_score" in mail.body
    assert "Judged against: v5" in mail.body
    assert "beats champion 0.6820" in mail.body
    assert any(line.split() == ["macro_f1", "0.7012", "0.6820"] for line in mail.body.splitlines())
    assert "class_share passed" in mail.body
    assert "deployments row 41" in mail.body


def test_a_rejection_mail_says_the_version_stays_challenger_and_which_check_failed() -> None:
    mail = gate_decision_message(deployment("reject", None))
    assert mail.subject == "[mlops] credit_score v7 rejected"
    assert "it stays challenger" in mail.body
    assert "Judged against: no champion" in mail.body
    assert "class_share FAILED" in mail.body
    assert any(line.split() == ["macro_f1", "0.7012", "-"] for line in mail.body.splitlines())


def test_a_promotion_on_live_evidence_mails_both_models_live_metrics() -> None:
    live = replace(
        deployment("promote", "5"),
        reason="shadow: challenger better: macro_f1 0.8100 against 0.5200 (+0.2900)",
        metrics={
            "shadow_report_id": 9, "labelled": 900, "mcnemar_p_value": 1e-12,
            "champion": {"macro_f1": 0.52}, "challenger": {"macro_f1": 0.81},
            "checks": {"significant": True},
        },
    )  # fmt: skip
    mail = gate_decision_message(live)
    assert mail.subject == "[mlops] credit_score v7 promoted to champion"
    assert "Reason: shadow: challenger better" in mail.body
    assert any(line.split() == ["macro_f1", "0.8100", "0.5200"] for line in mail.body.splitlines())
    assert "significant passed" in mail.body


def test_a_shadow_mail_says_the_version_passed_and_scores_in_shadow() -> None:
    mail = gate_decision_message(deployment("shadow", "5"))
    assert mail.subject == "[mlops] credit_score v7 passed, scoring in shadow"
    assert "it scores in shadow as challenger" in mail.body


def test_a_drift_retrain_mail_carries_the_reports_drifted_features() -> None:
    stats = {"drifted": ["outstanding_debt", "delay_from_due_date"], "severe": ["outstanding_debt"]}
    mail = retrain_message(report("drift", stats, drift_share=0.4321))
    assert mail.subject == "[mlops] retraining credit_score: drift on v3"
    assert "retraining run retrain__scheduled_1 because drift report 12" in mail.body
    assert WINDOW.label() in mail.body and "1800 rows" in mail.body
    assert "0.4321" in mail.body
    assert "Drifted features: outstanding_debt, delay_from_due_date" in mail.body
    assert "Severe: outstanding_debt" in mail.body


def test_a_performance_retrain_mail_carries_live_and_test_accuracy() -> None:
    stats = {"metrics": {"accuracy": 0.61, "macro_f1": 0.58}, "baseline_test_macro_f1": 0.69,
             "note": "macro-F1 0.5800 is 0.1100 below the test 0.6900"}  # fmt: skip
    mail = retrain_message(report("performance", stats))
    assert mail.subject == "[mlops] retraining credit_score: performance on v3"
    assert "Live accuracy 0.6100, macro-F1 0.5800 (test macro-F1 0.6900)" in mail.body
    assert "0.1100 below" in mail.body


def test_a_failure_mail_names_dag_task_run_try_error_and_log() -> None:
    mail = failure_message(
        "feature_pipeline", "validate_snapshot", "manual__2026", 3,
        RuntimeError("min_rows: 0 < 1000"), "http://airflow/dags/feature_pipeline/runs/x",
    )  # fmt: skip
    assert mail.subject == "[mlops] feature_pipeline.validate_snapshot failed"
    assert "run manual__2026 (try 3)" in mail.body
    assert "RuntimeError: min_rows: 0 < 1000" in mail.body
    assert "http://airflow/dags/feature_pipeline/runs/x" in mail.body


def test_send_delivers_over_smtp_to_every_recipient(mail_to) -> None:
    with smtp_sink() as (sink, port):
        mail_to(port, SMTP_FROM="platform@example.org")
        assert send(Notification("[mlops] hello", "line one\nline two")) is True
        (received,) = sink.wait_for(1)
    assert received["Subject"] == "[mlops] hello"
    assert received["From"] == "platform@example.org"
    assert received["To"] == "ops@example.org, ml@example.org"
    assert received.get_content().splitlines() == ["line one", "line two"]


def test_send_logs_in_when_a_user_is_set(mail_to) -> None:
    with smtp_sink(login=("mlops", "s3cret")) as (sink, port):
        mail_to(port, SMTP_USER="mlops", SMTP_PASSWORD="s3cret")
        assert send(Notification("[mlops] with login", "body")) is True
        assert len(sink.wait_for(1)) == 1
    assert sink.logins == ["mlops"]


def test_a_wrong_password_loses_the_mail_with_a_warning_not_an_error(mail_to, caplog) -> None:
    with smtp_sink(login=("mlops", "s3cret")) as (sink, port):
        mail_to(port, SMTP_USER="mlops", SMTP_PASSWORD="wrong")
        with caplog.at_level(logging.WARNING, "mlops_platform.alerting.notify"):
            assert send(Notification("[mlops] refused", "body")) is False
    assert sink.messages == []
    assert "not sent" in caplog.text


def test_without_recipients_nothing_is_sent(mail_to) -> None:
    with smtp_sink() as (sink, port):
        mail_to(port, to="")
        assert get_settings().notification_recipients == []
        assert send(Notification("[mlops] nobody", "body")) is False
        PipelineFailureNotifier()({"ti": failed_task()})
        assert sink.wait_for(1, timeout=1) == []


def test_an_smtp_outage_is_a_warning_and_the_notifier_does_not_raise(mail_to, caplog) -> None:
    mail_to(free_port())  # nothing listens there
    with caplog.at_level(logging.WARNING, "mlops_platform.alerting.notify"):
        assert send(Notification("[mlops] lost", "body")) is False
        PipelineFailureNotifier()({"ti": failed_task(), "exception": ValueError("bad")})
    assert caplog.text.count("not sent through 127.0.0.1") == 2


def test_the_failure_notifier_mails_what_the_task_context_holds(mail_to) -> None:
    with smtp_sink() as (sink, port):
        mail_to(port)
        PipelineFailureNotifier()({"ti": failed_task(), "exception": ValueError("bad input")})
        (received,) = sink.wait_for(1)
    assert received["Subject"] == "[mlops] ingest.ingest_file failed"
    assert "ValueError: bad input" in received.get_content()


def failed_task() -> SimpleNamespace:
    return SimpleNamespace(
        dag_id="ingest", task_id="ingest_file", run_id="manual__1", try_number=1,
        log_url="http://localhost:8080/dags/ingest/runs/manual__1/tasks/ingest_file",
    )  # fmt: skip


def test_smtp_settings_refuse_a_placeholder_password_and_two_tls_modes(monkeypatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "change-me-smtp")
    with pytest.raises(ValueError, match="SMTP_PASSWORD"):
        Settings()
    monkeypatch.delenv("SMTP_PASSWORD")
    monkeypatch.setenv("SMTP_SSL", "true")
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    with pytest.raises(ValueError, match="SMTP_SSL or SMTP_STARTTLS"):
        Settings()
