"""Checks of the record calls' arguments: each failure is a ValueError that names the argument."""

from __future__ import annotations

import math

from eddie_otel.catalogue import ADJUSTMENT_TYPES
from eddie_otel.labels import check_label_value

__all__ = ["INITIAL", "adjustment", "count", "flag", "label", "seconds"]

# The `adjustment` of a first allocation, which counts no elastic adjustment.
INITIAL = "initial"

label = check_label_value


def count(argument: str, value: object, minimum: int = 0) -> int:
    """`value` when it is an integer ≥ `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{argument} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, not {value}")
    return value


def seconds(argument: str, value: object) -> float:
    """`value` as float when it is a finite number of seconds ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{argument} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{argument} must be a finite number of seconds ≥ 0, not {value}")
    return float(value)


def flag(argument: str, value: object) -> bool:
    """`value` when it is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{argument} must be true or false, not {type(value).__name__}")
    return value


def adjustment(argument: str, value: object, initial: bool) -> str:
    """`value` when it is an adjustment type (or "initial" where `initial` allows it)."""
    allowed = (INITIAL, *ADJUSTMENT_TYPES) if initial else ADJUSTMENT_TYPES
    if value not in allowed:
        raise ValueError(f"{argument} must be one of {', '.join(allowed)}; not {value!r}")
    return str(value)
