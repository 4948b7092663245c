"""The InfluxDB credentials file: root-only from the first byte, rewritten only on change."""

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from workload import check_influxdb, files
from workload.credentials import InfluxCredentials, read_credentials, write_credentials

CREDENTIALS = InfluxCredentials(
    host="influx.example",
    port=8086,
    username="metrics",
    password="s3cret-pass",
    database="metrics",
)


def test_credentials_are_written_as_json_readable_by_root_only(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "ubuntu-community-metrics" / "influxdb.json"

    assert write_credentials(path, CREDENTIALS)

    assert json.loads(path.read_text()) == {
        "host": "influx.example",
        "port": 8086,
        "username": "metrics",
        "password": "s3cret-pass",
        "database": "metrics",
        "ssl": False,
        "verify_ssl": True,
        "ca_cert": "",
    }
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    assert read_credentials(path) == CREDENTIALS


def test_a_ca_certificate_travels_in_the_same_root_only_file(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    credentials = dataclasses.replace(CREDENTIALS, ssl=True, ca_cert=pem)
    path = tmp_path / "influxdb.json"

    write_credentials(path, credentials)

    assert json.loads(path.read_text())["ca_cert"] == pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == credentials


def test_the_file_is_never_readable_by_others_even_before_it_is_renamed_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "influxdb.json"
    modes_before_rename: list[int] = []
    real_replace = os.replace

    def replace_and_record(source: str | Path, destination: str | Path) -> None:
        modes_before_rename.append(stat.S_IMODE(os.stat(source).st_mode))
        real_replace(source, destination)

    monkeypatch.setattr(files.os, "replace", replace_and_record)
    old_umask = os.umask(0)  # the most permissive umask must not widen the mode
    try:
        write_credentials(path, CREDENTIALS)
    finally:
        os.umask(old_umask)

    assert modes_before_rename == [0o600]
    assert [p.name for p in tmp_path.iterdir()] == ["influxdb.json"]


def test_unchanged_credentials_are_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "influxdb.json"
    write_credentials(path, CREDENTIALS)
    inode = path.stat().st_ino

    assert not write_credentials(path, CREDENTIALS)
    assert path.stat().st_ino == inode


def test_a_too_open_file_with_the_same_content_is_replaced_by_a_root_only_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "influxdb.json"
    write_credentials(path, CREDENTIALS)
    path.chmod(0o644)

    assert write_credentials(path, CREDENTIALS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_changed_credentials_replace_the_file(tmp_path: Path) -> None:
    path = tmp_path / "influxdb.json"
    write_credentials(path, CREDENTIALS)
    rotated = InfluxCredentials("influx.example", 8086, "metrics", "rotated", "metrics")

    assert write_credentials(path, rotated)
    assert read_credentials(path) == rotated


def test_no_credentials_remove_the_file(tmp_path: Path) -> None:
    path = tmp_path / "influxdb.json"
    write_credentials(path, CREDENTIALS)

    assert write_credentials(path, None)
    assert not path.exists()
    assert not write_credentials(path, None)
    assert read_credentials(path) is None


def test_the_password_is_not_in_the_repr() -> None:
    assert "s3cret-pass" not in repr(CREDENTIALS)
    assert "influx.example" in repr(CREDENTIALS)


@pytest.mark.parametrize(
    "host",
    ["influx\nx-forged: 1", "influx db", "[", "a" * 64 + ".example", "-influx", ""],
)
def test_a_host_that_is_no_name_or_address_is_a_problem_quoted(host: str) -> None:
    problem = InfluxCredentials(host, 8086, "u", "pw-secret", "metrics").problem()

    assert problem is not None
    assert "\n" not in problem
    assert "pw-secret" not in problem
    assert "check the influxdb relation or influxdb-secret" in problem


@pytest.mark.parametrize(
    "host", ["influx", "influx-0.lxd", "10.1.2.3", "::1", "[2001:db8::1]", "db_1.internal."]
)
def test_names_and_addresses_are_hosts(host: str) -> None:
    assert InfluxCredentials(host, 8086, "u", "pw", "metrics").problem() is None


def test_check_influxdb_reports_a_bad_host_without_trying_it() -> None:
    problem = check_influxdb(InfluxCredentials("in flux", 8086, "u", "pw", "metrics"))

    assert problem == (
        "InfluxDB host 'in flux' is not a host name or IP address: check the influxdb relation"
        " or influxdb-secret"
    )
