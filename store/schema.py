"""What both statestore backends agree on: which fields filter and sort, and how values are normalised.

Keeping this in one place makes a filter mean the same on SQLite and MongoDB and gives both the same
``InvalidFilter`` messages. Timestamps are kept to the millisecond in UTC because that is what a BSON
date holds; SQLite truncates the same way so a record reads back identically from either backend.
"""

import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from scaleout.store.entities import Entity
from scaleout.store.statestore import OPERATORS, Filters, InvalidFilter

SCALARS: tuple[type, ...] = (bool, int, float, str, datetime)
E = TypeVar("E", bound=Entity)


@dataclass(frozen=True)
class Condition:
    """One ``field <op> value`` test; a filter is the AND of its conditions."""

    field: str
    op: str  # "$eq" or one of OPERATORS
    value: Any  # validated python value; a list for "$in"


def _scalar_type(annotation: Any) -> type | None:
    """The scalar type behind ``X`` or ``X | None``; None for lists, dicts and nested models."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, SCALARS):
        return annotation
    return None


@cache
def scalar_fields(entity: type[Entity]) -> dict[str, type]:
    """Top-level fields holding one scalar value: the ones that can be filtered, sorted and indexed."""
    fields = {}
    for name, info in entity.model_fields.items():
        kind = _scalar_type(info.annotation)
        if kind is not None:
            fields[name] = kind
    return fields


@cache
def datetime_fields(entity: type[Entity]) -> tuple[str, ...]:
    return tuple(name for name, kind in scalar_fields(entity).items() if issubclass(kind, datetime))


@cache
def _adapter(entity: type[Entity], field: str) -> TypeAdapter:
    return TypeAdapter(entity.model_fields[field].annotation)


def to_utc_millis(value: datetime) -> datetime:
    """Aware UTC, truncated to the millisecond (a BSON date's precision); naive input is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_datetime(value: datetime) -> str:
    """Fixed-width UTC ISO text ("2026-01-31T12:00:00.123Z"), so text order is time order."""
    return to_utc_millis(value).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def plain(value: Any) -> Any:
    """A scalar as a backend stores it: enum members as their value."""
    return value.value if isinstance(value, Enum) else value


def normalize(item: E) -> E:
    """The item as it will read back: every top-level timestamp in UTC to the millisecond."""
    changes = {
        name: to_utc_millis(value)
        for name in datetime_fields(type(item))
        if (value := getattr(item, name)) is not None
    }
    return item.model_copy(update=changes) if changes else item


def validate_changes(entity: type[Entity], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Each change validated against its field, constraints included; raises on unknown fields or ``id``."""
    probe = entity.model_construct()
    validated = {}
    for name, value in changes.items():
        if name == "id":
            raise InvalidFilter(f"{entity.__name__} ids cannot be changed; add a new record instead")
        if name not in entity.model_fields:
            raise InvalidFilter(f"{entity.__name__} has no field {name!r}; fields: {_names(entity)}")
        setattr(probe, name, value)  # validate_assignment checks type and constraints
        new = getattr(probe, name)
        validated[name] = to_utc_millis(new) if isinstance(new, datetime) else new
    return validated


def _names(entity: type[Entity]) -> str:
    return ", ".join(scalar_fields(entity))


def check_field(entity: type[Entity], field: str, purpose: str) -> None:
    """Raise InvalidFilter unless ``field`` is a scalar field of the entity."""
    if field not in scalar_fields(entity):
        what = "has no field" if field not in entity.model_fields else "cannot filter or sort on"
        raise InvalidFilter(
            f"{entity.__name__} {what} {field!r} (in {purpose}); use one of: {_names(entity)}"
        )


def _coerce(entity: type[Entity], field: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        value = _adapter(entity, field).validate_python(value)
    except ValidationError as error:
        raise InvalidFilter(
            f"filter value {value!r} for {entity.__name__}.{field}: {error.errors()[0]['msg']}"
        ) from None
    return to_utc_millis(value) if isinstance(value, datetime) else value


def parse_filters(entity: type[Entity], filters: Filters | None) -> list[Condition]:
    """Check a Mongo-style filter against the entity and return its conditions with validated values."""
    conditions: list[Condition] = []
    for field, spec in (filters or {}).items():
        check_field(entity, field, "filter")
        if not (isinstance(spec, Mapping) and any(str(key).startswith("$") for key in spec)):
            conditions.append(Condition(field, "$eq", _coerce(entity, field, spec)))
            continue
        if not spec:
            raise InvalidFilter(f"empty operator document for {entity.__name__}.{field}")
        for op, value in spec.items():
            if op not in OPERATORS:
                raise InvalidFilter(
                    f"unknown filter operator {op!r} on {entity.__name__}.{field}; "
                    f"use one of {', '.join(sorted(OPERATORS))} or a plain value for equality"
                )
            if op == "$in":
                if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
                    raise InvalidFilter(f"$in on {entity.__name__}.{field} needs a list, got {value!r}")
                conditions.append(Condition(field, op, [_coerce(entity, field, v) for v in value]))
            elif value is None:
                raise InvalidFilter(f"{op} on {entity.__name__}.{field} needs a value, got None")
            else:
                conditions.append(Condition(field, op, _coerce(entity, field, value)))
    return conditions


def check_sort(entity: type[Entity], sort_key: str, sort_order: str) -> None:
    check_field(entity, sort_key, "sort_key")
    if sort_order not in ("asc", "desc"):
        raise InvalidFilter(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")


def check_paging(limit: int | None, skip: int) -> None:
    if limit is not None and limit < 0:
        raise InvalidFilter(f"limit must be >= 0 or None, got {limit}")
    if skip < 0:
        raise InvalidFilter(f"skip must be >= 0, got {skip}")
