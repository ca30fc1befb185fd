import json

import pytest
from sqlalchemy import inspect, make_url, text

from mlops_platform import db
from mlops_platform.schema import FEATURE_NAMES


def test_upgrade_twice_applies_each_migration_once(store_url: str) -> None:
    expected = [m.version for m in db.read_migrations()]
    assert db.upgrade(store_url) == []
    assert db.applied_versions(store_url) == expected


def test_upgrade_creates_a_missing_database(mariadb_server: str) -> None:
    url = make_url(mariadb_server).set(database="mlops_t_created_by_upgrade")
    url_text = url.render_as_string(hide_password=False)
    try:
        applied = db.upgrade(url_text)
        assert [m.version for m in applied] == [m.version for m in db.read_migrations()]
    finally:
        db.drop_database(url_text)


def test_feature_tables_hold_the_schema_features_and_no_pii(store_url: str) -> None:
    inspector = inspect(db.get_engine(store_url))
    for table in ("customer_features_monthly", "training_snapshots"):
        columns = [c["name"] for c in inspector.get_columns(table)]
        assert [c for c in columns if c in FEATURE_NAMES] == list(FEATURE_NAMES)
        assert not {"name", "ssn"} & set(columns)
    for table in ("prediction_log", "credit_labels", "deployments"):
        assert not {"name", "ssn"} & {c["name"] for c in inspector.get_columns(table)}


def test_tables_use_utf8mb4(store_url: str) -> None:
    with db.get_engine(store_url).connect() as connection:
        collations = connection.execute(
            text(
                "SELECT DISTINCT table_collation FROM information_schema.tables"
                " WHERE table_schema = DATABASE()"
            )
        ).scalars()
        assert {c.split("_")[0] for c in collations} == {"utf8mb4"}


def test_an_edited_migration_is_refused(store_url: str, tmp_path) -> None:
    for migration_file in db.get_settings().mlops_sql_dir.glob("*.sql"):
        (tmp_path / migration_file.name).write_text(migration_file.read_text())
    first = sorted(tmp_path.glob("001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        db.upgrade(store_url, sql_dir=tmp_path)


def test_a_database_name_that_is_not_an_identifier_is_rejected() -> None:
    with pytest.raises(ValueError, match="must name a database"):
        db.feature_store_url("mysql+pymysql://root@127.0.0.1/mlops`; DROP DATABASE x")


def test_predictions_logged_before_006_keep_their_features_and_probabilities(
    mariadb_server: str, tmp_path
) -> None:
    url = make_url(mariadb_server).set(database="mlops_t_before_006")
    url_text = url.render_as_string(hide_password=False)
    for migration_file in db.get_settings().mlops_sql_dir.glob("00[1-5]_*.sql"):
        (tmp_path / migration_file.name).write_text(migration_file.read_text())
    features = {**dict.fromkeys(FEATURE_NAMES), "age": 41, "type_of_loan": "Auto Loan"}
    try:
        db.upgrade(url_text, sql_dir=tmp_path)
        with db.transaction(url_text) as connection:
            connection.execute(
                text(
                    "INSERT INTO prediction_log (request_id, model_name, model_version,"
                    " features, predicted_class, probabilities, latency_ms, created_at)"
                    " VALUES ('r1', 'm', '1', :features, 'Poor', :probabilities, 2.5,"
                    " '2025-06-02 10:11:12.5')"
                ),
                {"features": json.dumps(features),
                 "probabilities": json.dumps({"Good": 0.1, "Standard": 0.2, "Poor": 0.7})},
            )  # fmt: skip

        db.upgrade(url_text)

        columns = {
            c["name"] for c in inspect(db.get_engine(url_text)).get_columns("prediction_log")
        }
        assert {f"f_{name}" for name in FEATURE_NAMES} <= columns and "features" not in columns
        with db.transaction(url_text) as connection:
            row = connection.execute(text("SELECT * FROM prediction_log")).mappings().one()
        assert (row["request_id"], row["f_age"], row["f_type_of_loan"]) == ("r1", 41, "Auto Loan")
        assert (row["prob_good"], row["prob_standard"], row["prob_poor"]) == (0.1, 0.2, 0.7)
    finally:
        db.drop_database(url_text)
