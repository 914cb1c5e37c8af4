"""The status page's number formats (static/format.js), run in the system chromium over a table of values."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from eddie_otel.service.page import static_text
from tests.integration.browser import DESKTOP

# Seconds → what the page shows: µs, ms, s, min and h, and the values either side of each unit's edge.
DURATIONS = [
    (0, "0 s"),
    (0.0000001, "0.100 µs"),
    (0.000001, "1.00 µs"),
    (0.0000015, "1.50 µs"),
    (0.00014, "140 µs"),
    (0.000999, "999 µs"),
    (0.0009999, "1.00 ms"),
    (0.001, "1.00 ms"),
    (0.0015, "1.50 ms"),
    (0.01, "10.0 ms"),
    (0.1, "100 ms"),
    (0.14, "140 ms"),
    (0.147, "147 ms"),
    (0.2, "200 ms"),
    (0.999, "999 ms"),
    (0.9999, "1.00 s"),
    (1, "1.00 s"),
    (2, "2.00 s"),
    (59.99, "59.99 s"),
    (59.999, "1 min"),
    (60, "1 min"),
    (61, "1 min 1 s"),
    (90, "1 min 30 s"),
    (3599, "59 min 59 s"),
    (3599.5, "1 h"),
    (3600, "1 h"),
    (5400, "1 h 30 min"),
    (86400, "24 h"),
    (-0.14, "−140 ms"),
    (math.nan, "—"),
]
PERCENTS = [
    (0, "0.0%"),
    (0.00001, "< 0.1%"),
    (0.25, "25.0%"),
    (0.95, "95.0%"),
    (0.9999, "99.9%"),
    (1, "100.0%"),
]
PLAIN = [
    (0, "0"),
    (3, "3"),
    (1234567, "1234567"),
    (0.04, "0.04"),
    (0.0456, "0.0456"),
    (2.5, "2.5"),
    (123.456, "123"),
    (1234.5, "1235"),
    (0.00001, "< 0.001"),
]
RATIOS = [(1, "1.00×"), (1.234, "1.23×"), (250.4, "250×")]
# Per second in, per minute out.
PER_MINUTE = [(0, "0"), (0.00001, "< 0.001"), (0.0001, "0.006"), (0.01, "0.6"), (0.125, "7.5"), (0.5, "30"), (1, "60")]

# Seconds in, chunk-hours out.
HOURS = [
    (0, "0 h"),
    (1, "< 0.001 h"),
    (3.6, "0.001 h"),
    (90, "0.025 h"),
    (1800, "0.5 h"),
    (3600, "1 h"),
    (5400, "1.5 h"),
    (12345, "3.43 h"),
    (360000, "100 h"),
    (3600000, "1000 h"),
    (-1800, "−0.5 h"),
    (math.nan, "—"),
]
# US dollars: cents from $1 up, three significant digits below, never fewer than two decimals.
USD = [
    (0, "$0.00"),
    (0.00001, "< $0.0001"),
    (0.0001, "$0.0001"),
    (0.00234, "$0.00234"),
    (0.01, "$0.01"),
    (0.125, "$0.125"),
    (0.5, "$0.50"),
    (0.75, "$0.75"),
    (0.9999, "$1.00"),
    (1, "$1.00"),
    (12.3456, "$12.35"),
    (1234.5, "$1234.50"),
    (-0.5, "−$0.50"),
    (math.nan, "—"),
]


@pytest.fixture(scope="module")
def page(browser: Browser) -> Iterator[Page]:
    """A blank page with format.js loaded, as the status page loads it."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    blank = context.new_page()
    blank.set_content("<!doctype html><title>formats</title>")
    blank.add_script_tag(content=static_text("format.js"))
    yield blank
    context.close()


def shown(page: Page, name: str, values: list[float]) -> list[str]:
    """What EddieFormat.`name` makes of each value, in the browser."""
    # NaN does not survive the trip as JSON: it goes as null and is turned back in the page.
    given = [None if math.isnan(value) else value for value in values]
    result: list[str] = page.evaluate(
        "([name, values]) => values.map(v => EddieFormat[name](v === null ? NaN : v))", [name, given]
    )
    return result


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("duration", DURATIONS),
        ("percent", PERCENTS),
        ("plain", PLAIN),
        ("ratio", RATIOS),
        ("perMinute", PER_MINUTE),
        ("hours", HOURS),
        ("usd", USD),
    ],
)
def test_each_format_over_its_table(page: Page, name: str, table: list[tuple[float, str]]) -> None:
    values = [value for value, _ in table]
    assert list(zip(values, shown(page, name, values), strict=True)) == table


def test_a_duration_never_shows_a_rounded_unit_edge(page: Page) -> None:
    # Every value from 1 µs to 2 h on a fine logarithmic grid: the number shown stays inside its unit.
    values = [10 ** (exponent / 200) for exponent in range(-1200, 772)]
    for value, text in zip(values, shown(page, "duration", values), strict=True):
        number, _, unit = text.partition(" ")
        if unit in ("µs", "ms"):
            assert 1 <= float(number) < 1000, (value, text)
        elif unit == "s":
            assert 1 <= float(number) < 60, (value, text)
        else:
            assert unit.split()[0] in ("min", "h"), (value, text)
            assert int(number) >= 1, (value, text)
            assert " 60 " not in f" {text} ", (value, text)


@pytest.mark.parametrize("name", ["duration", "percent", "plain", "ratio", "perMinute", "hours", "usd"])
def test_every_format_shows_a_dash_for_what_is_not_a_number(page: Page, name: str) -> None:
    # What a summary from an older service, or a null, hands the page.
    shown: list[str] = page.evaluate("name => [null, undefined, 'x', Infinity].map(v => EddieFormat[name](v))", name)
    assert shown == ["—"] * 4
