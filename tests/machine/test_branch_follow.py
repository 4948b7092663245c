"""Scenarios 2 and 5: the unit follows its branch through the pull timer alone. A merged
collector starts running, a removed one loses its timer, a force-push is followed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from machine_deploy import DATABASE, CharmUnit, deployed_unit, serving_remote
from machine_harness import GitRemote, wait_for
from machine_trees import push_tree, ticker
from metrics.testing import InfluxServer

PULL_INTERVAL = "2s"


@pytest.fixture(scope="module")
def following(
    machine_image: Path,
    charm: Path,
    influx: InfluxServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CharmUnit, GitRemote]]:
    with serving_remote(tmp_path_factory.mktemp("follow") / "remote") as remote:
        push_tree(remote, {"ticker": ticker("3s", "follow_tick")}, message="first tree")
        with deployed_unit(
            machine_image, charm, influx, remote, pull_interval=PULL_INTERVAL
        ) as unit:
            yield unit, remote


def has_timer(unit: CharmUnit, name: str) -> bool:
    return f"metrics-collector@{name}.timer" in unit.timers()


def live_commit(unit: CharmUnit) -> str:
    return unit.container.run(
        ["python3", "-c", "import json; print(json.load(open("
         "'/var/lib/ubuntu-community-metrics/sync.json'))['commit'])"],
        check=False,
    ).stdout.strip()  # fmt: skip


def test_merged_collector_runs_and_removed_one_loses_its_timer(
    following: tuple[CharmUnit, GitRemote], influx: InfluxServer
) -> None:
    unit, remote = following
    assert unit.timers() == ["metrics-collector@ticker.timer"]
    tree = {"ticker": ticker("3s", "follow_tick"), "newcomer": ticker("2s", "newcomer_tick")}
    push_tree(remote, tree, message="merge newcomer")

    wait_for("newcomer's timer", lambda: has_timer(unit, "newcomer"), timeout=60)
    wait_for("newcomer's points", lambda: influx.count("newcomer_tick", DATABASE), timeout=60)
    interval = unit.show("metrics-collector@newcomer.timer", "TimersMonotonic")
    assert "OnUnitInactiveUSec=2s" in interval["TimersMonotonic"]

    push_tree(remote, {"ticker": ticker("3s", "follow_tick")}, message="remove newcomer")
    wait_for("newcomer's timer to go", lambda: not has_timer(unit, "newcomer"), timeout=60)
    assert unit.show("metrics-collector@newcomer.timer", "LoadState")["LoadState"] == "not-found"
    unit_file = "/etc/systemd/system/metrics-collector@newcomer.timer"
    assert unit.container.run(["test", "-e", unit_file], check=False).returncode == 1
    assert has_timer(unit, "ticker")


def test_force_push_is_followed(
    following: tuple[CharmUnit, GitRemote], influx: InfluxServer
) -> None:
    unit, remote = following
    before = remote.head()
    rewritten = push_tree(
        remote,
        {"rewritten": ticker("2s", "rewritten_tick")},
        message="history rewritten",
        force=True,
    )
    assert before not in remote.git("rev-list", rewritten, cwd=remote.clone)
    wait_for("the unit to check out the rewritten branch",
             lambda: live_commit(unit) == rewritten, timeout=60)  # fmt: skip
    wait_for("rewritten's points", lambda: influx.count("rewritten_tick", DATABASE), timeout=60)
    assert unit.timers() == ["metrics-collector@rewritten.timer"]
