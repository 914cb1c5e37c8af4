"""The container alerts under promtool: each threshold and delay is pinned by the unit test just on its other side."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from eddie_otel.ops.alerts import Thresholds, render_rules
from eddie_otel.ops.assets import ALERT_RULES

ROOT = Path(__file__).resolve().parents[2]
RULES_TEST = ROOT / "tests" / "support" / "rules" / "eddie-alerts-test.yml"


@pytest.mark.parametrize(
    ("change", "failing_test"),
    [
        (
            {"container_memory_ratio": 0.89},
            "a container at exactly 90 % of its memory limit stays silent, and so does one without a limit",
        ),
        ({"container_memory_ratio": 0.92}, "a container at 91 % of its memory limit fires after 5 minutes"),
        ({"container_memory_for": "4m"}, "a container at 91 % of its memory limit fires after 5 minutes"),
        ({"oom_for": "1m"}, "an OOM kill fires at once, including the first one of a new series; none stays silent"),
    ],
)
def test_each_container_threshold_is_pinned_by_a_unit_test(
    promtool: str, tmp_path: Path, change: dict[str, Any], failing_test: str
) -> None:
    (tmp_path / "dashboards").mkdir()
    (tmp_path / ALERT_RULES).write_text(render_rules(Thresholds(**change)), encoding="utf-8")
    (tmp_path / "tests" / "support" / "rules").mkdir(parents=True)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "support" / "rules")
    result = subprocess.run(
        [promtool, "test", "rules", "tests/support/rules/eddie-alerts-test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert f"name: {failing_test}," in result.stdout + result.stderr
