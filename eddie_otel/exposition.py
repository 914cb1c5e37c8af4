"""The Prometheus exposition of a registry, negotiated from the request's Accept and Accept-Encoding.

One rule for the agent endpoint and the metrics service: OpenMetrics when Accept asks
for it, gzip when Accept-Encoding allows it (q-values honoured: `gzip;q=0` refuses).
"""

from __future__ import annotations

import gzip

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["accepts_gzip", "render"]

# Fast enough for a scrape every few seconds, most of the size gain of level 9.
GZIP_LEVEL = 6


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header value allows gzip (an explicit `q=0` refuses it)."""
    for part in (header or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower().replace(" ", "")
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def render(
    registry: CollectorRegistry, accept: str | None, accept_encoding: str | None
) -> tuple[bytes, dict[str, str]]:
    """The exposition body and its headers (Content-Type, Vary, and Content-Encoding when gzipped)."""
    encoder, content_type = choose_encoder(accept or "")
    body = encoder(registry)
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers["Content-Encoding"] = "gzip"
    return body, headers
