"""eddie_otel.ops.credentials: URLs split into where they point and what authenticates; secrets redacted."""

from __future__ import annotations

import base64

import pytest

from eddie_otel.ops.credentials import REDACTED, Located, basic_authorization, redactor, shown


def test_a_url_with_user_info_is_split() -> None:
    located = Located.parse("https://admin:PassW0rd@grafana.example:3000/grafana/?x=1")
    assert located.url == "https://grafana.example:3000/grafana/?x=1"
    assert (located.username, located.password) == ("admin", "PassW0rd")
    assert located.authorization == "Basic " + base64.b64encode(b"admin:PassW0rd").decode()


def test_percent_encoded_user_info_is_decoded_for_use_and_hidden_as_typed() -> None:
    located = Located.parse("http://ad%40min:p%3Ass@host:1")
    assert (located.username, located.password) == ("ad@min", "p:ss")
    assert located.url == "http://host:1"
    redact = redactor(located.secrets())
    for text in ("ad%40min:p%3Ass", "ad@min:p:ss", base64.b64encode(b"ad@min:p:ss").decode()):
        assert redact(f"<{text}>") == f"<{REDACTED}>"


def test_a_url_without_user_info_is_left_as_it_is() -> None:
    located = Located.parse("http://127.0.0.1:9090/")
    assert located == Located("http://127.0.0.1:9090/")
    assert located.authorization is None
    assert located.secrets() == []
    assert shown("http://127.0.0.1:9090/") == "http://127.0.0.1:9090"


@pytest.mark.parametrize(
    ("raw", "bare"),
    [
        ("http://admin:PassW0rd@[::1", "http://[::1"),
        ("http://admin:PassW0rd@host:port", "http://host:port"),
        ("admin:PassW0rd@host", "host"),
    ],
)
def test_a_malformed_url_still_loses_its_user_info(raw: str, bare: str) -> None:
    located = Located.parse(raw)
    assert located.url == bare
    assert "PassW0rd" not in redactor(located.secrets())(raw)


def test_the_redactor_hides_plain_base64_and_any_authorization_value() -> None:
    redact = redactor(["admin:PassW0rd", None, ""])
    encoded = base64.b64encode(b"admin:PassW0rd").decode()
    assert redact(f"Authorization=Basic {encoded}") == f"Authorization=Basic {REDACTED}"
    assert redact(f"got {encoded.rstrip('=')}!") == f"got {REDACTED}!"
    assert redact("user admin:PassW0rd") == f"user {REDACTED}"
    # An Authorization value is hidden even when it is not one of the secrets given.
    assert redact('{"Authorization": "Bearer glsa_x"}') == f'{{"Authorization": "Bearer {REDACTED}"}}'
    assert redact("authorization: sometoken, next") == f"authorization: {REDACTED}, next"


def test_basic_authorization() -> None:
    assert basic_authorization("admin", "PassW0rd") == "Basic YWRtaW46UGFzc1cwcmQ="
