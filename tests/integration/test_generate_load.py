import pandas as pd
from click.testing import CliRunner
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.cli import main


def table_counts(url: str) -> dict[str, int]:
    with db.get_engine(url).connect() as connection:
        return {
            table: connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            for table in ("customers", "customer_features_monthly", "credit_labels")
        }


def test_generate_loads_customers_months_and_labels_idempotently(use_store: str) -> None:
    args = ["data", "generate", "--customers", "300", "--months", "4", "--start", "2025-01"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert table_counts(use_store) == {
        "customers": 300,
        "customer_features_monthly": 1_200,
        "credit_labels": 1_200,
    }
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert table_counts(use_store)["customer_features_monthly"] == 1_200
    assert "1,200" in first.output


def test_loaded_values_round_trip_including_nulls(use_store: str) -> None:
    from datetime import date

    from mlops_platform.data.generator import GeneratorConfig, generate_months, load_into_store

    config = GeneratorConfig(customers=200, months=1, start=date(2025, 3, 1), seed=5)
    load_into_store(config, use_store)
    expected = next(generate_months(config)).features.set_index("customer_id")
    with db.get_engine(use_store).connect() as connection:
        stored = connection.execute(
            text(
                "SELECT customer_id, monthly_inhand_salary, type_of_loan, credit_mix"
                " FROM customer_features_monthly"
            )
        ).all()
    assert len(stored) == 200
    for customer_id, salary, loans, mix in stored:
        row = expected.loc[customer_id]
        assert (salary is None) == pd.isna(row["monthly_inhand_salary"])
        assert (loans, mix) == tuple(
            None if pd.isna(row[c]) else row[c] for c in ("type_of_loan", "credit_mix")
        )


def test_generate_rejects_bad_options_before_touching_the_store(use_store: str) -> None:
    result = CliRunner().invoke(
        main, ["data", "generate", "--start", "2025-01", "--drift", "concept"]
    )
    assert result.exit_code == 2
    assert "drift_from" in result.output
    assert table_counts(use_store)["customers"] == 0
