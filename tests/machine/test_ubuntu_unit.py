"""The packed charm's workload on booted Ubuntu 22.04 and 24.04, the units' systems: the
bundled collectors are scheduled, every run reports its health point, and the collectors'
state reads back from that release's systemd (249 on 22.04 refused `--timestamp=unix`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from machine_deploy import DATABASE, influx_credentials, unit_image
from machine_harness import CharmUnit, booted, wait_for
from metrics.testing import InfluxServer
from pack import PLATFORMS, pack


def _log(line: str) -> None:
    print(f"machine: {line}", file=sys.stderr)


@pytest.fixture(scope="module", params=sorted(PLATFORMS))
def ubuntu_unit(request: pytest.FixtureRequest, influx: InfluxServer) -> Iterator[CharmUnit]:
    release = str(request.param)
    charm = pack(release, log=_log)
    image = unit_image(release, _log)
    with booted(image) as container:
        unit = CharmUnit(container)
        unit.install_packed_charm(charm)
        unit.reconcile({"repo": "", "collector_timeout": "60s"}, influx_credentials(influx))
        yield unit


def test_the_bundled_collectors_are_scheduled_from_the_packed_charm(
    ubuntu_unit: CharmUnit,
) -> None:
    report = ubuntu_unit.report
    assert report["problems"] == []
    assert (report["commit"] or "").startswith("bundled-")
    assert report["scheduled"]
    wanted = sorted(f"metrics-collector@{name}.timer" for name in report["scheduled"])
    assert ubuntu_unit.timers() == wanted


def test_status_reads_each_collectors_runs_from_systemd(
    ubuntu_unit: CharmUnit, influx: InfluxServer
) -> None:
    name = ubuntu_unit.report["scheduled"][0]
    before = len(_health_points(influx, name))
    # Without internet the bundled collectors fail; the run still reports its health point.
    ubuntu_unit.container.run(
        ["systemctl", "start", f"metrics-collector@{name}.service"], check=False, timeout=120
    )
    wait_for(
        f"a new collector_run point of {name}",
        lambda: len(_health_points(influx, name)) > before,
        timeout=60,
    )
    status = json.loads(ubuntu_unit.workload("status", "--json").stdout)
    (shown,) = [c for c in status["collectors"] if c["name"] == name]
    # Read back from `systemctl show`: the run happened and when.
    assert shown["last_result"] not in (None, "running")
    assert shown["last_run"] is not None


def _health_points(influx: InfluxServer, name: str) -> list[dict[str, object]]:
    return influx.query(
        f'SELECT * FROM "collector_run" WHERE "collector" = \'{name}\'',  # noqa: S608
        DATABASE,
    )
