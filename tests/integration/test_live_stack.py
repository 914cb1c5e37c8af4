"""End to end: `eddie-otel demo`, scraped by a real Prometheus that loads the shipped rules.

After the workload has run, every query of every dashboard panel returns at least one
series (but the edges of the anomaly bands, which need a week of recordings and are
checked over a week of promtool data in test_anomaly_rules), every shipped rule evaluates
without error, and `eddie-otel doctor` passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.catalogue import METRICS
from eddie_otel.ops import anomaly, assets
from eddie_otel.ops.alerts import all_rules
from eddie_otel.ops.dashboard import build_dashboard, expand_variables, panel_queries
from tests.conftest import free_port
from tests.support.prometheus_server import PrometheusServer


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "eddie_otel", "demo", "--port", str(port), "--seed", "42", "--duration", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/metrics/health", timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("the demo did not start: " + process.communicate()[1].decode()) from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory, demo: str
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        prometheus_binary,
        tmp_path_factory.mktemp("prometheus"),
        [demo.removeprefix("http://")],
        interval="1s",
        rule_files=[assets.asset_path(assets.ALERT_RULES)],
    )
    # Every catalogue metric stored, and enough scrapes for rate() over a one-minute window.
    server.wait_until(
        lambda: (
            all(server.query(f"count({m.prometheus_name}{'_count' if m.buckets else ''})") for m in METRICS)
            and bool(server.query('count_over_time(up{job="eddie"}[1m]) >= 6'))
        ),
        60,
        "the demo's metrics did not all reach Prometheus",
    )
    yield server
    server.stop()


QUERIES = panel_queries(build_dashboard())


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{title}:{i}" for i, (title, _) in enumerate(QUERIES)])
def test_every_dashboard_query_returns_a_series(prometheus: PrometheusServer, title: str, expr: str) -> None:
    query = expand_variables(expr, rate_interval="1m", range_="1h")
    prometheus.wait_until(lambda: bool(prometheus.query(query)), 60, f"panel {title!r}: no series for {query}")


def _shipped_groups() -> list[dict[str, Any]]:
    """The rule groups of the shipped rule file, as Prometheus reads them."""
    groups: list[dict[str, Any]] = yaml.safe_load(assets.asset_path(assets.ALERT_RULES).read_text())["groups"]
    return groups


def test_every_shipped_rule_is_loaded_and_healthy(prometheus: PrometheusServer) -> None:
    shipped = _shipped_groups()
    expected = {rule.get("alert") or rule["record"] for group in shipped for rule in group["rules"]}
    # A group with an interval of its own (the anomaly bands, every 5 minutes) is first evaluated up to
    # one interval after Prometheus starts: it must be loaded here, and evaluated without error once it is.
    slow = {group["name"] for group in shipped if "interval" in group}

    def evaluated() -> bool:
        groups = prometheus.api("rules")["groups"]
        loaded = [(group["name"], rule) for group in groups for rule in group["rules"]]
        return {rule["name"] for _, rule in loaded} == expected and all(
            (name in slow and rule["health"] in ("ok", "unknown"))
            or (rule["health"] == "ok" and rule["lastEvaluation"] > "2000")
            for name, rule in loaded
        )

    prometheus.wait_until(evaluated, 30, "rules were not all evaluated healthy")
    groups = prometheus.api("rules")["groups"]
    assert sorted(group["name"] for group in groups) == sorted(group["name"] for group in shipped)
    assert all(rule["lastError"] == "" for group in groups for rule in group["rules"] if "lastError" in rule)


def test_doctor_passes_against_the_live_stack(prometheus: PrometheusServer, demo: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eddie_otel", "doctor", "--metrics-url", demo, "--prometheus-url", prometheus.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "all checks passed"


def test_shipped_rules_file_is_the_one_loaded(tmp_path: Path) -> None:
    # The file Prometheus loaded above is the shipped one, not a test copy that could drift: every
    # alert of the catalogue's rules is in it, and the anomaly alerts of their own group.
    alerts = [rule["alert"] for group in _shipped_groups() for rule in group["rules"] if "alert" in rule]
    assert alerts == [rule.alert for rule in all_rules()] + [rule.alert for rule in anomaly.alert_rules()]
