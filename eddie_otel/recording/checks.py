"""The one validation of each operation: what the record calls check, and the webhook models too.

Each failure is a ValueError that names the argument. The bounds are the same for a
record call and a webhook event: no real split makes 10 000 chunks or runs a week, and
staying far below 2**53 keeps sums of counts exact in the float cells of the exporters.
The webhook models state the same bounds in their JSON Schema and call the rules between
fields (`merge_counts`, `reason_on_failure`) from here.
"""

from __future__ import annotations

import math

from eddie_otel.catalogue import ADJUSTMENT_TYPES
from eddie_otel.labels import check_label_value

__all__ = [
    "INITIAL",
    "MAX_CAPACITY",
    "MAX_CHUNKS",
    "MAX_CHUNKS_COMBINED",
    "MAX_COST_USD",
    "MAX_CPU_MILLICORES",
    "MAX_DEPTH",
    "MAX_DURATION_SECONDS",
    "MAX_MEMORY_BYTES",
    "MAX_TOKENS",
    "MAX_UNIX_TIME",
    "adjustment",
    "capacity",
    "cost",
    "count",
    "flag",
    "label",
    "merge_counts",
    "reason_on_failure",
    "seconds",
    "unix_time",
    "usage",
]

# The `adjustment` of a first allocation, which counts no elastic adjustment.
INITIAL = "initial"
MAX_CHUNKS = 10_000
MAX_DEPTH = 1_000
MAX_DURATION_SECONDS = 7 * 24 * 3600.0
MAX_CPU_MILLICORES = 10_000_000
MAX_MEMORY_BYTES = 2**50
MAX_CHUNKS_COMBINED = 1_000_000
# Tasks an agent runs at once: far above any real agent, far below float precision.
MAX_CAPACITY = 100_000
# Tokens of one recorded usage, and its cost: a model call (or a task's calls summed) stays far below.
MAX_TOKENS = 1_000_000_000
MAX_COST_USD = 1_000_000.0
# A Unix time (seconds): up to the year 2100 or so.
MAX_UNIX_TIME = 4_102_444_800.0

label = check_label_value


def count(argument: str, value: object, minimum: int, maximum: int) -> int:
    """`value` when it is an integer in [`minimum`, `maximum`]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{argument} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, not {value}")
    if value > maximum:
        raise ValueError(f"{argument} must be at most {maximum}, not {value}")
    return value


def seconds(argument: str, value: object) -> float:
    """`value` as float when it is a finite number of seconds in [0, a week]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{argument} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or value > MAX_DURATION_SECONDS:
        raise ValueError(
            f"{argument} must be a finite number of seconds from 0 to {MAX_DURATION_SECONDS:g}, not {value}"
        )
    return float(value)


def merge_counts(chunks_combined: int, duplicates_removed: int) -> None:
    """A merge removes at most as many duplicates as the chunks it combined."""
    if duplicates_removed > chunks_combined:
        raise ValueError(f"duplicates_removed ({duplicates_removed}) cannot exceed chunks_combined ({chunks_combined})")


def reason_on_failure(success: bool, reason: str | None, what: str) -> None:
    """Only a failure has a reason: a webhook event with `reason` and `success` true is refused.

    (The record calls leave such a reason out instead: `success=ok, reason=why` is natural in Python.)
    """
    if success and reason is not None:
        raise ValueError(f"reason is only for failed {what} (success false)")


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


def _number(argument: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{argument} must be a number, not {type(value).__name__}")
    return float(value)


def cost(argument: str, value: object) -> float:
    """`value` as float when it is a finite cost in US dollars in [0, MAX_COST_USD]."""
    number = _number(argument, value)
    if not math.isfinite(number) or number < 0 or number > MAX_COST_USD:
        raise ValueError(f"{argument} must be a finite number of US dollars from 0 to {MAX_COST_USD:g}, not {value}")
    return number + 0.0


def unix_time(argument: str, value: object) -> float:
    """`value` as float when it is a finite Unix time in seconds in [0, MAX_UNIX_TIME]."""
    number = _number(argument, value)
    if not math.isfinite(number) or number < 0 or number > MAX_UNIX_TIME:
        raise ValueError(f"{argument} must be a finite Unix time in seconds from 0 to {MAX_UNIX_TIME:g}, not {value}")
    return number


def capacity(argument: str, value: object) -> int:
    """`value` when it is how many tasks an agent runs at once: an integer in [1, MAX_CAPACITY]."""
    return count(argument, value, 1, MAX_CAPACITY)


def usage(agent: object, model: object, input_tokens: object, output_tokens: object, cost_usd: object) -> None:
    """The rules of one model usage: agent and model label values, token counts, an optional cost."""
    label("agent", agent)
    label("model", model)
    count("input_tokens", input_tokens, 0, MAX_TOKENS)
    count("output_tokens", output_tokens, 0, MAX_TOKENS)
    if cost_usd is not None:
        cost("cost_usd", cost_usd)
