"""Fixtures: one real influxd for the module (and one serving HTTPS with a certificate of a
throwaway CA), a fresh database and state directory per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics.lib import helpers
from metrics.lib.basemetric import Metric
from metrics.lib.influx import WriteSettings
from metrics.testing import InfluxServer, ThrowawayCA

_databases = itertools.count()


@pytest.fixture(scope="module")
def influx() -> Iterator[InfluxServer]:
    with InfluxServer() as server:
        yield server


@pytest.fixture(scope="module")
def certificate_authority(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    """A private CA made by openssl; it signed `https_influx`'s certificate."""
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def https_influx(
    certificate_authority: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfluxServer]:
    """influxd serving HTTPS only, its certificate for 127.0.0.1 signed by
    `certificate_authority`."""
    certificate = certificate_authority.issue(tmp_path_factory.mktemp("influxd-tls"))
    with InfluxServer(https=certificate) as server:
        yield server


@pytest.fixture
def database(influx: InfluxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A new database, named in INFLUXDB_* as a manual run would; state in tmp_path/state."""
    name = f"test{next(_databases)}"
    influx.create_database(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("INFLUXDB_HOSTNAME", influx.host)
    monkeypatch.setenv("INFLUXDB_PORT", str(influx.port))
    monkeypatch.setenv("INFLUXDB_DATABASE", name)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return name


@pytest.fixture(autouse=True)
def fresh_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a new run: nothing fetched yet, and retries that do not wait long."""
    helpers.clear_cache()
    monkeypatch.setattr(helpers, "BACKOFF", 0.01)
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(attempts=2, backoff=0.01))
