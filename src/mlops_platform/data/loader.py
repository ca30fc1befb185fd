"""Bulk upserts of data frames into the feature store, through LOAD DATA LOCAL INFILE."""

from __future__ import annotations

import os
import tempfile

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, text

from mlops_platform.db import SAFE_IDENTIFIER

LOADABLE_TABLES = frozenset(
    {
        "customers",
        "customer_features_monthly",
        "credit_labels",
        "ingest_quarantine",
        "batch_predictions",
    }
)
# Arrow's C++ writer is ~10x faster than DataFrame.to_csv; it writes NULL as an empty
# field, which the LOAD DATA statement maps back to NULL with NULLIF.
CSV_FORMAT = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="needed")


def load_statement(table: str, columns: list[str]) -> str:
    """LOAD DATA … REPLACE for allow-listed identifiers; the file path stays a bound parameter."""
    if table not in LOADABLE_TABLES:
        raise ValueError(f"not a loadable table: {table}")
    bad = [c for c in columns if not SAFE_IDENTIFIER.match(c)]
    if bad:
        raise ValueError(f"column names must be plain identifiers: {bad}")
    variables = ", ".join(f"@v{i}" for i in range(len(columns)))
    assignments = ", ".join(f"`{c}` = NULLIF(@v{i}, '')" for i, c in enumerate(columns))
    return (
        f"LOAD DATA LOCAL INFILE :path REPLACE INTO TABLE `{table}` CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
        f"LINES TERMINATED BY '\\n' ({variables}) SET {assignments}"
    )


def upsert_frame(connection: Connection, table: str, frame: pd.DataFrame) -> int:
    """Insert `frame` into `table`, replacing rows with the same primary key; returns len."""
    if frame.empty:
        return 0
    statement = load_statement(table, [str(c) for c in frame.columns])
    handle, path = tempfile.mkstemp(prefix=f"mlops-{table}-", suffix=".tsv")
    os.close(handle)
    try:
        pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path, CSV_FORMAT)
        connection.execute(text(statement), {"path": path})
    finally:
        os.unlink(path)
    return len(frame)
