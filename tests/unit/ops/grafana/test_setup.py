"""`eddie-otel grafana-setup` against a stand-in Grafana (tests/grafana_standin.py).

Grafana cannot be installed here; the stand-in follows the Grafana 11 HTTP API for
the endpoints grafana-setup uses, checks payloads and the bearer token as Grafana
does, and keeps state, so counts after two runs are real.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eddie_otel.cli import main
from eddie_otel.ops import alerts, assets, slo
from eddie_otel.ops.grafana import datasource_payload, rule_uid
from eddie_otel.ops.grafana.payloads import alert_rule_payloads
from eddie_otel.ops.links import Links
from tests.support.grafana_standin import ADMIN, VIEWER, GrafanaStandIn

TOKEN = "glsa_eddieAdminToken_5f0c2a9e81d34b7b_1a2b3c4d"
VIEWER_TOKEN = "glsa_eddieViewerToken_77aa0e4410c2_9f8e7d6c"
DASHBOARD_UID = "eddie-distributed-fallback"
PREFIX = "eddie-otel grafana-setup: error: "


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    """A stand-in Grafana with an Admin and a Viewer service-account token."""
    with GrafanaStandIn({TOKEN: ADMIN, VIEWER_TOKEN: VIEWER}) as standin:
        yield standin


def setup(url: str, *extra: str, key: str | None = TOKEN) -> int:
    """Run `eddie-otel grafana-setup` the way a user types it."""
    argv = ["grafana-setup", "--grafana-url", url, *extra]
    if key is not None:
        argv += ["--api-key", key]
    return main(argv)


def shipped_dashboard() -> dict[str, Any]:
    """The dashboard file eddie-otel ships."""
    document: dict[str, Any] = json.loads(assets.asset_path(assets.DASHBOARD).read_text(encoding="utf-8"))
    return document


def rule_lines(verb: str) -> list[str]:
    """The progress lines of the alert-rule steps."""
    return [f"alert rule {p['title']} ({p['uid']}, group {alerts.GROUP}): {verb}" for p in alert_rule_payloads()]


def test_first_run_creates_one_datasource_folder_dashboard_and_every_rule(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(grafana.url) == 0

    state = grafana.state
    assert list(state.datasources) == ["eddie-prometheus"]
    datasource = state.datasources["eddie-prometheus"]
    assert (datasource["name"], datasource["type"], datasource["access"], datasource["url"]) == (
        "Eddie Prometheus",
        "prometheus",
        "proxy",
        "http://prometheus:9090",
    )
    assert [(f["uid"], f["title"]) for f in state.folders.values()] == [("eddie", "Eddie")]
    assert list(state.dashboards) == [DASHBOARD_UID]
    saved = state.dashboards[DASHBOARD_UID]
    assert saved["folderUid"] == "eddie"
    assert saved["dashboard"]["title"] == shipped_dashboard()["title"]
    assert len(saved["dashboard"]["panels"]) == len(shipped_dashboard()["panels"])
    variables = [v for v in saved["dashboard"]["templating"]["list"] if v["query"] == "prometheus"]
    assert [v["current"]["value"] for v in variables] == ["eddie-prometheus"]
    assert sorted(state.rules) == sorted(p["uid"] for p in alert_rule_payloads())

    out = capsys.readouterr()
    title = shipped_dashboard()["title"]
    assert out.out.splitlines() == [
        "datasource eddie-prometheus (Eddie Prometheus → http://prometheus:9090): created",
        "folder eddie (Eddie): created",
        f"dashboard {DASHBOARD_UID} ({title}): created, version 1",
        *rule_lines("created"),
        f"done: {grafana.url}/d/{DASHBOARD_UID}/{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}",
    ]
    assert out.err == ""
    assert {request.authorization for request in grafana.requests} == {f"Bearer {TOKEN}"}


def test_second_run_updates_everything_in_place(grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(grafana.url) == 0
    state = grafana.state
    ids = {
        "datasource": state.datasources["eddie-prometheus"]["id"],
        "folder": state.folders["eddie"]["id"],
        "dashboard": state.dashboards[DASHBOARD_UID]["dashboard"]["id"],
        **{uid: rule["id"] for uid, rule in state.rules.items()},
    }
    capsys.readouterr()

    assert setup(grafana.url, "--prometheus-url", "http://prometheus.internal:9090") == 0

    assert len(state.datasources) == 1
    assert len(state.folders) == 1
    assert len(state.dashboards) == 1
    assert len(state.rules) == len(alerts.all_rules())
    assert {
        "datasource": state.datasources["eddie-prometheus"]["id"],
        "folder": state.folders["eddie"]["id"],
        "dashboard": state.dashboards[DASHBOARD_UID]["dashboard"]["id"],
        **{uid: rule["id"] for uid, rule in state.rules.items()},
    } == ids
    assert state.datasources["eddie-prometheus"]["url"] == "http://prometheus.internal:9090"
    assert state.datasources["eddie-prometheus"]["version"] == 2
    assert state.folders["eddie"]["version"] == 2
    assert state.dashboards[DASHBOARD_UID]["dashboard"]["version"] == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "datasource eddie-prometheus (Eddie Prometheus → http://prometheus.internal:9090): updated",
        "folder eddie (Eddie): updated",
        f"dashboard {DASHBOARD_UID} ({shipped_dashboard()['title']}): updated, version 2",
    ]
    assert lines[3:-1] == rule_lines("updated")


def test_alert_rules_are_the_prometheus_rules_one_to_one(grafana: GrafanaStandIn) -> None:
    assert setup(grafana.url) == 0

    stored = {rule["title"]: rule for rule in grafana.state.rules.values()}
    # The two severities of a burn-rate alert are two Grafana rules, titled with their severity.
    expected = {p["title"]: rule for p, rule in zip(alert_rule_payloads(), alerts.all_rules(), strict=True)}
    assert sorted(stored) == sorted(expected)
    for name, rule in expected.items():
        grafana_rule = stored[name]
        query, present, fires = grafana_rule["data"]
        assert (query["refId"], query["datasourceUid"]) == ("A", "eddie-prometheus")
        assert query["model"]["expr"] == slo.inline(rule.expr)
        assert "eddie:task_" not in query["model"]["expr"]
        assert query["model"]["instant"] is True
        # Fires for every series the PromQL returns, as Prometheus does: B marks presence, C tests it.
        assert present["model"]["expression"] == "is_number($A) || is_nan($A) || is_inf($A)"
        assert (fires["model"]["type"], fires["model"]["expression"]) == ("threshold", "B")
        assert fires["model"]["conditions"] == [{"evaluator": {"type": "gt", "params": [0]}}]
        assert grafana_rule["condition"] == "C"
        assert grafana_rule["noDataState"] == "OK"
        assert grafana_rule["for"] == rule.for_
        assert grafana_rule["labels"] == {"severity": rule.severity}
        assert grafana_rule["annotations"] == {
            "summary": re.sub(r"\$value\b", "$values.A.Value", rule.summary),
            "description": re.sub(r"\$value\b", "$values.A.Value", rule.description),
            "runbook_url": Links().runbook(rule.alert),
            "dashboard_url": Links().dashboard(rule.panel),
        }
        assert (grafana_rule["ruleGroup"], grafana_rule["folderUID"]) == (alerts.GROUP, "eddie")
        assert grafana_rule["provenance"] == "api"
    description = stored["EddieHighTimeoutEvents"]["annotations"]["description"]
    assert description.startswith("{{ $values.A.Value | humanize }} tasks or chunks timed out")


def test_a_rule_no_longer_shipped_is_removed_from_the_group(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(grafana.url) == 0
    retired = {**grafana.state.rules[rule_uid("EddieHighTimeoutEvents")]}
    retired.update(uid="eddie-retired", title="EddieRetired", id=999)
    grafana.state.rules["eddie-retired"] = retired
    capsys.readouterr()

    assert setup(grafana.url) == 0

    assert "eddie-retired" not in grafana.state.rules
    assert len(grafana.state.rules) == len(alerts.all_rules())
    assert "alert rule EddieRetired (eddie-retired): removed, eddie-otel no longer ships it" in (
        capsys.readouterr().out.splitlines()
    )


def test_wrong_token_is_a_clear_401_message_and_changes_nothing(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(grafana.url, key="glsa_notTheRightOne_000") == 1

    out = capsys.readouterr()
    assert out.err == (
        f"{PREFIX}Grafana at {grafana.url} answered 401 Unauthorized while saving datasource eddie-prometheus: "
        "the API key was refused (wrong, expired or revoked)\n"
    )
    assert out.out == ""
    assert grafana.state.datasources == grafana.state.folders == grafana.state.rules == {}


def test_missing_token_says_how_to_give_one(grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(grafana.url, key=None) == 1

    assert capsys.readouterr().err == (
        f"{PREFIX}Grafana at {grafana.url} answered 401 Unauthorized while saving datasource eddie-prometheus: "
        "no API key was given: pass --api-key or set GRAFANA_API_KEY\n"
    )


def test_viewer_token_is_a_clear_403_message(grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(grafana.url, key=VIEWER_TOKEN) == 1

    assert capsys.readouterr().err == (
        f"{PREFIX}Grafana at {grafana.url} answered 403 Forbidden while saving datasource eddie-prometheus: "
        "the API key lacks permission (use a service account with the Admin role)\n"
    )
    assert grafana.state.datasources == {}


def test_unreachable_grafana_is_a_clear_message(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(f"http://127.0.0.1:{port}") == 1

    out = capsys.readouterr()
    assert out.err == f"{PREFIX}cannot reach Grafana at http://127.0.0.1:{port}: connection refused\n"
    assert out.out == ""


def test_a_conflict_in_grafana_is_reported_with_grafanas_message(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    # Someone already has a datasource with our name under another uid.
    created = httpx.post(
        f"{grafana.url}/api/datasources",
        json={"uid": "theirs", "name": "Eddie Prometheus", "type": "prometheus", "access": "proxy"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert created.status_code == 200

    assert setup(grafana.url) == 1

    assert capsys.readouterr().err == (
        f"{PREFIX}Grafana at {grafana.url} rejected saving datasource eddie-prometheus (409): "
        "data source with the same name already exists\n"
    )
    assert list(grafana.state.datasources) == ["theirs"]


def test_a_datasource_provisioned_from_files_is_left_alone(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    provisioned = {
        **datasource_payload("http://prometheus:9090"),
        "id": 7,
        "orgId": 1,
        "version": 1,
        "readOnly": True,
    }
    grafana.state.datasources["eddie-prometheus"] = provisioned

    assert setup(grafana.url) == 0

    assert grafana.state.datasources["eddie-prometheus"] == provisioned
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "datasource eddie-prometheus: provisioned from files in Grafana (read-only), left as it is"
    assert len(grafana.state.rules) == len(alerts.all_rules())


def test_a_grafana_provisioned_from_files_keeps_its_folder_and_dashboard(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `eddie-otel stack` gives: the provider makes folder "Eddie" with a generated uid, and the dashboard.
    grafana.state.folders["b1Xq9z"] = {"id": 3, "uid": "b1Xq9z", "title": "Eddie", "version": 1}
    model = {**shipped_dashboard(), "id": 4, "version": 1}
    grafana.state.dashboards[DASHBOARD_UID] = {"dashboard": model, "folderUid": "b1Xq9z", "provisioned": True}

    assert setup(grafana.url) == 0

    assert list(grafana.state.folders) == ["b1Xq9z"]
    assert grafana.state.dashboards[DASHBOARD_UID]["dashboard"] == model
    assert {rule["folderUID"] for rule in grafana.state.rules.values()} == {"b1Xq9z"}
    assert len(grafana.state.rules) == len(alerts.all_rules())
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == [
        "folder b1Xq9z (Eddie): exists, used as it is",
        f"dashboard {DASHBOARD_UID}: provisioned from files in Grafana (read-only), left as it is",
    ]
    assert lines[3:] == [*rule_lines("created"), "done"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"title": "x",\n  "uid": "y"\n  "panels": []\n}\n', "Expecting ',' delimiter at line 3, column 3"),
        ("", "Expecting value at line 1, column 1"),
    ],
)
def test_invalid_dashboard_json_names_the_file_and_line(
    grafana: GrafanaStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    dashboard = tmp_path / "broken.json"
    dashboard.write_text(text, encoding="utf-8")

    assert setup(grafana.url, "--dashboard", str(dashboard)) == 1

    assert capsys.readouterr().err == f"{PREFIX}dashboard file {dashboard} is not valid JSON: {where}\n"
    assert grafana.requests == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--grafana-url", "localhost:3000"],
            "--grafana-url must be an http:// or https:// URL with a host, not 'localhost:3000'",
        ),
        (
            ["--prometheus-url", "prometheus:9090"],
            "--prometheus-url must be an http:// or https:// URL with a host, not 'prometheus:9090'",
        ),
        (["--dashboard", "missing.json"], "dashboard file missing.json does not exist"),
    ],
)
def test_bad_arguments_are_one_line_errors_and_send_nothing(
    grafana: GrafanaStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    arguments: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    url = grafana.url
    if arguments[0] == "--grafana-url":
        url, arguments = arguments[1], []

    assert setup(url, *arguments) == 1

    assert capsys.readouterr().err == f"{PREFIX}{message}\n"
    assert grafana.requests == []


def test_dashboard_without_uid_is_refused(
    grafana: GrafanaStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dashboard = tmp_path / "mine.json"
    dashboard.write_text(json.dumps({"title": "Mine", "panels": []}), encoding="utf-8")

    assert setup(grafana.url, "--dashboard", str(dashboard)) == 1

    assert capsys.readouterr().err.startswith(f'{PREFIX}dashboard file {dashboard} needs a "uid" of at most 40 ')
    assert grafana.requests == []


def body_after(text: str, request_line: str) -> Any:
    """The JSON body printed right after `request_line` in --dry-run output."""
    start = text.index(request_line + "\n") + len(request_line) + 1
    body, _ = json.JSONDecoder().raw_decode(text, start)
    return body


def test_dry_run_prints_every_request_and_sends_none(
    grafana: GrafanaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(grafana.url, "--dry-run") == 0

    assert grafana.requests == []
    out = capsys.readouterr()
    assert out.err == ""
    assert TOKEN not in out.out
    lines = out.out.splitlines()
    assert lines[:2] == [
        f"dry run: nothing is sent to {grafana.url}; every request would carry",
        "Authorization: Bearer <redacted>",
    ]
    assert lines[-1] == "dry run: nothing was sent"
    requests = [line for line in lines if re.match(r"^(GET|POST|PUT|DELETE) /", line)]
    assert requests == [
        "GET /api/datasources/uid/eddie-prometheus",
        "POST /api/datasources",
        "GET /api/folders/eddie",
        "GET /api/folders",
        "POST /api/folders",
        f"GET /api/dashboards/uid/{DASHBOARD_UID}",
        "POST /api/dashboards/db",
        *[
            line
            for rule in alert_rule_payloads()
            for line in (
                f"GET /api/v1/provisioning/alert-rules/{rule['uid']}",
                "POST /api/v1/provisioning/alert-rules",
            )
        ],
    ]
    # Each POST is followed by its JSON body.
    body = body_after(out.out, "POST /api/datasources")
    assert body == datasource_payload("http://prometheus:9090")
    saved = body_after(out.out, "POST /api/dashboards/db")
    assert (saved["dashboard"]["uid"], saved["folderUid"], saved["overwrite"]) == (DASHBOARD_UID, "eddie", True)


def test_the_api_key_never_appears_in_output_errors_or_logs(
    grafana: GrafanaStandIn,
    port: int,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("GRAFANA_API_KEY", TOKEN)
    assert setup(grafana.url, key=None) == 0
    assert setup(grafana.url, "--dry-run", key=None) == 0
    assert setup(f"http://127.0.0.1:{port}", key=None) == 1
    wrong = "glsa_wrongButStillSecret_31337"
    assert setup(grafana.url, key=wrong) == 1
    password = "s3cret-Passw0rd"
    monkeypatch.delenv("GRAFANA_API_KEY")
    assert setup(grafana.url.replace("http://", f"http://admin:{password}@"), key=None) == 1

    out = capsys.readouterr()
    for secret in (TOKEN, wrong, password):
        assert secret not in out.out
        assert secret not in out.err
        assert secret not in caplog.text
    # It was sent, where it belongs.
    assert f"Bearer {TOKEN}" in {request.authorization for request in grafana.requests}
    assert f"Bearer {wrong}" in {request.authorization for request in grafana.requests}


def test_standin_rejects_what_grafana_rejects(grafana: GrafanaStandIn) -> None:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{grafana.url}/api/folders/eddie").status_code == 401
    assert httpx.get(f"{grafana.url}/api/folders/eddie", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(f"{grafana.url}/api/folders", json={"uid": "x" * 41, "title": "T"}, headers=admin).json() == {
        "message": "folder uid too long, max 40 characters"
    }
    assert httpx.post(f"{grafana.url}/api/folders", json={"uid": "f", "title": "T"}, headers=admin).status_code == 200
    stale = httpx.put(f"{grafana.url}/api/folders/f", json={"title": "U", "version": 0}, headers=admin)
    assert (stale.status_code, stale.json()["status"]) == (412, "version-mismatch")
    dashboard = {"dashboard": {"uid": "d", "title": "D", "id": None}, "folderUid": "f"}
    assert httpx.post(f"{grafana.url}/api/dashboards/db", json=dashboard, headers=admin).json()["version"] == 1
    again = httpx.post(f"{grafana.url}/api/dashboards/db", json=dashboard, headers=admin)
    assert (again.status_code, again.json()["status"]) == (412, "version-mismatch")
    rule = {
        "uid": "r",
        "title": "R",
        "ruleGroup": "g",
        "folderUID": "f",
        "orgID": 1,
        "condition": "B",
        "for": "5m",
        "noDataState": "OK",
        "execErrState": "Error",
        "data": [{"refId": "A", "datasourceUid": "nowhere", "model": {"expr": "up"}}],
    }
    answer = httpx.post(f"{grafana.url}/api/v1/provisioning/alert-rules", json=rule, headers=admin)
    assert (answer.status_code, answer.json()["message"]) == (400, "invalid query A: data source not found: nowhere")
    assert grafana.state.rules == {}
