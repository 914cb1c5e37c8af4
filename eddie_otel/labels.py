"""Label values: what a valid one looks like, and a cap on how many distinct ones a label may take."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

__all__ = ["LABEL_VALUE_RE", "MAX_LABEL_VALUE_LENGTH", "OTHER", "LabelCap", "check_label_value"]

MAX_LABEL_VALUE_LENGTH = 64
# Letters, digits and `_.:/-`: enough for agent, stage and container names, and
# nothing that needs escaping in PromQL or could smuggle a prompt into a label.
LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9_.:/\-]{1,64}")
# What a value beyond a label's cap is recorded as.
OTHER = "other"


def check_label_value(argument: str, value: object) -> str:
    """Return `value` when it is a valid label value; otherwise raise ValueError naming `argument`."""
    if not isinstance(value, str):
        raise ValueError(f"{argument} must be a string, not {type(value).__name__}")
    if LABEL_VALUE_RE.fullmatch(value) is None:
        if not value:
            raise ValueError(f"{argument} must not be empty")
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            raise ValueError(f"{argument} is {len(value)} characters long; the limit is {MAX_LABEL_VALUE_LENGTH}")
        raise ValueError(f"{argument} may contain only letters, digits and _.:/- (got {value!r})")
    return value


class LabelCap:
    """Caps the distinct values of each label; values past the cap become `other`."""

    def __init__(self, limit: int, on_capped: Callable[[str], None] | None = None) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._on_capped = on_capped

    def bound(self, label: str, value: str) -> str:
        """`value`, or `other` when `label` already has `limit` other values."""
        seen = self._seen.get(label)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) >= self._limit:
                capped = True
            else:
                seen.add(value)
                capped = False
        if capped:
            if self._on_capped is not None:
                self._on_capped(label)
            return OTHER
        return value

    def forget(self, label: str, value: str) -> None:
        """Free `value`'s slot under `label`'s cap (its series are gone)."""
        with self._lock:
            self._seen.get(label, set()).discard(value)
