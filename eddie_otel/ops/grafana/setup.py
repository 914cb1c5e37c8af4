"""One grafana-setup run: datasource, folder, dashboard and alert rules, each created or updated in place.

Every object has a fixed uid, so a rerun finds what the last run made (GET) and
updates it (PUT) instead of creating a copy (POST).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eddie_otel.ops.credentials import shown
from eddie_otel.ops.grafana.client import Credential, Endpoints, as_object, found, setup_errors
from eddie_otel.ops.grafana.errors import GrafanaHttpError
from eddie_otel.ops.grafana.payloads import (
    DATASOURCE_NAME,
    DATASOURCE_UID,
    FOLDER_TITLE,
    FOLDER_UID,
    RULE_GROUP,
    dashboard_payload,
    datasource_payload,
)

__all__ = ["Setup"]


@dataclass
class Setup:
    """One grafana-setup run: where to, with what, and how to report."""

    endpoints: Endpoints
    grafana_url: str
    prometheus_url: str
    dashboard: dict[str, Any]
    rules: list[dict[str, Any]]
    say: Callable[[str], None]
    dry_run: bool
    credential: Credential
    folder_uid: str = FOLDER_UID

    def run(self) -> str | None:
        """Save everything in order; returns the dashboard's path in Grafana when known."""
        self.save_datasource()
        self.save_folder()
        path = self.save_dashboard()
        self.save_alert_rules()
        return path

    def _verb(self, created: bool) -> str:
        if self.dry_run:
            return "would be created, or updated where it exists"
        return "created" if created else "updated"

    @contextmanager
    def _step(self, what: str) -> Iterator[None]:
        with setup_errors(self.grafana_url, self.credential, what):
            yield

    def save_datasource(self) -> None:
        """Create or update the Prometheus datasource."""
        api = self.endpoints.datasource
        with self._step(f"saving datasource {DATASOURCE_UID}"):
            existing = found(lambda: api.get_datasource_by_uid(DATASOURCE_UID))
            if existing is not None and existing.get("readOnly"):
                self.say(f"datasource {DATASOURCE_UID}: provisioned from files in Grafana (read-only), left as it is")
                return
            if existing is None:
                as_object(api.create_datasource(datasource_payload(self.prometheus_url)))
            else:
                api.update_datasource_by_uid(DATASOURCE_UID, datasource_payload(self.prometheus_url, existing))
        self.say(
            f"datasource {DATASOURCE_UID} ({DATASOURCE_NAME} → {shown(self.prometheus_url)}): "
            f"{self._verb(existing is None)}"
        )

    def save_folder(self) -> None:
        """Create or update the eddie folder, or use a folder of the same title made another way."""
        api = self.endpoints.folder
        with self._step(f"saving folder {FOLDER_UID}"):
            existing = found(lambda: api.get_folder(FOLDER_UID))
            if existing is None:
                # Dashboard provisioning from files (as in `eddie-otel stack`) makes a folder by title with a
                # generated uid; Grafana refuses a second folder of that title, so use that one.
                same_title = self._folder_titled(FOLDER_TITLE)
                if same_title is not None:
                    self.folder_uid = same_title
                    self.say(f"folder {same_title} ({FOLDER_TITLE}): exists, used as it is")
                    return
                as_object(api.create_folder(FOLDER_TITLE, uid=FOLDER_UID))
            else:
                version = existing.get("version")
                api.update_folder(FOLDER_UID, title=FOLDER_TITLE, version=version if isinstance(version, int) else None)
        self.say(f"folder {FOLDER_UID} ({FOLDER_TITLE}): {self._verb(existing is None)}")

    def _folder_titled(self, title: str) -> str | None:
        from_grafana: Any = None
        try:
            from_grafana = self.endpoints.folder.get_all_folders()
        except GrafanaHttpError as exc:
            if exc.status_code != 404:
                raise
        if not isinstance(from_grafana, list):
            return None
        for folder in from_grafana:
            if isinstance(folder, dict) and folder.get("title") == title and isinstance(folder.get("uid"), str):
                return str(folder["uid"])
        return None

    def save_dashboard(self) -> str | None:
        """Create or overwrite the dashboard; returns its path in Grafana when known."""
        api = self.endpoints.dashboard
        uid = str(self.dashboard["uid"])
        with self._step(f"saving dashboard {uid}"):
            existing = found(lambda: api.get_dashboard(uid))
            meta = existing.get("meta") if existing else None
            if isinstance(meta, dict) and meta.get("provisioned"):
                # Grafana refuses API saves of a dashboard it loads from files; the files are the truth there.
                self.say(f"dashboard {uid}: provisioned from files in Grafana (read-only), left as it is")
                return None
            saved = as_object(api.update_dashboard(dashboard_payload(self.dashboard, self.folder_uid)))
        version = saved.get("version")
        suffix = f", version {version}" if isinstance(version, int) else ""
        self.say(f"dashboard {uid} ({self.dashboard['title']}): {self._verb(existing is None)}{suffix}")
        url = saved.get("url")
        return url if isinstance(url, str) else None

    def save_alert_rules(self) -> None:
        """Create or update one Grafana-managed alert rule per Prometheus rule, then drop rules no longer shipped."""
        api = self.endpoints.alerting
        wanted = {rule["uid"] for rule in self.rules}
        for rule in self.rules:
            uid = rule["uid"]
            rule = {**rule, "folderUID": self.folder_uid}
            with self._step(f"saving alert rule {rule['title']}"):
                existing = found(functools.partial(api.get_alertrule, uid))
                if existing is None:
                    as_object(api.create_alertrule(rule))
                else:
                    api.update_alertrule(uid, rule)
            self.say(f"alert rule {rule['title']} ({uid}, group {RULE_GROUP}): {self._verb(existing is None)}")
        if self.dry_run:
            return
        with self._step(f"reading rule group {RULE_GROUP}"):
            group = found(lambda: api.get_rule_group(self.folder_uid, RULE_GROUP)) or {}
        stale = [
            rule
            for rule in group.get("rules") or []
            if isinstance(rule, dict) and isinstance(rule.get("uid"), str) and rule["uid"] not in wanted
        ]
        for rule in stale:
            with self._step(f"removing alert rule {rule['uid']}"):
                api.delete_alertrule(rule["uid"])
            self.say(
                f"alert rule {rule.get('title', rule['uid'])} ({rule['uid']}): removed, eddie-otel no longer ships it"
            )
