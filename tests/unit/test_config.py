"""Settings: argument, then environment, then default; invalid values name their variable."""

from __future__ import annotations

import pytest

from eddie_otel import ConfigurationError, Settings


def test_defaults_with_an_empty_environment() -> None:
    settings = Settings.load({})
    assert settings.service_name == "eddie"
    assert settings.exporters == ("prometheus",)
    assert (settings.host, settings.port) == ("127.0.0.1", 8503)
    assert settings.max_fallback_depth == 3
    # Not given: serve, unless a MeterProvider is borrowed (the runtime decides).
    assert settings.serve is None
    assert settings.sdk_disabled is False


def test_environment_is_read() -> None:
    settings = Settings.load(
        {
            "OTEL_SERVICE_NAME": "agents",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, team=a%20b",
            "OTEL_METRICS_EXPORTER": "prometheus, otlp",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "9000",
            "OTEL_SDK_DISABLED": "TRUE",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            "EDDIE_OTEL_MAX_FALLBACK_DEPTH": "5",
        }
    )
    assert settings.service_name == "agents"
    assert dict(settings.resource_attributes) == {"deployment.environment": "prod", "team": "a b"}
    assert settings.exporters == ("prometheus", "otlp")
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.sdk_disabled is True
    assert settings.export_interval_millis == 5000
    assert settings.max_fallback_depth == 5


def test_arguments_win_over_the_environment() -> None:
    env = {"OTEL_SERVICE_NAME": "from-env", "OTEL_EXPORTER_PROMETHEUS_PORT": "9000"}
    settings = Settings.load(env, service_name="from-arg", port=9100, host=None)
    assert settings.service_name == "from-arg"
    assert settings.port == 9100
    assert settings.host == "127.0.0.1"


def test_none_exporter_means_no_reader() -> None:
    assert Settings.load({"OTEL_METRICS_EXPORTER": "none"}).exporters == ()


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "eighty", "OTEL_EXPORTER_PROMETHEUS_PORT must be an integer"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "OTEL_EXPORTER_PROMETHEUS_PORT must be between 0 and 65535"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "local host", "OTEL_EXPORTER_PROMETHEUS_HOST must be a host"),
        ("OTEL_METRICS_EXPORTER", "prometheus,zipkin", "unknown exporter 'zipkin'"),
        ("OTEL_METRICS_EXPORTER", "none,otlp", "'none' cannot be combined"),
        ("OTEL_SDK_DISABLED", "maybe", "OTEL_SDK_DISABLED must be true or false"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team", "OTEL_RESOURCE_ATTRIBUTES must be a list of key=value"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "OTEL_METRIC_EXPORT_INTERVAL must be at least 1"),
        ("EDDIE_OTEL_MAX_FALLBACK_DEPTH", "-1", "EDDIE_OTEL_MAX_FALLBACK_DEPTH must be between 0 and 100"),
    ],
)
def test_invalid_environment_values_name_the_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load({variable: raw})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"port": -1}, "port must be an integer between 0 and 65535"),
        ({"port": "8503"}, "port must be an integer"),
        ({"max_fallback_depth": True}, "max_fallback_depth must be an integer"),
        ({"service_name": ""}, "service_name must be a non-empty string"),
        ({"exporters": "otlp,bogus"}, "unknown exporter 'bogus'"),
        ({"colour": "blue"}, "unknown setting 'colour'"),
    ],
)
def test_invalid_arguments_name_the_argument(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load({}, **arguments)


def test_configuration_error_is_a_value_error_and_an_eddie_error() -> None:
    from eddie_otel import EddieOtelError

    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, EddieOtelError)
