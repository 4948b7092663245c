"""Scenario 4: InfluxDB down for several runs, then back: every point lands exactly once
and the spool is empty afterwards."""

from __future__ import annotations

from machine_deploy import DATABASE, CharmUnit
from machine_harness import wait_for
from metrics.testing import InfluxServer

STATE = "/var/lib/private/metrics-collector/ticker"


def runs_done(unit: CharmUnit) -> int:
    result = unit.container.run(["cat", f"{STATE}/runs"], check=False)
    return int(result.stdout) if result.returncode == 0 else 0


def spooled(unit: CharmUnit) -> list[str]:
    result = unit.container.run(["find", f"{STATE}/spool", "-type", "f"], check=False)
    return result.stdout.split()


def landed_runs(influx: InfluxServer) -> list[int]:
    rows = influx.query("""SELECT "run" FROM "tick" WHERE "collector" = 'ticker'""", DATABASE)
    return sorted(row["run"] for row in rows)


def test_points_written_while_influxdb_is_down_land_exactly_once(
    steady_unit: CharmUnit, influx: InfluxServer
) -> None:
    unit = steady_unit
    wait_for("ticker's first run", lambda: runs_done(unit) >= 1)
    influx.stop()
    try:
        stopped_at = runs_done(unit)
        wait_for(
            "three runs of ticker while InfluxDB is down",
            lambda: runs_done(unit) >= stopped_at + 3,
            timeout=60,
        )
        assert spooled(unit), "ticker spooled nothing while InfluxDB was down"
    finally:
        influx.start()
    restarted_at = runs_done(unit)

    def missing() -> set[int]:
        return set(range(1, restarted_at + 1)) - set(landed_runs(influx))

    try:
        wait_for("every run up to the restart to land", lambda: not missing(), timeout=90)
        wait_for("the spool to empty", lambda: not spooled(unit), timeout=30)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\nruns missing: {sorted(missing())}, spool: {spooled(unit)}\n"
            f"ticker's journal:\n{unit.journal('metrics-collector@ticker.service')}"
        ) from None
    landed = landed_runs(influx)
    assert landed == list(range(1, len(landed) + 1)), f"a run was lost or landed twice: {landed}"
