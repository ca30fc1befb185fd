"""The credit-score schema: the 22 features, their domains, and the target classes.

This is the single source of truth that ingest, validation, training and serving
check data against; `sql/001_*.sql` declares the same columns (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CREDIT_SCORES = ("Good", "Standard", "Poor")

OCCUPATIONS = (
    "Accountant", "Architect", "Developer", "Doctor", "Engineer", "Entrepreneur",
    "Journalist", "Lawyer", "Manager", "Mechanic", "Media_Manager", "Musician",
    "Scientist", "Teacher", "Writer",
)  # fmt: skip
CREDIT_MIXES = ("Good", "Standard", "Bad")
MIN_AMOUNT_ANSWERS = ("Yes", "No", "NM")
PAYMENT_BEHAVIOURS = tuple(
    f"{spent}_spent_{size}_value_payments"
    for spent in ("Low", "High")
    for size in ("Small", "Medium", "Large")
)
LOAN_TYPES = (
    "Auto Loan", "Credit-Builder Loan", "Debt Consolidation Loan", "Home Equity Loan",
    "Mortgage Loan", "Not Specified", "Payday Loan", "Personal Loan", "Student Loan",
)  # fmt: skip

FeatureKind = Literal["numeric", "categorical", "loan_list"]


@dataclass(frozen=True)
class Feature:
    """One model input: its kind, whether it is whole-numbered, its valid range or domain."""

    name: str
    kind: FeatureKind
    integer: bool = False
    low: float | None = None
    high: float | None = None
    domain: tuple[str, ...] = ()
    nullable: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature("age", "numeric", integer=True, low=14, high=100),
    Feature("occupation", "categorical", domain=OCCUPATIONS, nullable=True),
    Feature("annual_income", "numeric", low=1_000, high=2_000_000),
    Feature("monthly_inhand_salary", "numeric", low=0, high=200_000, nullable=True),
    Feature("num_bank_accounts", "numeric", integer=True, low=0, high=20),
    Feature("num_credit_card", "numeric", integer=True, low=0, high=20),
    Feature("interest_rate", "numeric", low=0, high=50),
    Feature("num_of_loan", "numeric", integer=True, low=0, high=20),
    Feature("type_of_loan", "loan_list", domain=LOAN_TYPES, nullable=True),
    Feature("delay_from_due_date", "numeric", integer=True, low=-10, high=120),
    Feature("num_of_delayed_payment", "numeric", integer=True, low=0, high=60, nullable=True),
    Feature("changed_credit_limit", "numeric", low=-50, high=100, nullable=True),
    Feature("num_credit_inquiries", "numeric", integer=True, low=0, high=50, nullable=True),
    Feature("credit_mix", "categorical", domain=CREDIT_MIXES, nullable=True),
    Feature("outstanding_debt", "numeric", low=0, high=50_000),
    Feature("credit_utilization_ratio", "numeric", low=0, high=100),
    Feature("credit_history_age", "numeric", integer=True, low=0, high=1_000, nullable=True),
    Feature("payment_of_min_amount", "categorical", domain=MIN_AMOUNT_ANSWERS),
    Feature("total_emi_per_month", "numeric", low=0, high=50_000),
    Feature("amount_invested_monthly", "numeric", low=0, high=50_000, nullable=True),
    Feature("payment_behaviour", "categorical", domain=PAYMENT_BEHAVIOURS, nullable=True),
    Feature("monthly_balance", "numeric", low=-50_000, high=200_000, nullable=True),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "numeric")
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
TARGET = "credit_score"
