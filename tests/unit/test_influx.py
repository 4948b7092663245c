"""check_influxdb against a real influxd with authentication: which part is wrong, in one line."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics.testing import InfluxServer, ThrowawayCA, UpstreamServer, free_port

from workload import check_influxdb
from workload.credentials import InfluxCredentials

PASSWORD = "writer-pass-8c1f"


@pytest.fixture(scope="module")
def influx() -> Iterator[InfluxServer]:
    with InfluxServer(auth=True) as server:
        server.create_database("metrics")
        server.create_database("other")
        server.create_user("writer", PASSWORD)
        server.grant("writer", "metrics", "ALL")
        yield server


def credentials(server: InfluxServer, **changes: object) -> InfluxCredentials:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "username": "writer",
        "password": PASSWORD,
        "database": "metrics",
    }
    fields.update(changes)
    return InfluxCredentials(**fields)  # type: ignore[arg-type]


def test_working_credentials_give_no_problem(influx: InfluxServer) -> None:
    assert check_influxdb(credentials(influx)) is None


def test_a_wrong_password_is_reported_as_rejected_without_showing_it(
    influx: InfluxServer,
) -> None:
    problem = check_influxdb(credentials(influx, password="wrong-guess-77"))

    assert problem is not None
    assert f"InfluxDB at 127.0.0.1:{influx.port} rejected user 'writer'" in problem
    assert "check the username and password" in problem
    assert "wrong-guess-77" not in problem


def test_an_unknown_user_is_reported_as_rejected(influx: InfluxServer) -> None:
    problem = check_influxdb(credentials(influx, username="nobody"))

    assert problem is not None
    assert "rejected user 'nobody'" in problem


def test_a_missing_database_is_named_with_the_fix(influx: InfluxServer) -> None:
    admin = credentials(influx, username="admin", password="admin-password", database="nope")

    problem = check_influxdb(admin)

    assert problem is not None
    assert problem.startswith(
        f"database 'nope' does not exist on InfluxDB at 127.0.0.1:{influx.port}"
    )
    assert 'CREATE DATABASE "nope"' in problem


def test_a_database_the_user_may_not_use_is_named_with_the_grant(influx: InfluxServer) -> None:
    problem = check_influxdb(credentials(influx, database="other"))

    assert problem is not None
    assert "user 'writer' may not read database 'other'" in problem
    assert PASSWORD not in problem


def test_a_port_nobody_listens_on_is_unreachable() -> None:
    port = free_port()
    problem = check_influxdb(
        InfluxCredentials("127.0.0.1", port, "writer", PASSWORD, "metrics"), timeout=2
    )

    assert problem is not None
    assert problem.startswith(f"InfluxDB at 127.0.0.1:{port} is unreachable")
    assert "check the host, port and that InfluxDB runs" in problem


def test_a_web_server_that_is_not_influxdb_is_named() -> None:
    with UpstreamServer({}) as web:
        port = int(web.url.rsplit(":", 1)[1])
        problem = check_influxdb(InfluxCredentials("127.0.0.1", port, "u", "p", "metrics"))

    assert problem is not None
    assert "answers /ping with HTTP 404, not as InfluxDB" in problem


def test_a_stopped_server_is_unreachable(influx: InfluxServer) -> None:
    influx.stop()
    try:
        problem = check_influxdb(credentials(influx), timeout=2)
    finally:
        influx.start()

    assert problem is not None
    assert "is unreachable" in problem
    assert check_influxdb(credentials(influx)) is None


# InfluxDB serving HTTPS with a certificate of a private CA


@pytest.fixture(scope="module")
def certificate_authority(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def https_influx(
    certificate_authority: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfluxServer]:
    certificate = certificate_authority.issue(tmp_path_factory.mktemp("influxd-tls"))
    with InfluxServer(auth=True, https=certificate) as server:
        server.create_database("metrics")
        server.create_user("writer", PASSWORD)
        server.grant("writer", "metrics", "ALL")
        yield server


def test_https_with_the_ca_that_signed_influxdbs_certificate_gives_no_problem(
    https_influx: InfluxServer, certificate_authority: ThrowawayCA
) -> None:
    tls = credentials(https_influx, ssl=True, ca_cert=certificate_authority.cert_pem)

    assert check_influxdb(tls) is None
    # The credentials are checked over TLS too.
    assert "rejected user 'writer'" in str(check_influxdb(dataclasses.replace(tls, password="x")))


@pytest.mark.parametrize("trust", ["no-ca-cert", "another-ca"])
def test_a_certificate_the_ca_cert_did_not_sign_is_named_with_the_fix(
    https_influx: InfluxServer, tmp_path: Path, trust: str
) -> None:
    ca_cert = ThrowawayCA(tmp_path, "another CA").cert_pem if trust == "another-ca" else ""

    problem = check_influxdb(credentials(https_influx, ssl=True, ca_cert=ca_cert), timeout=2)

    fix = (
        "the ca-cert given is not the CA that signed InfluxDB's certificate: set the right one"
        if ca_cert
        else "set ca-cert (influxdb-secret, or the influxdb relation) to the CA that signed it"
    )
    assert problem == (
        f"InfluxDB at 127.0.0.1:{https_influx.port}: TLS certificate not verified (unable to "
        f"get local issuer certificate): {fix}"
    )


def test_a_host_name_the_certificate_does_not_hold_is_named_with_the_fix(
    https_influx: InfluxServer, certificate_authority: ThrowawayCA
) -> None:
    problem = check_influxdb(
        credentials(
            https_influx, host="localhost", ssl=True, ca_cert=certificate_authority.cert_pem
        ),
        timeout=2,
    )

    assert problem == (
        f"InfluxDB at localhost:{https_influx.port}: TLS certificate not verified (Hostname "
        "mismatch, certificate is not valid for 'localhost'.): use a host name or address "
        "that InfluxDB's certificate names (subjectAltName)"
    )
