"""The cos-agent relation on booted Ubuntu 22.04 and 24.04 units: what the packed charm
publishes to the opentelemetry-collector subordinate, and the collectors' log file it ships
(written from the journal, rotated by the release's own logrotate, gone with the relation)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import cosl
import pytest
from machine_deploy import DATABASE, deploy_with_influxdb, serving_remote
from machine_harness import Container, GitRemote, wait_for
from machine_trees import push_tree, ticker
from metrics.testing import InfluxServer, free_port
from unit_agent import APP, UnitAgent

LOG = "/var/log/ubuntu-community-metrics/collectors.log"
LOGROTATE = "/etc/logrotate.d/ubuntu-community-metrics"
LOG_SERVICE = "metrics-log.service"
SUBORDINATE = "opentelemetry-collector"
RUN_LINE = "metrics-collector@ticker.service"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitRemote]:
    with serving_remote(tmp_path / "remote") as serving:
        yield serving


def read(container: Container, path: str) -> str:
    return container.run(["cat", path]).stdout


def run_lines(container: Container, path: str = LOG) -> list[str]:
    """The ticker's lines in a log file (its unit's name leads each of them)."""
    found = container.run(["cat", path], check=False).stdout
    return [line for line in found.splitlines() if RUN_LINE in line]


def service(container: Container) -> dict[str, str]:
    out = container.run(
        [
            "systemctl",
            "show",
            LOG_SERVICE,
            "--property=LoadState,ActiveState,UnitFileState,User,DynamicUser",
        ]
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_cos_agent_relation_publishes_the_endpoint_and_ships_the_collectors_log(
    container: Container, charm: Path, remote: GitRemote, influx: InfluxServer, release: str
) -> None:
    tick = f"tick_cos_{release}"
    push_tree(remote, {"ticker": ticker("3s", tick)}, message="one collector")
    port = free_port()
    agent = UnitAgent(container)
    config = {"collectors-repo": remote.url, "collector-timeout": "15s", "metrics-port": port}
    deploy_with_influxdb(agent, charm, config, influx)
    # A run before the credentials came may have failed: wait for one that wrote.
    wait_for(
        "a ticker point",
        lambda: influx.query(f'SELECT "run" FROM "{tick}"', DATABASE),  # noqa: S608
        timeout=60,
    )
    status = agent.hook("update-status").status
    assert status == {"status": "active", "message": "1 collector scheduled"}
    # Without the relation: no log service, no logrotate file, no log.
    assert service(container)["LoadState"] == "not-found"
    assert container.run(["test", "-e", LOGROTATE], check=False).returncode == 1
    assert container.run(["test", "-e", LOG], check=False).returncode == 1

    # juju integrate ubuntu-community-metrics:cos-agent opentelemetry-collector
    relation = agent.relate("cos-agent", SUBORDINATE)
    hooks = agent.join(relation, f"{SUBORDINATE}/0")
    assert [hook.status for hook in hooks] == [status, status]  # juju status stays as it is

    # What the subordinate reads from this unit's bag: the v0 schema's `config`.
    (record,) = [r for r in agent.model["relations"] if r["id"] == relation]
    assert record["local_app_data"] == {}
    published = json.loads(record["local_unit_data"]["config"])
    assert set(published) == {
        "metrics_scrape_jobs",
        "metrics_alert_rules",
        "log_alert_rules",
        "dashboards",
        "log_slots",
    }
    (job,) = published["metrics_scrape_jobs"]
    assert job["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]
    assert job["metrics_path"] == "/metrics"
    for group in published["metrics_alert_rules"]["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["juju_model_uuid"] == agent.model_uuid
            assert rule["labels"]["juju_application"] == APP
    (dashboard,) = published["dashboards"]
    assert json.loads(cosl.LZMABase64.decompress(dashboard))["tags"][-1] == f"charm: {APP}"
    # Written with relation-set on the unit's own bag, never the application's.
    sets = [call["argv"] for call in agent.calls() if call["tool"] == "relation-set"]
    assert sets
    assert not [argv for argv in sets if "--app" in argv]
    # The job's target answers on the machine, as the subordinate scrapes it.
    scraped = container.run(
        [
            "python3",
            "-c",
            "import sys, urllib.request;"
            "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
            f"http://127.0.0.1:{port}{job['metrics_path']}",
        ]
    ).stdout
    assert "ucm_collector_last_success_timestamp_seconds" in scraped

    # The collectors' log, as a file under /var/log, written as root, readable by root only.
    assert service(container) == {
        "LoadState": "loaded",
        "ActiveState": "active",
        "UnitFileState": "enabled",
        "User": "ucm-log",
        "DynamicUser": "yes",
    }
    wait_for("a ticker run in the collectors' log", lambda: run_lines(container), timeout=60)
    log = container.root / LOG.lstrip("/")
    info = log.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o755

    # The release's logrotate rotates it in place; the open file goes on receiving lines.
    before = run_lines(container)
    container.run(["logrotate", "--force", LOGROTATE])
    assert run_lines(container, f"{LOG}.1")[: len(before)] == before
    wait_for("a ticker run after rotation", lambda: run_lines(container), timeout=60)
    assert not set(run_lines(container)) & set(before)

    # The subordinate leaves and the relation goes: the service stops and is deleted, the
    # logrotate file goes, the log stays and no longer grows.
    agent.depart(relation, f"{SUBORDINATE}/0")
    broken = agent.break_relation(relation)
    assert broken.status == status
    assert service(container) == {
        "LoadState": "not-found",
        "ActiveState": "inactive",
        "UnitFileState": "",
        "User": "",
        "DynamicUser": "no",
    }
    assert container.run(["test", "-e", LOGROTATE], check=False).returncode == 1
    assert (
        container.run(
            ["test", "-e", f"/etc/systemd/system/multi-user.target.wants/{LOG_SERVICE}"],
            check=False,
        ).returncode
        == 1
    )
    kept = read(container, LOG)
    since = container.run(["date", "+@%s"]).stdout.strip()
    wait_for(
        "a ticker run after the relation went",
        lambda: (
            "points written"
            in container.run(
                ["journalctl", "-u", RUN_LINE, f"--since={since}", "-o", "cat"]
            ).stdout
        ),
        timeout=60,
    )
    assert read(container, LOG) == kept
