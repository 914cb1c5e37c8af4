"""A real Prometheus server for tests: own config and storage in a temporary directory, loopback only."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port
from tests.support.helpers import server_ready, wait_until


class PrometheusServer:
    """Starts `prometheus` scraping `targets` (and `more_jobs`) every `interval`; stop() ends it.

    `alertmanagers` (host:port) receive the alerts of `rule_files`; `extra_args` go to the command line.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        targets: list[str],
        *,
        metrics_path: str = "/metrics/prometheus",
        interval: str = "1s",
        rule_files: list[Path] | None = None,
        job: str = "eddie",
        file_sd_dir: Path | None = None,
        more_jobs: dict[str, list[str]] | None = None,
        alertmanagers: list[str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        rules = []
        for rule_file in rule_files or []:
            copy = workdir / rule_file.name
            shutil.copyfile(rule_file, copy)
            rules.append(copy.name)
        scrape_configs: list[dict[str, Any]] = []
        for name, addresses in {job: targets, **(more_jobs or {})}.items():
            scrape: dict[str, Any] = {"job_name": name, "metrics_path": metrics_path}
            if name == job and file_sd_dir is not None:
                # Targets from the discovery files eddie-otel processes write (docs/contract.md §8).
                scrape["file_sd_configs"] = [{"files": [str(file_sd_dir / "*.json")], "refresh_interval": "1s"}]
            else:
                scrape["static_configs"] = [{"targets": addresses}]
            scrape_configs.append(scrape)
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": rules,
            "scrape_configs": scrape_configs,
        }
        if alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self._log = (workdir / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                *(extra_args or []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        self.log_path = workdir / "prometheus.log"
        self.wait_until(self._ready, 30, "Prometheus did not become ready")

    def _ready(self) -> bool:
        return server_ready("prometheus", self._process, self.log_path, self.url)

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its `data`."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        data = self.api("query", query=expr)
        return list(data["result"])

    def wait_until(self, condition: Callable[[], bool], timeout: float, message: str) -> None:
        """Poll `condition` until true, or fail with `message` after `timeout` seconds."""
        wait_until(condition, timeout, message, interval=0.2)

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._log.close()


def promtool_expressions(promtool: str, test_file: Path, series: dict[str, str], tests: list[dict[str, object]]) -> str:
    """Run `tests` (promql_expr_test cases) over `series` at a 1-minute interval with `promtool test rules`.

    Fails with promtool's output when a case fails; returns its output otherwise.
    """
    import yaml

    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in series.items()],
                "promql_expr_test": tests,
            }
        ],
    }
    test_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
