"""The Docker watcher: limits, usage and OOM kills of labelled containers, read from the Docker Engine.

Needs the `docker` extra (the Docker SDK for Python); importing this package does not.
"""

import importlib.util

from eddie_otel.docker.watcher import DEFAULT_LABEL, DockerWatcher, watch_docker

__all__ = ["DEFAULT_LABEL", "DOCKER_EXTRA_MISSING", "DockerWatcher", "sdk_installed", "watch_docker"]

# What the commands print, and exit 2 with, when the Docker SDK is not installed.
DOCKER_EXTRA_MISSING = "eddie-otel: the Docker watcher needs the docker extra: pip install 'eddie-otel[docker]'"


def sdk_installed() -> bool:
    """Whether the Docker SDK for Python (the `docker` extra) can be imported."""
    return importlib.util.find_spec("docker") is not None
