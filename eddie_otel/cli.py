"""The `eddie-otel` command: argument parsing only; each command's work lives in its module.

Each command's handler is imported when the command runs, so `--help` and the ops
commands do not pay for FastAPI and uvicorn, and work without the `service` extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from eddie_otel._version import __version__
from eddie_otel.config import DEFAULT_HOST, DEFAULT_PORT, MAX_PORT, MIN_PORT, TRACE_EXPORTERS
from eddie_otel.endpoint import METRICS_PATH
from eddie_otel.environment import GRAFANA_API_KEY

__all__ = ["SERVICE_EXTRA_MISSING", "main"]

DEFAULT_METRICS_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
# docker-watch's endpoint (eddie_otel.docker.command.DEFAULT_PORT), beside the agents' port.
DOCKER_WATCH_PORT = 8504
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
# What `serve` and `demo` print, and exit 2 with, when the `service` extra is not installed.
SERVICE_EXTRA_MISSING = "eddie-otel: the metrics service needs the service extra: pip install 'eddie-otel[service]'"
# The modules of the `service` extra's distributions and of what they bring (starlette, h11, pydantic_core,
# the instrumentation packages): a missing one means the extra is not (fully) installed.
_SERVICE_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "h11",
    "pydantic",
    "pydantic_core",
    "swagger_ui_bundle",
    "opentelemetry.instrumentation",
    "opentelemetry.util.http",
)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, not {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not MIN_PORT <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"port must be between {MIN_PORT} and {MAX_PORT}, not {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _from_service_extra(error: ModuleNotFoundError) -> bool:
    """Whether `error` is about a module of the `service` extra (any other missing module is a bug: raised)."""
    name = error.name or ""
    return any(name == module or name.startswith(f"{module}.") for module in _SERVICE_MODULES)


def _service_extra_missing() -> int:
    print(SERVICE_EXTRA_MISSING, file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    try:
        from eddie_otel.service.server import serve_command
    except ModuleNotFoundError as error:
        if not _from_service_extra(error):
            raise
        return _service_extra_missing()

    return serve_command(host=args.host, port=args.port, docker=args.docker, docker_host=args.docker_host)


def _demo(args: argparse.Namespace) -> int:
    try:
        from eddie_otel.service.demo import demo_command
    except ModuleNotFoundError as error:
        if not _from_service_extra(error):
            raise
        return _service_extra_missing()

    return demo_command(
        host=args.host,
        port=args.port,
        duration=args.duration,
        seed=args.seed,
        agents=args.agents,
        traces=args.traces,
    )


def _docker_watch(args: argparse.Namespace) -> int:
    from eddie_otel.docker.command import docker_watch_command

    return docker_watch_command(docker_host=args.docker_host, label=args.label, host=args.host, port=args.port)


def _grafana_setup(args: argparse.Namespace) -> int:
    from eddie_otel.ops.grafana import setup_command

    return setup_command(
        grafana_url=args.grafana_url,
        prometheus_url=args.prometheus_url,
        api_key=args.api_key,
        dashboard=args.dashboard,
        dry_run=args.dry_run,
    )


def _stack(args: argparse.Namespace) -> int:
    from eddie_otel.ops.stack import stack_command

    return stack_command(directory=args.dir, force=args.force, agents=args.agents)


def _doctor(args: argparse.Namespace) -> int:
    from eddie_otel.ops.doctor import doctor_command

    return doctor_command(
        metrics_url=args.metrics_url,
        prometheus_url=args.prometheus_url,
        grafana_url=args.grafana_url,
        api_key=args.api_key,
        discovery_dir=args.discovery_dir,
    )


def _summary(args: argparse.Namespace) -> int:
    from eddie_otel.ops.fleet import summary_command

    return summary_command(prometheus_url=args.prometheus_url, job=args.job)


def _slo(args: argparse.Namespace) -> int:
    from eddie_otel.ops.sloexport import slo_command

    return slo_command(format=args.format, output=args.output)


def _add_listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default: OTEL_EXPORTER_PROMETHEUS_HOST or {DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"port to listen on (default: OTEL_EXPORTER_PROMETHEUS_PORT or {DEFAULT_PORT})",
    )


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the metrics service (/metrics/prometheus, /metrics/summary, /metrics/health, /events)",
        description="Run the metrics service: Prometheus endpoint, JSON summary, health check and event webhooks.",
    )
    _add_listen(parser)
    parser.add_argument(
        "--docker",
        action="store_true",
        help="also watch the Docker Engine and record its labelled containers, as docker-watch does (docker extra)",
    )
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        default=None,
        help="with --docker: the engine to watch (default: DOCKER_HOST, else the local socket)",
    )
    parser.set_defaults(handler=_serve)


def _add_docker_watch(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "docker-watch",
        help="record the limits, usage and OOM kills of the labelled containers of a Docker Engine",
        description=(
            "Watch one Docker Engine and record every container carrying the label (container = its name): "
            "CPU and memory limits and their elastic adjustments, CPU, throttling and memory usage, OOM kills. "
            f"Serves {METRICS_PATH}, /metrics/summary and /metrics/health (default 127.0.0.1:{DOCKER_WATCH_PORT}). "
            "Needs the docker extra."
        ),
    )
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        default=None,
        help="the engine, for example unix:///var/run/docker.sock (default: DOCKER_HOST, else the local socket)",
    )
    parser.add_argument(
        "--label",
        metavar="KEY[=VALUE]",
        default="eddie.agent",
        help="watch the containers carrying this label (default: eddie.agent, any value)",
    )
    parser.add_argument("--host", default=None, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=None, help=f"port to listen on (default: {DOCKER_WATCH_PORT})")
    parser.set_defaults(handler=_docker_watch)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the metrics service with a simulated distributed-fallback workload",
        description="Run the metrics service and a simulated workload that drives every metric.",
    )
    _add_listen(parser)
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=0.0,
        help="seconds to run; 0 runs until stopped (default: 0)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed; a seed gives the same run (default: 42)")
    parser.add_argument("--agents", type=_count, default=4, help="number of simulated agents (default: 4)")
    parser.add_argument(
        "--traces",
        choices=TRACE_EXPORTERS,
        default=None,
        help="export the workload's spans to the console or over OTLP (default: OTEL_TRACES_EXPORTER, else none)",
    )
    parser.set_defaults(handler=_demo)


def _add_grafana_setup(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "grafana-setup",
        help="create or update the Grafana datasource, dashboard and alert rules",
        description=(
            "Create or update the Prometheus datasource, the eddie folder and dashboard, and the "
            "Grafana-managed alert rules. Running it again updates them in place."
        ),
    )
    parser.add_argument("--grafana-url", required=True, help="Grafana base URL, for example http://localhost:3000")
    parser.add_argument(
        "--prometheus-url",
        default="http://prometheus:9090",
        help="URL Grafana uses to reach Prometheus (default: http://prometheus:9090)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"Grafana service-account token (default: the {GRAFANA_API_KEY} environment variable; never printed)",
    )
    parser.add_argument("--dashboard", default=None, help="dashboard JSON file (default: the one shipped)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")
    parser.set_defaults(handler=_grafana_setup)


def _add_stack(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "stack",
        help="write a monitoring stack running a fleet of agents (Compose v2) into DIR",
        description=(
            "Write a Compose v2 stack into DIR: N agent processes built from a wheel written there, the "
            "metrics service, Prometheus (DNS discovery of the agents, the rules), Alertmanager, Grafana "
            "provisioned, and the Collector."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="directory to write into (created if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite files that already exist")
    parser.add_argument(
        "--agents", type=_count, default=3, help="agent processes (compose replicas) running the demo (default: 3)"
    )
    parser.set_defaults(handler=_stack)


def _add_doctor(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check the metrics endpoint, Prometheus and Grafana in order and say which step fails",
        description="Run the troubleshooting checks in order; stop at the first failure and say what to do.",
    )
    parser.add_argument(
        "--metrics-url",
        default=None,
        help=f"the endpoint's base URL, or its {METRICS_PATH} URL (default: {DEFAULT_METRICS_URL}; "
        "with --discovery-dir and no --metrics-url: every process announced there)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=DEFAULT_PROMETHEUS_URL,
        help=f"Prometheus base URL (default: {DEFAULT_PROMETHEUS_URL})",
    )
    parser.add_argument("--grafana-url", default=None, help="Grafana base URL; the Grafana check runs only when given")
    parser.add_argument(
        "--api-key", default=None, help=f"Grafana token (default: the {GRAFANA_API_KEY} environment variable)"
    )
    parser.add_argument(
        "--discovery-dir",
        metavar="DIR",
        default=None,
        help="the EDDIE_OTEL_DISCOVERY_DIR of the fleet: report files whose process is gone",
    )
    parser.set_defaults(handler=_doctor)


def _add_summary(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "summary",
        help="print the summary of the whole fleet, computed with PromQL over every instance Prometheus scrapes",
        description=(
            "Print the fleet's summary as JSON: the schema of GET /metrics/summary (totals, agents, latency, "
            "windows, indicators) plus the instances, summed over every live instance by Prometheus."
        ),
    )
    parser.add_argument(
        "--prometheus-url", required=True, help="Prometheus base URL, for example http://127.0.0.1:9090"
    )
    parser.add_argument("--job", default=None, help="scrape job to summarise (default: every job with target_info)")
    parser.set_defaults(handler=_summary)


def _add_slo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "slo",
        help="write the service-level objectives as a sloth or OpenSLO file",
        description=(
            "Write the objectives (task success ≥ 95 %, 99 % of tasks under 60 s, over 30 days) in the format "
            "of sloth (prometheus/v1) or OpenSLO (v1), for teams that generate their SLO rules with those tools."
        ),
    )
    parser.add_argument("--format", choices=("sloth", "openslo"), required=True, help="output format")
    parser.add_argument("--output", metavar="FILE", default=None, help="file to write (default: standard output)")
    parser.set_defaults(handler=_slo)


def _recommend(args: argparse.Namespace) -> int:
    from eddie_otel.ops.recommend import recommend_command

    return recommend_command(prometheus_url=args.prometheus_url, job=args.job, as_json=args.json)


def _add_recommend(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "recommend",
        help="recommend a timeout per job and stage from what Prometheus holds (1.5 x the p99 over a day)",
        description=(
            "For each job and stage with tasks in the last 7 days: the timeout in use (the largest any instance "
            "reports), p50/p95/p99 over 1 d and 7 d, the share of tasks that timed out over 1 d, the recommended "
            "timeout (1.5 x the 1 d p99) and why: too tight (more than 5 % timed out), too loose (the 1 d p99 "
            "below a third of the timeout), ok, or not enough data (fewer than 50 tasks in the day: nothing is "
            "recommended)."
        ),
    )
    parser.add_argument(
        "--prometheus-url", required=True, help="Prometheus base URL, for example http://127.0.0.1:9090"
    )
    parser.add_argument("--job", default=None, help="scrape job to look at (default: every job)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")
    parser.set_defaults(handler=_recommend)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `eddie-otel`."""
    parser = argparse.ArgumentParser(
        prog="eddie-otel",
        description="Metrics for the Eddie distributed-fallback agent system: service, demo and ops tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_serve,
        _add_docker_watch,
        _add_demo,
        _add_grafana_setup,
        _add_stack,
        _add_doctor,
        _add_summary,
        _add_slo,
        _add_recommend,
    ):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `eddie-otel` with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
