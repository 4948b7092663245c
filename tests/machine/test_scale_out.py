"""Scale out on booted Ubuntu 22.04 and 24.04: three units of the packed charm, each on its own
machine, share the collectors through the cluster peer relation and one InfluxDB; a fourth
joins and one leaves. Every collector runs on exactly one unit (the unit tag of its
collector_run points), none stops, and no timer is on two units once the hooks have run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from machine_deploy import CharmUnit, deploy_with_influxdb, serving_remote
from machine_harness import GitRemote, booted, wait_for
from machine_trees import push_tree, ticker
from metrics.testing import InfluxServer
from unit_agent import APP, UnitAgent

COLLECTORS = [f"share_{n}" for n in range(8)]
# Each unit's id of the cluster relation, as its agent numbered it.
CLUSTER: dict[str, int] = {}


def runs_by_unit(influx: InfluxServer, since: float) -> dict[str, set[str]]:
    """Collector -> the units whose runs it has since `since` (seconds since the epoch)."""
    rows = influx.query(
        f'SELECT "ok", "collector", "unit" FROM "collector_run" WHERE time > {int(since * 1e9)}',  # noqa: S608
        "metrics",
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        if row["collector"] in COLLECTORS:
            found.setdefault(row["collector"], set()).add(row["unit"])
    return found


def timers_by_unit(units: dict[int, CharmUnit]) -> dict[str, list[str]]:
    return {
        unit.agent.unit: [t.removeprefix("metrics-collector@").removesuffix(".timer")
                          for t in unit.timers()]
        for unit in units.values()
    }  # fmt: skip


def assert_each_collector_on_one_unit(units: dict[int, CharmUnit]) -> None:
    timers = timers_by_unit(units)
    everywhere = sorted(name for names in timers.values() for name in names)
    assert everywhere == sorted(COLLECTORS), timers


@contextlib.contextmanager
def unit_machine(
    image: Path, charm: Path, influx: InfluxServer, remote: GitRemote, number: int
) -> Iterator[CharmUnit]:
    with booted(image) as container:
        agent = UnitAgent(container, number=number, leader=number == 0)
        config = {"collectors-repo": remote.url, "collector-timeout": "15s"}
        deploy_with_influxdb(agent, charm, config, influx)
        CLUSTER[agent.unit] = agent.relate("cluster", APP)
        yield CharmUnit(container, agent)


def join_each_other(units: dict[int, CharmUnit], new: int) -> None:
    """`juju add-unit`: the new unit sees every other one join, and each of them sees it."""
    for number, unit in units.items():
        if number != new:
            units[new].agent.join(CLUSTER[units[new].agent.unit], unit.agent.unit)
            unit.agent.join(CLUSTER[unit.agent.unit], units[new].agent.unit)


def test_units_share_the_collectors_and_hand_them_over(
    machine_image: Path, charm: Path, influx: InfluxServer, tmp_path: Path
) -> None:
    with serving_remote(tmp_path / "remote") as remote, contextlib.ExitStack() as stack:
        push_tree(
            remote,
            {name: ticker("3s", f"tick_{name}") for name in COLLECTORS},
            message="collectors to share",
        )
        units: dict[int, CharmUnit] = {}
        for number in range(3):
            units[number] = stack.enter_context(
                unit_machine(machine_image, charm, influx, remote, number)
            )
            join_each_other(units, number)
        assert_each_collector_on_one_unit(units)
        statuses = {unit.agent.status["message"] for unit in units.values()}
        # (A run that failed under load adds "; failing: ..." after it: not this scenario's point.)
        assert all(f"of {len(COLLECTORS)} collectors on this unit" in message
                   for message in statuses), statuses  # fmt: skip

        since = time.time()
        wait_for(
            "every collector to run",
            lambda: set(runs_by_unit(influx, since)) == set(COLLECTORS),
            timeout=60,
        )
        time.sleep(7)  # two more runs of each
        ran = runs_by_unit(influx, since)
        assert all(len(where) == 1 for where in ran.values()), ran
        assert len({unit for where in ran.values() for unit in where}) == 3

        # juju add-unit: a fourth takes a share; the others give it up within the same hooks.
        units[3] = stack.enter_context(unit_machine(machine_image, charm, influx, remote, 3))
        join_each_other(units, 3)
        assert_each_collector_on_one_unit(units)
        joined = time.time() + 3.5  # a run started before the hooks may still end after them
        wait_for(
            "every collector to run after the fourth unit joined",
            lambda: set(runs_by_unit(influx, joined)) == set(COLLECTORS),
            timeout=60,
        )
        time.sleep(7)
        after_join = runs_by_unit(influx, joined)
        assert all(len(where) == 1 for where in after_join.values()), after_join
        assert any(f"{APP}/3" in where for where in after_join.values())

        # juju remove-unit ubuntu-community-metrics/1: the others see it depart and take over.
        leaving = units.pop(1)
        owned_by_leaving = sorted(
            name for name, where in after_join.items() if leaving.agent.unit in where
        )
        leaving.agent.remove()
        # Its influxdb relation departed before its remove hook, yet the remove hook still had
        # the credentials to write each of its collectors' spools (empty here).
        replayed = leaving.journal("metrics-collector-replay@*", lines=200)
        for name in owned_by_leaving:
            assert f"nothing spooled for {name}" in replayed, replayed
        for unit in units.values():
            unit.agent.depart(CLUSTER[unit.agent.unit], leaving.agent.unit)
        assert leaving.timers() == []
        assert_each_collector_on_one_unit(units)
        left = time.time() + 3.5
        wait_for(
            "every collector to run after a unit left",
            lambda: set(runs_by_unit(influx, left)) == set(COLLECTORS),
            timeout=60,
        )
        time.sleep(7)
        after_leave = runs_by_unit(influx, left)
        assert all(len(where) == 1 for where in after_leave.values()), after_leave
        assert not any(leaving.agent.unit in where for where in after_leave.values())
