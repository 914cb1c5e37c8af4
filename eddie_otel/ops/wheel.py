"""A wheel of the running eddie-otel, made from its own files: what `eddie-otel stack` builds its image from.

No published package and no source tree are needed: the wheel holds the package
directory as imported (the shipped assets under `eddie_otel/_assets/`, taken from the
checkout when the package runs from one) and the installed distribution's metadata and
entry points. The same files give the same bytes (fixed timestamps, sorted entries),
so an unchanged package leaves the image's layer cache intact.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from collections.abc import Iterator
from pathlib import Path

from eddie_otel.errors import EddieOtelError
from eddie_otel.ops import assets

__all__ = ["DISTRIBUTION", "build_wheel", "wheel_name"]

DISTRIBUTION = "eddie-otel"
_PACKAGE = "eddie_otel"
_SHIPPED = (
    assets.DASHBOARD,
    assets.ALERT_RULES,
    assets.ALERTMANAGER_CONFIG,
    assets.PROMETHEUS_CONFIG,
    assets.PROVISIONING,
    assets.COLLECTOR_CONFIG,
)
# Zip's earliest date: no build time in the archive.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _metadata() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise EddieOtelError(f"{DISTRIBUTION} is not installed (pip install -e . in a checkout)") from None


def wheel_name() -> str:
    """The file name of the wheel `build_wheel` writes."""
    return f"{_PACKAGE}-{_metadata().version}-py3-none-any.whl"


def _package_files() -> Iterator[tuple[str, Path]]:
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix not in (".pyc", ".pyo"):
            yield f"{_PACKAGE}/{relative.as_posix()}", path
    if not (root / "_assets").is_dir():
        # A checkout: the assets sit beside the package; the wheel carries them inside, as a built one does.
        for name in _SHIPPED:
            shipped = assets.asset_path(name)
            files = sorted(p for p in shipped.rglob("*") if p.is_file()) if shipped.is_dir() else [shipped]
            for path in files:
                relative = Path(name) / path.relative_to(shipped) if shipped.is_dir() else Path(name)
                yield f"{_PACKAGE}/_assets/{relative.as_posix()}", path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(directory: Path) -> Path:
    """Write the wheel of the running eddie-otel into `directory`; returns its path."""
    distribution = _metadata()
    version = distribution.version
    info = f"{_PACKAGE}-{version}.dist-info"
    metadata = (
        distribution.read_text("METADATA") or f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n"
    )
    # The license files stay in the source tree; the metadata must not name files the wheel lacks.
    metadata = "".join(line for line in metadata.splitlines(keepends=True) if not line.startswith("License-File:"))
    entries: list[tuple[str, bytes]] = [(name, path.read_bytes()) for name, path in _package_files()]
    entries.append((f"{info}/METADATA", metadata.encode("utf-8")))
    entry_points = distribution.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode("utf-8")))
    wheel = "Wheel-Version: 1.0\nGenerator: eddie-otel stack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries.append((f"{info}/WHEEL", wheel.encode("utf-8")))
    record = "".join(_record_line(name, data) + "\n" for name, data in entries) + f"{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode("utf-8")))

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / wheel_name()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return target
