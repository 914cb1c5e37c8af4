"""A discovery directory that cannot be written, in a real process: recording goes on, one line, no retry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import eddie_otel
from eddie_otel import runtime

CALLS = 200

# 200 decorated calls and a record call with nothing configured; what the log and the counts say.
LIBRARY = textwrap.dedent(
    """
    import json, logging
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logging.getLogger("eddie_otel").addHandler(Keep())
    logging.getLogger("eddie_otel").setLevel(logging.INFO)
    import eddie_otel
    from eddie_otel import runtime

    @eddie_otel.task(stage="s", agent="a")
    def work():
        return 1

    results = [work() for _ in range(200)]
    split = eddie_otel.record_split(agent="a", chunks=2, depth=0)
    current = runtime.current()
    print(json.dumps({
        "results": sum(results),
        "split": split,
        "succeeded": current.telemetry.store.series["task_success_total"].total(),
        "serving": current.server is not None,
        "records": [[r.levelname, r.getMessage(), r.exc_info is not None] for r in records],
    }))
    """
)

EXPLICIT = textwrap.dedent(
    """
    import eddie_otel
    try:
        eddie_otel.configure(port=0)
    except eddie_otel.EddieOtelError as error:
        print(type(error).__name__, error)
    """
)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "targets"
    directory.mkdir()
    directory.chmod(0o555)
    yield directory
    directory.chmod(0o755)


def unprivileged(command: list[str]) -> list[str]:
    """`command` run so that file permissions apply to it (root overrides them: drop that capability)."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be made to refuse writes")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]


def run(code: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EDDIE_OTEL_"))}
    env.update(EDDIE_OTEL_DISCOVERY_DIR=str(directory), OTEL_EXPORTER_PROMETHEUS_PORT="0")
    return subprocess.run(
        unprivileged([sys.executable, "-c", code]), capture_output=True, text=True, timeout=120, env=env
    )


def test_a_read_only_discovery_directory_is_one_line_and_recording_goes_on(read_only: Path) -> None:
    result = run(LIBRARY, read_only)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["results"] == CALLS
    assert report["split"] is True
    assert report["succeeded"] == CALLS
    assert report["serving"] is True
    # Configured once: the info line, then the one error line; no traceback, nothing per call.
    assert report["records"] == [
        ["INFO", "eddie-otel: configure() was not called; configuring from the environment", False],
        [
            "ERROR",
            "eddie-otel: configuring from the environment (configure() was not called): "
            f"EDDIE_OTEL_DISCOVERY_DIR={read_only} is not writable: Permission denied; "
            "serving metrics without announcing them",
            False,
        ],
    ]
    assert list(read_only.iterdir()) == []


def test_configure_with_a_read_only_discovery_directory_raises_naming_the_variable(read_only: Path) -> None:
    result = run(EXPLICIT, read_only)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"DiscoveryError EDDIE_OTEL_DISCOVERY_DIR={read_only} is not writable: Permission denied"
    )


def test_a_forked_child_that_cannot_announce_records_without_announcing(tmp_path: Path) -> None:
    directory = tmp_path / "targets"
    parent = eddie_otel.configure(port=0, discovery_dir=str(directory))
    assert parent.announcement is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its directory is gone, a file in its place
        try:
            shutil.rmtree(directory)
            directory.write_text("")
            import logging

            lines: list[str] = []

            class Keep(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    lines.append(f"{record.levelname} {record.getMessage()}")

            logging.getLogger("eddie_otel").addHandler(Keep())
            for _ in range(CALLS):
                eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
            child = runtime.configured()
            report = {
                "serving": child is not None and child.server is not None,
                "announced": child is not None and child.announcement is not None,
                "merged": child.telemetry.store.series["merge_chunks_combined_total"].total() if child else None,
                "lines": [line for line in lines if not line.startswith(("INFO", "DEBUG"))],
            }
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = json.loads(pipe.read() or b"{}")
    os.waitpid(pid, 0)
    assert report == {
        "serving": True,
        "announced": False,
        "merged": CALLS,
        "lines": [
            "ERROR eddie-otel: setting up recording in this forked child with its parent's settings: "
            f"EDDIE_OTEL_DISCOVERY_DIR={directory} is not a directory; serving metrics without announcing them"
        ],
    }
