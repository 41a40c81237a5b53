"""Filters, sort keys and keyset cursors of trial pages, as SQL expressions on Optuna's tables."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from optuna.distributions import CategoricalDistribution, json_to_distribution
from optuna.storages._rdb.models import TrialValueModel
from optuna.trial import TrialState
from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Integer,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
)

from service.client_numbers import (
    MAX_NUMBER_CHARS,
    MAX_ROW_ID,
    finite_float,
    looks_numeric,
    parse_number,
)
from service.store.optuna_tables import trial_params, trial_values, trials

SortKey = Literal["number", "value", "duration"]
_NUMBER_RULE = (
    "numbers are ASCII decimal (digits, sign, point, exponent), at most "
    f"{MAX_NUMBER_CHARS} characters, within a float's range"
)
TRIAL_STATES = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")


class QueryError(ValueError):
    """A filter or cursor that cannot apply; ``field`` names the query parameter."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ParamFilter:
    """``name`` equal to ``equals``, or within [low, high] (either bound may be open)."""

    name: str
    equals: Any = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str) -> ParamFilter:
        """``name:value`` (equality) or ``name:low:high`` (a range; a bound may be empty)."""
        parts = text.split(":")
        shown = repr(text[:100])
        if len(parts) == 2 and parts[0] and parts[1]:
            equals: Any = parts[1]
            if looks_numeric(parts[1]):
                equals = parse_number(parts[1])
                if equals is None:
                    raise QueryError("param", f"{shown}: {_NUMBER_RULE}")
            return cls(parts[0], equals=equals)
        if len(parts) == 3 and parts[0] and (parts[1] or parts[2]):
            low, high = (parse_number(bound) if bound else None for bound in parts[1:])
            if (parts[1] and low is None) or (parts[2] and high is None):
                raise QueryError("param", f"{shown}: range bounds must be numbers; {_NUMBER_RULE}")
            return cls(parts[0], low=low, high=high)
        raise QueryError("param", f"{shown}: expected name:value or name:low:high")


@dataclass(frozen=True)
class TrialFilter:
    """Which trials a page shows: a state, a range of the first objective, parameter filters."""

    state: str | None = None
    value_min: float | None = None
    value_max: float | None = None
    params: tuple[ParamFilter, ...] = ()


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's sort key and trial number (keyset pagination)."""

    sort: str
    descending: bool
    key: float | None
    number: int

    def encode(self) -> str:
        raw = json.dumps([self.sort, self.descending, self.key, self.number]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            sort, descending, key, number = json.loads(raw)
            if sort not in SortKey.__args__ or not isinstance(descending, bool):  # type: ignore[attr-defined]
                raise TypeError
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError
            if not 0 <= number <= MAX_ROW_ID:  # the trial number column's range
                raise TypeError
            finite_key = finite_float(key)
            if key is not None and finite_key is None:
                raise TypeError
            return cls(sort, descending, finite_key, number)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
            raise QueryError("cursor", "not a cursor returned by this endpoint") from None


def sortable_value() -> ColumnElement[Any]:
    """The first objective as a sortable number (infinities as ±1e308, missing as NULL)."""
    kind = TrialValueModel.TrialValueType
    return case(
        (trial_values.c.value_type == kind.INF_POS, 1e308),
        (trial_values.c.value_type == kind.INF_NEG, -1e308),
        else_=trial_values.c.value,
    )


def sort_key(sort: SortKey, dialect: str) -> ColumnElement[Any]:
    """The expression a page is ordered by (before the trial number, which breaks ties)."""
    if sort == "value":
        return sortable_value()
    if sort == "duration":
        start, end = trials.c.datetime_start, trials.c.datetime_complete
        if dialect == "sqlite":
            return _sqlite_seconds(end) - _sqlite_seconds(start)
        return func.extract("epoch", end - start)
    return trials.c.number


def _sqlite_seconds(moment: Any) -> ColumnElement[Any]:
    """Seconds since the epoch of a stored 'YYYY-MM-DD HH:MM:SS.ffffff', to the microsecond
    (SQLite's own date functions keep only milliseconds)."""
    whole = cast(func.strftime("%s", func.substr(moment, 1, 19)), Integer)
    return whole + func.coalesce(cast(func.nullif(func.substr(moment, 20), ""), Float), 0.0)


def after(key: ColumnElement[Any], cursor: Cursor) -> ColumnElement[bool]:
    """Rows after ``cursor`` in the order (key asc|desc NULLS LAST, number asc)."""
    number = trials.c.number
    if cursor.sort == "number":
        return number < cursor.number if cursor.descending else number > cursor.number
    if cursor.key is None:
        return and_(key.is_(None), number > cursor.number)
    beyond = key < cursor.key if cursor.descending else key > cursor.key
    return or_(beyond, and_(key == cursor.key, number > cursor.number), key.is_(None))


def conditions(conn: Connection, study_id: int, wanted: TrialFilter) -> list[ColumnElement[bool]]:
    """WHERE clauses on ``trials`` (joined with the first objective's value) for a filter."""
    where: list[ColumnElement[bool]] = [trials.c.study_id == study_id]
    if wanted.state:
        where.append(trials.c.state == TrialState[wanted.state])
    value = sortable_value()
    if wanted.value_min is not None:
        where.append(value >= wanted.value_min)
    if wanted.value_max is not None:
        where.append(value <= wanted.value_max)
    for param in wanted.params:
        where.append(_param_condition(conn, study_id, param))
    return where


def _param_condition(conn: Connection, study_id: int, param: ParamFilter) -> ColumnElement[bool]:
    found = conn.execute(
        select(trial_params.c.distribution_json)
        .join(trials, trials.c.trial_id == trial_params.c.trial_id)
        .where(trials.c.study_id == study_id, trial_params.c.param_name == param.name)
        .limit(1)
    ).scalar_one_or_none()
    if found is None:
        raise QueryError("param", f"{param.name!r} is not a parameter of this study's trials")
    distribution = json_to_distribution(found)
    stored = trial_params.c.param_value
    if isinstance(distribution, CategoricalDistribution):
        if param.equals is None:
            raise QueryError("param", f"{param.name!r} is categorical: use {param.name}:CHOICE")
        matches = [i for i, c in enumerate(distribution.choices) if str(c) == str(param.equals)]
        if not matches:
            choices = ", ".join(str(c) for c in distribution.choices)
            raise QueryError(
                "param", f"{param.equals!r} is not a choice of {param.name!r}: {choices}"
            )
        test = stored == float(matches[0])
    elif param.equals is not None:
        if not isinstance(param.equals, int | float) or isinstance(param.equals, bool):
            raise QueryError(
                "param", f"{param.name!r} is numeric: {param.equals!r} is not a number"
            )
        test = stored == float(param.equals)
    else:
        bounds = [stored >= param.low] if param.low is not None else []
        bounds += [stored <= param.high] if param.high is not None else []
        test = and_(*bounds)
    return exists().where(
        trial_params.c.trial_id == trials.c.trial_id, trial_params.c.param_name == param.name, test
    )
