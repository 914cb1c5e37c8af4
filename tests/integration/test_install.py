"""What `pip install eddie-otel` (no extra) gives an agent process, and what it does to an application's environment.

The wheel is built once per session; each venv is new, made once per session (see
tests/support/distributions.py), and installs from PyPI through pip's cache.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from eddie_otel.cli import SERVICE_EXTRA_MISSING
from tests.support.distributions import clean_environment, new_venv, run, shared, wheel
from tests.support.helpers import sample_value

# What the `service` extra brings, none of which a core install may hold.
SERVICE_DISTRIBUTIONS = ("fastapi", "uvicorn", "starlette", "pydantic", "pydantic-core", "swagger")
# An application with its OpenTelemetry pinned, installed before eddie-otel.
APPLICATION = ("opentelemetry-sdk==1.39.1", "opentelemetry-instrumentation-requests==0.60b1", "requests")
# What eddie-otel may add to that application's environment: itself and its two requirements beyond OpenTelemetry.
MAY_ADD = ("eddie-otel", "prometheus-client", "pyyaml")

# An agent process: configure on a free port, record a decorated task and a split, scrape over HTTP.
AGENT = """
import json, sys, urllib.request
import eddie_otel

runtime = eddie_otel.configure(service_name="install-test", port=0)

@eddie_otel.task(stage="codegen", agent="python-agent")
def run(task):
    return task * 2

assert run(21) == 42
assert eddie_otel.record_split(agent="python-agent", chunks=3, depth=1)
port = runtime.server.port
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/prometheus", timeout=10) as response:
    exposition = response.read().decode()
eddie_otel.shutdown()
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"fastapi", "starlette", "uvicorn", "pydantic"})
service = sorted(name for name in sys.modules if name.startswith("eddie_otel.service"))
print(json.dumps({"file": eddie_otel.__file__, "exposition": exposition, "loaded": loaded, "service": service}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def freeze(python: Path, cwd: Path) -> dict[str, str]:
    """`pip freeze` of the venv of `python`: canonical distribution name -> its line."""
    lines = run([str(python), "-m", "pip", "freeze"], cwd=cwd, env=clean_environment()).stdout.splitlines()
    return {canonical(re.split(r"[=@ ]", line, maxsplit=1)[0]): line for line in lines if line.strip()}


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a new venv holding the wheel and nothing else asked for."""
    built = wheel(tmp_path_factory)

    def make(directory: Path) -> None:
        bin_dir = new_venv(directory / "venv")
        run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(built)], cwd=directory)

    return shared(tmp_path_factory, "core-venv", make) / "venv" / "bin"


def test_a_core_install_holds_nothing_of_the_service(core: Path, tmp_path: Path) -> None:
    done = run([str(core / "python"), "-m", "pip", "list", "--format=json"], cwd=tmp_path, env=clean_environment())
    names = {canonical(entry["name"]) for entry in json.loads(done.stdout)}
    assert "eddie-otel" in names
    assert {"opentelemetry-api", "opentelemetry-sdk", "prometheus-client", "pyyaml"} <= names
    assert [name for name in names if name.startswith(SERVICE_DISTRIBUTIONS)] == []
    assert "opentelemetry-exporter-prometheus" not in names


def test_a_core_install_records_and_serves_its_endpoint(core: Path, tmp_path: Path) -> None:
    done = run([str(core / "python"), "-c", AGENT], cwd=tmp_path, timeout=60, env=clean_environment())
    result = json.loads(done.stdout.splitlines()[-1])
    # The installed package, not the checkout.
    assert Path(result["file"]).is_relative_to(core.parent)
    assert sample_value(result["exposition"], "task_split_total", agent="python-agent") == 1
    assert sample_value(result["exposition"], "task_split_chunks_total", agent="python-agent") == 3
    assert sample_value(result["exposition"], "task_success_total", stage="codegen") == 1
    assert sample_value(result["exposition"], "agent_tasks_executed_total", agent="python-agent") == 1
    assert result["loaded"] == []
    assert result["service"] == []


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_service_in_a_core_install_names_its_extra(core: Path, command: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(core / "eddie-otel"), command, "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_environment(),
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", SERVICE_EXTRA_MISSING + "\n")
    assert "eddie-otel[service]" in done.stderr


def test_the_ops_commands_run_in_a_core_install(core: Path, tmp_path: Path) -> None:
    env = clean_environment()
    assert "grafana-setup" in run([str(core / "eddie-otel"), "--help"], cwd=tmp_path, env=env).stdout
    slo = run([str(core / "eddie-otel"), "slo", "--format", "openslo"], cwd=tmp_path, env=env).stdout
    assert "apiVersion: openslo/v1" in slo
    run([str(core / "eddie-otel"), "stack", "stack", "--agents", "1"], cwd=tmp_path, env=env)
    assert (tmp_path / "stack" / "compose.yaml").is_file()


def test_installing_into_a_pinned_application_adds_and_changes_nothing_else(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    built = wheel(tmp_path_factory)
    python = new_venv(tmp_path / "venv") / "python"
    env = clean_environment()
    run([str(python), "-m", "pip", "install", "--quiet", *APPLICATION], cwd=tmp_path, env=env)
    before = freeze(python, tmp_path)
    assert before["opentelemetry-sdk"] == "opentelemetry-sdk==1.39.1"

    run([str(python), "-m", "pip", "install", "--quiet", str(built)], cwd=tmp_path, env=env)
    after = freeze(python, tmp_path)

    # Every line of the application's freeze is still there, unchanged; the new lines are eddie-otel's own
    # and those of its requirements the application did not already have.
    assert {name: line for name, line in after.items() if name in before} == before
    added = set(after) - set(before)
    assert added == {"eddie-otel"} | {name for name in MAY_ADD if name not in before}
    assert after["eddie-otel"].startswith("eddie-otel @ file:")
    check = run([str(python), "-m", "pip", "check"], cwd=tmp_path, env=env)
    assert "No broken requirements found." in check.stdout
