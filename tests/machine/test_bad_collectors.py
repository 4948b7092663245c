"""Scenario 3: broken collectors in the branch (a syntax error, a bad RUN_INTERVAL, one that
raises, one that hangs past the collector timeout) do not stop the good ones, and
`python3 -m workload status` names each of them."""

from __future__ import annotations

import json
from typing import Any

from machine_deploy import DATABASE, CharmUnit
from machine_harness import wait_for
from metrics.testing import InfluxServer


def tick_count(influx: InfluxServer) -> int:
    return influx.count("tick", DATABASE)


def test_bad_collectors_are_reported_and_good_ones_keep_running(
    steady_unit: CharmUnit, influx: InfluxServer
) -> None:
    unit = steady_unit
    # The list-collectors action names each skipped collector's problem.
    listed = unit.agent.run_action("list-collectors")
    assert listed.action is not None
    rows = {row.split()[0]: row for row in listed.action["results"]["collectors"].splitlines()[1:]}
    assert "line 5" in rows["syntax_error"]
    assert "every other tuesday" in rows["bad_interval"]
    assert unit.timers().count("metrics-collector@syntax_error.timer") == 0

    # The hanging collector is stopped at the collector timeout, the raising one fails.
    wait_for(
        "hangs to be stopped at its timeout",
        lambda: unit.show("metrics-collector@hangs.service", "Result")["Result"] == "timeout",
        timeout=90,
    )
    wait_for(
        "raises to fail",
        lambda: unit.show("metrics-collector@raises.service", "Result")["Result"] == "exit-code",
        timeout=90,
    )
    health = wait_for(
        "a collector_run point for raises",
        lambda: influx.query(
            """SELECT "ok", "error" FROM "collector_run" WHERE "collector" = 'raises'""",
            DATABASE,
        ),
    )
    assert isinstance(health, list)
    assert health[0]["ok"] is False
    assert "RuntimeError: upstream answered nonsense" in health[0]["error"]

    # Meanwhile the good collector keeps its 3 s schedule.
    before = tick_count(influx)
    wait_for("ticker to run twice more", lambda: tick_count(influx) >= before + 2, timeout=30)

    def status() -> dict[str, dict[str, Any]]:
        report = json.loads(unit.workload("status", "--json").stdout)
        return {entry["name"]: entry for entry in report["collectors"]}

    seen = status()
    assert "syntax error" in seen["syntax_error"]["problem"], seen["syntax_error"]
    assert "line 5" in seen["syntax_error"]["problem"], seen["syntax_error"]
    assert "every other tuesday" in seen["bad_interval"]["problem"], seen["bad_interval"]
    assert seen["ticker"]["problem"] is None, seen["ticker"]
    assert seen["ticker"]["last_result"] == "success", seen["ticker"]
    # systemd resets a service's Result when a run starts, so `hangs` reads as failed only
    # between its runs; it is running most of the time, hence the wait.
    for name, result in (("raises", "exit-code"), ("hangs", "timeout")):
        wait_for(
            f"workload status to report {name} as {result}",
            lambda name=name, result=result: str(status()[name]["last_result"]).startswith(result),
            timeout=90,
        )
    text = unit.workload("status").stdout
    for name in ("syntax_error", "bad_interval", "raises", "hangs"):
        assert name in text, f"{name} missing from workload status:\n{text}"
