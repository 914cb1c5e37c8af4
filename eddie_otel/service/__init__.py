"""The metrics service: the FastAPI app, its settings, its server and the demo."""

from eddie_otel.service.app import create_app
from eddie_otel.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
