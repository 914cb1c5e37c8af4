"""What watching costs per container: `python -m tests.support.docker_cost [CONTAINERS] [SECONDS]`.

Starts CONTAINERS idle labelled containers (default 40; test image, `--network none`),
watches them with a 1-second interval for SECONDS (default 10), and prints the watcher's
CPU time and the engine's (dockerd's, from /proc) per stats reading, the duration of one
sampling round and the process's resident memory. Removes the containers after.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import eddie_otel
from eddie_otel.docker import DockerWatcher
from tests.support.docker_engine import IMAGE, docker, ensure_engine, ensure_image

LABEL = f"eddie.cost.{os.getpid()}"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(containers: int, seconds: float) -> str:
    """Run the measurement; its one-line result."""
    ensure_engine()
    ensure_image()
    dockerd = int(Path("/var/run/docker.pid").read_text())
    for number in range(containers):
        docker("run", "-d", "--network", "none", "--label", f"{LABEL}=1", "--name", f"cost-{os.getpid()}-{number}",
               "--memory", "32m", "--cpus", "0.2", IMAGE, "sleep", "3600")  # fmt: skip
    try:
        eddie_otel.configure(serve=False)
        with DockerWatcher(label=LABEL, interval=1.0) as watcher:
            watcher.wait_ready(30)
            time.sleep(1.5)
            before, engine_before, samples_before = resource.getrusage(resource.RUSAGE_SELF), _cpu_seconds(dockerd), 0
            samples_before = watcher.stats.samples
            time.sleep(seconds)
            after, engine_after = resource.getrusage(resource.RUSAGE_SELF), _cpu_seconds(dockerd)
            samples = watcher.stats.samples - samples_before
            own = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            return (
                f"{containers} containers, {samples} readings in {seconds:g} s: watcher {own / samples * 1000:.2f} ms "
                f"and engine {(engine_after - engine_before) / samples * 1000:.2f} ms of CPU per reading; "
                f"a round took {watcher.stats.last_round_seconds:.2f} s; resident {after.ru_maxrss / 1024:.0f} MiB"
            )
    finally:
        left = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).split()
        if left:
            docker("rm", "-f", *left, check=False)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    print(measure(count, duration))
