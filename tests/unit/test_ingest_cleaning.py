"""The ingest cleaning rules, on plain data frames (no database)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_platform.data.ingest import (
    KAGGLE_COLUMNS,
    KAGGLE_TO_OURS,
    IngestResult,
    clean_categorical,
    clean_credit_history_age,
    clean_frame,
    clean_iso_months,
    clean_loan_list,
    clean_month_names,
    clean_numeric,
    clean_observed_at,
    detect_layout,
    is_missing,
    normalise_loan_list,
    read_raw_csv,
)
from mlops_platform.schema import FEATURE_NAMES, FEATURES_BY_NAME

FIXTURES = Path(__file__).parents[1] / "fixtures"
AGE = FEATURES_BY_NAME["age"]


def cells(*values: str) -> pd.Series:
    return pd.Series(values, dtype="str")


def messages(column) -> list[str]:
    return column.problems["message"].tolist()


def test_placeholders_are_missing_and_everything_else_is_not():
    missing = is_missing(cells("", " ", "_", "_______", "NA", "nan", "NaN", "0", "N", "_x_"))
    assert missing.tolist() == [True] * 7 + [False] * 3


def test_trailing_underscores_are_stripped_from_numbers():
    column = clean_numeric(cells("28_", "1303.01_", "-2_"), FEATURES_BY_NAME["monthly_balance"])
    assert column.values.tolist() == [28.0, 1303.01, -2.0]
    assert column.problems.empty


def test_missing_numbers_are_null_when_nullable_and_refused_otherwise():
    nullable = clean_numeric(cells("_", "", "NA"), FEATURES_BY_NAME["monthly_inhand_salary"])
    assert nullable.values.isna().all()
    assert nullable.problems.empty

    required = clean_numeric(cells("_", "nan", "30"), AGE)
    assert required.problems.index.tolist() == [0, 1]
    assert set(required.problems["category"]) == {"age: missing required value"}
    assert required.values.tolist()[2] == 30


def test_numbers_outside_the_feature_range_are_refused():
    column = clean_numeric(cells("-500", "8000", "100", "14_"), AGE)
    assert messages(column) == ["age: -500 outside [14, 100]", "age: 8000 outside [14, 100]"]
    assert set(column.problems["category"]) == {"age: out of range"}
    assert column.values.tolist()[2:] == [100, 14]
    assert str(column.values.dtype) == "Int64"

    loans = clean_numeric(cells("-100"), FEATURES_BY_NAME["num_of_loan"])
    assert messages(loans) == ["num_of_loan: -100 outside [0, 20]"]
    assert messages(clean_numeric(cells("1e400"), AGE)) == ["age: 1e400 outside [14, 100]"]


def test_integer_features_refuse_fractions_but_accept_whole_floats():
    column = clean_numeric(cells("23.5", "23.0"), AGE)
    assert messages(column) == ["age: not a whole number '23.5'"]
    assert column.values.tolist()[1] == 23


@pytest.mark.parametrize(
    "garbage",
    ["!@9#%8", "__10000__", "__-333333333333333333333333333__", "abc", "12 USD", "1,000", "inf"],
)
def test_garbage_in_number_columns_is_refused_without_guessing(garbage):
    column = clean_numeric(cells(garbage), FEATURES_BY_NAME["monthly_balance"])
    assert messages(column) == [f"monthly_balance: not a number '{garbage}'"]
    assert column.values.isna().all()


def test_long_values_are_cut_in_reasons():
    column = clean_numeric(cells("x" * 500), AGE)
    assert messages(column) == ["age: not a number '" + "x" * 39 + "…'"]


def test_categoricals_outside_the_domain_are_refused():
    occupation = clean_categorical(
        cells("Engineer", "_______", "Astronaut", "engineer"), FEATURES_BY_NAME["occupation"]
    )
    assert occupation.values.tolist()[0] == "Engineer"
    assert occupation.values.isna().tolist() == [False, True, True, True]
    assert messages(occupation) == [
        "occupation: 'Astronaut' not in domain",
        "occupation: 'engineer' not in domain",
    ]
    behaviour = clean_categorical(cells("!@9#%8"), FEATURES_BY_NAME["payment_behaviour"])
    assert behaviour.problems["category"].tolist() == ["payment_behaviour: not in domain"]


def test_missing_required_categorical_is_refused():
    column = clean_categorical(cells("_", "NM"), FEATURES_BY_NAME["payment_of_min_amount"])
    assert messages(column) == ["payment_of_min_amount: missing required value"]
    assert column.values.tolist()[1] == "NM"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Auto Loan", "Auto Loan"),
        ("Auto Loan, and Student Loan", "Auto Loan,Student Loan"),
        ("Auto Loan and Student Loan", "Auto Loan,Student Loan"),
        (
            "Auto Loan, Credit-Builder Loan, and Personal Loan",
            "Auto Loan,Credit-Builder Loan,Personal Loan",
        ),
        ("Payday Loan,Payday Loan,Not Specified", "Payday Loan,Payday Loan,Not Specified"),
    ],
)
def test_loan_lists_are_normalised(given, expected):
    assert normalise_loan_list(given) == (expected, ())


def test_unknown_loan_types_are_refused_and_placeholders_are_null():
    column = clean_loan_list(cells("Boat Loan, and Auto Loan", "NA", "", "Not Specified"))
    assert messages(column) == ["type_of_loan: unknown loan type 'Boat Loan'"]
    assert column.values.isna().tolist() == [True, True, True, False]
    assert column.values.tolist()[3] == "Not Specified"


def test_overlong_loan_lists_are_refused():
    column = clean_loan_list(cells(", ".join(["Credit-Builder Loan"] * 14)))
    assert column.problems["category"].tolist() == ["type_of_loan: too long"]


def test_credit_history_age_is_converted_to_months():
    column = clean_credit_history_age(
        cells("22 Years and 1 Months", "1 Year and 0 Months", "NA", "", "0 Years and 11 Months")
    )
    assert column.values.tolist()[:2] == [265, 12]
    assert column.values.isna().tolist() == [False, False, True, True, False]
    assert column.problems.empty


@pytest.mark.parametrize("bad", ["22 Years and 12 Months", "22 Years", "265", "long ago"])
def test_unparseable_credit_history_age_is_refused(bad):
    column = clean_credit_history_age(cells(bad))
    assert messages(column) == [f"credit_history_age: not a duration '{bad}'"]


def test_kaggle_month_names_use_the_given_year():
    column = clean_month_names(cells("January", "august", "Febuary", ""), 2024)
    assert column.values.tolist()[:2] == [pd.Timestamp(2024, 1, 1), pd.Timestamp(2024, 8, 1)]
    assert messages(column) == ["month: unparseable 'Febuary'", "month: missing required value"]


def test_iso_months_must_be_strict_first_days():
    column = clean_iso_months(
        cells("2025-03-01", "2025-03", "2025-03-15", "2025-13", "03/2025", "0025-03")
    )
    assert column.values.tolist()[:2] == [pd.Timestamp(2025, 3, 1)] * 2
    assert column.values.isna().tolist()[2:] == [True] * 4
    assert messages(column) == [
        "month: not the first of a month '2025-03-15'",
        "month: unparseable '2025-13'",
        "month: unparseable '03/2025'",
        "month: '0025-03' outside 1900..2200",
    ]


def test_observed_at_defaults_to_the_next_month_plus_the_delay():
    months = pd.Series(pd.to_datetime(["2025-01-01", "2025-12-01"]))
    absent = clean_observed_at(None, months, 20)
    assert absent.values.tolist() == [pd.Timestamp(2025, 2, 21), pd.Timestamp(2026, 1, 21)]

    given = clean_observed_at(cells("2025-02-03 10:00:00", ""), months, 5)
    assert given.values.tolist() == [pd.Timestamp(2025, 2, 3, 10), pd.Timestamp(2026, 1, 6)]


def test_observed_at_must_parse_and_not_precede_its_month():
    months = pd.Series(pd.to_datetime(["2025-03-01", "2025-03-01"]))
    column = clean_observed_at(cells("soon", "2025-02-28"), months, 20)
    assert column.problems["category"].tolist() == [
        "label_observed_at: unparseable",
        "label_observed_at: before its month",
    ]


def test_kaggle_columns_map_onto_our_feature_names():
    mapped = set(KAGGLE_TO_OURS.values())
    assert set(FEATURE_NAMES) <= mapped
    assert {"customer_id", "month", "name", "ssn", "credit_score"} <= mapped
    assert "ID" in KAGGLE_COLUMNS


def test_layouts_are_detected_from_the_header():
    assert detect_layout(KAGGLE_COLUMNS) == "kaggle"
    assert detect_layout([c for c in KAGGLE_COLUMNS if c != "Credit_Score"]) == "kaggle"
    assert detect_layout(["customer_id", "month", *FEATURE_NAMES]) == "ours"
    with pytest.raises(ValueError, match="Annual_Income"):
        detect_layout([c for c in KAGGLE_COLUMNS if c != "Annual_Income"])


def kaggle_row(**changes: str) -> dict[str, str]:
    row = {
        "ID": "0x1", "Customer_ID": "CUS_0x1", "Month": "March", "Name": "Test Person",
        "Age": "30", "SSN": "123-45-6789", "Occupation": "Writer", "Annual_Income": "30000",
        "Monthly_Inhand_Salary": "2500", "Num_Bank_Accounts": "2", "Num_Credit_Card": "3",
        "Interest_Rate": "8", "Num_of_Loan": "1", "Type_of_Loan": "Auto Loan",
        "Delay_from_due_date": "3", "Num_of_Delayed_Payment": "2",
        "Changed_Credit_Limit": "4.5", "Num_Credit_Inquiries": "2", "Credit_Mix": "Good",
        "Outstanding_Debt": "500", "Credit_Utilization_Ratio": "30",
        "Credit_History_Age": "10 Years and 2 Months", "Payment_of_Min_Amount": "No",
        "Total_EMI_per_month": "40", "Amount_invested_monthly": "80",
        "Payment_Behaviour": "Low_spent_Small_value_payments", "Monthly_Balance": "300",
        "Credit_Score": "Good",
    }  # fmt: skip
    return row | changes


def test_several_problems_in_one_row_are_all_listed_in_column_order():
    raw = pd.DataFrame([kaggle_row(Age="8000", Num_of_Loan="-100", Month="Smarch")], dtype="str")
    cleaned = clean_frame(raw)
    assert cleaned.reasons().tolist() == [
        "month: unparseable 'Smarch'; age: 8000 outside [14, 100]; "
        "num_of_loan: -100 outside [0, 20]"
    ]


def test_pii_is_kept_apart_and_garbage_ssn_becomes_null_without_refusing_the_row():
    raw = pd.DataFrame(
        [kaggle_row(SSN="#F%$D@*&8", Name="N" * 150), kaggle_row(Customer_ID="CUS_0x2")],
        dtype="str",
    )
    cleaned = clean_frame(raw, year=2023)
    assert cleaned.problems.empty
    assert cleaned.rows["ssn"].isna().tolist() == [True, False]
    assert cleaned.rows["name"].tolist()[0] == "N" * 100
    assert cleaned.rows["month"].tolist()[0] == pd.Timestamp(2023, 3, 1)


def test_unknown_credit_score_is_refused_but_a_missing_one_is_not():
    raw = pd.DataFrame([kaggle_row(Credit_Score="Excellent"), kaggle_row(Credit_Score="")])
    cleaned = clean_frame(raw.astype("str"))
    assert cleaned.reasons().to_dict() == {0: "credit_score: 'Excellent' not in domain"}
    assert cleaned.rows["credit_score"].isna().tolist() == [True, True]


def test_features_only_files_have_no_labels():
    raw = pd.DataFrame([kaggle_row()]).drop(columns="Credit_Score").astype("str")
    cleaned = clean_frame(raw)
    assert cleaned.problems.empty
    assert cleaned.rows["credit_score"].isna().all()


def test_empty_lines_are_refused_once_and_line_numbers_follow_the_file(tmp_path):
    header = ",".join(KAGGLE_COLUMNS)
    good = ",".join(kaggle_row(Name='"Two\nLines"').values())
    path = tmp_path / "gaps.csv"
    path.write_text(f"{header}\n{good}\n\n{good.replace('0x1', '0x2')}\n", encoding="utf-8")
    raw, lines = read_raw_csv(path)
    assert lines.tolist() == [2, 4, 5]
    cleaned = clean_frame(raw)
    assert cleaned.reasons().to_dict() == {1: "row: no values"}


def test_the_kaggle_fixture_has_the_documented_problems():
    raw, _ = read_raw_csv(FIXTURES / "kaggle_dirty.csv")
    cleaned = clean_frame(raw)
    assert len(raw) == 41
    assert len(cleaned.bad_rows) == 16
    assert len(cleaned.problems) == 19


def test_result_refuses_counts_that_do_not_add_up():
    IngestResult("f.csv", 3, 1, 1, 1, 0, {})
    with pytest.raises(AssertionError, match="0 superseded != 3 read"):
        IngestResult("f.csv", 3, 1, 1, 0, 0, {})
