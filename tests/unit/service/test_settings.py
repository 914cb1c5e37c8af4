"""ServiceSettings: argument, then environment, then default; invalid values name their variable."""

from __future__ import annotations

import pytest

from eddie_otel import ConfigurationError
from eddie_otel.service import ServiceSettings


def test_defaults_with_an_empty_environment() -> None:
    settings = ServiceSettings.load({})
    assert settings.webhook_token is None
    assert settings.cors_origins == ()
    assert settings.max_body_bytes == 1_048_576


def test_environment_is_read() -> None:
    settings = ServiceSettings.load(
        {
            "EDDIE_OTEL_WEBHOOK_TOKEN": "s3cret",
            "EDDIE_OTEL_CORS_ORIGINS": "https://a.example, http://b.example:3000",
            "EDDIE_OTEL_MAX_BODY_BYTES": "4096",
        }
    )
    assert settings.webhook_token == "s3cret"
    assert settings.cors_origins == ("https://a.example", "http://b.example:3000")
    assert settings.max_body_bytes == 4096


def test_arguments_win_over_the_environment() -> None:
    settings = ServiceSettings.load({"EDDIE_OTEL_WEBHOOK_TOKEN": "from-env"}, webhook_token="from-arg")
    assert settings.webhook_token == "from-arg"


def test_the_token_is_never_in_the_repr() -> None:
    assert "s3cret" not in repr(ServiceSettings.load({"EDDIE_OTEL_WEBHOOK_TOKEN": "s3cret"}))


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("EDDIE_OTEL_CORS_ORIGINS", "example.com", "EDDIE_OTEL_CORS_ORIGINS must list origins"),
        ("EDDIE_OTEL_MAX_BODY_BYTES", "big", "EDDIE_OTEL_MAX_BODY_BYTES must be an integer"),
    ],
)
def test_invalid_environment_values_name_the_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ServiceSettings.load({variable: raw})
