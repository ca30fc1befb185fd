"""Request and response shapes of the prediction service, generated from `schema.FEATURES`.

Numbers and strings are strict (no `"30"` for 30, no `true` for 1), unknown fields are
rejected, and every error names the field and the rule it broke.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, NotRequired

# BentoML's public API has no root-body input type; its own parses with json.loads and
# answers malformed JSON with a 500, so the prediction body subclasses it below.
from _bentoml_sdk.io_models import IORootModel
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts before 3.12

from mlops_platform.config import get_settings
from mlops_platform.schema import CREDIT_SCORES, FEATURES, Feature

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
                description="comma-separated loan types, e.g. 'Auto Loan,Payday Loan'",
            ),
        ]
    if feature.nullable:
        return NotRequired[annotation | None]
    return annotation


# A TypedDict validates into plain dicts, twice as fast as model instances (measured).
Record = TypedDict(
    "Record",
    {
        **{feature.name: _feature_field(feature) for feature in FEATURES},
        "customer_id": NotRequired[
            Annotated[
                Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)] | None,
                Field(description="logged with the prediction, to match late labels"),
            ]
        ],
        "month": NotRequired[
            Annotated[
                Annotated[date, AfterValidator(_first_of_month)] | None,
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
CustomerIds = Annotated[
    list[Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]],
    Field(min_length=1, max_length=MAX_BATCH),
]
RECORD = TypeAdapter(Record)
BATCH = TypeAdapter(Batch)


def parse_predict_body(body: bytes) -> Any:
    """A JSON object is one `Record`, a JSON array a batch of them; errors name field and rule."""
    return (BATCH if body.lstrip()[:1] == b"[" else RECORD).validate_json(body)


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


class PredictRequest(OneOfRoot, IORootModel[Record | Batch]):
    """The `/predict` body: one record (a JSON object) or a batch (a JSON array)."""

    __root_input__ = True

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Any:
        body = json_data.encode() if isinstance(json_data, str) else bytes(json_data)
        return cls.model_construct(root=parse_predict_body(body))


class PredictResponse(OneOfRoot, IORootModel[Prediction | list[Prediction]]):
    """One prediction for one record, a list of them for a batch."""


class ChampionInfo(BaseModel):
    """Which model answers, where it came from, and how it scored on its test split."""

    model_name: str
    version: str
    alias: str
    run_id: str | None
    base_dt: str | None = Field(description="base date of the snapshot it was trained on")
    metrics: dict[str, float] = Field(description="test-split metrics of its training run")
    loaded_at: datetime
    from_cache: bool = Field(
        description="served from the local cache: MLflow unreachable or its champion unloadable"
    )


class ErrorBody(BaseModel):
    """Every error the service returns itself (not found, not ready, too large …)."""

    error: str
