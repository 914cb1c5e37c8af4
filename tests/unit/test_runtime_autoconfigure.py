"""Recording with no configure(): what cannot be set up is said once in one line, left out, and never retried."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import eddie_otel
from eddie_otel import runtime
from eddie_otel.config import DEFAULT_PORT
from eddie_otel.discovery import DiscoveryError
from tests.support.helpers import sample_value

CALLS = 200


@eddie_otel.task(stage="s", agent="a")
def work() -> int:
    return 1


def eddie_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "eddie_otel"]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The eddie_otel records at error level or above, checked to be one line each without a traceback."""
    found = [record for record in eddie_records(caplog) if record.levelno >= logging.ERROR]
    for record in found:
        assert record.exc_info is None
        assert "\n" not in record.getMessage()
    return [record.getMessage() for record in found]


def succeeded() -> float:
    return sample_value(runtime.current().telemetry.exposition()[0].decode(), "task_success_total", stage="s")


def run_calls(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="eddie_otel")
    for _ in range(CALLS):
        assert work() == 1


@contextlib.contextmanager
def port_taken(port: int) -> Iterator[None]:
    """`port` taken on the loopback: by this socket, or already by something else."""
    with socket.socket() as sock:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def test_unreadable_variables_are_ignored_with_their_defaults(
    port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EDDIE_OTEL_MAX_FALLBACK_DEPTH", "deep")
    monkeypatch.setenv("EDDIE_OTEL_MAX_LABEL_VALUES", "many")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))

    run_calls(caplog)
    # The default depth (3) applies: splitting at 3 is allowed, at 4 refused; nothing raises.
    assert eddie_otel.record_split(agent="a", chunks=2, depth=3) is True
    assert eddie_otel.record_split(agent="a", chunks=2, depth=4) is False

    assert errors(caplog) == [
        "eddie-otel: configuring from the environment (configure() was not called): "
        "EDDIE_OTEL_MAX_FALLBACK_DEPTH must be an integer, not 'deep'; "
        "EDDIE_OTEL_MAX_LABEL_VALUES must be an integer, not 'many'; "
        "recording with the defaults for EDDIE_OTEL_MAX_FALLBACK_DEPTH and EDDIE_OTEL_MAX_LABEL_VALUES"
    ]
    assert len(eddie_records(caplog)) == 2  # and the info line that configure() was not called
    assert succeeded() == CALLS
    # The readable variables still count: the endpoint is on the port they name.
    served = runtime.current().server
    assert served is not None
    assert served.port == port
    # configure() itself still refuses the variable.
    with pytest.raises(eddie_otel.ConfigurationError, match="EDDIE_OTEL_MAX_FALLBACK_DEPTH must be an integer"):
        eddie_otel.configure()


def test_an_unreadable_port_uses_the_default_and_a_taken_one_records_without_serving(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "abc")
    with port_taken(DEFAULT_PORT):
        run_calls(caplog)
        split = eddie_otel.record_split(agent="a", chunks=2, depth=0)

    assert split is True
    (line,) = errors(caplog)
    assert line.startswith(
        "eddie-otel: configuring from the environment (configure() was not called): "
        "OTEL_EXPORTER_PROMETHEUS_PORT must be an integer, not 'abc'; "
        f"cannot serve metrics on 127.0.0.1:{DEFAULT_PORT}: "
    )
    assert line.endswith("; recording without serving metrics, with the default for OTEL_EXPORTER_PROMETHEUS_PORT")
    assert "could not start recording" not in caplog.text
    assert runtime.current().server is None
    assert succeeded() == CALLS


def test_a_discovery_directory_that_cannot_be_written_serves_without_announcing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    directory = tmp_path / "file" / "targets"  # under a file: no one can write there, root included
    monkeypatch.setenv("EDDIE_OTEL_DISCOVERY_DIR", str(directory))
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")

    run_calls(caplog)
    assert eddie_otel.record_split(agent="a", chunks=2, depth=0) is True

    assert errors(caplog) == [
        "eddie-otel: configuring from the environment (configure() was not called): "
        f"EDDIE_OTEL_DISCOVERY_DIR={directory} is not writable: Not a directory; "
        "serving metrics without announcing them"
    ]
    current = runtime.current()
    assert current.server is not None
    assert current.announcement is None
    assert succeeded() == CALLS


def test_configure_names_the_discovery_directory_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DiscoveryError) as raised:
        eddie_otel.configure(port=0, discovery_dir=str(tmp_path / "file"))
    assert isinstance(raised.value, eddie_otel.EddieOtelError)
    assert str(raised.value) == f"EDDIE_OTEL_DISCOVERY_DIR={tmp_path / 'file'} is not a directory"
    # Nothing is left behind: no runtime, no port.
    assert runtime.configured() is None


def test_recording_that_cannot_be_set_up_stays_off_and_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry in sys.modules makes the import fail as if the otlp extra were missing.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    attempts = []
    configure = runtime.configure

    def counting(**arguments: object) -> runtime.Runtime:
        attempts.append(arguments)
        return configure(**arguments)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "configure", counting)

    run_calls(caplog)
    assert eddie_otel.record_split(agent="a", chunks=2, depth=0) is True

    (line,) = errors(caplog)
    assert line.startswith("eddie-otel: configuring from the environment (configure() was not called): ")
    assert "pip install 'eddie-otel[otlp]'" in line
    assert line.endswith("; recording is off until configure() is called")
    # Set up once (then once without serving), never again for the calls after.
    assert len(attempts) == 2
    assert runtime.configured() is None
    # configure() turns recording on.
    eddie_otel.configure(serve=False, exporters="prometheus")
    assert work() == 1
    assert succeeded() == 1


def test_the_line_is_said_once_even_when_shutdown_lets_recording_configure_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EDDIE_OTEL_MAX_FALLBACK_DEPTH", "deep")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    run_calls(caplog)
    eddie_otel.shutdown()
    run_calls(caplog)
    assert len(errors(caplog)) == 1
