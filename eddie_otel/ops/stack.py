"""`eddie-otel stack DIR`: a ready monitoring stack (compose file and every config it mounts) in one directory.

The files come from the shipped assets (`eddie_otel.ops.assets`), so the command
works the same from a checkout and from an installed wheel; only what must differ
inside compose is changed: Prometheus scrapes the `eddie-demo` service instead of
localhost, Grafana's datasource points at the `prometheus` service, and the
Collector scrapes `eddie-demo` through its environment variable.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from eddie_otel._version import __version__
from eddie_otel.errors import EddieOtelError
from eddie_otel.ops import alerts, assets, yamlfile

__all__ = [
    "COLLECTOR_IMAGE",
    "DEMO_IMAGE",
    "GRAFANA_IMAGE",
    "PROMETHEUS_IMAGE",
    "StackError",
    "stack_command",
    "stack_files",
    "write_stack",
]

PROMETHEUS_IMAGE = "prom/prometheus:v2.54.1"
GRAFANA_IMAGE = "grafana/grafana:11.3.0"
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.111.0"
DEMO_IMAGE = "python:3.12-slim"

DEMO_SERVICE = "eddie-demo"
DEMO_PORT = 8503
PROMETHEUS_URL = "http://prometheus:9090"
# Retention is a server flag, not a prometheus.yml setting (Prometheus rejects it there).
RETENTION_TIME = "15d"
RETENTION_SIZE = "5GB"

COMPOSE = "compose.yaml"
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
PROMETHEUS_RULES = "prometheus/prometheus-alerts.yml"
GRAFANA_PROVISIONING = "grafana/provisioning"
GRAFANA_DASHBOARDS = "grafana/dashboards"
COLLECTOR_CONFIG = "otel-collector/collector-config.yaml"

# Where the Grafana image reads provisioning, and where the Collector image reads its config.
_GRAFANA_PROVISIONING_MOUNT = "/etc/grafana/provisioning"
_COLLECTOR_CONFIG_MOUNT = "/etc/otelcol-contrib/config.yaml"
_DEFAULT_DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


class StackError(EddieOtelError):
    """The stack cannot be written; the message is one line for the operator."""


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StackError(f"shipped file {path} cannot be read: {exc}") from None


def _prometheus_config() -> str:
    config = _load_yaml(assets.asset_path(assets.PROMETHEUS_CONFIG))
    jobs = [job for job in config.get("scrape_configs") or [] if job.get("job_name") == alerts.JOB]
    if not jobs:
        raise StackError(f"shipped {assets.PROMETHEUS_CONFIG} has no scrape job {alerts.JOB!r}")
    for job in jobs:
        job["static_configs"] = [{"targets": [f"{DEMO_SERVICE}:{DEMO_PORT}"]}]
    # Relative rule files resolve against the config file's directory: the rules sit beside it.
    config["rule_files"] = [PurePosixPath(PROMETHEUS_RULES).name]
    header = (
        "# Prometheus configuration of the eddie-otel compose stack (written by `eddie-otel stack`).\n"
        f"# Scrapes the {DEMO_SERVICE} service and loads the alert rules beside this file.\n"
        "# Retention is set by the server flags in compose.yaml (--storage.tsdb.retention.*),\n"
        "# not here: Prometheus rejects retention settings in this file.\n"
    )
    return yamlfile.dump(config, header)


def _provisioning() -> tuple[dict[str, str], str]:
    """The Grafana provisioning files (path under grafana/provisioning → text) and the dashboards mount path."""
    root = assets.asset_path(assets.PROVISIONING)
    files: dict[str, str] = {}
    mount = _DEFAULT_DASHBOARDS_MOUNT
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        document = _load_yaml(path) if path.suffix in (".yml", ".yaml") else None
        if relative.startswith("datasources/") and isinstance(document, dict):
            prometheus = [ds for ds in document.get("datasources") or [] if ds.get("type") == "prometheus"]
            if any(ds.get("url") != PROMETHEUS_URL for ds in prometheus):
                for datasource in prometheus:
                    datasource["url"] = PROMETHEUS_URL
                text = yamlfile.dump(document, "# Grafana datasource provisioning of the eddie-otel compose stack.\n")
        if relative.startswith("dashboards/") and isinstance(document, dict):
            # The compose file mounts the dashboard where the provider looks for it.
            for provider in document.get("providers") or []:
                path_option = (provider.get("options") or {}).get("path")
                if provider.get("type", "file") == "file" and isinstance(path_option, str):
                    mount = path_option
        files[f"{GRAFANA_PROVISIONING}/{relative}"] = text
    if not files:
        raise StackError(f"shipped {assets.PROVISIONING} holds no provisioning file")
    return files, mount


def _compose(dashboards_mount: str) -> str:
    def local(port: int, inside: int | None = None) -> str:
        # 127.0.0.1 only: the stack has default passwords and no TLS.
        return f"127.0.0.1:{port}:{inside or port}"

    package = f"${{EDDIE_OTEL_PACKAGE:-eddie-otel=={__version__}}}"
    compose: dict[str, Any] = {
        "name": "eddie-otel",
        "services": {
            DEMO_SERVICE: {
                "image": DEMO_IMAGE,
                "command": [
                    "sh",
                    "-c",
                    # $$ is a literal $ for the shell; compose fills EDDIE_OTEL_PACKAGE below.
                    'pip install --no-cache-dir --disable-pip-version-check "$$EDDIE_OTEL_PACKAGE"'
                    f" && exec eddie-otel demo --host 0.0.0.0 --port {DEMO_PORT}",
                ],
                "environment": {"EDDIE_OTEL_PACKAGE": package, "OTEL_SERVICE_NAME": DEMO_SERVICE},
                "ports": [local(DEMO_PORT)],
                "healthcheck": {
                    "test": [
                        "CMD",
                        "python",
                        "-c",
                        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{DEMO_PORT}/metrics/health')",
                    ],
                    "interval": "10s",
                    "timeout": "5s",
                    "retries": 3,
                    # pip install runs first.
                    "start_period": "120s",
                },
                "restart": "unless-stopped",
            },
            "prometheus": {
                "image": PROMETHEUS_IMAGE,
                "command": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    f"--storage.tsdb.retention.time={RETENTION_TIME}",
                    f"--storage.tsdb.retention.size={RETENTION_SIZE}",
                ],
                "volumes": ["./prometheus:/etc/prometheus:ro", "prometheus-data:/prometheus"],
                "ports": [local(9090)],
                "restart": "unless-stopped",
            },
            "grafana": {
                "image": GRAFANA_IMAGE,
                "environment": {
                    "GF_SECURITY_ADMIN_USER": "${GRAFANA_ADMIN_USER:-admin}",
                    "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-admin}",
                },
                "volumes": [
                    f"./{GRAFANA_PROVISIONING}:{_GRAFANA_PROVISIONING_MOUNT}:ro",
                    f"./{GRAFANA_DASHBOARDS}:{dashboards_mount}:ro",
                    "grafana-data:/var/lib/grafana",
                ],
                "ports": [local(3000)],
                "depends_on": ["prometheus"],
                "restart": "unless-stopped",
            },
            "otel-collector": {
                "image": COLLECTOR_IMAGE,
                "command": [f"--config={_COLLECTOR_CONFIG_MOUNT}"],
                "environment": {
                    "EDDIE_OTELCOL_SCRAPE_TARGET": f"{DEMO_SERVICE}:{DEMO_PORT}",
                    # Backends outside the stack: until these name real ones, the Collector logs failed exports.
                    "EDDIE_OTELCOL_REMOTE_WRITE_URL": (
                        "${EDDIE_OTELCOL_REMOTE_WRITE_URL:-http://remote-storage:9090/api/v1/write}"
                    ),
                    "EDDIE_OTELCOL_OTLP_BACKEND": "${EDDIE_OTELCOL_OTLP_BACKEND:-otlp-backend:4317}",
                    "EDDIE_OTELCOL_OTLP_INSECURE": "${EDDIE_OTELCOL_OTLP_INSECURE:-false}",
                },
                "volumes": [f"./{COLLECTOR_CONFIG}:{_COLLECTOR_CONFIG_MOUNT}:ro"],
                "ports": [local(4317), local(4318), local(8889), local(13133)],
                "restart": "unless-stopped",
            },
        },
        "volumes": {"prometheus-data": {}, "grafana-data": {}},
    }
    header = (
        "# The eddie-otel monitoring stack (written by `eddie-otel stack`): start it with\n"
        "#   docker compose up -d\n"
        f"# Grafana http://127.0.0.1:3000 (admin/admin), Prometheus http://127.0.0.1:9090,\n"
        f"# the demo's metrics http://127.0.0.1:{DEMO_PORT}/metrics/prometheus, the Collector's OTLP\n"
        "# on 127.0.0.1:4317 (gRPC) and :4318 (HTTP) and its Prometheus exporter on :8889.\n"
        "# EDDIE_OTEL_PACKAGE picks what the demo installs (a version, a wheel URL, a git URL).\n"
        "# Prometheus scrapes eddie-demo itself; it must not also scrape the Collector's :8889\n"
        "# or receive its remote write, or every series would be stored twice.\n"
    )
    return yamlfile.dump(compose, header)


def stack_files() -> dict[str, str]:
    """Every file of the stack: path relative to the stack directory → text."""
    provisioning, dashboards_mount = _provisioning()
    dashboard = assets.asset_path(assets.DASHBOARD)
    return {
        COMPOSE: _compose(dashboards_mount),
        PROMETHEUS_CONFIG: _prometheus_config(),
        PROMETHEUS_RULES: assets.asset_path(assets.ALERT_RULES).read_text(encoding="utf-8"),
        **provisioning,
        f"{GRAFANA_DASHBOARDS}/{dashboard.name}": dashboard.read_text(encoding="utf-8"),
        COLLECTOR_CONFIG: assets.asset_path(assets.COLLECTOR_CONFIG).read_text(encoding="utf-8"),
    }


def write_stack(directory: Path, files: Mapping[str, str], force: bool = False) -> list[Path]:
    """Write `files` under `directory`; without `force`, refuse (writing nothing) when any already exists."""
    if directory.exists() and not directory.is_dir():
        raise StackError(f"{directory} exists and is not a directory")
    targets = {relative: directory / relative for relative in files}
    if not force:
        present = [relative for relative, path in targets.items() if path.exists()]
        if present:
            raise StackError(f"{directory} already has {', '.join(present)}; pass --force to overwrite")
    written = []
    for relative, path in targets.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[relative], encoding="utf-8")
        except OSError as exc:
            raise StackError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written


def stack_command(*, directory: str, force: bool) -> int:
    """Handler of `eddie-otel stack DIR`; returns the exit status."""
    root = Path(directory)
    try:
        written = write_stack(root, stack_files(), force=force)
    except EddieOtelError as exc:
        print(f"eddie-otel stack: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"next: cd {shlex.quote(str(root))} && docker compose up -d")
    print(
        "then: Grafana http://127.0.0.1:3000 (admin/admin), Prometheus http://127.0.0.1:9090, "
        f"metrics http://127.0.0.1:{DEMO_PORT}/metrics/prometheus"
    )
    return 0
