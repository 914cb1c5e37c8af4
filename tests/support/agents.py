"""Agent processes for fleet tests: each a separate Python process serving its own endpoint on a free port.

An agent records `splits` splits of 3 chunks (agent "a") and the known workload once, then waits;
on "go" (a line on its standard input) it records the workload again and answers "done". The
first round creates every series, so that Prometheus sees the second one as an increase.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

_SCRIPT = """
import sys, eddie_otel
port, splits = int(sys.argv[1]), int(sys.argv[2])
eddie_otel.configure(service_name="eddie-agent", port=port)
for _ in range(splits):
    eddie_otel.record_split(agent="a", chunks=3, depth=1)


def workload():
    # 9 successes and 1 failure in codegen, 10 chunks merged with 1 duplicate,
    # one timeout, and 10 executions on agent "a" and 3 on agent "b".
    eddie_otel.record_merge(chunks_combined=10, duplicates_removed=1)
    eddie_otel.record_timeout(agent="a", stage="codegen", reason="deadline")

    @eddie_otel.task(stage="codegen", agent="a")
    def work(fail):
        if fail:
            raise ValueError("bad")

    for number in range(10):
        try:
            work(number == 0)
        except ValueError:
            pass

    @eddie_otel.chunk(agent="b")
    def piece():
        return 1

    for _ in range(3):
        piece()


workload()
print("ready", flush=True)
for line in sys.stdin:
    workload()
    print("done", flush=True)
"""


class ScriptedAgent:
    """An agent process running `script` with a free loopback port as its first argument.

    The script prints "ready" once configured, and "done" after each "go" line it reads.
    """

    def __init__(self, script: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        workdir.mkdir(parents=True, exist_ok=True)
        self._log = (workdir / f"agent-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, str(self.port), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if line != word:
            self.stop()
            raise RuntimeError(f"agent on {self.port} said {line!r}, not {word!r}")

    def go(self) -> None:
        """Record the script's workload once and wait until it is recorded."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()
        self._expect("done")

    def stop(self) -> None:
        """End the process (if it still runs) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._log.close()


class Agent(ScriptedAgent):
    """One agent process on a free loopback port, recording the known workload with `splits` splits."""

    def __init__(self, splits: int, workdir: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(_SCRIPT, [str(splits)], workdir, env)
