"""`python -m eddie_otel.ops.generate`: rewrites the generated files; `--check` lists the stale ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from eddie_otel.ops.alerts import render_rules
from eddie_otel.ops.assets import ALERT_RULES, DASHBOARD
from eddie_otel.ops.dashboard import render_dashboard
from eddie_otel.ops.generate import main

ROOT = Path(__file__).resolve().parents[3]


def test_checkout_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert capsys.readouterr() == ("", "")


def test_check_lists_missing_and_changed_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().err == (
        f"out of date: {DASHBOARD} (run `make generate`)\nout of date: {ALERT_RULES} (run `make generate`)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_generate_writes_the_files_then_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"wrote {DASHBOARD}\nwrote {ALERT_RULES}\n"
    assert (tmp_path / DASHBOARD).read_text(encoding="utf-8") == render_dashboard()
    assert (tmp_path / ALERT_RULES).read_text(encoding="utf-8") == render_rules()
    assert main(["--root", str(tmp_path), "--check"]) == 0

    (tmp_path / ALERT_RULES).write_text(render_rules().replace("> 10", "> 20"), encoding="utf-8")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().err == f"out of date: {ALERT_RULES} (run `make generate`)\n"
    # A second run only rewrites what changed, and is then a no-op.
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"wrote {ALERT_RULES}\n"


def test_output_is_deterministic() -> None:
    assert render_dashboard() == render_dashboard()
    assert render_rules() == render_rules()
    assert render_dashboard().endswith("}\n")
    assert render_rules().endswith("\n")


def test_root_that_is_not_a_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--root", str(tmp_path / "missing")])
    assert raised.value.code == 2
    assert f"--root: {tmp_path / 'missing'} is not a directory" in capsys.readouterr().err
