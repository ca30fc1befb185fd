"""`ingest_csv` against a real MariaDB: counts, quarantine, PII separation, idempotence."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, make_url, text

from mlops_platform import db
from mlops_platform.cli import main
from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, write_csv
from mlops_platform.data.ingest import ingest_csv
from mlops_platform.mariadb_server import free_port
from mlops_platform.schema import FEATURE_NAMES
from tests.airflow_support import migrate, run_dag_test

FIXTURES = Path(__file__).parents[1] / "fixtures"
KAGGLE = FIXTURES / "kaggle_dirty.csv"
OURS = FIXTURES / "ours_clean.csv"
TABLES = ("customers", "customer_features_monthly", "credit_labels", "ingest_quarantine")
KAGGLE_REASONS = {
    "age: out of range": 3,
    "age: missing required value": 1,
    "age: not a whole number": 1,
    "num_bank_accounts: out of range": 1,
    "interest_rate: out of range": 1,
    "num_of_loan: out of range": 1,
    "annual_income: not a number": 1,
    "amount_invested_monthly: not a number": 1,
    "monthly_balance: not a number": 1,
    "occupation: not in domain": 1,
    "payment_behaviour: not in domain": 1,
    "payment_of_min_amount: missing required value": 1,
    "type_of_loan: unknown loan type": 1,
    "credit_history_age: not a duration": 1,
    "month: unparseable": 1,
    "customer_id: missing required value": 1,
    "credit_score: not in domain": 1,
}


def query(url: str, sql: str, **params) -> list[tuple]:
    with db.get_engine(url).connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def table_counts(url: str) -> dict[str, int]:
    return {t: query(url, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}


def test_kaggle_fixture_loads_clean_rows_and_quarantines_the_rest(store_url):
    result = ingest_csv(KAGGLE, store_url)

    assert result.file_name == "kaggle_dirty.csv"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (41, 24, 16)
    assert result.rows_superseded == 1  # one (customer, month) twice: the later line wins
    assert result.labels_loaded == 23  # 24 clean rows with a score, one (customer, month) twice
    assert result.quarantine_reasons == KAGGLE_REASONS
    assert table_counts(store_url) == {
        "customers": 5,
        "customer_features_monthly": 24,
        "credit_labels": 23,
        "ingest_quarantine": 16,
    }


def test_quarantine_rows_keep_feature_cells_and_every_reason_but_no_pii(store_url):
    ingest_csv(KAGGLE, store_url)
    rows = {
        line: (json.loads(cells), reason)
        for line, cells, reason in query(
            store_url,
            "SELECT line_number, feature_values, reason FROM ingest_quarantine"
            " WHERE file_name = :f",
            f="kaggle_dirty.csv",
        )
    }
    assert sorted(rows) == [5, 7, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37]
    cells, reason = rows[17]
    assert set(cells) == {"customer_id", "month", *FEATURE_NAMES, "credit_score"}
    assert (cells["customer_id"], cells["age"]) == ("CUS_0xb27", "8000")
    stored = query(store_url, "SELECT * FROM ingest_quarantine")
    people = query(store_url, "SELECT name, ssn FROM customers WHERE ssn IS NOT NULL")
    assert people and not [
        p for p in people for row in stored if any(p[0] in str(v) or p[1] in str(v) for v in row)
    ]
    assert reason == (
        "age: 8000 outside [14, 100]; num_bank_accounts: 1414 outside [0, 20]; "
        "interest_rate: 5000 outside [0, 50]"
    )
    assert rows[5][1] == "age: -500 outside [14, 100]"
    assert rows[13][1] == "monthly_balance: not a number '__-333333333333333333333333333__'"
    assert rows[15][1] == "payment_behaviour: '!@9#%8' not in domain"
    assert rows[25][1] == "type_of_loan: unknown loan type 'Boat Loan'"
    assert rows[27][1] == "month: unparseable 'Febuary'"
    assert rows[35][1] == "customer_id: missing required value"


def test_cleaned_values_land_in_the_feature_table(store_url):
    ingest_csv(KAGGLE, store_url)

    def feature(customer: str, month: str, column: str):
        return query(
            store_url,
            f"SELECT {column} FROM customer_features_monthly WHERE customer_id = :c AND month = :m",
            c=customer,
            m=month,
        )[0][0]

    assert feature("CUS_0xa11", "2025-02-01", "age") == 34
    assert feature("CUS_0xa11", "2025-02-01", "annual_income") == pytest.approx(52310.4)
    assert feature("CUS_0xa11", "2025-01-01", "type_of_loan") == "Auto Loan,Student Loan"
    assert feature("CUS_0xa11", "2025-01-01", "credit_history_age") == 17 * 12 + 4
    assert feature("CUS_0xa11", "2025-03-01", "credit_mix") is None
    assert feature("CUS_0xa11", "2025-05-01", "occupation") is None
    assert feature("CUS_0xa11", "2025-07-01", "credit_history_age") is None
    assert feature("CUS_0xb27", "2025-03-01", "num_of_delayed_payment") == 9
    assert feature("CUS_0xb27", "2025-03-01", "changed_credit_limit") is None
    assert feature("CUS_0xe55", "2025-01-01", "type_of_loan") is None
    assert feature("CUS_0xe55", "2025-06-01", "type_of_loan") == "Not Specified"
    # The same (customer, month) twice: the later line wins.
    assert feature("CUS_0xe55", "2025-07-01", "monthly_balance") == pytest.approx(371.4)
    assert feature("CUS_0xe55", "2025-07-01", "source") == "kaggle_dirty.csv"
    assert query(
        store_url,
        "SELECT credit_score FROM credit_labels WHERE customer_id = 'CUS_0xe55'"
        " AND month = '2025-07-01'",
    ) == [("Poor",)]


def test_pii_stays_in_customers(store_url):
    ingest_csv(KAGGLE, store_url)
    for table in ("customer_features_monthly", "credit_labels"):
        columns = {
            name.lower()
            for (name,) in query(
                store_url,
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND table_name = :t",
                t=table,
            )
        }
        assert columns and not columns & {"name", "ssn"}
    assert query(store_url, "SELECT customer_id, name, ssn FROM customers ORDER BY 1") == [
        ("CUS_0xa11", "Marta Kowalczyk", "501-23-4417"),
        ("CUS_0xb27", "Tobias Renner", "702-11-9083"),
        ("CUS_0xc3f", "Aiko Tanabe", "333-90-1276"),
        ("CUS_0xd40", "Luis Ferreira", None),  # the fixture's SSN is garbage
        ("CUS_0xe55", "Nia Okafor", "614-72-0358"),
    ]


def test_labels_without_observed_at_follow_the_delay_rule(store_url):
    result = ingest_csv(KAGGLE, store_url, year=2024, label_delay_days=10)
    assert result.labels_loaded == 23
    labels = query(
        store_url,
        "SELECT month, observed_at FROM credit_labels WHERE customer_id = 'CUS_0xa11'"
        " ORDER BY month",
    )
    assert labels[0] == (date(2024, 1, 1), datetime(2024, 2, 11))
    assert all(
        observed == datetime(month.year + month.month // 12, month.month % 12 + 1, 11)
        for month, observed in labels
    )


def test_our_layout_keeps_given_observed_at_and_fills_missing_ones(store_url, tmp_path):
    result = ingest_csv(OURS, store_url)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (6, 6, 0)
    assert result.labels_loaded == 5
    assert query(
        store_url,
        "SELECT customer_id, month, credit_score, observed_at FROM credit_labels ORDER BY 1, 2",
    ) == [
        ("C000001", date(2025, 1, 1), "Good", datetime(2025, 2, 18, 9, 30)),
        ("C000001", date(2025, 2, 1), "Good", datetime(2025, 3, 21)),
        ("C000002", date(2025, 1, 1), "Poor", datetime(2025, 2, 25)),
        ("C000002", date(2025, 2, 1), "Poor", datetime(2025, 3, 21)),
        ("C000003", date(2025, 2, 1), "Good", datetime(2025, 3, 10, 12)),
    ]
    assert query(
        store_url,
        "SELECT type_of_loan, credit_history_age FROM customer_features_monthly"
        " WHERE customer_id = 'C000001' AND month = '2025-03-01'",
    ) == [("Home Equity Loan,Auto Loan", 192)]

    no_column = tmp_path / "no_observed_at.csv"
    pd.read_csv(OURS, dtype=str, keep_default_na=False).drop(columns="label_observed_at").to_csv(
        no_column, index=False
    )
    ingest_csv(no_column, store_url, label_delay_days=3)
    assert query(
        store_url,
        "SELECT observed_at FROM credit_labels WHERE customer_id = 'C000003'",
    ) == [(datetime(2025, 3, 4),)]


def test_ingesting_twice_changes_nothing(store_url):
    first = ingest_csv(KAGGLE, store_url)
    counts = table_counts(store_url)
    second = ingest_csv(KAGGLE, store_url)
    assert second == first
    assert table_counts(store_url) == counts


def test_reingesting_a_fixed_file_clears_its_stale_quarantine(store_url, tmp_path):
    path = tmp_path / "batch.csv"
    shutil.copy(KAGGLE, path)
    assert ingest_csv(path, store_url).rows_quarantined == 16
    fixed = path.read_text(encoding="utf-8").replace(",-500,", ",34,")
    path.write_text(fixed, encoding="utf-8")
    result = ingest_csv(path, store_url)
    assert (result.rows_loaded, result.rows_quarantined, result.rows_superseded) == (25, 15, 1)
    assert query(store_url, "SELECT COUNT(*) FROM ingest_quarantine WHERE line_number = 5") == [
        (0,)
    ]


def test_an_unrecognised_file_writes_nothing(store_url, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unrecognised CSV header"):
        ingest_csv(path, store_url)
    assert set(table_counts(store_url).values()) == {0}


def test_every_row_read_is_loaded_quarantined_or_superseded(use_store, tmp_path):
    config = GeneratorConfig(customers=2_000, months=1, start=date(2025, 3, 1), dirty_rate=0.01)
    (path,) = write_csv(config, tmp_path / "dirty")
    (clean_path,) = write_csv(replace(config, dirty_rate=0), tmp_path / "clean")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    untouched = frame.index[frame.eq(pd.read_csv(clean_path, dtype=str, keep_default_na=False))
                            .all(axis=1)]  # fmt: skip
    # Six clean customer-months sent twice, the second time with a new balance.
    again = frame.loc[untouched[::300][:6]].assign(monthly_balance="1234.5")
    pd.concat([frame, again]).to_csv(path, index=False)

    output = CliRunner().invoke(main, ["data", "ingest", "--no-announce", str(path)])

    assert output.exit_code == 0, output.output
    counts = {
        label: int(value.replace(",", ""))
        for label, value in re.findall(r"rows (\w+)\s+│?\s*([\d,]+)", output.output)
    }
    assert (counts["read"], counts["superseded"]) == (2_006, 6) and counts["quarantined"] > 0
    assert counts["read"] == counts["loaded"] + counts["quarantined"] + counts["superseded"]
    assert table_counts(use_store)["customer_features_monthly"] == counts["loaded"]
    assert table_counts(use_store)["ingest_quarantine"] == counts["quarantined"]
    clean_again = query(
        use_store,
        "SELECT COUNT(*) FROM customer_features_monthly WHERE monthly_balance = 1234.5",
    )[0][0]
    assert clean_again == 6  # the later line of each pair won


def test_migration_008_redacts_quarantine_rows_stored_with_pii(mariadb_server, tmp_path):
    url = make_url(mariadb_server).set(database="mlops_t_before_008")
    url_text = url.render_as_string(hide_password=False)
    for migration_file in db.get_settings().mlops_sql_dir.glob("00[1-7]_*.sql"):
        (tmp_path / migration_file.name).write_text(migration_file.read_text())
    kaggle = {"ID": "0xb208", "Customer_ID": "CUS_0xb27", "Name": "Tobias Renner",
              "SSN": "702-11-9083", "Age": "8000"}  # fmt: skip
    ours = {"customer_id": "C1", "name": "Nia Okafor", "ssn": "614-72-0358", "age": "-5"}
    try:
        db.upgrade(url_text, sql_dir=tmp_path)
        with db.transaction(url_text) as connection:
            for line, row in ((2, kaggle), (3, ours)):
                connection.execute(
                    text(
                        "INSERT INTO ingest_quarantine (file_name, line_number, raw_row, reason)"
                        " VALUES ('old.csv', :line, :row, 'age: out of range')"
                    ),
                    {"line": line, "row": json.dumps(row)},
                )

        assert [m.version for m in db.upgrade(url_text)][:1] == [8]

        stored = query(
            url_text, "SELECT line_number, feature_values, reason FROM ingest_quarantine"
        )
        assert [(line, json.loads(cells), reason) for line, cells, reason in stored] == [
            (2, {"Customer_ID": "CUS_0xb27", "Age": "8000"}, "age: out of range"),
            (3, {"customer_id": "C1", "age": "-5"}, "age: out of range"),
        ]
        columns = {c["name"] for c in inspect(db.get_engine(url_text)).get_columns(
            "ingest_quarantine")}  # fmt: skip
        assert "raw_row" not in columns
    finally:
        db.drop_database(url_text)


def test_the_ingest_dag_loads_the_file_and_updates_the_feature_rows_asset(store_url, tmp_path):
    home = tmp_path / "airflow"
    migrate(home)
    outcome = run_dag_test(
        home, "ingest", {"FEATURE_STORE_URL": store_url}, conf={"path": str(KAGGLE)}
    )
    assert outcome["state"] == "success", outcome["log"]
    assert table_counts(store_url)["customer_features_monthly"] == 24

    with sqlite3.connect(home / "airflow.db") as airflow_db:
        events = airflow_db.execute(
            "SELECT asset.uri, asset_event.extra FROM asset_event"
            " JOIN asset ON asset.id = asset_event.asset_id"
        ).fetchall()
    store = make_url(store_url)
    uri = f"mysql://{store.host}:{store.port}/{store.database}/customer_features_monthly"
    assert [(u, json.loads(extra)) for u, extra in events] == [
        (uri, {"file": "kaggle_dirty.csv", "rows_read": 41, "rows_loaded": 24,
               "rows_quarantined": 16, "rows_superseded": 1}),
    ]  # fmt: skip


def test_ingest_without_a_reachable_airflow_loads_and_says_airflow_was_not_told(
    use_store, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AIRFLOW_ADMIN_PASSWORD", "unused")
    get_settings.cache_clear()
    output = CliRunner().invoke(main, ["data", "ingest", str(OURS)])
    assert output.exit_code == 0, output.output
    assert "Airflow was not told (ConnectError" in output.output
    assert table_counts(use_store)["customer_features_monthly"] == 6
