"""Continuous training: a bounded CatBoost search on a validated snapshot, logged to MLflow.

One parent run per training holds the lineage, the best model's metrics, plots, the
reference profile for drift checks and the model; each search trial is a nested run.
The registered version then goes through the champion gate in `registry`.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from mlops_platform.config import PROJECT_ROOT, get_settings
from mlops_platform.features import airflow_run, describe_build, parse_base_date, read_snapshot
from mlops_platform.monitoring.estimate import fit_calibration
from mlops_platform.monitoring.reference import REFERENCE_PROFILE
from mlops_platform.orchestration import TRIGGER_REASONS
from mlops_platform.schema import (
    CATEGORICAL_FEATURES,
    CREDIT_SCORES,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
    TARGET,
)
from mlops_platform.validation import require_validated_snapshot

SPLIT_BUCKETS = {"train": range(0, 70), "validation": range(70, 85), "test": range(85, 100)}
PROFILE_BINS = 10
console = Console()


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    validation_metrics: dict[str, float]
    iterations: int
    seconds: float
    classifier: Any


@dataclass(frozen=True)
class Candidate:
    """A trained, registered model version waiting for the gate: ids only, XCom-sized."""

    run_id: str
    version: str
    base_dt: str
    build_id: int
    reason: str
    test_metrics: dict[str, float]


def customer_bucket(customer_id: str) -> int:
    """A stable bucket 0–99 from the customer id, the same on every machine and run."""
    return int.from_bytes(hashlib.blake2b(customer_id.encode(), digest_size=8).digest()) % 100


def split_by_customer(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Train / validation / test by customer hash, so no customer is in two splits."""
    buckets = frame["customer_id"].map(
        {c: customer_bucket(c) for c in frame["customer_id"].unique()}
    )
    return {
        name: frame[buckets.between(bucket.start, bucket.stop - 1)].reset_index(drop=True)
        for name, bucket in SPLIT_BUCKETS.items()
    }


def sample_params(rng: np.random.Generator) -> dict[str, Any]:
    """One point of the random search space."""
    return {
        "depth": int(rng.choice([4, 5, 6, 7, 8])),
        "learning_rate": float(np.round(np.exp(rng.uniform(np.log(0.04), np.log(0.3))), 4)),
        "l2_leaf_reg": float(np.round(np.exp(rng.uniform(np.log(1), np.log(10))), 3)),
        "random_strength": float(np.round(rng.uniform(0.5, 2.0), 3)),
        "bagging_temperature": float(np.round(rng.uniform(0.0, 1.0), 3)),
    }


def fit_trial(number: int, params: dict[str, Any], splits: dict[str, pd.DataFrame]) -> Trial:
    """Fit one candidate with early stopping on the validation split."""
    from catboost import CatBoostClassifier, Pool

    from mlops_platform.model import (
        CATEGORICAL_POSITIONS,
        CreditScoreModel,
        classification_metrics,
        model_frame,
    )

    settings = get_settings()
    started = time.perf_counter()
    classifier = CatBoostClassifier(
        **params,
        iterations=settings.train_max_iterations,
        loss_function="MultiClass",
        eval_metric="TotalF1:average=Macro",
        early_stopping_rounds=settings.train_early_stopping_rounds,
        random_seed=settings.train_seed,
        thread_count=-1,
        allow_writing_files=False,
        verbose=False,
    )
    cat_features = list(CATEGORICAL_POSITIONS)
    classifier.fit(
        Pool(model_frame(splits["train"]), splits["train"][TARGET], cat_features=cat_features),
        eval_set=Pool(
            model_frame(splits["validation"]),
            splits["validation"][TARGET],
            cat_features=cat_features,
        ),
        use_best_model=True,
    )
    candidate = CreditScoreModel.from_classifier(classifier, {})
    metrics = classification_metrics(
        splits["validation"][TARGET], candidate.predict_proba(splits["validation"])
    )
    return Trial(
        number, params, metrics, classifier.get_best_iteration() + 1,
        time.perf_counter() - started, classifier,
    )  # fmt: skip


def reference_profile(
    train: pd.DataFrame, predicted_classes: np.ndarray, base_dt: date
) -> dict[str, Any]:
    """What 'normal' looks like for drift checks: quantile bins, category and class shares.

    A numeric value falls in bin i when exactly i bin edges are strictly below it, so
    `x <= edges[0]` is bin 0 and `x > edges[-1]` is the last bin; SQL can count the same.
    """
    numeric = {}
    for name in NUMERIC_FEATURES:
        values = train[name].dropna().astype(float).to_numpy()
        edges = np.unique(np.quantile(values, np.linspace(0, 1, PROFILE_BINS + 1)[1:-1]))
        bins = np.searchsorted(edges, values, side="left")
        counts = np.bincount(bins, minlength=len(edges) + 1)
        numeric[name] = {
            "edges": [float(e) for e in edges],
            "shares": [float(c) / len(values) for c in counts],
            "missing_share": float(train[name].isna().mean()),
        }
    categorical = {
        name: {
            "shares": {
                str(k): float(v) for k, v in train[name].value_counts(normalize=True).items()
            },
            "missing_share": float(train[name].isna().mean()),
        }
        for name in CATEGORICAL_FEATURES
    }
    classes, counts = np.unique(predicted_classes, return_counts=True)
    shares = dict.fromkeys(CREDIT_SCORES, 0.0) | {
        str(c): float(n) / len(predicted_classes) for c, n in zip(classes, counts, strict=True)
    }
    return {
        "base_dt": base_dt.isoformat(),
        "rows": len(train),
        "numeric": numeric,
        "categorical": categorical,
        "predictions": {"shares": shares},
    }


def git_commit() -> str | None:
    """The commit the image was built from, or the checked-out one in a git checkout."""
    if get_settings().mlops_git_commit:
        return get_settings().mlops_git_commit
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, check=True, timeout=5,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def _log_plots_and_reports(
    directory: Path, model: Any, test: pd.DataFrame, probabilities: np.ndarray
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report

    from mlops_platform.model import MODEL_COLUMNS, predicted_classes

    predicted = predicted_classes(probabilities)
    figure, axes = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        test[TARGET], predicted, labels=list(CREDIT_SCORES), ax=axes, colorbar=False
    )
    axes.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    figure.savefig(directory / "confusion_matrix.png", dpi=110, bbox_inches="tight")
    plt.close(figure)

    importance = pd.Series(
        model.classifier.get_feature_importance(), index=list(MODEL_COLUMNS)
    ).sort_values()
    figure, axes = plt.subplots(figsize=(6, 7))
    importance.plot.barh(ax=axes)
    axes.set_title("Feature importance (CatBoost PredictionValuesChange)")
    # The title is wider than the axes: a tight bounding box keeps all of it in the image.
    figure.tight_layout()
    figure.savefig(directory / "feature_importance.png", dpi=110, bbox_inches="tight")
    plt.close(figure)

    (directory / "classification_report.txt").write_text(
        classification_report(test[TARGET], predicted, labels=list(CREDIT_SCORES), digits=4)
    )


def train_candidate(
    base_dt: str | date,
    *,
    trials: int | None = None,
    time_budget_s: float | None = None,
    reason: str = "manual",
    dag_run_id: str | None = None,
    url: str | None = None,
) -> Candidate:
    """Search on the validated snapshot for `base_dt`, log the parent run, register the best."""
    import mlflow

    from mlops_platform import registry, tracking
    from mlops_platform.model import (
        MODEL_COLUMNS,
        CreditScoreModel,
        classification_metrics,
        predicted_classes,
    )

    if reason not in TRIGGER_REASONS:
        raise ValueError(f"reason must be one of {TRIGGER_REASONS}, got {reason!r}")
    settings = get_settings()
    day = parse_base_date(base_dt)
    trials = trials or settings.train_trials
    budget = time_budget_s or settings.train_time_budget_s

    build_id = require_validated_snapshot(day, url)
    snapshot = read_snapshot(day, url, build_id=build_id)
    build = describe_build(build_id, url)
    airflow_dag_id, airflow_run_id = airflow_run()
    splits = split_by_customer(snapshot)
    tracking.configure()
    console.print(
        f"training on snapshot {day} (build {build_id}): "
        + ", ".join(f"{name} {len(rows):,}" for name, rows in splits.items())
    )
    lineage = {
        "base_dt": day.isoformat(),
        "snapshot_build_id": str(build_id),
        "snapshot_rows": str(len(snapshot)),
        # The build's own hash: lineage checks the stored rows against it later.
        "snapshot_hash": build.content_hash or "",
        "features": ",".join(FEATURE_NAMES),
        "trigger_reason": reason,
        "git_commit": git_commit() or "unknown",
        "airflow_dag_id": airflow_dag_id or "",
        "airflow_dag_run_id": dag_run_id or airflow_run_id or "",
    }
    with mlflow.start_run(run_name=f"train {day} ({reason})") as parent:
        mlflow.set_tags(lineage)
        mlflow.log_params(
            {"base_dt": day.isoformat(), "trials": trials, "time_budget_s": budget,
             "seed": settings.train_seed, "max_iterations": settings.train_max_iterations,
             **{f"rows_{name}": len(rows) for name, rows in splits.items()}}
        )  # fmt: skip
        mlflow.log_input(
            mlflow.data.from_pandas(
                snapshot.head(0), name=f"training_snapshot_{day}", targets=TARGET,
                digest=lineage["snapshot_hash"][:16] or None,
            ),
            context="training",
        )  # fmt: skip
        best = _search(trials, budget, splits)
        mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
        mlflow.log_param("best_iterations", best.iterations)

        known = {
            name: sorted(splits["train"][name].dropna().astype(str).unique())
            for name in CATEGORICAL_FEATURES
        }
        model = CreditScoreModel.from_classifier(best.classifier, known)
        test_probabilities = model.predict_proba(splits["test"])
        test_metrics = classification_metrics(splits["test"][TARGET], test_probabilities)
        mlflow.log_metrics({f"validation_{k}": v for k, v in best.validation_metrics.items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})

        with tempfile.TemporaryDirectory(prefix="mlops-train-") as scratch:
            directory = Path(scratch)
            _log_plots_and_reports(directory, model, splits["test"], test_probabilities)
            predicted = predicted_classes(test_probabilities)
            profile = reference_profile(splits["train"], predicted, day)
            # Drift checks weigh each drifted feature by what it means to this model.
            importance = model.classifier.get_feature_importance()
            profile["importance"] = dict(zip(MODEL_COLUMNS, map(float, importance), strict=True))
            # The accuracy estimate reads the logged probabilities through this calibration.
            profile["calibration"] = fit_calibration(
                splits["validation"][TARGET], model.predict_proba(splits["validation"])
            )
            (directory / REFERENCE_PROFILE).write_text(json.dumps(profile, indent=1))
            mlflow.log_artifacts(str(directory))
        info = model.log_to_mlflow(splits["train"][list(FEATURE_NAMES)])
        version = registry.register(
            info.model_uri,
            parent.info.run_id,
            {key: lineage[key] for key in registry.VERSION_TAGS},
            registry.model_card(lineage, test_metrics, parent.info.run_id),
        )
        mlflow.set_tag("registered_version", version)
    return Candidate(parent.info.run_id, version, day.isoformat(), build_id, reason, test_metrics)


def gate_candidate(
    candidate: Candidate, *, actor: str | None = None, url: str | None = None
) -> Any:
    """Run the champion gate for a registered candidate on its snapshot's test split.

    The model is loaded back from the registry, so the gate judges exactly what would
    be served, and the test rows are re-derived from the same snapshot build.
    """
    import mlflow

    from mlops_platform import registry, tracking

    tracking.configure()
    model = registry.load_version(candidate.version)
    snapshot = read_snapshot(candidate.base_dt, url, build_id=candidate.build_id)
    decision = registry.gate(
        candidate.version,
        model,
        split_by_customer(snapshot)["test"],
        reason=candidate.reason,
        actor=actor or getpass.getuser(),
        url=url,
    )
    mlflow.MlflowClient().set_tag(candidate.run_id, "gate_promoted", str(decision.promoted).lower())
    return decision


def _search(trials: int, budget: float, splits: dict[str, pd.DataFrame]) -> Trial:
    """Random search, each trial a nested run; stops starting trials once over budget."""
    import mlflow

    settings = get_settings()
    rng = np.random.default_rng(settings.train_seed)
    started = time.perf_counter()
    best: Trial | None = None
    for number in range(1, trials + 1):
        params = sample_params(rng)
        if best is not None and time.perf_counter() - started > budget:
            console.print(f"time budget of {budget:.0f} s used; stopping after {number - 1} trials")
            break
        with mlflow.start_run(run_name=f"trial {number}", nested=True):
            trial = fit_trial(number, params, splits)
            mlflow.log_params({**params, "iterations": trial.iterations})
            mlflow.log_metrics({f"validation_{k}": v for k, v in trial.validation_metrics.items()})
            mlflow.log_metric("fit_seconds", trial.seconds)
        score = trial.validation_metrics[settings.gate_metric]
        console.print(
            f"trial {number}/{trials} depth={params['depth']} lr={params['learning_rate']:.3f}"
            f" → validation {settings.gate_metric} {score:.4f}"
            f" ({trial.iterations} iterations, {trial.seconds:.1f} s)"
        )
        if best is None or score > best.validation_metrics[settings.gate_metric]:
            best = trial
    assert best is not None
    return best
