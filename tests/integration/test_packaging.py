"""The built distributions: what they carry, and what installing the wheel does to an environment.

One sdist and one wheel (built from the sdist, so the sdist is complete enough to
build) and one fresh venv serve every test of the module. The venv gets the real
urllib3 first, as a user's environment has; installing eddie-otel must leave it be.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.distributions import REPO, build_command
from tests.support.distributions import run as _run

# Distributions that must never arrive with a plain `pip install eddie-otel`.
UNWANTED = ("urllib3-future", "niquests", "grafana-client")


@dataclass(frozen=True)
class Installed:
    sdist: Path
    wheel: Path
    bin: Path
    cwd: Path
    urllib3_before: str

    def python(self, code: str) -> str:
        return _run([str(self.bin / "python"), "-c", code], cwd=self.cwd).stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    dist = root / "dist"
    _run(build_command(dist), cwd=root)
    [sdist] = dist.glob("eddie_otel-*.tar.gz")
    [wheel] = dist.glob("eddie_otel-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    bin_dir = venv / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "urllib3"], cwd=root)
    before = _run([str(bin_dir / "python"), "-c", "import urllib3; print(urllib3.__version__)"], cwd=root)
    _run([*pip, str(wheel)], cwd=root)
    return Installed(sdist, wheel, bin_dir, root, before.stdout.strip())


def test_the_wheel_and_the_sdist_carry_the_license(installed: Installed) -> None:
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in license_text
    assert "Copyright (c) 2026 the eddie-otel authors" in license_text
    with zipfile.ZipFile(installed.wheel) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert wheel.read(name).decode() == license_text
        [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        assert "License-File: LICENSE" in wheel.read(metadata).decode()
    with tarfile.open(installed.sdist) as sdist:
        [member] = [m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/LICENSE")]
        extracted = sdist.extractfile(member)
        assert extracted is not None
        assert extracted.read().decode() == license_text


def test_the_wheel_requires_no_http_stack_of_its_own(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    unconditional = [line for line in requires if "extra ==" not in line]
    for name in (*UNWANTED, "requests"):
        assert not any(line.split()[1].lower().startswith(name) for line in unconditional), requires
    assert "Provides-Extra: grafana" in wheel_metadata(installed.wheel)


def wheel_metadata(path: Path) -> str:
    with zipfile.ZipFile(path) as wheel:
        [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return wheel.read(metadata).decode()


def test_installing_leaves_the_real_urllib3_in_place(installed: Installed) -> None:
    assert installed.python("import urllib3; print(urllib3.__version__)") == installed.urllib3_before
    missing = installed.python(
        "import importlib.metadata as m\n"
        f"for name in {UNWANTED!r}:\n"
        "    try:\n"
        "        m.distribution(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        print(name)\n"
    )
    assert missing.split() == list(UNWANTED)
    assert installed.python("import importlib.metadata as m; print(m.distribution('urllib3').metadata['Name'])") == (
        "urllib3"
    )


def test_pip_check_is_clean(installed: Installed) -> None:
    done = _run([str(installed.bin / "python"), "-m", "pip", "check"], cwd=installed.cwd)
    assert "No broken requirements found." in done.stdout


def test_the_command_runs_from_the_installed_wheel(installed: Installed) -> None:
    helped = _run([str(installed.bin / "eddie-otel"), "--help"], cwd=installed.cwd)
    assert "grafana-setup" in helped.stdout
    assert "doctor" in helped.stdout


def test_grafana_setup_works_without_any_extra(installed: Installed) -> None:
    done = subprocess.run(
        [str(installed.bin / "eddie-otel"), "grafana-setup", "--grafana-url", "http://127.0.0.1:1"],
        cwd=installed.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        done.stderr
        == "eddie-otel grafana-setup: error: cannot reach Grafana at http://127.0.0.1:1: connection refused\n"
    )
    # Nothing in the package reaches for the client library grafana-setup once used. The service
    # needs its extra, and the instrumentor opentelemetry-instrumentation (which loads it).
    assert (
        installed.python(
            "import sys, pkgutil, importlib, eddie_otel\n"
            "sys.modules['grafana_client'] = None\n"
            "for module in pkgutil.walk_packages(eddie_otel.__path__, 'eddie_otel.'):\n"
            "    if module.name.startswith('eddie_otel.service') or module.name == 'eddie_otel.instrumentor':\n"
            "        continue\n"
            "    if not module.name.endswith('__main__'):\n"
            "        importlib.import_module(module.name)\n"
            "print('ok')\n"
        )
        == "ok"
    )
