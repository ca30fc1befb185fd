"""Hostile request bodies for the prediction service: each must get a 4xx in the envelope.

The corpus is the project's own, written by hand for the shapes a public endpoint meets:
wrong types, nesting, huge numbers, non-JSON literals, unicode, duplicate keys, empty and
non-object bodies, oversize batches and records. Each entry is (name, path, body).
"""

from __future__ import annotations

import json
from typing import Any

from serving.schemas import EXAMPLE_RECORD, MAX_BATCH
from serving.validation import MAX_LISTED_ERRORS


def record_text(**changes: str) -> bytes:
    """EXAMPLE_RECORD as JSON with some values replaced by raw JSON text (not re-encoded)."""
    fields = {name: json.dumps(value) for name, value in EXAMPLE_RECORD.items()}
    fields.update(changes)
    return ("{" + ",".join(f'"{name}":{text}' for name, text in fields.items()) + "}").encode()


def unknown_fields_batch(records: int = 1_000, fields: int = 200) -> bytes:
    """The issue's body: `records` records of `fields` unknown fields each (~1.7 MB)."""
    record = "{" + ",".join(f'"f{i}":0' for i in range(fields)) + "}"
    return ("[" + ",".join([record] * records) + "]").encode()


def record_with(**changes: Any) -> bytes:
    return json.dumps({**EXAMPLE_RECORD, **changes}).encode()


HOSTILE_BODIES: list[tuple[str, str, bytes]] = [
    # Empty and non-object roots.
    ("empty", "/predict", b""),
    ("whitespace only", "/predict", b" \n\t "),
    ("null root", "/predict", b"null"),
    ("number root", "/predict", b"42"),
    ("string root", "/predict", b'"a record"'),
    ("boolean root", "/predict", b"true"),
    ("empty batch", "/predict", b"[]"),
    ("batch of numbers", "/predict", b"[1, 2, 3]"),
    ("batch of nulls", "/predict", b"[" + b",".join([b"null"] * 1_000) + b"]"),
    ("batch of arrays", "/predict", b"[[{}], [[]]]"),
    ("batch over the limit", "/predict", json.dumps([EXAMPLE_RECORD] * (MAX_BATCH + 1)).encode()),
    # Malformed JSON.
    ("truncated", "/predict", record_with()[:-5]),
    ("single quotes", "/predict", b"{'age': 35}"),
    ("trailing comma", "/predict", b'{"age": 35,}'),
    ("two documents", "/predict", record_with() + record_with()),
    ("comment", "/predict", b'// a record\n{"age": 35}'),
    ("not UTF-8", "/predict", b'{"occupation": "\xff\xfe"}'),
    # Deep nesting.
    ("deeply nested arrays", "/predict", b"[" * 100_000),
    ("deeply nested objects", "/predict", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("nested value", "/predict", record_text(age='{"value": 35}')),
    ("array value", "/predict", record_text(age="[35]")),
    # Numbers JSON does not have, or too large to mean anything.
    ("NaN literal", "/predict", record_text(annual_income="NaN")),
    ("Infinity literal", "/predict", record_text(annual_income="Infinity")),
    ("-Infinity literal", "/predict", record_text(monthly_balance="-Infinity")),
    ("float overflowing to infinity", "/predict", record_text(annual_income="1e999")),
    ("integer of 5,000 digits", "/predict", record_text(age="9" * 5_000)),
    ("integer beyond 64 bits", "/predict", record_text(age=str(2**70))),
    ("hex number", "/predict", record_text(age="0x23")),
    ("fraction in a count", "/predict", record_text(num_bank_accounts="4.5")),
    # Wrong types.
    ("number as text", "/predict", record_with(age="35")),
    ("boolean as number", "/predict", record_with(interest_rate=True)),
    ("null in a required field", "/predict", record_with(age=None)),
    ("number as category", "/predict", record_with(occupation=7)),
    ("month as timestamp", "/predict", record_with(month=1_750_000_000)),
    ("month not a date", "/predict", record_with(month="June 2025")),
    ("month mid-month", "/predict", record_with(month="2025-06-15")),
    ("boolean customer id", "/predict", record_with(customer_id=True)),
    # Unicode.
    ("accented category", "/predict", record_with(occupation="Ingénieur")),
    ("CJK category", "/predict", record_with(occupation="工程师")),
    ("emoji category", "/predict", record_with(occupation="Engineer 🚀")),
    ("NUL in a string", "/predict", record_with(occupation="Engi\u0000neer")),
    ("lone surrogate", "/predict", record_text(month='"\\ud800"')),
    ("right-to-left override", "/predict", record_with(customer_id="CUS_\u202e0x1")),
    ("unicode field name", "/predict", record_with(**{"âge": 35})),
    ("long field name", "/predict", record_with(**{"x" * 100_000: 1})),
    # Duplicate, unknown and too many fields.
    ("duplicate key", "/predict", b'{"age": -5, "age": 41}'),
    ("duplicate key in a full record", "/predict", record_text(age="-5")[:-1] + b',"age":41}'),
    ("unknown field", "/predict", record_with(nickname="Bob")),
    ("proto key", "/predict", record_with(__proto__={"admin": True})),
    ("200 unknown fields", "/predict", unknown_fields_batch(records=1)),
    ("1,000 records of 200 unknown fields", "/predict", unknown_fields_batch()),
    ("10,000 fields in one record", "/predict", unknown_fields_batch(records=1, fields=10_000)),
    ("every record wrong", "/predict", json.dumps([{"age": "x"}] * 1_000).encode()),
    # /predict_by_customer.
    ("by customer: empty", "/predict_by_customer", b""),
    ("by customer: empty object", "/predict_by_customer", b"{}"),
    ("by customer: unknown field", "/predict_by_customer", b'{"customer_ids": ["C1"], "x": 1}'),
    ("by customer: duplicate key", "/predict_by_customer",
     b'{"customer_ids": ["C1"], "customer_ids": ["C2"]}'),
    ("by customer: ids not a list", "/predict_by_customer", b'{"customer_ids": "CUS_0x1"}'),
    ("by customer: null ids", "/predict_by_customer", b'{"customer_ids": null}'),
    ("by customer: nested ids", "/predict_by_customer", b'{"customer_ids": [["CUS_0x1"]]}'),
    ("by customer: SQL in an id", "/predict_by_customer",
     b'{"customer_ids": ["x\' OR 1=1; --"]}'),
    ("by customer: too many ids", "/predict_by_customer",
     json.dumps({"customer_ids": ["C1"] * (MAX_BATCH + 1)}).encode()),
    ("by customer: array root", "/predict_by_customer", b'["CUS_0x1"]'),
    ("by customer: NaN", "/predict_by_customer", b'{"customer_ids": [NaN]}'),
]  # fmt: skip

ENVELOPE_KEYS = {"error", "rule", "errors", "error_count"}


def assert_envelope(response: Any, status: int | None = None) -> dict[str, Any]:
    """The service's error envelope, a 4xx (`status` if given), its errors bounded."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body.keys() == ENVELOPE_KEYS, body
    assert isinstance(body["error"], str) and body["error"] and body["rule"]
    assert len(body["errors"]) <= MAX_LISTED_ERRORS <= body["error_count"] or (
        len(body["errors"]) == body["error_count"]
    )
    for error in body["errors"]:
        assert error["rule"] and error["message"]
        if error["field"] is not None:
            assert error["message"].startswith(error["field"][:64]), error
    return body
