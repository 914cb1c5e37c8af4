"""eddie-otel's threads, and the SDK's threads it starts, block the application's signals.

A signal sent to the process goes to any thread that does not block it, and Python runs its
handler only when the main thread next runs Python code: one that landed on eddie's endpoint
thread while the main thread sleeps would wait out the sleep (a Ctrl-C or a deadline, late).
Here a real process configures eddie-otel with its endpoint, an OTLP metric reader and OTLP
traces, holds a connection open on the endpoint (a connection thread), and reads each thread's
signal mask from the kernel (/proc/self/task/<tid>/status, SigBlk).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from eddie_otel.threads import BLOCKED
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, socket, threading, time
    import eddie_otel
    from eddie_otel import runtime

    def blocked(native_id):
        with open(f"/proc/self/task/{native_id}/status") as status:
            for line in status:
                if line.startswith("SigBlk:"):
                    mask = int(line.split()[1], 16)
                    return [signum for signum in range(1, 65) if mask >> (signum - 1) & 1]
        raise AssertionError("no SigBlk line")

    main = threading.main_thread().native_id
    before = blocked(main)
    eddie_otel.configure(port=0, exporters="prometheus,otlp")

    @eddie_otel.task(stage="s", agent="a")
    def work():
        return 1

    work()
    # A connection that sends nothing yet: the endpoint gives it a thread of its own.
    port = runtime.current().server.port
    held = socket.create_connection(("127.0.0.1", port))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # A thread still starting (its native id not yet known) is waited for too.
        alive = threading.enumerate()
        if len(alive) >= 5 and all(t.native_id is not None for t in alive):
            break
        time.sleep(0.01)
    threads = {t.name: blocked(t.native_id) for t in alive if t.native_id != main}
    print(json.dumps({"before": before, "after": blocked(main), "threads": threads}))
    held.close()
    eddie_otel.shutdown()
    """
)


def test_every_thread_eddie_starts_blocks_the_application_signals() -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": "/usr/bin:/bin",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": unreachable,
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        # Nothing answers there: shutdown gives up flushing at once.
        "EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The main thread's mask is the application's, before and after.
    assert result["after"] == result["before"]
    assert not BLOCKED & set(result["before"])
    threads = result["threads"]
    # The endpoint's thread and a connection's, the periodic reader's and the batch span processor's.
    assert "eddie-otel-metrics" in threads
    assert any("process_request_thread" in name for name in threads)
    assert any("PeriodicExportingMetricReader" in name for name in threads)
    assert any("BatchSpan" in name for name in threads)
    for name, mask in threads.items():
        assert set(mask) >= BLOCKED, f"{name} does not block {sorted(BLOCKED - set(mask))}"
