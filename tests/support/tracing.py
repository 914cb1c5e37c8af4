"""Trace helpers for tests: eddie-otel configured with an in-memory span exporter, and span trees."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import eddie_otel
from eddie_otel.runtime import Runtime


@dataclass(frozen=True)
class SpanRecord:
    """What a test checks of a finished span; plain data, so a child process can send it back."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status: str
    error_type: str | None


def record_of(span: ReadableSpan) -> SpanRecord:
    """The SpanRecord of a finished SDK span."""
    context = span.get_span_context()
    assert context is not None
    attributes = dict(span.attributes or {})
    return SpanRecord(
        name=span.name,
        trace_id=context.trace_id,
        span_id=context.span_id,
        parent_id=None if span.parent is None else span.parent.span_id,
        attributes=attributes,
        events=[(event.name, dict(event.attributes or {})) for event in span.events],
        status=span.status.status_code.name,
        error_type=attributes.get("error.type"),  # type: ignore[arg-type]
    )


def in_memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A TracerProvider that keeps every finished span in memory, exported as it ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def configure_traced(**settings: Any) -> tuple[Runtime, InMemorySpanExporter]:
    """eddie-otel configured (no port unless `serve=True`) with spans kept in memory."""
    provider, exporter = in_memory_provider()
    settings.setdefault("serve", False)
    return eddie_otel.configure(tracer_provider=provider, **settings), exporter


def spans(exporter: InMemorySpanExporter) -> list[SpanRecord]:
    """The finished spans of `exporter`, oldest first."""
    return [record_of(span) for span in exporter.get_finished_spans()]


def one(records: Sequence[SpanRecord], name: str, **attributes: Any) -> SpanRecord:
    """The one span named `name` with these attributes; AssertionError naming what was found otherwise."""
    found = [
        record
        for record in records
        if record.name == name and all(record.attributes.get(key) == value for key, value in attributes.items())
    ]
    assert len(found) == 1, f"{len(found)} spans {name} {attributes}; spans: {[r.name for r in records]}"
    return found[0]


def run_chunk_in_child(headers: Mapping[str, str], depth: int) -> list[SpanRecord]:
    """In a fresh process: run a @chunk whose parent comes from `headers`, and return its spans."""
    _, exporter = configure_traced()

    @eddie_otel.chunk(agent="remote-agent", depth=lambda job: job["depth"], carrier=lambda job: job["headers"])
    def run_remote_chunk(job: Mapping[str, Any]) -> int:
        eddie_otel.record_merge(chunks_combined=2, duplicates_removed=1)
        return 1

    run_remote_chunk({"headers": dict(headers), "depth": depth})
    records = spans(exporter)
    eddie_otel.shutdown()
    return records
