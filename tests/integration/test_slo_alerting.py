"""End to end: a real Prometheus evaluates the shipped rules, a real Alertmanager routes them with the shipped routing.

Two agent processes burn the error budget, each scraped as its own job:

- job `eddie` fails 90 % of its tasks, above the 14.4x fast-burn threshold (72 %): the critical
  EddieTaskSuccessBudgetBurn must reach the PagerDuty receiver with its labels and annotations;
- job `eddie-batch` fails 2 tasks in 9 (22 %), between the 3x slow-burn threshold (15 %) and the 6x one
  (30 %): the warning EddieTaskSuccessBudgetBurn must reach the Slack receiver, and no page.

A short test fills every window (5 min to 3 days) with the same data, so each window sees the same ratio.
Then the `eddie` agent stops: EddieMetricsEndpointDown fires, and Alertmanager inhibits the job's other alerts.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.objectives import OBJECTIVES
from eddie_otel.ops import slo
from eddie_otel.ops.alerts import JOB
from eddie_otel.ops.assets import ALERT_RULES, ALERTMANAGER_CONFIG
from eddie_otel.ops.links import Links
from tests.conftest import free_port
from tests.support.helpers import server_ready, wait_until
from tests.support.prometheus_server import PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
BURN = "EddieTaskSuccessBudgetBurn"
DOWN = "EddieMetricsEndpointDown"
BATCH_JOB = "eddie-batch"
# Failures per cycle of tasks: 9 in 10 for the fast burn, 2 in 9 for the slow one.
FAST_BURN = (9, 10)
SLOW_BURN = (2, 9)
TIMEOUT = 30

# An agent process: serves its metrics on a port and finishes `tasks` tasks every 50 ms, `failures` of them
# failed, until the test closes its standard input.
AGENT = textwrap.dedent(
    """
    import sys, threading
    import eddie_otel

    port, failures, tasks = (int(arg) for arg in sys.argv[1:])
    eddie_otel.configure(port=port)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    print("ready", flush=True)
    while not closed.is_set():
        for i in range(tasks):
            eddie_otel.record_task(stage="codegen", duration_seconds=0.1, success=i >= failures, reason="burn")
        closed.wait(0.05)
    """
)


def test_the_burn_ratios_sit_where_the_docstring_says() -> None:
    """The workload's ratios bracket the thresholds of ops/slo.py for the task success objective."""
    budget = next(o for o in OBJECTIVES if o.alert == BURN).error_budget
    factors: dict[str, list[float]] = {"critical": [], "warning": []}
    for burn in slo.BURN_RATES:
        factors[burn.severity].append(burn.factor * budget)
    assert FAST_BURN[0] / FAST_BURN[1] > max(factors["critical"])
    assert min(factors["warning"]) < max(factors["warning"]) < SLOW_BURN[0] / SLOW_BURN[1] < min(factors["critical"])


@dataclass
class Notification:
    receiver: str
    body: dict[str, Any]
    at: float


class Sink:
    """A local HTTP server standing in for PagerDuty (/pagerduty) and Slack (/slack), keeping what it receives."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with sink._lock:
                    sink.notifications.append(Notification(self.path.strip("/"), body, time.monotonic()))
                # PagerDuty's Events API answers 202 with JSON; Slack's webhooks answer 200 "ok".
                reply = b'{"status": "success"}' if self.path == "/pagerduty" else b"ok"
                self.send_response(202 if self.path == "/pagerduty" else 200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def received(self, receiver: str, match: Callable[[Notification], bool] = lambda n: True) -> list[Notification]:
        with self._lock:
            return [n for n in self.notifications if n.receiver == receiver and match(n)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pagerduty_labels(notification: Notification) -> dict[str, str]:
    # Alertmanager's default `firing` detail lists each alert as "Labels:\n - name = value ...".
    firing = notification.body["payload"]["custom_details"]["firing"]
    labels_text = firing.split("Annotations:")[0]
    return dict(re.findall(r"^ - (\w+) = (.*)$", labels_text, re.M))


def _pages(sink: Sink, alertname: str, job: str) -> list[Notification]:
    def match(n: Notification) -> bool:
        labels = _pagerduty_labels(n) if n.body.get("event_action") == "trigger" else {}
        return labels.get("alertname") == alertname and labels.get("job") == job

    return sink.received("pagerduty", match)


def _slack_group(notification: Notification) -> tuple[str, str]:
    # Alertmanager's default fallback text starts "[FIRING:1] <alertname> <job>": the values of group_by.
    fallback = notification.body["attachments"][0]["fallback"]
    found = re.match(r"\[FIRING:\d+\] (\S+) (\S+) ", fallback)
    return (found.group(1), found.group(2)) if found else ("", "")


def _slack_posts(sink: Sink, alertname: str, job: str) -> list[Notification]:
    return sink.received("slack", lambda n: _slack_group(n) == (alertname, job))


def _alertmanager_config(sink: Sink) -> dict[str, Any]:
    """The shipped routing with only the receivers' addresses (and an inline key) and the timings changed."""
    config: dict[str, Any] = yaml.safe_load((ROOT / ALERTMANAGER_CONFIG).read_text(encoding="utf-8"))
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    pagerduty = receivers["pagerduty-critical"]["pagerduty_configs"][0]
    del pagerduty["routing_key_file"]
    pagerduty["routing_key"] = "test-routing-key"
    pagerduty["url"] = f"{sink.url}/pagerduty"
    slack = receivers["slack-warning"]["slack_configs"][0]
    del slack["api_url_file"]
    slack["api_url"] = f"{sink.url}/slack"
    # Repeats every few seconds: an alert that stops arriving is muted, not merely waiting for its repeat.
    timings = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "3s"}
    config["route"].update(timings)
    for route in config["route"]["routes"]:
        if "repeat_interval" in route:
            route["repeat_interval"] = timings["repeat_interval"]
    return config


def _rules_without_delays(directory: Path) -> Path:
    """The shipped rules with every `for:` set to 0s: a test cannot wait the minutes a real page waits."""
    document: dict[str, Any] = yaml.safe_load((ROOT / ALERT_RULES).read_text(encoding="utf-8"))
    for rule in document["groups"][0]["rules"]:
        if "alert" in rule:
            rule["for"] = "0s"
    path = directory / "prometheus-alerts.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


class Alertmanager:
    """A real Alertmanager on a loopback port, no cluster, its storage in `workdir`."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}"
        self.log_path = workdir / "alertmanager.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, TIMEOUT, "Alertmanager did not become ready", interval=0.2)

    def _ready(self) -> bool:
        return server_ready("alertmanager", self._process, self.log_path, self.url)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds, active, inhibited or silenced (GET /api/v2/alerts)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=10) as response:
            alerts: list[dict[str, Any]] = json.load(response)
        return alerts

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._log.close()


class Agent:
    """An instrumented process failing `failures` of every `tasks` tasks; stop() ends it, and its endpoint."""

    def __init__(self, failures: int, tasks: int) -> None:
        self.port = free_port()
        self._process = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(self.port), str(failures), str(tasks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self._process.stdout is not None
        assert self._process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)


@dataclass
class Servers:
    sink: Sink
    alertmanager: Alertmanager
    prometheus: PrometheusServer
    fast: Agent
    slow: Agent


@pytest.fixture(scope="module")
def servers(
    prometheus_binary: str, alertmanager_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        sink = Sink()
        stack.callback(sink.stop)
        alertmanager = Alertmanager(
            alertmanager_binary, tmp_path_factory.mktemp("alertmanager"), _alertmanager_config(sink)
        )
        stack.callback(alertmanager.stop)
        fast = Agent(*FAST_BURN)
        stack.callback(fast.stop)
        slow = Agent(*SLOW_BURN)
        stack.callback(slow.stop)
        workdir = tmp_path_factory.mktemp("prometheus")
        prometheus = PrometheusServer(
            prometheus_binary,
            workdir,
            [f"127.0.0.1:{fast.port}"],
            job=JOB,
            more_jobs={BATCH_JOB: [f"127.0.0.1:{slow.port}"]},
            rule_files=[_rules_without_delays(tmp_path_factory.mktemp("rules"))],
            alertmanagers=[alertmanager.address],
            extra_args=["--rules.alert.resend-delay=1s"],
        )
        stack.callback(prometheus.stop)
        yield Servers(sink, alertmanager, prometheus, fast, slow)


def _wait(condition: Callable[[], object], message: str, servers: Servers) -> None:
    try:
        wait_until(condition, TIMEOUT, message, interval=0.2)
    except AssertionError as error:
        logs = f"\n--- alertmanager.log\n{servers.alertmanager.log_path.read_text()[-3000:]}"
        firing = servers.prometheus.query("ALERTS")
        raise AssertionError(f"{error}\nPrometheus ALERTS: {firing}{logs}") from None


def test_a_fast_burn_pages_through_pagerduty_with_labels_and_annotations(servers: Servers) -> None:
    sink = servers.sink
    _wait(lambda: _pages(sink, BURN, JOB), f"no {BURN} page for job {JOB}", servers)
    page = _pages(sink, BURN, JOB)[0].body
    assert page["routing_key"] == "test-routing-key"
    assert page["payload"]["severity"] == "critical"
    assert _pagerduty_labels(_pages(sink, BURN, JOB)[0]) == {
        "alertname": BURN,
        "job": JOB,
        "severity": "critical",
    }
    links = Links()
    runbook = links.runbook(BURN)
    dashboard = links.dashboard(slo.panel_titles(OBJECTIVES[0])[1])
    assert page["payload"]["summary"] == (
        f"{BURN}: Job {JOB} burns the 30-day error budget of {OBJECTIVES[0].name} fast"
    )
    details = page["payload"]["custom_details"]
    assert details["job"] == JOB
    assert details["runbook_url"] == runbook
    assert details["dashboard_url"] == dashboard
    assert re.match(r"\d+(\.\d+)?% of finished tasks failed over the last 1 h or 6 h", details["description"])
    assert {"href": runbook, "text": "Runbook"} in page["links"]
    assert {"href": dashboard, "text": "Dashboard"} in page["links"]
    # The warning of the same alert is inhibited by the critical one: no Slack post for this job.
    assert not _slack_posts(sink, BURN, JOB)


def test_a_slow_burn_goes_to_slack_and_pages_nobody(servers: Servers) -> None:
    sink = servers.sink
    _wait(lambda: _slack_posts(sink, BURN, BATCH_JOB), f"no {BURN} Slack post for job {BATCH_JOB}", servers)
    post = _slack_posts(sink, BURN, BATCH_JOB)[0].body["attachments"][0]
    assert post["title"] == (
        f"[FIRING] {BURN}: Job {BATCH_JOB} burns the 30-day error budget of {OBJECTIVES[0].name} slowly"
    )
    links = Links()
    assert post["title_link"] == links.dashboard(slo.panel_titles(OBJECTIVES[0])[1])
    description, _, runbook = post["text"].partition("\nRunbook: ")
    assert runbook == links.runbook(BURN)
    assert re.match(r"\d+(\.\d+)?% of finished tasks failed over the last 1 d or 3 d", description)
    assert not _pages(sink, BURN, BATCH_JOB)


def test_with_the_endpoint_down_only_endpoint_down_arrives(servers: Servers) -> None:
    sink, alertmanager = servers.sink, servers.alertmanager
    # Before: the page for job eddie repeats (repeat_interval 3s), so silence afterwards means muted.
    _wait(lambda: len(_pages(sink, BURN, JOB)) >= 2, f"the {BURN} page for job {JOB} did not repeat", servers)
    servers.fast.stop()
    _wait(lambda: _pages(sink, DOWN, JOB), f"no {DOWN} page for job {JOB}", servers)
    down_at = _pages(sink, DOWN, JOB)[0].at

    # The job's other alerts still fire in Prometheus (their windows hold the samples from before),
    # and Alertmanager holds them inhibited by the endpoint-down alert.
    def inhibited() -> bool:
        others = [
            a for a in alertmanager.alerts() if a["labels"].get("job") == JOB and a["labels"]["alertname"] != DOWN
        ]
        return bool(others) and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in others)

    _wait(inhibited, f"the other alerts of job {JOB} are not inhibited", servers)
    burning = {a["labels"]["alertname"] for a in alertmanager.alerts() if a["labels"].get("job") == JOB}
    assert {BURN, DOWN} <= burning

    # Two repeat intervals later: the other job's warning kept repeating, job eddie sent only its endpoint alert.
    batch_posts = len(_slack_posts(sink, BURN, BATCH_JOB))
    time.sleep(7)
    assert len(_slack_posts(sink, BURN, BATCH_JOB)) > batch_posts
    after = [n for n in sink.notifications if n.at > down_at]
    for notification in after:
        if notification.receiver == "pagerduty":
            labels = _pagerduty_labels(notification)
            assert labels.get("job") != JOB or labels["alertname"] == DOWN, labels
        else:
            assert _slack_group(notification)[1] != JOB, notification.body
    assert _pages(sink, DOWN, JOB)[-1].at > down_at  # it repeats itself, being the one alert left
