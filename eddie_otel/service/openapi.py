"""The OpenAPI document: what FastAPI derives from the routes, plus the schemas the routes give by reference.

The webhook routes read their bodies by hand (to refuse before reading, and to name
fields in errors), and the summary route answers a plain dict: their schemas come from
the event models and from the summary's one typed definition.

When a webhook token is configured, the document declares the bearer scheme and puts
every POST route under it; without a token it declares none, since none is needed: a
client (or a fuzzer) reading the document learns exactly what the service checks.
Likewise, when the Host check is on (the service is bound to loopback), every
operation declares its 400 answer to a request addressed to a foreign name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from eddie_otel.service.events import EVENT_CLASSES, EventBatch
from eddie_otel.service.schema import Problem
from eddie_otel.summary import Summary

__all__ = ["BEARER_SCHEME", "PROBLEM_SCHEMA_NAME", "SUMMARY", "SUMMARY_SCHEMA_NAME", "openapi_builder", "schema_ref"]

# The summary's shape, from the one definition eddie_otel.summary() follows.
SUMMARY: TypeAdapter[Summary] = TypeAdapter(Summary)
SUMMARY_SCHEMA_NAME = "Summary"
_REF_TEMPLATE = "#/components/schemas/{model}"
# The name of the security scheme of the webhooks, when EDDIE_OTEL_WEBHOOK_TOKEN is set.
BEARER_SCHEME = "bearer"
# The refusal every route answers, `{"detail", "errors"}`.
PROBLEM_SCHEMA_NAME = Problem.__name__


def schema_ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": _REF_TEMPLATE.format(model=name)}


def openapi_builder(app: FastAPI, bearer: bool = False, host_check: bool = False) -> Callable[[], dict[str, Any]]:
    """The OpenAPI builder of `app`, adding the event and summary schemas; built once, then cached.

    With `bearer`, every POST operation requires the bearer scheme (the webhook token).
    With `host_check`, every operation declares the 400 of a request to a Host that is not the service's.
    """

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
            _problem_for_invalid_parameters(schema)
            if bearer:
                _require_bearer(schema)
            if host_check:
                _declare_host_check(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def _problem_for_invalid_parameters(schema: dict[str, Any]) -> None:
    # FastAPI declares its own 422 body for a bad parameter; the app answers the `{detail, errors}` of every refusal.
    fastapi_own = schema_ref("HTTPValidationError")
    for operations in schema["paths"].values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            content = answer.get("content", {}).get("application/json", {}) if answer else {}
            if content.get("schema") == fastapi_own:
                content["schema"] = schema_ref(PROBLEM_SCHEMA_NAME)
                answer["description"] = "A query parameter is invalid; `errors` name it"
    schemas = schema["components"]["schemas"]
    text = repr(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if schema_ref(name)["$ref"] not in text:
            schemas.pop(name, None)


def _require_bearer(schema: dict[str, Any]) -> None:
    schema["components"]["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "The token of EDDIE_OTEL_WEBHOOK_TOKEN: `Authorization: Bearer <token>`",
        }
    }
    for operations in schema["paths"].values():
        if "post" in operations:
            operations["post"]["security"] = [{BEARER_SCHEME: []}]


def _declare_host_check(schema: dict[str, Any]) -> None:
    refused = {
        "description": (
            "Host is not a name of this service: bound to loopback, it answers localhost, 127.0.0.1, [::1] "
            "and the names in EDDIE_OTEL_ALLOWED_HOSTS"
        ),
        "content": {"application/json": {"schema": schema_ref(PROBLEM_SCHEMA_NAME)}},
    }
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "400" in responses:
                # The operation refuses something of its own with a 400 too: one entry says both.
                responses["400"] = {
                    **refused,
                    "description": f"{responses['400']['description']}; or {refused['description']}",
                }
            else:
                responses["400"] = refused


def _component_schemas() -> dict[str, Any]:
    models = [(model, "validation") for model in (*EVENT_CLASSES, EventBatch)]
    models.append((Problem, "serialization"))
    _, definitions = models_json_schema(models, ref_template=_REF_TEMPLATE)  # type: ignore[arg-type]
    found: dict[str, Any] = dict(definitions.get("$defs", {}))
    summary = SUMMARY.json_schema(ref_template=_REF_TEMPLATE)
    found.update(summary.pop("$defs", {}))
    found[SUMMARY_SCHEMA_NAME] = summary
    return found
