"""`eddie-otel stack DIR`: a monitoring stack that runs a fleet (compose file and every config it mounts).

The files come from the shipped assets (`eddie_otel.ops.assets`), so the command
works the same from a checkout and from an installed wheel. The agents' image is
built from DIR itself: the command writes a wheel of the running eddie-otel
(`eddie_otel.ops.wheel`) and a Dockerfile that installs it, so no published package
is needed. Inside compose:

- `eddie-agent`: N replicas (`deploy.replicas`) of the demo workload, each serving its own endpoint on :8503;
- `eddie-service`: the metrics service (webhooks, and the fleet's summary through Prometheus);
- `eddie-docker-watch`: `eddie-otel docker-watch` on :8504, the agents' container limits, usage and
  OOM kills read from the host's Docker Engine (the agents carry the `eddie.agent` label);
- Prometheus finds every replica through DNS service discovery of `eddie-agent`
  (`dns_sd_configs`, type A, port 8503), loads the rules and sends alerts to Alertmanager;
- Alertmanager routes them with the shipped dashboards/alertmanager.yml;
- Grafana is provisioned with the datasource and the dashboard;
- the Collector scrapes the agents the same way and exports only to its own Prometheus
  exporter and the debug log until a backend is configured (see the collector file's header).

Compose v2 (`docker compose`) is required: the file has a top-level `name:`, which
docker-compose 1.x rejects.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from eddie_otel.endpoint import HEALTH_PATH
from eddie_otel.errors import EddieOtelError
from eddie_otel.ops import alerts, assets, wheel, yamlfile

__all__ = [
    "AGENT_SERVICE",
    "ALERTMANAGER_IMAGE",
    "BASE_IMAGE",
    "COLLECTOR_IMAGE",
    "DEFAULT_AGENTS",
    "GRAFANA_IMAGE",
    "PROMETHEUS_IMAGE",
    "StackError",
    "agent_command",
    "stack_command",
    "stack_files",
    "write_stack",
]

PROMETHEUS_IMAGE = "prom/prometheus:v2.54.1"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"
GRAFANA_IMAGE = "grafana/grafana:11.3.0"
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.111.0"
BASE_IMAGE = "python:3.12-slim"

AGENT_SERVICE = "eddie-agent"
SERVICE = "eddie-service"
PORT = 8503
# The Docker watcher beside the agents, and the limits the agents run with (what it shows).
DOCKER_WATCH_SERVICE = "eddie-docker-watch"
DOCKER_WATCH_PORT = 8504
DOCKER_SOCKET = "/var/run/docker.sock"
AGENT_LIMITS = {"cpus": "1.0", "memory": "512M"}
DEFAULT_AGENTS = 3
# Simulated agents inside each agent process (the demo's --agents).
_SIMULATED_AGENTS = 4
PROMETHEUS_URL = "http://prometheus:9090"
ALERTMANAGER_ADDRESS = "alertmanager:9093"
# Retention is a server flag, not a prometheus.yml setting (Prometheus rejects it there).
RETENTION_TIME = "15d"
RETENTION_SIZE = "5GB"

COMPOSE = "compose.yaml"
IMAGE_DIR = "image"
DOCKERFILE = f"{IMAGE_DIR}/Dockerfile"
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
PROMETHEUS_RULES = "prometheus/prometheus-alerts.yml"
ALERTMANAGER_CONFIG = "alertmanager/alertmanager.yml"
ALERTMANAGER_SECRETS = "alertmanager/secrets"
GRAFANA_PROVISIONING = "grafana/provisioning"
GRAFANA_DASHBOARDS = "grafana/dashboards"
COLLECTOR_CONFIG = "otel-collector/collector-config.yaml"

# Where the Grafana image reads provisioning, the Collector image its config, Alertmanager its own.
_GRAFANA_PROVISIONING_MOUNT = "/etc/grafana/provisioning"
_COLLECTOR_CONFIG_MOUNT = "/etc/otelcol-contrib/config.yaml"
_ALERTMANAGER_MOUNT = "/etc/alertmanager"
_DEFAULT_DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
# Exporters of the shipped collector config that need a backend outside the stack: off until configured.
_BACKEND_EXPORTERS = ("prometheusremotewrite", "otlp")


class StackError(EddieOtelError):
    """The stack cannot be written; the message is one line for the operator."""


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StackError(f"shipped file {path} cannot be read: {exc}") from None


def _agent_discovery() -> list[dict[str, Any]]:
    # Every replica of the scaled service is one A record of its name on compose's DNS.
    return [{"names": [AGENT_SERVICE], "type": "A", "port": PORT, "refresh_interval": "30s"}]


def _prometheus_config() -> str:
    config = _load_yaml(assets.asset_path(assets.PROMETHEUS_CONFIG))
    jobs = [job for job in config.get("scrape_configs") or [] if job.get("job_name") == alerts.JOB]
    if not jobs:
        raise StackError(f"shipped {assets.PROMETHEUS_CONFIG} has no scrape job {alerts.JOB!r}")
    job = jobs[0]
    job.pop("file_sd_configs", None)
    job["static_configs"] = [{"targets": [f"{SERVICE}:{PORT}", f"{DOCKER_WATCH_SERVICE}:{DOCKER_WATCH_PORT}"]}]
    job["dns_sd_configs"] = _agent_discovery()
    # One job holds the fleet: drop the shipped examples of other ways to find it.
    config["scrape_configs"] = [job]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER_ADDRESS]}]}]}
    # Relative rule files resolve against the config file's directory: the rules sit beside it.
    config["rule_files"] = [PurePosixPath(PROMETHEUS_RULES).name]
    header = (
        "# Prometheus configuration of the eddie-otel compose stack (written by `eddie-otel stack`).\n"
        f"# Scrapes every replica of {AGENT_SERVICE} (DNS service discovery: one A record per replica)\n"
        f"# {SERVICE} and {DOCKER_WATCH_SERVICE}, loads the rules beside this file and sends alerts to\n"
        "# Alertmanager.\n"
        "# Retention is set by the server flags in compose.yaml (--storage.tsdb.retention.*),\n"
        "# not here: Prometheus rejects retention settings in this file.\n"
    )
    return yamlfile.dump(config, header)


def _collector_config() -> str:
    config = _load_yaml(assets.asset_path(assets.COLLECTOR_CONFIG))
    try:
        receiver = config["receivers"]["prometheus"]["config"]["scrape_configs"][0]
        pipeline = config["service"]["pipelines"]["metrics"]
    except (KeyError, IndexError, TypeError):
        raise StackError(f"shipped {assets.COLLECTOR_CONFIG} has no prometheus receiver or metrics pipeline") from None
    receiver.pop("static_configs", None)
    receiver["dns_sd_configs"] = _agent_discovery()
    pipeline["exporters"] = [name for name in pipeline.get("exporters", []) if name not in _BACKEND_EXPORTERS]
    header = (
        "# OpenTelemetry Collector of the eddie-otel compose stack (written by `eddie-otel stack`).\n"
        f"# It scrapes every replica of {AGENT_SERVICE} and accepts OTLP on :4317 and :4318 (agents on\n"
        "# other hosts push there), and exports to its Prometheus exporter (:8889) and the debug log only.\n"
        "#\n"
        "# The backends outside the stack are defined below but off. To turn one on, set its endpoint\n"
        "# in compose.yaml's otel-collector environment (EDDIE_OTELCOL_REMOTE_WRITE_URL for\n"
        "# prometheusremotewrite; EDDIE_OTELCOL_OTLP_BACKEND, and EDDIE_OTELCOL_OTLP_INSECURE=true without\n"
        "# TLS, for otlp) and add the exporter to service.pipelines.metrics.exporters, then\n"
        "# `docker compose up -d otel-collector`. The stack's Prometheus must not also receive what the\n"
        "# Collector exports: every series would be stored twice.\n"
    )
    return yamlfile.dump(config, header)


def agent_command(port: int = PORT) -> list[str]:
    """The command line of an agent replica: the demo workload, serving its endpoint on every interface."""
    return ["eddie-otel", "demo", "--host", "0.0.0.0", "--port", str(port), "--agents", str(_SIMULATED_AGENTS)]


def _dockerfile(wheel_file: str) -> str:
    return f"""# The image of the eddie-otel agents and service (written by `eddie-otel stack`).
# It installs the wheel beside this file, made from the eddie-otel that wrote the stack:
# no published package is needed. `eddie-otel stack --force` writes a new wheel after an upgrade.
FROM {BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/eddie-otel
COPY {wheel_file} ./
RUN pip install --no-cache-dir './{wheel_file}[service,docker]'
USER nobody
EXPOSE {PORT}
CMD {json.dumps(agent_command())}
"""


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


def _compose(dashboards_mount: str, agents: int) -> str:
    def local(port: int, inside: int | None = None) -> str:
        # 127.0.0.1 only: the stack has default passwords and no TLS.
        return f"127.0.0.1:{port}:{inside or port}"

    def healthcheck_on(port: int) -> dict[str, Any]:
        health_url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
        return {
            "test": ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen({health_url!r})"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "20s",
        }

    healthcheck = healthcheck_on(PORT)
    build = {"context": f"./{IMAGE_DIR}"}
    compose: dict[str, Any] = {
        "name": "eddie-otel",
        "services": {
            AGENT_SERVICE: {
                "build": build,
                "command": agent_command(),
                # No published port: the replicas would collide on it; Prometheus reaches each one inside.
                "environment": {"OTEL_SERVICE_NAME": AGENT_SERVICE},
                # The label is what eddie-docker-watch watches; the limits are what it shows.
                "labels": {"eddie.agent": AGENT_SERVICE},
                "deploy": {"replicas": agents, "resources": {"limits": dict(AGENT_LIMITS)}},
                "healthcheck": healthcheck,
                "restart": "unless-stopped",
            },
            SERVICE: {
                "build": build,
                "command": ["eddie-otel", "serve", "--host", "0.0.0.0", "--port", str(PORT)],
                "environment": {
                    "OTEL_SERVICE_NAME": SERVICE,
                    # GET /metrics/summary?scope=fleet asks this Prometheus for the whole fleet.
                    "EDDIE_OTEL_PROMETHEUS_URL": PROMETHEUS_URL,
                    "EDDIE_OTEL_WEBHOOK_TOKEN": "${EDDIE_OTEL_WEBHOOK_TOKEN:-}",
                },
                "ports": [local(PORT)],
                "healthcheck": healthcheck,
                "restart": "unless-stopped",
            },
            DOCKER_WATCH_SERVICE: {
                "build": build,
                "command": ["eddie-otel", "docker-watch", "--host", "0.0.0.0", "--port", str(DOCKER_WATCH_PORT)],
                "environment": {"OTEL_SERVICE_NAME": DOCKER_WATCH_SERVICE},
                # The engine's API: root on the host, whatever the mount says (":ro" makes the socket file
                # read-only, not the API), so the watcher runs as root like the engine it reads.
                "user": "root",
                "volumes": [f"{DOCKER_SOCKET}:{DOCKER_SOCKET}:ro"],
                "ports": [local(DOCKER_WATCH_PORT)],
                "healthcheck": healthcheck_on(DOCKER_WATCH_PORT),
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
                "depends_on": ["alertmanager"],
                "restart": "unless-stopped",
            },
            "alertmanager": {
                "image": ALERTMANAGER_IMAGE,
                "command": [f"--config.file={_ALERTMANAGER_MOUNT}/alertmanager.yml", "--storage.path=/alertmanager"],
                "volumes": [
                    f"./{PurePosixPath(ALERTMANAGER_CONFIG).parent}:{_ALERTMANAGER_MOUNT}:ro",
                    "alertmanager-data:/alertmanager",
                ],
                "ports": [local(9093)],
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
                    # Read only by exporters that are off until added to the pipeline (see the config's header).
                    "EDDIE_OTELCOL_REMOTE_WRITE_URL": "${EDDIE_OTELCOL_REMOTE_WRITE_URL:-}",
                    "EDDIE_OTELCOL_OTLP_BACKEND": "${EDDIE_OTELCOL_OTLP_BACKEND:-}",
                    "EDDIE_OTELCOL_OTLP_INSECURE": "${EDDIE_OTELCOL_OTLP_INSECURE:-false}",
                },
                "volumes": [f"./{COLLECTOR_CONFIG}:{_COLLECTOR_CONFIG_MOUNT}:ro"],
                "ports": [local(4317), local(4318), local(8889), local(13133)],
                "restart": "unless-stopped",
            },
        },
        "volumes": {"prometheus-data": {}, "alertmanager-data": {}, "grafana-data": {}},
    }
    header = (
        "# The eddie-otel monitoring stack (written by `eddie-otel stack`). Needs Compose v2:\n"
        "#   docker compose up -d --build\n"
        f"# {agents} replicas of {AGENT_SERVICE} run the demo workload (change them with\n"
        f"#   docker compose up -d --scale {AGENT_SERVICE}=N); Prometheus finds each by DNS.\n"
        "# Grafana http://127.0.0.1:3000 (admin/admin), Prometheus http://127.0.0.1:9090,\n"
        f"# Alertmanager http://127.0.0.1:9093, the service http://127.0.0.1:{PORT} (the fleet's summary at\n"
        f"# /metrics/summary?scope=fleet), the Collector's OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP).\n"
        f"# Alertmanager reads the PagerDuty key and the Slack URL from {ALERTMANAGER_SECRETS}/.\n"
    )
    return yamlfile.dump(compose, header)


_SECRETS_README = """Alertmanager reads its receivers' secrets from this directory (/etc/alertmanager/secrets inside):

  pagerduty-routing-key   the PagerDuty Events v2 routing key (critical alerts)
  slack-webhook-url       the Slack incoming-webhook URL (warnings)

Write each value into its file (no trailing text), keep them out of version control, then
`docker compose restart alertmanager`. Until they exist, notifications fail and Alertmanager logs why.
"""


def stack_files(agents: int = DEFAULT_AGENTS) -> dict[str, str]:
    """Every text file of the stack: path relative to the stack directory → text (the wheel is apart)."""
    if agents < 1:
        raise StackError(f"--agents must be at least 1, not {agents}")
    provisioning, dashboards_mount = _provisioning()
    dashboard = assets.asset_path(assets.DASHBOARD)
    return {
        COMPOSE: _compose(dashboards_mount, agents),
        DOCKERFILE: _dockerfile(wheel.wheel_name()),
        PROMETHEUS_CONFIG: _prometheus_config(),
        PROMETHEUS_RULES: assets.asset_path(assets.ALERT_RULES).read_text(encoding="utf-8"),
        ALERTMANAGER_CONFIG: assets.asset_path(assets.ALERTMANAGER_CONFIG).read_text(encoding="utf-8"),
        f"{ALERTMANAGER_SECRETS}/README": _SECRETS_README,
        **provisioning,
        f"{GRAFANA_DASHBOARDS}/{dashboard.name}": dashboard.read_text(encoding="utf-8"),
        COLLECTOR_CONFIG: _collector_config(),
    }


def write_stack(directory: Path, files: Mapping[str, str], force: bool = False) -> list[Path]:
    """Write `files` and the agents' wheel under `directory`; without `force`, refuse (writing nothing) when any
    already exists."""
    if directory.exists() and not directory.is_dir():
        raise StackError(f"{directory} exists and is not a directory")
    wheel_file = f"{IMAGE_DIR}/{wheel.wheel_name()}"
    targets = {relative: directory / relative for relative in (*files, wheel_file)}
    if not force:
        present = [relative for relative, path in targets.items() if path.exists()]
        if present:
            raise StackError(f"{directory} already has {', '.join(present)}; pass --force to overwrite")
    written = []
    for relative, text in files.items():
        path = targets[relative]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StackError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    try:
        written.append(wheel.build_wheel(targets[wheel_file].parent))
    except OSError as exc:
        raise StackError(f"cannot write {targets[wheel_file]}: {exc.strerror or exc}") from None
    return written


def stack_command(*, directory: str, force: bool, agents: int = DEFAULT_AGENTS) -> int:
    """Handler of `eddie-otel stack DIR`; returns the exit status."""
    root = Path(directory)
    try:
        written = write_stack(root, stack_files(agents), force=force)
    except EddieOtelError as exc:
        print(f"eddie-otel stack: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"next: cd {shlex.quote(str(root))} && docker compose up -d --build   (Compose v2)")
    print(
        "then: Grafana http://127.0.0.1:3000 (admin/admin), Prometheus http://127.0.0.1:9090, "
        f"fleet summary http://127.0.0.1:{PORT}/metrics/summary?scope=fleet"
    )
    return 0
