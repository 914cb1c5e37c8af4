"""A real Docker Engine for the Docker tests: find or start one, and build the small test image without a registry.

`python -m tests.support.docker_engine` (what .ci/run does) starts `dockerd` when no engine
answers and builds the image. The image is `docker import` of a root filesystem holding
the static busybox (Debian package busybox-static) and its applets as symlinks: no
registry is needed. The tests run every container with `--network none`.

CI sets EDDIE_OTEL_REQUIRE_DOCKER=1: a missing engine then fails the Docker tests instead of
skipping them. It is read at import, before the tests' fixtures clear EDDIE_OTEL_* variables.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMAGE",
    "REQUIRE_DOCKER",
    "Daemon",
    "docker",
    "engine_answers",
    "ensure_engine",
    "ensure_image",
    "start_daemon",
]

REQUIRE_DOCKER = os.environ.get("EDDIE_OTEL_REQUIRE_DOCKER", "") not in ("", "0", "false")
IMAGE = "eddie-otel-test:busybox"
# The applets the tests' containers run.
APPLETS = ("sh", "sleep", "head", "tail", "cat", "true", "yes", "dd", "echo")
DOCKERD_LOG = Path("/tmp/eddie-otel-dockerd.log")


def docker(*args: str, host: str | None = None, check: bool = True, timeout: float = 60) -> str:
    """Run the docker CLI (against `host`, else the default engine); its standard output, stripped."""
    command = ["docker", *(["--host", host] if host else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout.strip()


def engine_answers(host: str | None = None) -> bool:
    """Whether the docker CLI is installed and an engine answers at `host` (default: the usual one)."""
    if shutil.which("docker") is None:
        return False
    try:
        docker("version", "--format", "{{.Server.Version}}", host=host, timeout=15)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


@dataclass
class Daemon:
    """A dockerd this module started: its process, socket URL and directories."""

    process: subprocess.Popen[bytes]
    host: str
    root: Path

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_daemon(root: Path | None = None, timeout: float = 60) -> Daemon:
    """Start a dockerd; with `root`, a second one with its own socket, data and state under `root`."""
    if shutil.which("dockerd") is None:
        raise RuntimeError("dockerd not found: install the Debian package docker.io")
    arguments = ["dockerd", "--iptables=false", "--bridge=none"]
    host = None
    log = DOCKERD_LOG
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        socket = root / "docker.sock"
        host = f"unix://{socket}"
        log = root / "dockerd.log"
        arguments += [
            f"--host={host}",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'exec'}",
            f"--pidfile={root / 'docker.pid'}",
        ]
    with log.open("ab") as output:
        process = subprocess.Popen(arguments, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    daemon = Daemon(process, host or "unix:///var/run/docker.sock", root or Path("/var/lib/docker"))
    deadline = time.monotonic() + timeout
    while not engine_answers(host):
        if process.poll() is not None or time.monotonic() > deadline:
            daemon.stop()
            raise RuntimeError(f"dockerd did not start; see {log}")
        time.sleep(0.2)
    return daemon


def ensure_engine() -> None:
    """An engine answers on the default socket: the one there, or a dockerd started now (as root)."""
    if engine_answers():
        return
    if os.geteuid() != 0:
        raise RuntimeError("no Docker Engine answers, and starting dockerd needs root")
    start_daemon()


def _busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.exists():
            return path.resolve()
    raise RuntimeError("busybox not found: install the Debian package busybox-static")


def _root_filesystem() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            archive.addfile(info)
        archive.add(str(_busybox()), "bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(info)
    return buffer.getvalue()


def ensure_image(host: str | None = None) -> str:
    """The test image on the engine at `host`, imported from busybox when it is not there yet; its name."""
    if docker("image", "ls", "-q", IMAGE, host=host):
        return IMAGE
    command = ["docker", *(["--host", host] if host else []), "import", "-", IMAGE]
    result = subprocess.run(command, input=_root_filesystem(), capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"docker import failed: {result.stderr.decode(errors='replace').strip()}")
    output = docker("run", "--rm", "--network", "none", IMAGE, "echo", "ok", host=host)
    if output != "ok":
        raise RuntimeError(f"the test image does not run: {output!r} (is /bin/busybox static?)")
    return IMAGE


def main() -> int:
    try:
        ensure_engine()
        ensure_image()
    except RuntimeError as error:
        print(f"docker engine: {error}", file=sys.stderr)
        return 1
    print(f"docker engine: answers; image {IMAGE} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
