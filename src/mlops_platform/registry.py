"""The model registry: register versions, gate them into `champion`, promote, roll back.

Only aliases name what serves: `champion` (in production), `previous_champion` (one step
back, for rollback) and `challenger` (the latest candidate the gate rejected, or that
passed it with GATE_SHADOW_FIRST on). The service scores every request with the
challenger in shadow; `promote_on_live_evidence` promotes it when the paired comparison
of the two on labelled requests says it is better. Every
decision is also a row in the MariaDB `deployments` table. Champion changes are
serialised by a MariaDB named lock, and aliases move last, so a failure leaves them as
they were.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput, NotFound, PlatformError
from mlops_platform.schema import CREDIT_SCORES, TARGET

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from mlops_platform.model import CreditScoreModel

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
CHALLENGER = "challenger"
LINEAGE_TAGS = (
    "base_dt",
    "snapshot_build_id",
    "snapshot_rows",
    "snapshot_hash",
    "trigger_reason",
    "git_commit",
    "airflow_dag_run_id",
)
# The few lineage tags a version carries itself (pruning keeps builds that versions name;
# lineage checks hashes); the run keeps every tag, the version's description tells the rest.
VERSION_TAGS = ("base_dt", "snapshot_build_id", "snapshot_hash", "trigger_reason")
LATENCY_ROWS = 1_000
SAFE_MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_REASON_CHARS = 1_000
log = logging.getLogger(__name__)


class RegistryError(PlatformError):
    """A registry operation cannot go ahead (nothing was changed)."""


class ChampionLockTimeout(RegistryError):
    """Another promotion or rollback of the same model held the champion lock too long."""


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict; `previous_champion` is the champion it was judged against.

    `in_shadow`: it passed, but GATE_SHADOW_FIRST made it challenger instead of champion.
    """

    version: str
    promoted: bool
    previous_champion: str | None
    reasons: tuple[str, ...]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    checks: dict[str, bool]
    in_shadow: bool = False


@dataclass(frozen=True)
class VersionStatus:
    """One registered version: where it came from and how it scored."""

    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: datetime
    metrics: dict[str, float]
    lineage: dict[str, str]
    gate: dict[str, str]


@dataclass(frozen=True)
class ModelStatus:
    """The registered model's aliases and its most recent versions, newest first."""

    name: str
    aliases: dict[str, str]
    versions: tuple[VersionStatus, ...]


@dataclass(frozen=True)
class Deployment:
    """One row of the `deployments` history."""

    deployment_id: int
    model_name: str
    version: str
    previous_version: str | None
    action: str
    reason: str
    actor: str
    metrics: dict[str, Any] | None
    created_at: datetime


def model_name() -> str:
    """The configured registered-model name, checked so it is safe in registry filters."""
    name = get_settings().model_name
    if not SAFE_MODEL_NAME.match(name):
        raise InvalidInput(f"MODEL_NAME must be letters, digits, '_', '.' or '-': {name!r}")
    return name


def _client() -> MlflowClient:
    import mlflow

    # Model loading uses the process-wide URI: make it the configured server, not ./mlruns.
    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    return mlflow.MlflowClient()


@contextmanager
def _existing(what: str) -> Iterator[None]:
    """MLflow's "does not exist" as a RegistryError that names what was asked for."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegistryError(f"{what} does not exist in the registry") from error


def load_version(version: str) -> CreditScoreModel:
    """One registered version of MODEL_NAME, with its bundled preprocessing."""
    import mlflow

    _client()  # points MLflow at the configured server
    return mlflow.pyfunc.load_model(f"models:/{model_name()}/{version}").unwrap_python_model()


def load_champion() -> tuple[str, CreditScoreModel]:
    """The version holding `champion` and its model; raises RegistryError if none does."""
    name = model_name()
    aliases = _client().get_registered_model(name).aliases
    if CHAMPION not in aliases:
        raise RegistryError(f"{name} has no {CHAMPION}; train and promote a model first")
    return aliases[CHAMPION], load_version(aliases[CHAMPION])


def model_card(lineage: Mapping[str, str], test_metrics: Mapping[str, float], run_id: str) -> str:
    """A version's description in markdown: its data window, test metrics and lineage."""
    dag_run = lineage.get("airflow_dag_run_id") or "none (not run by Airflow)"
    if lineage.get("airflow_dag_id"):
        dag_run = f"{lineage['airflow_dag_id']} / {dag_run}"
    return "\n".join(
        [
            "**Data window**",
            f"- Snapshot base date: {lineage['base_dt']} (features of the months before it)",
            f"- Snapshot build {lineage['snapshot_build_id']}:"
            f" {int(lineage['snapshot_rows']):,} rows, content hash `{lineage['snapshot_hash']}`",
            "",
            "**Test metrics** (customers held out of training)",
            "",
            "| accuracy | macro-F1 |",
            "|---|---|",
            f"| {test_metrics['accuracy']:.4f} | {test_metrics['macro_f1']:.4f} |",
            "",
            "**Lineage**",
            f"- Training run: `{run_id}` (every parameter and tag)",
            f"- Git commit: `{lineage['git_commit']}`",
            f"- DAG run: {dag_run}",
            f"- Trigger: {lineage['trigger_reason']}",
        ]
    )


def register(
    model_uri: str, run_id: str, tags: Mapping[str, str], description: str | None = None
) -> str:
    """Register the logged model as a new version of MODEL_NAME with `tags`; its version."""
    import mlflow

    version = mlflow.register_model(model_uri, model_name(), tags=dict(tags))
    if description:
        _client().update_model_version(model_name(), version.version, description=description)
    if version.run_id != run_id:
        raise RegistryError(
            f"{model_uri} was logged by run {version.run_id}, not {run_id}"
            f" (registered anyway as version {version.version}, with no alias)"
        )
    return str(version.version)


# -- the gate ----------------------------------------------------------------------------


def evaluate(model: CreditScoreModel, test_frame: pd.DataFrame) -> dict[str, float]:
    """Test metrics plus the largest predicted-class share and classes never predicted."""
    from mlops_platform.model import classification_metrics

    probabilities = model.predict_proba(test_frame)
    metrics = classification_metrics(test_frame[TARGET], probabilities)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=len(CREDIT_SCORES))
    metrics["max_class_share"] = float(counts.max() / counts.sum())
    metrics["classes_never_predicted"] = float((counts == 0).sum())
    return metrics


def ms_per_1000_rows(model: CreditScoreModel, test_frame: pd.DataFrame) -> float:
    """Milliseconds to score 1,000 rows drawn from `test_frame` (best of three calls)."""
    batch = test_frame.sample(
        LATENCY_ROWS, replace=len(test_frame) < LATENCY_ROWS, random_state=0
    ).drop(columns=[TARGET])
    timings = []
    # The best of three ignores a first call that warms caches, and noisy neighbours.
    for _ in range(3):
        started = time.perf_counter()
        model.predict_proba(batch)
        timings.append(time.perf_counter() - started)
    return min(timings) * 1_000 * LATENCY_ROWS / len(batch)


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    champion_version: str | None,
) -> tuple[bool, tuple[str, ...], dict[str, bool]]:
    """Apply the gate rules to measured metrics: (promote?, reasons, checks)."""
    settings = get_settings()
    metric = settings.gate_metric
    score = candidate[metric]
    checks = {
        "clears_floor": score >= settings.gate_floor,
        "predicts_every_class": candidate["classes_never_predicted"] == 0,
        "class_share_ok": candidate["max_class_share"] <= settings.gate_max_class_share,
        "fast_enough": candidate["ms_per_1000_rows"] <= settings.gate_max_ms_per_1000_rows,
    }
    failures = {
        "clears_floor": f"{metric} {score:.4f} is below the floor {settings.gate_floor}",
        "predicts_every_class": "some credit-score class is never predicted",
        "class_share_ok": f"one class takes {candidate['max_class_share']:.1%} of predictions"
        f" (limit {settings.gate_max_class_share:.0%})",
        "fast_enough": f"{candidate['ms_per_1000_rows']:.0f} ms per 1,000 rows"
        f" (limit {settings.gate_max_ms_per_1000_rows:.0f})",
    }
    if champion is not None:
        needed = champion[metric] + settings.gate_min_improvement
        checks["beats_champion"] = score >= needed
        failures["beats_champion"] = (
            f"{metric} {score:.4f} does not beat champion v{champion_version}'s"
            f" {champion[metric]:.4f} by {settings.gate_min_improvement}"
        )
    reasons = tuple(failures[name] for name, passed in checks.items() if not passed)
    if reasons:
        return False, reasons, checks
    if champion is None:
        return True, (f"first champion: {metric} {score:.4f} clears the floor",), checks
    gain = score - champion[metric]
    return (
        True,
        (f"{metric} {score:.4f} beats champion v{champion_version} by {gain:+.4f}",),
        checks,
    )


def gate(
    version: str,
    candidate: CreditScoreModel,
    test_frame: pd.DataFrame,
    *,
    reason: str,
    actor: str,
    url: str | None = None,
) -> GateDecision:
    """Promote `version` to champion if it beats the champion on the same test rows.

    Otherwise it becomes `challenger` with the reasons as version tags; either way the
    decision is a `deployments` row. `test_frame` holds the features and `credit_score`.
    """

    name = model_name()
    client = _client()
    candidate_metrics = evaluate(candidate, test_frame)
    candidate_metrics["ms_per_1000_rows"] = ms_per_1000_rows(candidate, test_frame)
    with _champion_lock(name, url):
        before = client.get_registered_model(name).aliases
        champion_version = before.get(CHAMPION)
        if champion_version == version:
            raise RegistryError(f"version {version} of {name} is already the champion")
        champion_metrics = None
        if champion_version is not None:
            champion_metrics = evaluate(load_version(champion_version), test_frame)
        passed, reasons, checks = decide(candidate_metrics, champion_metrics, champion_version)
        in_shadow = passed and champion_version is not None and get_settings().gate_shadow_first
        if in_shadow:
            reasons = (*reasons, "scores in shadow as challenger until live evidence promotes it")
        decision = GateDecision(
            version=version,
            promoted=passed and not in_shadow,
            previous_champion=champion_version,
            reasons=reasons,
            candidate_metrics=candidate_metrics,
            champion_metrics=champion_metrics,
            checks=checks,
            in_shadow=in_shadow,
        )
        action = "shadow" if in_shadow else "promote" if passed else "reject"
        # The measured metrics and checks are in the deployments row, not on the version.
        tags = {
            "gate.decision": {"promote": "promoted", "reject": "rejected"}.get(action, action),
            "gate.reasons": "; ".join(reasons),
            "gate.champion_version": champion_version or "none",
        }
        _record_and_move(
            client,
            name,
            before,
            _promotion_moves(before, version) if decision.promoted else {CHALLENGER: version},
            tags,
            {
                "version": version,
                "previous_version": champion_version,
                "action": action,
                "reason": f"{reason}: {'; '.join(reasons)}",
                "actor": actor,
                "metrics": {
                    "candidate": candidate_metrics,
                    "champion": champion_metrics,
                    "checks": checks,
                },
            },
            url,
        )
    return decision


def promote_on_live_evidence(
    report_id: int, actor: str, url: str | None = None
) -> tuple[str | None, str]:
    """Promote the challenger if the stored shadow report says it beat the champion.

    Returns (the version promoted or None, why). The report must still describe the
    aliases: evidence about a champion or challenger that has moved since promotes nothing.
    The deployments row (action `promote`, reason `shadow: …`) keeps the evidence.
    """
    from mlops_platform.monitoring import reports, shadow

    report = reports.load_reports([report_id], url)[report_id]
    if report.kind != shadow.SHADOW_KIND:
        raise InvalidInput(f"report {report_id} is a {report.kind} report, not a shadow one")
    evidence = shadow.from_report(report)
    if evidence.decision != shadow.CHALLENGER_BETTER:
        return None, evidence.note
    name, version = model_name(), evidence.challenger_version
    client = _client()
    with _champion_lock(name, url):
        before = client.get_registered_model(name).aliases
        now = (before.get(CHAMPION), before.get(CHALLENGER))
        if now != (evidence.champion_version, version):
            return None, (
                f"report {report_id} compares champion v{evidence.champion_version} with"
                f" challenger v{version}; the aliases now say"
                f" v{now[0] or 'none'} and v{now[1] or 'none'}"
            )
        _record_and_move(
            client,
            name,
            before,
            _promotion_moves(before, version),
            {
                "gate.decision": "promoted on live evidence",
                "gate.reasons": evidence.note,
                "gate.champion_version": evidence.champion_version,
            },
            {
                "version": version,
                "previous_version": evidence.champion_version,
                "action": "promote",
                "reason": f"shadow: {evidence.note}",
                "actor": actor,
                "metrics": {
                    "shadow_report_id": report_id,
                    "window": [evidence.window.start.isoformat(), evidence.window.end.isoformat()],
                    "labelled": evidence.labelled,
                    "champion": dict(evidence.champion),
                    "challenger": dict(evidence.challenger),
                    "champion_only_right": evidence.champion_only,
                    "challenger_only_right": evidence.challenger_only,
                    "mcnemar_p_value": evidence.p_value,
                    "checks": dict(evidence.checks),
                },
            },
            url,
        )
    return version, evidence.note


def stop_degraded_canary(
    performance_report_ids: Iterable[int], actor: str, url: str | None = None
) -> tuple[str | None, str]:
    """Remove the `challenger` alias when its live accuracy degraded; (the version, why).

    Only canary traffic gives the challenger a performance report (shadow rows are not
    served), so a `degraded` one means the customers it answered got worse answers than
    its test metrics promised. Removing the alias stops both its canary and its shadow
    scoring; the champion is untouched. Recorded as `canary_rollback`.
    """
    from mlops_platform.monitoring import reports

    found = reports.load_reports(list(performance_report_ids), url).values()
    name = model_name()
    client = _client()
    with _champion_lock(name, url):
        before = client.get_registered_model(name).aliases
        challenger = before.get(CHALLENGER)
        if challenger is None:
            return None, "there is no challenger"
        report = next(
            (r for r in found if r.kind == "performance" and r.model_version == challenger), None
        )
        if report is None:
            return None, f"no labelled canary predictions of challenger v{challenger}"
        if report.decision != "degraded":
            return None, f"canary v{challenger} is {report.decision}: {report.stats['note']}"
        _record_and_move(
            client,
            name,
            before,
            {CHALLENGER: None},
            {"gate.decision": "canary rolled back", "gate.reasons": report.stats["note"]},
            {
                "version": challenger,
                "previous_version": before.get(CHAMPION),
                "action": "canary_rollback",
                "reason": f"canary: {report.stats['note']}",
                "actor": actor,
                "metrics": {
                    "performance_report_id": report.report_id,
                    "labelled": report.row_count,
                    "live": report.stats["metrics"],
                    "baseline_test_macro_f1": report.stats["baseline_test_macro_f1"],
                },
            },
            url,
        )
    return challenger, report.stats["note"]


# -- manual changes ----------------------------------------------------------------------


def promote(version: str, reason: str, actor: str, url: str | None = None) -> str | None:
    """Make `version` the champion without the gate; returns the champion it replaced."""
    name = model_name()
    client = _client()
    with _champion_lock(name, url):
        with _existing(f"version {version} of {name}"):
            client.get_model_version(name, version)
        before = client.get_registered_model(name).aliases
        previous = before.get(CHAMPION)
        if previous == version:
            raise RegistryError(f"version {version} of {name} is already the champion")
        _record_and_move(
            client,
            name,
            before,
            _promotion_moves(before, version),
            {},
            {
                "version": version,
                "previous_version": previous,
                "action": "manual_promote",
                "reason": reason,
                "actor": actor,
                "metrics": None,
            },
            url,
        )
    return previous


def rollback(reason: str, actor: str, url: str | None = None) -> str:
    """Put `champion` back on `previous_champion` in one step; returns the new champion.

    Rule for the new `previous_champion`: the version the restored champion replaced when a
    promotion (gate or manual, not a rollback) last made it champion, per `deployments`.
    It is removed when there is none, or when that is the version just rolled back from.
    """
    name = model_name()
    client = _client()
    with _champion_lock(name, url):
        with _existing(f"model {name}"):
            before = client.get_registered_model(name).aliases
        current, target = before.get(CHAMPION), before.get(PREVIOUS_CHAMPION)
        if target is None:
            raise RegistryError(f"{name} has no {PREVIOUS_CHAMPION} to roll back to")
        earlier = _replaced_when_promoted(name, target, url)
        moves: dict[str, str | None] = {
            CHAMPION: target,
            PREVIOUS_CHAMPION: earlier if earlier not in (None, current, target) else None,
        }
        _record_and_move(
            client,
            name,
            before,
            moves,
            {},
            {
                "version": target,
                "previous_version": current,
                "action": "rollback",
                "reason": reason,
                "actor": actor,
                "metrics": None,
            },
            url,
        )
    return target


def _replaced_when_promoted(name: str, version: str, url: str | None) -> str | None:
    with db.transaction(url) as connection:
        return connection.execute(
            text(
                "SELECT previous_version FROM deployments"
                " WHERE model_name = :name AND version = :version"
                " AND action IN ('promote', 'manual_promote')"
                " ORDER BY deployment_id DESC LIMIT 1"
            ),
            {"name": name, "version": version},
        ).scalar()


def _promotion_moves(before: Mapping[str, str], version: str) -> dict[str, str | None]:
    """Alias changes that make `version` champion and keep the old one reachable."""
    moves: dict[str, str | None] = {CHAMPION: version}
    if before.get(CHAMPION):
        moves[PREVIOUS_CHAMPION] = before[CHAMPION]
    if before.get(CHALLENGER) == version:
        moves[CHALLENGER] = None
    return moves


# -- the critical section ----------------------------------------------------------------


@contextmanager
def _champion_lock(name: str, url: str | None) -> Iterator[None]:
    """Hold the MariaDB named lock that serialises champion changes of `name`."""
    # Lock names are limited to 64 characters; a shared prefix only serialises more.
    lock = f"mlops_champion_{name}"[:64]
    timeout = get_settings().champion_lock_timeout_s
    with db.named_lock(lock, timeout, url) as acquired:
        if not acquired:
            raise ChampionLockTimeout(
                f"another promotion or rollback of {name} held lock {lock!r} for {timeout} s;"
                " try again (CHAMPION_LOCK_TIMEOUT_S sets the wait)"
            )
        yield


def _record_and_move(
    client: MlflowClient,
    name: str,
    before: Mapping[str, str],
    moves: Mapping[str, str | None],
    tags: Mapping[str, str],
    row: Mapping[str, Any],
    url: str | None,
) -> None:
    """Insert the deployments row, tag the version, move aliases, then commit.

    The aliases move last: any failure rolls the row back, removes the tags written and
    puts back the aliases moved, including when the commit fails after the move.
    """
    moved = False
    tagged: list[str] = []
    try:
        with db.transaction(url) as connection:
            connection.execute(
                text(
                    "INSERT INTO deployments"
                    " (model_name, version, previous_version, action, reason, actor, metrics)"
                    " VALUES (:model_name, :version, :previous_version, :action, :reason,"
                    " :actor, :metrics)"
                ),
                {
                    **row,
                    "model_name": name,
                    "reason": row["reason"][:MAX_REASON_CHARS],
                    "metrics": None if row["metrics"] is None else json.dumps(row["metrics"]),
                },
            )
            for key, value in tags.items():
                tagged.append(key)
                client.set_model_version_tag(name, row["version"], key, value)
            _move_aliases(client, name, before, moves)
            moved = True
    except BaseException:
        if moved:
            _restore_aliases(client, name, before, moves)
        _delete_tags(client, name, row["version"], tagged)
        raise


def _move_aliases(
    client: MlflowClient,
    name: str,
    before: Mapping[str, str],
    moves: Mapping[str, str | None],
) -> None:
    """Apply `moves` (alias → version, None deletes); on failure put back those already moved."""
    done: list[str] = []
    try:
        for alias, version in moves.items():
            if version is None:
                if alias in before:
                    client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, version)
            done.append(alias)
    except BaseException:
        _restore_aliases(client, name, before, done)
        raise


def _restore_aliases(
    client: MlflowClient, name: str, before: Mapping[str, str], aliases: Iterable[str]
) -> None:
    """Best effort: set `aliases` back to their versions in `before` (or delete them)."""
    for alias in aliases:
        try:
            if alias in before:
                client.set_registered_model_alias(name, alias, before[alias])
            else:
                client.delete_registered_model_alias(name, alias)
        except Exception as error:
            log.warning(
                "could not restore alias %s of %s to %s; set it by hand: %s",
                alias,
                name,
                before.get(alias, "<none>"),
                error,
            )


def _delete_tags(client: MlflowClient, name: str, version: str, keys: Iterable[str]) -> None:
    """Best effort: remove version tags of a decision that did not happen."""
    for key in keys:
        try:
            client.delete_model_version_tag(name, version, key)
        except Exception as error:
            log.warning("could not remove tag %s of %s version %s: %s", key, name, version, error)


# -- reading -----------------------------------------------------------------------------


def status(limit: int = 10) -> ModelStatus:
    """Aliases and the `limit` newest versions (plus any aliased older ones)."""
    name = model_name()
    client = _client()
    with _existing(f"model {name}"):
        aliases = client.get_registered_model(name).aliases
    versions = {
        str(v.version): v
        for v in client.search_model_versions(
            f"name = '{name}'", max_results=limit, order_by=["version_number DESC"]
        )
    }
    for version in set(aliases.values()) - versions.keys():
        versions[version] = client.get_model_version(name, version)
    rows = []
    for number in sorted(versions, key=int, reverse=True):
        version = versions[number]
        metrics, lineage = {}, dict(version.tags)
        if version.run_id:
            run = client.get_run(version.run_id)
            metrics = {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("test_")}
            lineage = run.data.tags | lineage
        rows.append(
            VersionStatus(
                version=number,
                aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
                run_id=version.run_id,
                created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC),
                metrics=metrics,
                lineage={k: lineage[k] for k in LINEAGE_TAGS if k in lineage},
                gate={k: v for k, v in version.tags.items() if k.startswith("gate.")},
            )
        )
    return ModelStatus(name=name, aliases=dict(aliases), versions=tuple(rows))


DEPLOYMENT_COLUMNS = (
    "deployment_id, model_name, version, previous_version, action, reason, actor, metrics,"
    " created_at"
)


def _deployment(row: Mapping[str, Any]) -> Deployment:
    return Deployment(**{**row, "metrics": json.loads(row["metrics"]) if row["metrics"] else None})


def deployment_history(url: str | None = None, limit: int = 20) -> list[Deployment]:
    """The newest `limit` deployments rows of MODEL_NAME, newest first."""
    with db.transaction(url) as connection:
        rows = connection.execute(
            text(
                f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments"  # noqa: S608 - a constant
                " WHERE model_name = :name ORDER BY deployment_id DESC LIMIT :limit"
            ),
            {"name": model_name(), "limit": limit},
        ).mappings()
        return [_deployment(row) for row in rows]


def gate_deployment(version: str, url: str | None = None) -> Deployment:
    """The `deployments` row of the gate's decision on `version` of MODEL_NAME."""
    name = model_name()
    with db.transaction(url) as connection:
        row = (
            connection.execute(
                text(
                    f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments"  # noqa: S608 - a constant
                    " WHERE model_name = :name AND version = :version"
                    " AND action IN ('promote', 'reject', 'shadow')"
                    " ORDER BY deployment_id DESC LIMIT 1"
                ),
                {"name": name, "version": version},
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"the gate has not decided on version {version} of {name}")
    return _deployment(row)
