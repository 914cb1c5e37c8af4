"""The runtime seen from a fresh interpreter: a global provider is picked up, import does no work."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_a_globally_installed_provider_is_picked_up() -> None:
    result = run_python(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        provider = MeterProvider()
        metrics.set_meter_provider(provider)
        import eddie_otel
        from eddie_otel import runtime
        eddie_otel.configure(serve=False)
        print(runtime.current().telemetry.borrowed is provider)
        """
    )
    assert result.stdout.strip() == "True", result.stderr


def test_import_does_no_work() -> None:
    result = run_python(
        """
        import sys, threading
        before = threading.active_count()
        # What the OpenTelemetry API loads itself (older releases load asyncio) is not eddie's doing.
        import opentelemetry.metrics, opentelemetry.trace
        api_loaded_asyncio = "asyncio" in sys.modules
        import eddie_otel
        from eddie_otel import runtime
        print(runtime.configured() is None, threading.active_count() == before,
              "fastapi" in sys.modules, "uvicorn" in sys.modules)
        # Neither asyncio nor the OTLP exporter until something needs them.
        print("asyncio" in sys.modules and not api_loaded_asyncio,
              any(name.startswith("opentelemetry.exporter.otlp") for name in sys.modules))
        """
    )
    assert result.stdout.split() == ["True", "True", "False", "False", "False", "False"], result.stderr
