"""Deterministic generator of realistic credit-score customers, months and late labels.

Each customer has a hidden creditworthiness that drives their behaviour (delays,
debt, card count, interest rate …). A hidden scoring rule with noise turns the
behaviour into Good / Standard / Poor, so a good model lands around 0.8 accuracy.
Drift scenarios change the behaviour (`covariate`) or the rule (`concept`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mlops_platform import db
from mlops_platform.data.loader import upsert_frame
from mlops_platform.dates import add_months, months_between
from mlops_platform.schema import FEATURE_NAMES, LOAN_TYPES, OCCUPATIONS, TARGET

DriftScenario = Literal["none", "covariate", "concept"]
DRIFT_SCENARIOS: tuple[str, ...] = ("none", "covariate", "concept")

# Income multipliers per occupation, in schema.OCCUPATIONS order.
OCCUPATION_PAY = np.array(
    [1.1, 1.3, 1.35, 1.6, 1.3, 1.2, 0.9, 1.55, 1.25, 0.75, 1.0, 0.7, 1.2, 0.85, 0.8]
)
FIRST_NAMES = (
    "Ada", "Bo", "Cleo", "Dario", "Elin", "Femi", "Gus", "Hana", "Ivo", "Jade", "Kofi",
    "Lena", "Milo", "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tove", "Uma", "Vik",
)  # fmt: skip
LAST_NAMES = (
    "Abara", "Berg", "Castell", "Dunmore", "Eklund", "Farrow", "Gatti", "Holm", "Ishii",
    "Jovic", "Kaur", "Lindqvist", "Moreau", "Nakata", "Osei", "Petrov", "Quist", "Ruiz",
)  # fmt: skip
# Rule thresholds on the risk score, calibrated so the undrifted population splits
# about 18% Good, 53% Standard, 29% Poor, like the public dataset.
GOOD_BELOW = -1.82
POOR_ABOVE = 1.60
LABEL_NOISE = 0.45


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; the same config always yields the same data."""

    customers: int
    months: int
    start: date
    seed: int = 42
    drift: DriftScenario = "none"
    drift_from: date | None = None
    dirty_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.months < 1:
            raise ValueError("customers and months must be at least 1")
        if self.start.day != 1:
            raise ValueError(f"start must be the first day of a month, got {self.start}")
        if self.drift not in DRIFT_SCENARIOS:
            raise ValueError(f"drift must be one of {DRIFT_SCENARIOS}, got {self.drift!r}")
        if self.drift != "none" and self.drift_from is None:
            raise ValueError("a drift scenario needs drift_from (the first drifted month)")
        if not 0 <= self.dirty_rate <= 1:
            raise ValueError("dirty_rate must be between 0 and 1")


@dataclass(frozen=True)
class GeneratedMonth:
    """One month of features (no PII) and the labels that will arrive for it later."""

    month: date
    features: pd.DataFrame
    labels: pd.DataFrame


@dataclass
class _Population:
    """Per-customer traits that persist across months."""

    ids: np.ndarray
    worthiness: np.ndarray
    occupation: np.ndarray
    birth_age: np.ndarray
    income: np.ndarray
    take_home_share: np.ndarray
    bank_accounts: np.ndarray
    credit_cards: np.ndarray
    interest_rate: np.ndarray
    loan_count: np.ndarray
    loan_types: np.ndarray
    history_months: np.ndarray
    debt: np.ndarray
    base_delay: np.ndarray
    base_delayed_payments: np.ndarray
    base_inquiries: np.ndarray
    high_spender: np.ndarray
    rule_noise: np.ndarray


def customer_ids(config: GeneratorConfig) -> np.ndarray:
    """Stable ids like `CUS_0x1f3a`, the public dataset's style, in primary-key order.

    Key order makes the bulk loads append to the B-tree instead of splitting pages.
    """
    rng = np.random.default_rng([config.seed, 0])
    numbers = 0x1000 + rng.choice(16 * config.customers, config.customers, replace=False)
    return np.sort(np.array([f"CUS_0x{number:x}" for number in numbers]))


def customers_frame(config: GeneratorConfig) -> pd.DataFrame:
    """Customer ids with invented names and SSNs: the PII that stays in `customers`."""
    rng = np.random.default_rng([config.seed, 1])
    n = config.customers
    first = np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)]
    digits = rng.integers([100, 10, 1000], [900, 100, 10000], size=(n, 3))
    return pd.DataFrame(
        {
            "customer_id": customer_ids(config),
            "name": np.char.add(np.char.add(first, " "), last),
            "ssn": [f"{a:03d}-{b:02d}-{c:04d}" for a, b, c in digits],
        }
    )


def _clip_round(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(np.rint(values), low, high).astype(np.int64)


def _population(config: GeneratorConfig) -> _Population:
    rng = np.random.default_rng([config.seed, 2])
    n = config.customers
    worth = rng.standard_normal(n)
    occupation = rng.integers(0, len(OCCUPATIONS), n)
    birth_age = rng.integers(18, 58, n)
    income = np.clip(
        38_000 * OCCUPATION_PAY[occupation] * np.exp(0.5 * rng.standard_normal(n) + 0.12 * worth),
        7_000,
        250_000,
    )
    loan_count = _clip_round(3.6 - 1.4 * worth + 1.4 * rng.standard_normal(n), 0, 9)
    loan_picks = rng.integers(0, len(LOAN_TYPES), size=(n, 9))
    loan_names = np.array(LOAN_TYPES)[loan_picks]
    loan_types = np.array(
        [",".join(loan_names[i, :k]) if k else None for i, k in enumerate(loan_count)],
        dtype=object,
    )
    years_adult = birth_age - 18
    history = np.clip(
        years_adult * 12 * rng.uniform(0.35, 1.0, n) + 25 * worth + 12 * rng.standard_normal(n),
        1,
        400,
    )
    debt = np.clip(
        250 + 330 * loan_count * np.exp(0.45 * rng.standard_normal(n)) - 260 * worth, 0, 4_999
    )
    return _Population(
        ids=customer_ids(config),
        worthiness=worth,
        occupation=occupation,
        birth_age=birth_age,
        income=income,
        take_home_share=rng.uniform(0.72, 0.9, n),
        bank_accounts=_clip_round(5 - 1.6 * worth + 1.8 * rng.standard_normal(n), 0, 11),
        credit_cards=_clip_round(5.5 - 1.3 * worth + 1.8 * rng.standard_normal(n), 0, 11),
        interest_rate=np.clip(14 - 6.5 * worth + 4 * rng.standard_normal(n), 1, 34),
        loan_count=loan_count,
        loan_types=loan_types,
        history_months=history,
        debt=debt,
        base_delay=np.clip(21 - 11 * worth + 7 * rng.standard_normal(n), 0, 60),
        base_delayed_payments=np.clip(13 - 5 * worth + 3.5 * rng.standard_normal(n), 0, 25),
        base_inquiries=np.clip(5.5 - 2.6 * worth + 2.2 * rng.standard_normal(n), 0, 17),
        high_spender=rng.random(n) < 0.3 + 0.25 * (income > 60_000),
        rule_noise=0.35 * rng.standard_normal(n),
    )


def _drift_strength(config: GeneratorConfig, month: date, scenario: str) -> float:
    """0 before the drift, ramping to 1 over three months from `drift_from`."""
    if config.drift != scenario or config.drift_from is None or month < config.drift_from:
        return 0.0
    return min(1.0, (months_between(config.drift_from, month) + 1) / 3)


def risk_score(frame: pd.DataFrame, concept_shift: float = 0.0) -> np.ndarray:
    """The hidden rule: higher means riskier. `concept_shift` blends in the drifted rule."""
    delay = frame["delay_from_due_date"].to_numpy(float)
    delayed = frame["num_of_delayed_payment"].fillna(12).to_numpy(float)
    interest = frame["interest_rate"].to_numpy(float)
    debt = frame["outstanding_debt"].to_numpy(float)
    inquiries = frame["num_credit_inquiries"].fillna(6).to_numpy(float)
    cards = frame["num_credit_card"].to_numpy(float)
    history = frame["credit_history_age"].fillna(220).to_numpy(float)
    mix = frame["credit_mix"].to_numpy(object)
    min_amount = frame["payment_of_min_amount"].to_numpy(object)
    income = frame["annual_income"].to_numpy(float)
    utilisation = frame["credit_utilization_ratio"].to_numpy(float)

    classic = (
        0.030 * (delay - 21)
        + 0.060 * (delayed - 13)
        + 0.045 * (interest - 14)
        + 0.00035 * (debt - 1400)
        + 0.080 * (inquiries - 5.5)
        + 0.090 * (cards - 5.5)
        - 0.0025 * (history - 220)
        + 0.55 * (mix == "Bad")
        - 0.55 * (mix == "Good")
        + 0.35 * (min_amount == "Yes")
        - 0.25 * (min_amount == "No")
    )
    if concept_shift == 0:
        return classic
    # After a concept drift, lenders judge debt against income, card utilisation and
    # the monthly balance instead of payment history: the same people score differently.
    debt_to_income = debt / np.maximum(income / 12, 1)
    balance = frame["monthly_balance"].fillna(300).to_numpy(float)
    shifted = (
        1.8 * (debt_to_income - 0.45)
        + 0.15 * (utilisation - 32)
        + 0.06 * (inquiries - 5.5)
        - 0.0012 * (balance - 300)
        + 1.22
    )
    return (1 - concept_shift) * classic + concept_shift * shifted


def scores_from_risk(risk: np.ndarray) -> np.ndarray:
    return np.where(risk < GOOD_BELOW, "Good", np.where(risk > POOR_ABOVE, "Poor", "Standard"))


def _with_missing(values: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    out = values.astype(float) if values.dtype.kind in "iuf" else values.astype(object)
    out[rng.random(len(out)) < rate] = np.nan if out.dtype.kind == "f" else None
    return out


def _month_features(
    config: GeneratorConfig, people: _Population, month_index: int, month: date
) -> pd.DataFrame:
    rng = np.random.default_rng([config.seed, 3, month_index])
    n = config.customers
    inflation = 1 + 0.25 * _drift_strength(config, month, "covariate")
    stress = _drift_strength(config, month, "covariate")
    yearly_raise = 1.02 ** (month_index / 12)

    income = people.income * yearly_raise * inflation * np.exp(0.01 * rng.standard_normal(n))
    salary = income / 12 * people.take_home_share
    debt = np.clip(people.debt * (1 + 0.3 * stress) * (1 + 0.03 * rng.standard_normal(n)), 0, 9_999)
    emi = np.where(
        people.loan_count > 0,
        debt / 30 + salary * 0.012 * people.loan_count * rng.uniform(0.8, 1.2, n),
        0.0,
    )
    invested = salary * np.clip(
        0.12 + 0.04 * people.worthiness + 0.03 * rng.standard_normal(n), 0.01, 0.4
    )
    spend_share = np.where(people.high_spender, 0.55, 0.35) + 0.05 * rng.standard_normal(n)
    balance = salary - emi - invested - salary * spend_share

    value_score = people.worthiness + 0.8 * rng.standard_normal(n)
    value = np.where(value_score > 0.6, "Large", np.where(value_score < -0.4, "Small", "Medium"))
    behaviour = np.char.add(
        np.char.add(np.where(people.high_spender, "High", "Low"), "_spent_"),
        np.char.add(value, "_value_payments"),
    )
    mix_score = people.worthiness + 0.6 * rng.standard_normal(n)
    credit_mix = np.where(mix_score < -0.6, "Bad", np.where(mix_score > 0.7, "Good", "Standard"))
    min_score = people.worthiness + 0.8 * rng.standard_normal(n)
    min_amount = np.where(
        rng.random(n) < 0.12, "NM", np.where(min_score < -0.1, "Yes", "No")
    ).astype(object)

    frame = pd.DataFrame(
        {
            "customer_id": people.ids,
            "month": month,
            "age": people.birth_age + (month_index + people.occupation % 12) // 12,
            "occupation": _with_missing(np.array(OCCUPATIONS)[people.occupation], rng, 0.03),
            "annual_income": np.round(income, 2),
            "monthly_inhand_salary": _with_missing(np.round(salary, 2), rng, 0.05),
            "num_bank_accounts": people.bank_accounts,
            "num_credit_card": people.credit_cards,
            "interest_rate": np.round(np.clip(people.interest_rate + 3 * stress, 1, 40), 1),
            "num_of_loan": people.loan_count,
            "type_of_loan": people.loan_types,
            "delay_from_due_date": _clip_round(
                people.base_delay + 10 * stress + 3 * rng.standard_normal(n), -5, 90
            ),
            "num_of_delayed_payment": _with_missing(
                _clip_round(
                    people.base_delayed_payments + 5 * stress + 1.5 * rng.standard_normal(n), 0, 40
                ),
                rng,
                0.04,
            ),
            "changed_credit_limit": _with_missing(
                np.round(
                    np.clip(10 - 3 * people.worthiness + 5 * rng.standard_normal(n), -6, 37), 2
                ),
                rng,
                0.02,
            ),
            "num_credit_inquiries": _with_missing(
                _clip_round(people.base_inquiries + 2 * stress + month_index / 8, 0, 30), rng, 0.02
            ),
            "credit_mix": _with_missing(credit_mix, rng, 0.04),
            "outstanding_debt": np.round(debt, 2),
            "credit_utilization_ratio": np.round(
                np.clip(32 - 1.5 * people.worthiness + 5 * rng.standard_normal(n), 20, 50), 2
            ),
            "credit_history_age": np.minimum(people.history_months + month_index, 999).astype(int),
            "payment_of_min_amount": min_amount,
            "total_emi_per_month": np.round(emi, 2),
            "amount_invested_monthly": _with_missing(np.round(invested, 2), rng, 0.04),
            "payment_behaviour": _with_missing(behaviour.astype(object), rng, 0.02),
            "monthly_balance": _with_missing(np.round(np.clip(balance, -900, None), 2), rng, 0.01),
        }
    )
    for column in ("num_of_delayed_payment", "num_credit_inquiries"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _month_labels(
    config: GeneratorConfig, people: _Population, month_index: int, features: pd.DataFrame
) -> pd.DataFrame:
    rng = np.random.default_rng([config.seed, 4, month_index])
    month = features["month"].iloc[0]
    n = len(features)
    risk = (
        risk_score(features, _drift_strength(config, month, "concept"))
        + people.rule_noise
        + LABEL_NOISE * rng.standard_normal(n)
    )
    # Ground truth lands 3 to 40 days after the month closes.
    month_end = pd.Timestamp(add_months(month, 1))
    delay_seconds = rng.integers(3 * 86_400, 40 * 86_400, n)
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "month": month,
            "credit_score": scores_from_risk(risk),
            "observed_at": month_end + pd.to_timedelta(delay_seconds, unit="s"),
        }
    )


def generate_months(config: GeneratorConfig) -> Iterator[GeneratedMonth]:
    """Yield each month's features and labels, oldest first."""
    people = _population(config)
    for index in range(config.months):
        month = add_months(config.start, index)
        features = _month_features(config, people, index, month)
        yield GeneratedMonth(month, features, _month_labels(config, people, index, features))


def csv_rows(
    config: GeneratorConfig, generated: GeneratedMonth, people: pd.DataFrame
) -> pd.DataFrame:
    """A month in our CSV layout (PII, features, label), with dirt when `dirty_rate` > 0."""
    labels = generated.labels.rename(columns={"observed_at": "label_observed_at"})
    frame = (
        generated.features.merge(people, on="customer_id")
        .merge(labels, on=["customer_id", "month"])
        .loc[
            :, ["customer_id", "month", "name", "ssn", *FEATURE_NAMES, TARGET, "label_observed_at"]
        ]
    )
    frame = frame.astype(object).where(frame.notna(), "")
    if config.dirty_rate > 0:
        month_index = months_between(config.start, generated.month)
        _inject_dirt(frame, np.random.default_rng([config.seed, 5, month_index]), config.dirty_rate)
    return frame


# (column, value, cleanable): the dirt the public dataset is known for. Cleanable dirt
# is fixed by ingest; the rest must land in quarantine with a reason.
DIRT = (
    ("age", "{value}_", True),
    ("annual_income", "{value}_", True),
    ("num_of_loan", "{value}_", True),
    ("credit_mix", "_", True),
    ("occupation", "_______", True),
    ("age", "-500", False),
    ("age", "8000", False),
    ("num_of_loan", "-100", False),
    ("num_bank_accounts", "1798", False),
    ("payment_behaviour", "!@9#%8", False),
    ("amount_invested_monthly", "__10000__", False),
    ("monthly_balance", "__-333333333333333333333333333__", False),
    ("annual_income", "", False),
)


def _inject_dirt(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> None:
    dirty_rows = np.flatnonzero(rng.random(len(frame)) < rate)
    kinds = rng.integers(0, len(DIRT), len(dirty_rows))
    for row, kind in zip(dirty_rows, kinds, strict=True):
        column, template, _ = DIRT[kind]
        position = frame.columns.get_loc(column)
        frame.iat[row, position] = template.format(value=frame.iat[row, position])


def write_csv(config: GeneratorConfig, directory: Path) -> list[Path]:
    """Write one `credit_YYYY-MM.csv` per month in our layout; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    people = customers_frame(config)
    paths = []
    for generated in _with_progress(generate_months(config), config, "Writing CSV"):
        path = directory / f"credit_{generated.month:%Y-%m}.csv"
        csv_rows(config, generated, people).to_csv(path, index=False)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class LoadSummary:
    customers: int
    feature_rows: int
    label_rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Customer-months (a feature row and its label) loaded per second."""
        return self.feature_rows / max(self.seconds, 1e-9)


def load_into_store(config: GeneratorConfig, url: str | None = None) -> LoadSummary:
    """Upsert generated customers, features and labels; re-running replaces, never duplicates.

    Features and labels load on two connections while the next month is generated, so
    the server's and Python's work overlap. Each load is its own transaction; a run that
    stops midway is completed by running it again.
    """
    started = time.perf_counter()
    source = f"generator:seed={config.seed}:drift={config.drift}"

    def load(table: str, frame: pd.DataFrame) -> int:
        with db.transaction(url) as connection:
            return upsert_frame(connection, table, frame)

    customers = load("customers", customers_frame(config))
    counts = {"customer_features_monthly": 0, "credit_labels": 0}
    in_flight: deque[tuple[str, Future[int]]] = deque()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlops-load") as writers:
        for generated in _with_progress(generate_months(config), config, "Loading months"):
            while len(in_flight) >= 4:  # at most two months in memory
                table, future = in_flight.popleft()
                counts[table] += future.result()
            features = generated.features.assign(source=source)
            for table, frame in (
                ("customer_features_monthly", features),
                ("credit_labels", generated.labels),
            ):
                in_flight.append((table, writers.submit(load, table, frame)))
        for table, future in in_flight:
            counts[table] += future.result()
    return LoadSummary(
        customers,
        counts["customer_features_monthly"],
        counts["credit_labels"],
        time.perf_counter() - started,
    )


def _with_progress(
    months: Iterator[GeneratedMonth], config: GeneratorConfig, description: str
) -> Iterator[GeneratedMonth]:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(description, total=config.months)
        for generated in months:
            yield generated
            progress.advance(task)
