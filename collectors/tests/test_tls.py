"""Writing to an InfluxDB that serves HTTPS with a certificate of a private CA: a real influxd
with a certificate made by openssl, the CA reaching the run in the credentials file."""

from __future__ import annotations

import json
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from metrics.lib.basemetric import Metric
from metrics.lib.errors import CollectorError
from metrics.testing import InfluxServer, ThrowawayCA


class Numbers(Metric):
    """Yields `count` points; records the CA files the run has while it collects."""

    collector_name = "numbers"

    def __init__(self, count: int, ca_files: Path) -> None:
        super().__init__()
        self.count = count
        self.ca_files = ca_files
        self.seen: list[tuple[str, int]] = []

    def collect(self) -> Iterator[dict[str, Any]]:
        self.seen = [(p.read_text(), stat.S_IMODE(p.stat().st_mode)) for p in self.files()]
        for i in range(self.count):
            yield {"measurement": "numbers", "tags": {"n": str(i)}, "fields": {"value": i}}

    def files(self) -> list[Path]:
        return sorted(self.ca_files.glob("influxdb-ca-*"))


@pytest.fixture
def https_database(
    https_influx: InfluxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """A new database on the HTTPS server; state in tmp_path/state, temporary files (the CA
    file) in tmp_path/tmp."""
    name = f"tls{len(https_influx.query('SHOW DATABASES'))}"
    https_influx.create_database(name)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return name


def use_credentials(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    influx: InfluxServer,
    database: str,
    **extra: Any,
) -> None:
    """The credentials file the charm writes, read as systemd's LoadCredential= hands it."""
    folder.mkdir(exist_ok=True)
    content = {
        "host": influx.host,
        "port": influx.port,
        "username": "",
        "password": "",
        "database": database,
        "ssl": True,
        "verify_ssl": True,
        **extra,
    }
    (folder / "influxdb").write_text(json.dumps(content))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))


def spooled(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "state" / "spool").glob("*.lp"))


def test_points_land_over_https_trusting_the_private_ca_from_the_credentials_file(
    https_influx: InfluxServer,
    https_database: str,
    certificate_authority: ThrowawayCA,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    use_credentials(
        monkeypatch,
        tmp_path / "credentials",
        https_influx,
        https_database,
        ca_cert=certificate_authority.cert_pem,
    )
    # requests lets these override a session's CA bundle: the ca-cert must win anyway.
    other_bundle = ThrowawayCA(tmp_path / "other-ca", "another CA").certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other_bundle))
    metric = Numbers(3, tmp_path / "tmp")

    metric.run()

    assert https_influx.count("numbers", https_database) == 3
    (run,) = https_influx.query('SELECT * FROM "collector_run"', https_database)
    assert (run["ok"], run["error"]) == (True, "")
    # The CA went to a private file for requests, gone once the run ended.
    assert metric.seen == [(certificate_authority.cert_pem, 0o600)]
    assert metric.files() == []


@pytest.mark.parametrize("trust", ["no-ca-cert", "another-ca"])
def test_an_untrusted_certificate_spools_and_says_to_set_ca_cert_then_the_ca_replays_them(
    https_influx: InfluxServer,
    https_database: str,
    certificate_authority: ThrowawayCA,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    trust: str,
) -> None:
    wrong = {}
    if trust == "another-ca":
        wrong = {"ca_cert": ThrowawayCA(tmp_path / "other-ca", "another CA").cert_pem}
    use_credentials(monkeypatch, tmp_path / "credentials", https_influx, https_database, **wrong)

    with pytest.raises(CollectorError) as failure:
        Numbers(3, tmp_path / "tmp").run()

    fix = (
        "the ca-cert given did not sign InfluxDB's certificate: set the right CA"
        if wrong
        else "set ca-cert in influxdb-secret (or the relation) to the CA that signed InfluxDB's"
        " certificate"
    )
    assert str(failure.value) == (
        f"TLS verification of InfluxDB at {https_influx.url} failed: certificate verify "
        f"failed: unable to get local issuer certificate; {fix}; points are spooled and "
        "replayed once it succeeds"
    )
    assert len(spooled(tmp_path)) == 2  # the points and the health point
    assert https_influx.count("numbers", https_database) == 0

    use_credentials(
        monkeypatch,
        tmp_path / "credentials",
        https_influx,
        https_database,
        ca_cert=certificate_authority.cert_pem,
    )
    Numbers(0, tmp_path / "tmp").run()

    assert https_influx.count("numbers", https_database) == 3
    failed, replayed = https_influx.query('SELECT * FROM "collector_run"', https_database)
    assert (failed["ok"], failed["points_spooled"]) == (False, 3)
    assert failed["error"] == str(failure.value)
    assert (replayed["ok"], replayed["points_written"]) == (True, 3 + 1)
    assert spooled(tmp_path) == []
