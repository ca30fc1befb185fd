"""Request and response shapes of the prediction service, generated from `schema.FEATURES`.

Numbers and strings are strict (no `"30"` for 30, no `true` for 1), unknown fields are
rejected, and every error names the field and the rule it broke. What the credit-score
data set writes is accepted and normalised: `4.0` for a count, a numeric customer id,
loan lists such as `"Auto Loan, and Payday Loan"`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, NotRequired

# BentoML's public API has no root-body input type; its own parses with json.loads and
# answers malformed JSON with a 500, so the request bodies subclass it below.
from _bentoml_sdk.io_models import IORootModel
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts before 3.12

from mlops_platform.config import get_settings
from mlops_platform.data.ingest import normalise_loan_list
from mlops_platform.schema import CREDIT_SCORES, FEATURES, Feature
from serving.validation import (
    MAX_LISTED_ERRORS,
    MalformedObject,
    Rejected,
    UncheckedBody,
    check_records,
    most_fields,
    read_json,
    wrong_body_type,
)

# Well-formed categories are accepted even when training never saw them (they are
# predicted and flagged); this only keeps garbage such as "!@9#%8" out.
CATEGORY = r"[A-Za-z][A-Za-z_ -]{0,39}"
CATEGORY_PATTERN = f"^{CATEGORY}$"
LOAN_LIST_PATTERN = f"^{CATEGORY}(,{CATEGORY})*$"
LOAN_LIST_MAX_CHARS = 255
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,24}$"
MAX_BATCH = get_settings().serving_max_batch

EXAMPLE_RECORD: dict[str, Any] = {
    "age": 35, "occupation": "Engineer", "annual_income": 68_000.0,
    "monthly_inhand_salary": 4_900.0, "num_bank_accounts": 4, "num_credit_card": 5,
    "interest_rate": 12.0, "num_of_loan": 2, "type_of_loan": "Auto Loan,Personal Loan",
    "delay_from_due_date": 9, "num_of_delayed_payment": 7, "changed_credit_limit": 8.5,
    "num_credit_inquiries": 4, "credit_mix": "Standard", "outstanding_debt": 1_200.0,
    "credit_utilization_ratio": 31.5, "credit_history_age": 220,
    "payment_of_min_amount": "No", "total_emi_per_month": 90.0,
    "amount_invested_monthly": 600.0, "payment_behaviour": "Low_spent_Medium_value_payments",
    "monthly_balance": 1_800.0, "customer_id": "CUS_0x1a2b", "month": "2025-06-01",
}  # fmt: skip


def _whole_number(value: Any) -> Any:
    """`4.0` → 4 (pandas writes counts as floats once a column held a null); 4.5 is refused."""
    if type(value) is float:
        if not value.is_integer():
            raise PydanticCustomError(
                "whole_number", "must be a whole number: {value} has a fraction", {"value": value}
            )
        return int(value)
    return value


def _canonical_loan_list(value: Any) -> Any:
    """The data set's `"A, B, and C"` → the `"A,B,C"` the model was trained on."""
    return normalise_loan_list(value)[0] if isinstance(value, str) else value


def _customer_id_text(value: Any) -> Any:
    """A numeric id (`1234` or `1234.0`) is the text `"1234"`."""
    if type(value) is int or (type(value) is float and value.is_integer()):
        return str(int(value))
    return value


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> date:
    """Only `YYYY-MM-DD` text (JSON has no dates); a number is not taken for a timestamp."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("date_type", "must be a date written YYYY-MM-01")
    try:
        if ISO_DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise PydanticCustomError("date_format", "must be a date written YYYY-MM-01: got {value!r}",
                              {"value": value[:40]})  # fmt: skip


def _first_of_month(value: date) -> date:
    if value.day != 1:
        raise PydanticCustomError(
            "first_of_month", "month must be the first day of a month (YYYY-MM-01)"
        )
    return value


def _feature_field(feature: Feature) -> Any:
    """The pydantic annotation of one feature: required unless nullable (then optional)."""
    if feature.kind == "numeric":
        number = int if feature.integer else float
        rule = f"{'whole number' if feature.integer else 'number'} from {feature.low:g}"
        annotation: Any = Annotated[
            number,
            Field(ge=feature.low, le=feature.high, description=f"{rule} to {feature.high:g}"),
        ]
        if feature.integer:
            annotation = Annotated[annotation, BeforeValidator(_whole_number)]
    elif feature.kind == "categorical":
        annotation = Annotated[
            str,
            Field(
                pattern=CATEGORY_PATTERN,
                description="known: "
                + ", ".join(feature.domain)
                + "; other well-formed values are predicted and flagged as unseen",
            ),
        ]
    else:
        annotation = Annotated[
            str,
            Field(
                pattern=LOAN_LIST_PATTERN,
                max_length=LOAN_LIST_MAX_CHARS,
                description="comma-separated loan types, e.g. 'Auto Loan,Payday Loan'"
                " ('Auto Loan, and Payday Loan' is normalised to that)",
            ),
            BeforeValidator(_canonical_loan_list),
        ]
    if feature.nullable:
        return NotRequired[annotation | None]
    return annotation


CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN), BeforeValidator(_customer_id_text)]
# A TypedDict validates into plain dicts, twice as fast as model instances (measured).
Record = TypedDict(
    "Record",
    {
        **{feature.name: _feature_field(feature) for feature in FEATURES},
        "customer_id": NotRequired[
            Annotated[
                CustomerId | None,
                Field(description="logged with the prediction, to match late labels"),
            ]
        ],
        "month": NotRequired[
            Annotated[
                Annotated[date, BeforeValidator(_iso_date), AfterValidator(_first_of_month)] | None,
                Field(description="YYYY-MM-01: the month these features describe"),
            ]
        ],
    },
)
Record.__doc__ = "One customer-month: the 22 model features, plus optional ids for the log."
Record.__pydantic_config__ = ConfigDict(
    extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra={"example": EXAMPLE_RECORD}
)
Batch = Annotated[list[Record], Field(min_length=1, max_length=MAX_BATCH)]


class CustomerIdsBody(TypedDict):
    """The `/predict_by_customer` body: the ids to predict, in order."""

    __pydantic_config__ = ConfigDict(  # type: ignore[misc]
        extra="forbid", strict=True, json_schema_extra={"example": {"customer_ids": ["CUS_0x1a2b"]}}
    )
    customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=MAX_BATCH)]


RECORD = TypeAdapter(Record)
BATCH = TypeAdapter(Batch)
CUSTOMER_IDS = TypeAdapter(CustomerIdsBody)
RECORD_FIELDS = frozenset(Record.__annotations__)
CUSTOMER_IDS_FIELDS = frozenset(CustomerIdsBody.__annotations__)


def parse_predict_body(body: bytes) -> Any:
    """One record (a JSON object) or a batch (a JSON array), validated; else `Rejected`."""
    parsed = read_json(body, RECORD_FIELDS, MAX_BATCH * most_fields(RECORD_FIELDS))
    if isinstance(parsed, Rejected):
        return parsed
    if isinstance(parsed, dict | MalformedObject):
        return check_records([parsed], RECORD, RECORD_FIELDS, batch=False)
    if not isinstance(parsed, list):
        return wrong_body_type(parsed, "a JSON object (one record) or an array of them (a batch)")
    if not 1 <= len(parsed) <= MAX_BATCH:
        return Rejected(
            "batch_size", f"a batch holds 1 to {MAX_BATCH} records; this one has {len(parsed)}"
        )
    return check_records(parsed, RECORD, RECORD_FIELDS, batch=True)


def parse_customer_ids_body(body: bytes) -> Any:
    """`{"customer_ids": [...]}`, validated; else `Rejected`."""
    parsed = read_json(body, CUSTOMER_IDS_FIELDS, most_fields(CUSTOMER_IDS_FIELDS))
    if isinstance(parsed, Rejected):
        return parsed
    if not isinstance(parsed, dict | MalformedObject):
        return wrong_body_type(parsed, 'a JSON object {"customer_ids": [...]}')
    return check_records([parsed], CUSTOMER_IDS, CUSTOMER_IDS_FIELDS, batch=False)


Probabilities = TypedDict("Probabilities", dict.fromkeys(CREDIT_SCORES, float))


class Prediction(TypedDict):
    """The answer for one record; `request_id` is its key in `prediction_log`."""

    request_id: str
    predicted_class: Literal[CREDIT_SCORES]
    probabilities: Probabilities
    model_name: str
    model_version: str
    customer_id: str | None
    feature_month: date | None
    unseen_categories: list[str]


class OneOfRoot:
    """BentoML's OpenAPI generator documents only the first branch of an `anyOf`."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = super().model_json_schema(*args, **kwargs)
        schema["oneOf"] = schema.pop("anyOf")
        return schema


class OwnParser:
    """The root is the `UncheckedBody`: the endpoint checks it with `parse`, which returns
    the valid value or a `Rejected`, never raises (BentoML would answer a raised error in
    its own shapes, every error listed), and may run off the event loop."""

    __root_input__ = True
    parse: ClassVar[Callable[[bytes], Any]]

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Any:
        body = json_data.encode() if isinstance(json_data, str) else bytes(json_data)
        return cls.model_construct(root=UncheckedBody(body, cls.parse))


class PredictRequest(OwnParser, OneOfRoot, IORootModel[Record | Batch]):
    """The `/predict` body: one record (a JSON object) or a batch (a JSON array)."""

    parse = staticmethod(parse_predict_body)


class CustomerIdsRequest(OwnParser, IORootModel[CustomerIdsBody]):
    """The `/predict_by_customer` body."""

    parse = staticmethod(parse_customer_ids_body)


class PredictResponse(OneOfRoot, IORootModel[Prediction | list[Prediction]]):
    """One prediction for one record, a list of them for a batch."""


class ModelInfo(BaseModel):
    """A loaded model version: where it came from, and how it scored on its test split."""

    model_name: str
    version: str
    alias: str
    run_id: str | None
    base_dt: str | None = Field(description="base date of the snapshot it was trained on")
    metrics: dict[str, float] = Field(description="test-split metrics of its training run")
    loaded_at: datetime
    from_cache: bool = Field(
        description="loaded from the local cache: MLflow unreachable or its version unloadable"
    )


class ChampionInfo(ModelInfo):
    """Which model answers and, if any, which one scores every request in shadow."""

    challenger: ModelInfo | None = Field(
        None, description="the `challenger` version scoring in shadow (logged, never returned)"
    )


class FieldError(BaseModel):
    """One problem with one field (or with the body or a record, when `field` is null)."""

    loc: list[int | str] = Field(description="where: record index (in a batch), then field")
    field: str | None
    rule: str = Field(description="the rule broken, e.g. less_than_equal, duplicate_field")
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the service (4xx and 5xx), the framework's own included."""

    error: str = Field(description="what went wrong, in a sentence")
    rule: str = Field(description="why, for programs: e.g. validation_failed, not_found")
    errors: list[FieldError] = Field(
        description=f"the first {MAX_LISTED_ERRORS} field-level problems (empty when none)"
    )
    error_count: int = Field(description="how many field-level problems there are in all")
