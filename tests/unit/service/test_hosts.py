"""The Host check: bound to loopback, only loopback names and the allowed hosts are answered."""

from __future__ import annotations

import http.client

import pytest

import eddie_otel
from eddie_otel import ConfigurationError
from eddie_otel.service import ServiceSettings, create_app
from eddie_otel.service.hosts import allowed_names, is_loopback, request_host
from eddie_otel.service.server import BackgroundServer


def _get(server: BackgroundServer, host: str | None, path: str = "/metrics/health") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def loopback_service(port: int) -> BackgroundServer:
    runtime = eddie_otel.configure(serve=False, host="127.0.0.1", port=port)
    app = create_app(runtime, ServiceSettings.load({}, allowed_hosts="metrics.internal"))
    return BackgroundServer(app, "127.0.0.1", port)


@pytest.mark.parametrize(
    "path", ["/metrics/health", "/metrics/prometheus", "/metrics/summary", "/events/merge", "/nowhere", "/docs"]
)
def test_a_rebinding_host_is_refused_on_every_route(loopback_service: BackgroundServer, path: str) -> None:
    with loopback_service as server:
        status, body = _get(server, f"rebind.attacker.example:{server.port}", path)

    assert status == 400
    assert body.startswith(b'{"detail":"Host: \'rebind.attacker.example\' is not a name of this service')
    assert b'"errors":[{"field":"Host","message":' in body


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8503", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8503", "LOCALHOST:9"]
)
def test_loopback_hosts_pass(loopback_service: BackgroundServer, host: str) -> None:
    with loopback_service as server:
        assert _get(server, host)[0] == 200


@pytest.mark.parametrize("host", ["metrics.internal", "metrics.internal:8503", "Metrics.Internal."])
def test_allowed_hosts_pass(loopback_service: BackgroundServer, host: str) -> None:
    with loopback_service as server:
        assert _get(server, host)[0] == 200


@pytest.mark.parametrize(("host", "declared"), [("127.0.0.1", True), ("0.0.0.0", False)])
def test_the_openapi_document_declares_the_host_check_where_it_runs(host: str, declared: bool) -> None:
    runtime = eddie_otel.configure(serve=False, host=host)
    document = create_app(runtime, ServiceSettings.load({})).openapi()

    operations = [operation for path in document["paths"].values() for operation in path.values()]
    assert len(operations) >= 10
    # GET /metrics/summary refuses scope=fleet with a 400 of its own when no Prometheus is configured.
    summary = document["paths"]["/metrics/summary"]["get"]
    for operation in operations:
        assert ("400" in operation["responses"]) is (declared or operation is summary)
        if declared:
            refused = operation["responses"]["400"]
            assert "Host is not a name of this service" in refused["description"]
            assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_a_request_without_host_is_refused(loopback_service: BackgroundServer) -> None:
    with loopback_service as server:
        assert _get(server, None)[0] == 400


def test_bound_to_every_address_any_host_passes(port: int) -> None:
    runtime = eddie_otel.configure(serve=False, host="0.0.0.0", port=port)

    with BackgroundServer(create_app(runtime, ServiceSettings.load({})), "127.0.0.1", port) as server:
        assert _get(server, "rebind.attacker.example")[0] == 200


def test_bound_to_every_address_the_allowed_hosts_apply(port: int) -> None:
    runtime = eddie_otel.configure(serve=False, host="0.0.0.0", port=port)
    service = ServiceSettings.load({"EDDIE_OTEL_ALLOWED_HOSTS": "metrics.internal, other.internal"})

    with BackgroundServer(create_app(runtime, service), "127.0.0.1", port) as server:
        assert _get(server, "rebind.attacker.example")[0] == 400
        assert _get(server, "other.internal:80")[0] == 200
        assert _get(server, "localhost")[0] == 200


@pytest.mark.parametrize(
    ("bound_to", "allowed", "names"),
    [
        ("127.0.0.1", (), {"localhost", "127.0.0.1", "[::1]"}),
        ("::1", ("a.example",), {"localhost", "127.0.0.1", "[::1]", "a.example"}),
        ("localhost", ("*",), None),
        ("0.0.0.0", (), None),
        ("192.0.2.7", ("a.example",), {"localhost", "127.0.0.1", "[::1]", "a.example"}),
    ],
)
def test_allowed_names(bound_to: str, allowed: tuple[str, ...], names: set[str] | None) -> None:
    assert allowed_names(bound_to, allowed) == (None if names is None else frozenset(names))


@pytest.mark.parametrize(
    ("header", "name"), [("localhost:1", "localhost"), ("[::1]:8503", "[::1]"), ("[::1]", "[::1]"), ("A.B", "a.b")]
)
def test_request_host_drops_the_port(header: str, name: str) -> None:
    assert request_host(header) == name


def test_loopback_bind_addresses() -> None:
    assert [is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "0.0.0.0", "::")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_allowed_hosts_setting() -> None:
    assert ServiceSettings.load({}).allowed_hosts == ()
    assert ServiceSettings.load({"EDDIE_OTEL_ALLOWED_HOSTS": " A.example., b.example "}).allowed_hosts == (
        "a.example",
        "b.example",
    )
    assert ServiceSettings.load({"EDDIE_OTEL_ALLOWED_HOSTS": "a"}, allowed_hosts=("b",)).allowed_hosts == ("b",)
    with pytest.raises(ConfigurationError, match="EDDIE_OTEL_ALLOWED_HOSTS must list host names"):
        ServiceSettings.load({"EDDIE_OTEL_ALLOWED_HOSTS": "http://a.example/"})
