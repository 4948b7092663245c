"""Scenario 1: a fresh install schedules every collector at its declared interval, and the
timers run them: their points and their `collector_run` health points land in InfluxDB."""

from __future__ import annotations

import re

from machine_deploy import DATABASE, CharmUnit
from machine_harness import wait_for
from metrics.testing import InfluxServer

SCHEDULED = ["hangs", "raises", "sandbox_probe", "slow_ticker", "ticker"]


def timer_interval(unit: CharmUnit, name: str) -> str:
    monotonic = unit.show(f"metrics-collector@{name}.timer", "TimersMonotonic")["TimersMonotonic"]
    match = re.search(r"OnUnitInactiveUSec=([^;}]+)", monotonic)
    assert match, f"metrics-collector@{name}.timer has no OnUnitInactiveSec: {monotonic}"
    return match.group(1).strip()


def runs(influx: InfluxServer, measurement: str) -> list[int]:
    rows = influx.query(f'SELECT "run" FROM "{measurement}"', DATABASE)  # noqa: S608
    return sorted(row["run"] for row in rows)


def test_fresh_install_runs_collectors_from_their_timers(
    steady_unit: CharmUnit, influx: InfluxServer
) -> None:
    unit = steady_unit
    # What the operator reads in `juju status` (a "failing: ..." part may follow).
    assert unit.agent.status["status"] == "active"
    assert unit.agent.status["message"].startswith(
        "5 collectors scheduled; skipped: bad_interval, syntax_error (see list-collectors)"
    )
    assert unit.timers() == [f"metrics-collector@{name}.timer" for name in SCHEDULED]
    for name in SCHEDULED:
        state = unit.show(f"metrics-collector@{name}.timer", "ActiveState", "UnitFileState")
        assert state == {"ActiveState": "active", "UnitFileState": "enabled"}, name
    assert timer_interval(unit, "ticker") == "3s"
    assert timer_interval(unit, "slow_ticker") == "7s"
    pull = unit.show("metrics-pull.timer", "ActiveState")
    assert pull["ActiveState"] == "active"

    # Nobody starts the services: only the timers can make these numbers grow.
    wait_for("three runs of ticker", lambda: len(runs(influx, "tick")) >= 3, timeout=60)
    wait_for("a run of slow_ticker", lambda: runs(influx, "slow_tick"), timeout=60)
    ticks = runs(influx, "tick")
    assert ticks == list(range(1, len(ticks) + 1))

    health = influx.query(
        """SELECT "ok", "points_written", "error" FROM "collector_run" """
        """WHERE "collector" = 'ticker'""",
        DATABASE,
    )
    assert health, "no collector_run point for ticker"
    # The first run's health (later ones may see scenario 4's InfluxDB outage).
    assert health[0]["ok"] is True, health[0]
    assert health[0]["points_written"] == 1, health[0]
    assert health[0]["error"] == "", health[0]
