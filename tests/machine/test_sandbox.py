"""Scenario 7: a collector cannot read the credentials file, write outside its state
directory or read another collector's state, and still reaches InfluxDB over the network."""

from __future__ import annotations

import time

from machine_deploy import DATABASE, CharmUnit
from machine_harness import wait_for
from metrics.testing import InfluxServer


def test_sandbox_denies_files_but_not_influxdb(
    steady_unit: CharmUnit, influx: InfluxServer
) -> None:
    # Another collector must have state to be refused: ticker keeps a run counter.
    wait_for(
        "ticker's state directory",
        lambda: (
            steady_unit.container.run(
                ["test", "-e", "/var/lib/private/metrics-collector/ticker/runs"], check=False
            ).returncode
            == 0
        ),
    )
    newer = f'SELECT * FROM "sandbox_probe" WHERE time > {time.time_ns()}'  # noqa: S608
    rows = wait_for(
        "a sandbox_probe point written after ticker kept state",
        lambda: influx.query(newer, DATABASE),
        timeout=60,
    )
    assert isinstance(rows, list)
    probe = rows[0]
    # The point itself reached InfluxDB from inside the sandbox.
    assert probe["read_credentials"] == "EACCES", probe
    # systemd hides other DynamicUser state directories from the sandbox altogether.
    assert probe["read_other_state"] in ("EACCES", "ENOENT"), probe
    assert probe["write_state_root"] in ("EACCES", "EROFS"), probe
    assert probe["write_etc"] in ("EACCES", "EROFS"), probe
    assert probe["write_own_state"] == "allowed", probe
    assert probe["uid"] != 0, probe
    assert probe["password_in_environment"] is False, probe
    for path in ("/etc/probe", "/var/lib/ubuntu-community-metrics/probe"):
        assert steady_unit.container.run(["test", "-e", path], check=False).returncode == 1
