"""The packaged model: preprocessing and the CatBoost classifier, logged to MLflow as one pyfunc.

Training, the champion gate, batch scoring and the online service all call this class,
so the features are prepared the same way everywhere (no training/serving skew).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from mlops_platform.schema import (
    CATEGORICAL_FEATURES,
    CREDIT_SCORES,
    LOAN_TYPES,
    NUMERIC_FEATURES,
)

MISSING_CATEGORY = "missing"
LOAN_COLUMNS = tuple(
    "loans_" + loan.lower().replace(" ", "_").replace("-", "_") for loan in LOAN_TYPES
)
# CatBoost sees numeric features, then categoricals (handled natively), then loan counts.
MODEL_COLUMNS = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES, *LOAN_COLUMNS)
CATEGORICAL_POSITIONS = tuple(MODEL_COLUMNS.index(name) for name in CATEGORICAL_FEATURES)
PROBABILITY_COLUMNS = tuple(f"prob_{score}" for score in CREDIT_SCORES)
_LOAN_POSITION = {loan: i for i, loan in enumerate(LOAN_TYPES)}
ALPHABETICAL_ORDER = [CREDIT_SCORES.index(score) for score in sorted(CREDIT_SCORES)]


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of each row (columns in `CREDIT_SCORES` order)."""
    return np.asarray(CREDIT_SCORES)[probabilities.argmax(axis=1)]


def model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Vectorised preprocessing of raw feature columns into CatBoost's input columns."""
    prepared = pd.DataFrame(index=frame.index)
    for name in NUMERIC_FEATURES:
        prepared[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    for name in CATEGORICAL_FEATURES:
        prepared[name] = frame[name].astype(object).where(frame[name].notna(), MISSING_CATEGORY)
        prepared[name] = prepared[name].astype(str)
    loans = frame["type_of_loan"].fillna("").astype(str)
    for loan, column in zip(LOAN_TYPES, LOAN_COLUMNS, strict=True):
        prepared[column] = loans.str.split(",").map(lambda items, loan=loan: items.count(loan))
    return prepared


def model_row(record: Mapping[str, Any]) -> list[Any]:
    """The same preprocessing for one record, in plain Python (the fast online path)."""
    row: list[Any] = []
    for name in NUMERIC_FEATURES:
        value = record.get(name)
        row.append(math.nan if value is None else float(value))
    for name in CATEGORICAL_FEATURES:
        value = record.get(name)
        row.append(MISSING_CATEGORY if value is None else str(value))
    counts = [0] * len(LOAN_TYPES)
    for loan in (record.get("type_of_loan") or "").split(","):
        if loan in _LOAN_POSITION:
            counts[_LOAN_POSITION[loan]] += 1
    row.extend(counts)
    return row


class CreditScoreModel(mlflow.pyfunc.PythonModel):
    """Predicts Good / Standard / Poor with class probabilities from raw feature records."""

    def __init__(self) -> None:
        self.classifier = None
        self.known_categories: dict[str, set[str]] = {}
        self._class_order: list[int] = []

    # -- building and loading ------------------------------------------------------------

    @classmethod
    def from_classifier(cls, classifier: Any, known_categories: Mapping[str, Sequence[str]]):
        """Wrap a fitted CatBoostClassifier (for evaluation before the model is logged)."""
        model = cls()
        model._attach(classifier, known_categories)
        return model

    def save_artifacts(self, directory: Path) -> dict[str, str]:
        """Write the classifier and the preprocessing spec; returns pyfunc `artifacts`."""
        directory.mkdir(parents=True, exist_ok=True)
        self.classifier.save_model(str(directory / "classifier.cbm"))
        spec = {
            "model_columns": list(MODEL_COLUMNS),
            "categorical_features": list(CATEGORICAL_FEATURES),
            "classes": list(CREDIT_SCORES),
            "known_categories": {k: sorted(v) for k, v in self.known_categories.items()},
        }
        (directory / "preprocessing.json").write_text(json.dumps(spec, indent=2))
        return {
            "classifier": str(directory / "classifier.cbm"),
            "preprocessing": str(directory / "preprocessing.json"),
        }

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from catboost import CatBoostClassifier

        spec = json.loads(Path(context.artifacts["preprocessing"]).read_text())
        if spec["model_columns"] != list(MODEL_COLUMNS):
            raise ValueError("model was trained with other feature columns than this code has")
        classifier = CatBoostClassifier()
        classifier.load_model(context.artifacts["classifier"])
        self._attach(classifier, spec["known_categories"])

    def _attach(self, classifier: Any, known_categories: Mapping[str, Sequence[str]]) -> None:
        self.classifier = classifier
        self.known_categories = {k: set(v) for k, v in known_categories.items()}
        trained_order = [str(c) for c in classifier.classes_]
        self._class_order = [trained_order.index(score) for score in CREDIT_SCORES]

    # -- predicting ------------------------------------------------------------------------

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities in `CREDIT_SCORES` order, one row per input row."""
        return self.classifier.predict_proba(model_frame(frame))[:, self._class_order]

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities for raw records without pandas: the online service's path."""
        # An object array spares CatBoost a per-value type probe of nested lists (2x faster).
        rows = np.array([model_row(record) for record in records], dtype=object)
        # One thread: each service worker is one process per core already.
        return self.classifier.predict_proba(rows, thread_count=1)[:, self._class_order]

    def unseen_categories(self, records: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """Per record, the categorical features whose value training never saw (a missing
        value is known). Set arithmetic per column first: usually every value is known."""
        unseen: list[list[str]] = [[] for _ in records]
        for name in CATEGORICAL_FEATURES:
            known = self.known_categories.get(name, set())
            values = [record.get(name) for record in records]
            if set(values) - known - {None}:
                for names, value in zip(unseen, values, strict=True):
                    if value is not None and str(value) not in known:
                        names.append(name)
        return unseen

    def log_to_mlflow(self, input_example: pd.DataFrame, name: str = "model") -> Any:
        """Log as a pyfunc (classifier + preprocessing spec) in the active run: a ModelInfo."""
        from mlflow.models import infer_signature

        # Numbers as doubles: an integer column in the signature would reject a missing value.
        example = (
            input_example.head(5)
            .reset_index(drop=True)
            .astype(dict.fromkeys(NUMERIC_FEATURES, "float64"))
        )
        # Explicit requirements: MLflow's own inference shells out to `uv export` (~1 s).
        requirements = [
            f"{package}=={importlib.metadata.version(package)}"
            for package in ("catboost", "mlflow", "numpy", "pandas", "scikit-learn")
        ]
        signature = infer_signature(example, self.predict(None, example))
        with tempfile.TemporaryDirectory(prefix="mlops-model-") as scratch:
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=self,
                artifacts=self.save_artifacts(Path(scratch)),
                signature=signature,
                input_example=example,
                pip_requirements=requirements,
            )

    def __getstate__(self) -> dict[str, Any]:
        # The classifier travels as an artifact file, not inside the pickled wrapper.
        return {**self.__dict__, "classifier": None}

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        probabilities = self.predict_proba(model_input)
        result = pd.DataFrame(probabilities, columns=list(PROBABILITY_COLUMNS))
        result.insert(0, "predicted_class", predicted_classes(probabilities))
        return result


def classification_metrics(actual: Sequence[str], probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1, per-class F1 and log loss; columns in `CREDIT_SCORES` order."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    predicted = predicted_classes(probabilities)
    per_class = f1_score(
        actual, predicted, labels=list(CREDIT_SCORES), average=None, zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(actual, predicted)),
        "macro_f1": float(f1_score(actual, predicted, labels=list(CREDIT_SCORES), average="macro")),
        # log_loss reads probability columns in sorted label order, not CREDIT_SCORES order.
        "log_loss": float(
            log_loss(actual, probabilities[:, ALPHABETICAL_ORDER], labels=sorted(CREDIT_SCORES))
        ),
    }
    metrics.update(
        {f"f1_{score}": float(f1) for score, f1 in zip(CREDIT_SCORES, per_class, strict=True)}
    )
    return metrics
