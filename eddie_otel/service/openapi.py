"""The OpenAPI document: what FastAPI derives from the routes, plus the schemas the routes give by reference.

The webhook routes read their bodies by hand (to refuse before reading, and to name
fields in errors), and the summary route answers a plain dict: their schemas come from
the event models and from the summary's one typed definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from eddie_otel.service.events import EVENT_CLASSES, EventBatch
from eddie_otel.summary import Summary

__all__ = ["SUMMARY", "SUMMARY_SCHEMA_NAME", "openapi_builder", "schema_ref"]

# The summary's shape, from the one definition eddie_otel.summary() follows.
SUMMARY: TypeAdapter[Summary] = TypeAdapter(Summary)
SUMMARY_SCHEMA_NAME = "Summary"
_REF_TEMPLATE = "#/components/schemas/{model}"


def schema_ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": _REF_TEMPLATE.format(model=name)}


def openapi_builder(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI builder of `app`, adding the event and summary schemas; built once, then cached."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_component_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def _component_schemas() -> dict[str, Any]:
    models = [(model, "validation") for model in (*EVENT_CLASSES, EventBatch)]
    _, definitions = models_json_schema(models, ref_template=_REF_TEMPLATE)  # type: ignore[arg-type]
    found: dict[str, Any] = dict(definitions.get("$defs", {}))
    summary = SUMMARY.json_schema(ref_template=_REF_TEMPLATE)
    found.update(summary.pop("$defs", {}))
    found[SUMMARY_SCHEMA_NAME] = summary
    return found
