"""Label values: which are valid, and the cap on distinct values per label (exact under threads)."""

from __future__ import annotations

import re
import threading

import pytest

from eddie_otel.labels import OTHER, LabelCap, check_label_value


@pytest.mark.parametrize("value", ["a", "worker-1", "agent_7.eu:west/2", "x" * 64])
def test_valid_values_are_returned_unchanged(value: str) -> None:
    assert check_label_value("agent", value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "agent must not be empty"),
        ("x" * 65, "agent is 65 characters long; the limit is 64"),
        ("two words", "agent may contain only letters, digits and _.:/- (got 'two words')"),
        ("tab\there", "agent may contain only letters"),
        (7, "agent must be a string, not int"),
        (None, "agent must be a string, not NoneType"),
    ],
)
def test_invalid_values_are_refused_naming_the_argument(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        check_label_value("agent", value)


def test_the_cap_keeps_known_values_and_folds_new_ones_into_other() -> None:
    capped: list[str] = []
    cap = LabelCap(2, on_capped=capped.append)

    assert [cap.bound("agent", value) for value in ("a", "b", "a", "c", "b", "d")] == ["a", "b", "a", OTHER, "b", OTHER]
    assert capped == ["agent", "agent"]
    # Each label has its own cap.
    assert cap.bound("stage", "c") == "c"
    assert capped == ["agent", "agent"]


def test_the_cap_without_a_callback_still_folds() -> None:
    cap = LabelCap(1)
    assert cap.bound("agent", "a") == "a"
    assert cap.bound("agent", "b") == OTHER


def test_the_cap_is_exact_under_threads() -> None:
    limit, threads, per_thread = 50, 8, 100
    capped: list[str] = []
    cap = LabelCap(limit, on_capped=capped.append)
    results: list[list[tuple[str, str]]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        barrier.wait()
        for j in range(per_thread):
            value = f"t{index}-{j}"
            results[index].append((value, cap.bound("agent", value)))

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    kept = [value for result in results for value, bound in result if bound == value]
    assert len(kept) == limit
    assert all(bound in (value, OTHER) for result in results for value, bound in result)
    assert len(capped) == threads * per_thread - limit
    assert all(cap.bound("agent", value) == value for value in kept)
