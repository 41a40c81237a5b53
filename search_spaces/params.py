"""Parameter types of a search space: float, int and categorical."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Choice = bool | int | float | str


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: dict[str, Choice] | None = Field(
        default=None,
        description="Sample this parameter only when these categorical parameters have these "
        "values, e.g. {optimizer: sgd}.",
    )

    @property
    def is_discrete(self) -> bool:
        return True


class FloatParam(_Param):
    """A real-valued parameter on [low, high], optionally log-scaled or stepped."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check_range(self) -> FloatParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        if self.step is not None and not math.isfinite((self.high - self.low) / self.step):
            raise ValueError("step does not divide the range [low, high]")
        return self

    @property
    def is_discrete(self) -> bool:
        return self.step is not None


class IntParam(_Param):
    """An integer parameter on [low, high], optionally log-scaled or stepped."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check_range(self) -> IntParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        return self


class CategoricalParam(_Param):
    """A choice among listed values (strings, numbers or booleans)."""

    type: Literal["categorical"]
    choices: Annotated[list[Choice], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _check_unique(self) -> CategoricalParam:
        if len({(type(c).__name__, c) for c in self.choices}) != len(self.choices):
            raise ValueError("choices must be unique")
        return self


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


def _check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite numbers")
    if low >= high:
        raise ValueError(f"low ({low}) must be less than high ({high})")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got low={low}")
    if log and step is not None:
        raise ValueError("log and step cannot be combined")


def grid_values(param: FloatParam | IntParam | CategoricalParam) -> list[Choice]:
    """The points a grid visits for one discrete parameter, in ascending order."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        step = param.step or 1
        return list(range(param.low, param.high + 1, step))
    if param.step is None:
        raise ValueError("a float parameter without step has no grid")
    count = math.floor((param.high - param.low) / param.step + 1e-9) + 1
    return [round(param.low + i * param.step, 12) for i in range(count)]


def contains(param: FloatParam | IntParam | CategoricalParam, value: Any) -> bool:
    """Whether ``value`` lies in the parameter's domain."""
    if isinstance(param, CategoricalParam):
        return any(type(value) is type(c) and value == c for c in param.choices) or (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and any(
                isinstance(c, int | float) and not isinstance(c, bool) and value == c
                for c in param.choices
            )
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(param, IntParam) and not float(value).is_integer():
        return False
    return param.low <= value <= param.high
