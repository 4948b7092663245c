"""Scenario 6: after the machine reboots, the collectors' timers are back and run."""

from __future__ import annotations

from pathlib import Path

from machine_deploy import DATABASE, deployed_unit, serving_remote
from machine_harness import wait_for
from machine_trees import push_tree, ticker
from metrics.testing import InfluxServer


def test_timers_come_back_after_reboot(
    machine_image: Path, charm: Path, influx: InfluxServer, tmp_path: Path
) -> None:
    with serving_remote(tmp_path / "remote") as remote:
        push_tree(remote, {"ticker": ticker("2s", "reboot_tick")}, message="one collector")
        with deployed_unit(machine_image, charm, influx, remote) as unit:
            wait_for("a run before the reboot", lambda: influx.count("reboot_tick", DATABASE))
            unit.container.reboot()
            after_boot = influx.count("reboot_tick", DATABASE)

            assert unit.timers() == ["metrics-collector@ticker.timer"]
            state = unit.show("metrics-collector@ticker.timer", "ActiveState")
            assert state["ActiveState"] == "active"
            assert unit.show("metrics-pull.timer", "ActiveState")["ActiveState"] == "active"
            wait_for(
                "runs after the reboot",
                lambda: influx.count("reboot_tick", DATABASE) >= after_boot + 2,
                timeout=60,
            )
