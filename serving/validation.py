"""Request bodies checked in bounded steps: JSON, then shape and size, then each record.

A hostile body must cost little: one with more fields than any valid body is refused
before it is parsed, the body is parsed in Rust, duplicate keys are caught
without a second parse (the standard parser, with hooks, runs only when that cannot
rule them out), the shape of the body is checked before pydantic sees any record, and
at most `MAX_LISTED_ERRORS` errors are listed (with the total count), whatever the body
holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import pydantic_core
from pydantic import TypeAdapter, ValidationError

MAX_LISTED_ERRORS = 20
# About 100 records: checked within a few milliseconds, cheaper than a thread hop.
INLINE_CHECK_BYTES = 65_536
# A UTF-16 half written as an escape: JSON allows it, but alone it is no character.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A key's closing quote away from its colon: keys can then not be counted as `":`.
SPACED_COLON = re.compile(rb'"\s+:')
# Enough to name a few fields in a message, not so many that messages grow with the body.
NAMED_FIELDS = 5
NAME_CHARS = 64  # of a field name quoted back: the body chooses them
# pydantic's type errors for a null in a field that does not allow it.
TYPE_ERRORS = frozenset({"int_type", "float_type", "string_type", "list_type", "date_type"})
ALLOWED_HINT = "the fields are listed in the API description at /"
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true or false",
              int: "a number", float: "a number", type(None): "null"}  # fmt: skip


@dataclass(frozen=True)
class Rejected:
    """A body refused before the API ran: the rule, a summary and the first errors."""

    rule: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0


@dataclass(frozen=True)
class UncheckedBody:
    """A request body as it came, with the function that checks it."""

    raw: bytes
    check: Callable[[bytes], Any]

    async def checked(self) -> Any:
        """The checked body (or `Rejected`); a large one is checked in a thread, so the
        requests beside it wait for a switch of the GIL (5 ms), not for the whole check."""
        if len(self.raw) <= INLINE_CHECK_BYTES:
            return self.check(self.raw)
        return await anyio.to_thread.run_sync(self.check, self.raw)


@dataclass(frozen=True)
class MalformedObject:
    """A JSON object with duplicate keys, or too many fields to examine one by one, unbuilt."""

    fields: int
    allowed: int  # how many fields the body's objects may have
    duplicates: tuple[str, ...] = ()
    unknown: int = 0
    unknown_named: tuple[str, ...] = ()


class NonFiniteLiteral(ValueError):
    """NaN, Infinity and -Infinity are not JSON, though Python's parser takes them."""


class ErrorList:
    """The first `MAX_LISTED_ERRORS` errors, and how many there were in all."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.count = 0

    def add(self, loc: Sequence[int | str], rule: str, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append(field_error(loc, rule, message))

    @property
    def full(self) -> bool:
        return len(self.listed) >= MAX_LISTED_ERRORS

    def rejected(self, what: str) -> Rejected:
        shown = "" if self.count == len(self.listed) else f"; the first {len(self.listed)} listed"
        return Rejected(
            "validation_failed",
            f"{self.count} problem(s) in {what}{shown}",
            self.listed,
            self.count,
        )


def field_error(loc: Sequence[int | str], rule: str, message: str) -> dict[str, Any]:
    """One entry of an error list; `field` is the first name in `loc` (None: a whole record)."""
    loc = [part[:NAME_CHARS] if isinstance(part, str) else part for part in loc]
    name = next((part for part in loc if isinstance(part, str)), None)
    return {"loc": loc, "field": name, "rule": rule,
            "message": f"{name}: {message}" if name else message}  # fmt: skip


def read_json(body: bytes, allowed: frozenset[str], max_fields: int) -> Any:
    """The parsed body, with objects of duplicate keys or over `most_fields(allowed)` fields
    left as `MalformedObject`; a `Rejected` when it is empty, not JSON, or holds more than
    `max_fields` fields in all (counted before parsing: no valid body costs more)."""
    limit = most_fields(allowed)

    def build(pairs: list[tuple[str, Any]]) -> Any:
        if len(pairs) > limit:
            return too_many([key for key, _ in pairs if key not in allowed], len(pairs), allowed)
        built = dict(pairs)
        if len(built) < len(pairs):
            seen: set[str] = set()
            repeated = {key for key, _ in pairs if key in seen or seen.add(key)}
            named = sorted(name[:NAME_CHARS] for name in repeated)
            return MalformedObject(len(pairs), len(allowed), tuple(named))
        return built

    def refuse(literal: str) -> Any:
        raise NonFiniteLiteral(literal)

    if not body.strip():
        return Rejected(
            "empty_body",
            "empty body: send a JSON object (one record) or array (a batch) as application/json",
        )
    # Each key ends in `":` (unless spaced out); valid bodies hold no other `":`.
    if (fields := body.count(b'":')) > max_fields:
        return Rejected(
            "too_many_fields",
            f"the body holds {fields:,} fields, and at most {max_fields:,} can be valid"
            " in one request: send only the fields listed in the API description at /",
        )
    try:
        parsed = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError:
        parsed = None  # the standard parser below says exactly what is wrong
    if parsed is not None and without_duplicates(body, parsed):
        return parsed
    try:
        parsed = json.loads(body, object_pairs_hook=build, parse_constant=refuse)
        if SURROGATE_ESCAPE.search(body):  # a pair is a character, a lone half is not
            json.dumps(parsed, ensure_ascii=False, default=repr).encode()
        return parsed
    except UnicodeEncodeError:
        return Rejected("json_invalid", "the body holds a lone surrogate escape (\\ud800-\\udfff)")
    except NonFiniteLiteral as literal:
        return Rejected("finite_number", f"{literal} is not a JSON number: send a finite number")
    except json.JSONDecodeError as malformed:
        return Rejected(
            "json_invalid",
            f"malformed JSON at line {malformed.lineno} column {malformed.colno}: {malformed.msg}",
        )
    except RecursionError:
        return Rejected("json_too_deep", "the JSON is nested too deeply; records are flat objects")
    except UnicodeDecodeError:
        return Rejected("json_invalid", "the body is not UTF-8 text")
    except ValueError:  # an integer literal of thousands of digits
        return Rejected("number_too_large", "a number in the body has too many digits")


def without_duplicates(body: bytes, parsed: Any) -> bool:
    """Whether `parsed` provably lost no duplicate key: a record's keys (and nothing else)
    account for every `":` in the body. False also when nested objects or quotes in text
    make the count inconclusive; the caller then parses again, with a hook per object."""
    if SPACED_COLON.search(body) or SURROGATE_ESCAPE.search(body):
        return False
    objects = [parsed] if isinstance(parsed, dict) else parsed if isinstance(parsed, list) else []
    return sum(len(item) for item in objects if isinstance(item, dict)) == body.count(b'":')


def most_fields(allowed: frozenset[str]) -> int:
    """Objects up to this size are built and their unknown fields named one by one."""
    return 2 * len(allowed)


def too_many(unknown: list[str], fields: int, allowed: frozenset[str]) -> MalformedObject:
    """An object of `fields` fields, `unknown` of them not `allowed`, described briefly."""
    named = tuple(name[:NAME_CHARS] for name in unknown[:NAMED_FIELDS])
    return MalformedObject(fields, len(allowed), (), len(unknown), named)


def wrong_body_type(value: Any, expected: str) -> Rejected:
    return Rejected("body_type", f"the body must be {expected}; got {json_type(value)}")


def json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), "an object")


def check_records(
    records: list[Any], adapter: TypeAdapter, allowed: frozenset[str], *, batch: bool
) -> Any:
    """The records validated by `adapter` (one, or the list when `batch`), or `Rejected`.

    Shape first (objects, field counts, duplicates, unknown fields) for every record, then
    pydantic; only the listed errors are ever turned into messages.
    """
    shape = ErrorList()
    for index, record in enumerate(records):
        at = [index] if batch else []
        if isinstance(record, MalformedObject):
            malformed_errors(record, at, shape)
        elif not isinstance(record, dict):
            shape.add(
                at, "record_type", f"each record must be a JSON object; got {json_type(record)}"
            )
        elif len(record) > most_fields(allowed):
            unknown = [name for name in record if name not in allowed] if not shape.full else []
            malformed_errors(too_many(unknown, len(record), allowed), at, shape)
        elif unknown := record.keys() - allowed:
            for name in sorted(unknown):
                shape.add([*at, name], "extra_forbidden", "unknown field: " + ALLOWED_HINT)
    what = f"the batch of {len(records)} records" if batch else "the body"
    if shape.count:
        return shape.rejected(what)
    try:
        return [adapter.validate_python(record) for record in records] if batch else (
            adapter.validate_python(records[0])
        )  # fmt: skip
    except ValidationError:
        pass
    errors = ErrorList()
    for index, record in enumerate(records):
        try:
            adapter.validate_python(record)
        except ValidationError as invalid:
            at = [index] if batch else []
            if errors.full:
                errors.count += invalid.error_count()
                continue
            for problem in invalid.errors(include_url=False, include_context=False):
                errors.add([*at, *problem["loc"]], *rule_and_message(problem))
    return errors.rejected(what)


def malformed_errors(record: MalformedObject, at: list[int], errors: ErrorList) -> None:
    """What is wrong with an object too large to build, or with duplicate keys."""
    if record.duplicates:
        for name in record.duplicates:
            errors.add([*at, name], "duplicate_field",
                       "appears more than once; send each field once")  # fmt: skip
        return
    named = ", ".join(record.unknown_named) + (", …" if record.unknown > NAMED_FIELDS else "")
    errors.add(
        at, "too_many_fields",
        f"has {record.fields} fields, {record.unknown} of them unknown ({named});"
        f" at most {record.allowed} are allowed; " + ALLOWED_HINT,
    )  # fmt: skip


def rule_and_message(problem: dict[str, Any]) -> tuple[str, str]:
    """pydantic's error as (rule, message); a null where one is not allowed says so."""
    if problem["type"] in TYPE_ERRORS and problem.get("input", ...) is None:
        return "null_not_allowed", "is required and may not be null"
    return problem["type"], problem["msg"]
