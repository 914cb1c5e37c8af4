"""The metrics service: the FastAPI app, its server and the demo."""

from eddie_otel.service.app import create_app

__all__ = ["create_app"]
