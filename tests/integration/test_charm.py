"""Deploy the packed charm beside an InfluxDB, relate them, and check that points arrive; then
hand the same credentials over as a Juju user secret instead of the relation.

Runs against the current Juju controller (conftest.py skips every test when there is none). The
InfluxDB charm must provide the `influxdb-api` interface; choose it with the environment:
INFLUXDB_CHARM (default `influxdb`), INFLUXDB_CHANNEL (default `stable`), INFLUXDB_BASE
(default `ubuntu@22.04`) and INFLUXDB_ENDPOINT (its influxdb-api endpoint, default `query`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from pytest_operator.plugin import OpsTest

ROOT = Path(__file__).resolve().parents[2]
APP = yaml.safe_load((ROOT / "metadata.yaml").read_text())["name"]
INFLUXDB = "influxdb"
INFLUXDB_CHARM = os.environ.get("INFLUXDB_CHARM", "influxdb")
INFLUXDB_CHANNEL = os.environ.get("INFLUXDB_CHANNEL", "stable")
INFLUXDB_BASE = os.environ.get("INFLUXDB_BASE", "ubuntu@22.04")
INFLUXDB_ENDPOINT = os.environ.get("INFLUXDB_ENDPOINT", "query")
DATABASE = "metrics"
NO_CREDENTIALS = "no InfluxDB credentials: integrate with influxdb or set influxdb-secret"
TIMEOUT = 20 * 60


async def run_action(ops_test: OpsTest, action: str, **params: object) -> dict[str, str]:
    """Run an action on the charm's unit; its results, whatever its outcome."""
    assert ops_test.model is not None
    unit = ops_test.model.applications[APP].units[0]
    started = await unit.run_action(action, **params)
    finished = await started.wait()
    results = dict(finished.results)
    results["status"] = finished.status
    return results


async def influx(ops_test: OpsTest, query: str) -> dict:
    """Run `query` with the influx CLI on the InfluxDB unit; its JSON answer."""
    assert ops_test.model is not None
    unit = ops_test.model.applications[INFLUXDB].units[0].name
    code, stdout, stderr = await ops_test.juju(
        "exec", "--unit", unit, "--", "influx", "-format", "json", "-execute", query
    )
    assert code == 0, f"influx -execute {query!r} on {unit} failed: {stderr}"
    return json.loads(stdout or "{}")


@pytest.mark.abort_on_fail
async def test_deploy_without_influxdb_asks_for_credentials(ops_test: OpsTest) -> None:
    assert ops_test.model is not None
    charm = await ops_test.build_charm(ROOT)
    await ops_test.model.deploy(charm, application_name=APP, base="ubuntu@22.04")
    await ops_test.model.wait_for_idle(apps=[APP], status="blocked", timeout=TIMEOUT)
    unit = ops_test.model.applications[APP].units[0]
    assert unit.workload_status_message == NO_CREDENTIALS


@pytest.mark.abort_on_fail
async def test_related_to_influxdb_becomes_active(ops_test: OpsTest) -> None:
    assert ops_test.model is not None
    await ops_test.model.deploy(
        INFLUXDB_CHARM,
        application_name=INFLUXDB,
        channel=INFLUXDB_CHANNEL,
        base=INFLUXDB_BASE,
    )
    await ops_test.model.wait_for_idle(apps=[INFLUXDB], status="active", timeout=TIMEOUT)
    await influx(ops_test, f'CREATE DATABASE "{DATABASE}"')
    await ops_test.model.integrate(f"{APP}:influxdb", f"{INFLUXDB}:{INFLUXDB_ENDPOINT}")
    await ops_test.model.wait_for_idle(apps=[APP, INFLUXDB], status="active", timeout=TIMEOUT)
    message = ops_test.model.applications[APP].units[0].workload_status_message
    assert "collectors scheduled" in message or "collector scheduled" in message


async def test_list_collectors_shows_the_bundled_tree(ops_test: OpsTest) -> None:
    results = await run_action(ops_test, "list-collectors")
    assert results["status"] == "completed", results
    assert int(results["count"]) > 0
    assert results["collectors"].splitlines()[0].startswith("NAME")


async def test_a_collector_run_writes_points(ops_test: OpsTest) -> None:
    listing = await run_action(ops_test, "list-collectors")
    rows = [line.split() for line in listing["collectors"].splitlines()[1:]]
    names = [row[0] for row in rows if row[-1] == "-"]
    assert names, f"no schedulable collector in:\n{listing['collectors']}"
    outcomes = {}
    for name in names:
        result = await run_action(ops_test, "run-collector", name=name)
        outcomes[name] = result.get("exit-status")
        if result["status"] == "completed":
            break
    else:
        pytest.fail(f"no collector ran successfully: exit statuses {outcomes}")
    answer = await influx(ops_test, f'SHOW MEASUREMENTS ON "{DATABASE}"')
    series = answer["results"][0].get("series") or []
    assert series, f"collector {name} exited 0 but {DATABASE} has no measurement"


async def test_pull_without_a_repository_says_what_to_set(ops_test: OpsTest) -> None:
    results = await run_action(ops_test, "pull")
    assert results["status"] == "failed"


async def influxdb_relation_data(ops_test: OpsTest) -> dict[str, str]:
    """What the InfluxDB unit published on the relation, as the charm's unit sees it."""
    unit = f"{APP}/0"
    code, stdout, stderr = await ops_test.juju("show-unit", unit, "--format", "json")
    assert code == 0, f"juju show-unit {unit} failed: {stderr}"
    for relation in json.loads(stdout)[unit].get("relation-info", []):
        if relation.get("endpoint") == "influxdb":
            for related in relation.get("related-units", {}).values():
                return related.get("data", {})
    raise AssertionError(f"{unit} has no influxdb relation data")


async def test_credentials_from_a_user_secret_replace_the_relation(
    ops_test: OpsTest, tmp_path: Path
) -> None:
    assert ops_test.model is not None
    data = await influxdb_relation_data(ops_test)
    await ops_test.model.applications[APP].remove_relation(
        f"{APP}:influxdb", f"{INFLUXDB}:{INFLUXDB_ENDPOINT}"
    )
    await ops_test.model.wait_for_idle(apps=[APP], status="blocked", timeout=TIMEOUT)
    # The content goes through a private file, never a command line.
    content = tmp_path / "influxdb-credentials.yaml"
    content.touch(mode=0o600)
    content.write_text(
        json.dumps(
            {
                "host": data["hostname"],
                "port": data["port"],
                "username": data["user"],
                "password": data["password"],
                "database": DATABASE,
                "ssl": "false",
            }
        )
    )
    code, stdout, stderr = await ops_test.juju(
        "add-secret", "influxdb-credentials", "--file", str(content)
    )
    assert code == 0, f"juju add-secret failed: {stderr}"
    uri = stdout.strip()
    await ops_test.model.applications[APP].set_config({"influxdb-secret": uri})
    unit = ops_test.model.applications[APP].units[0]
    grant = f"juju grant-secret {uri} {APP}"
    await ops_test.model.block_until(
        lambda: unit.workload_status_message.endswith(grant), timeout=TIMEOUT
    )

    code, _, stderr = await ops_test.juju("grant-secret", "influxdb-credentials", APP)
    assert code == 0, f"juju grant-secret failed: {stderr}"
    await ops_test.model.wait_for_idle(apps=[APP], status="active", timeout=TIMEOUT)
    assert data["password"] not in unit.workload_status_message


async def test_without_any_credentials_the_unit_asks_for_them(ops_test: OpsTest) -> None:
    assert ops_test.model is not None
    await ops_test.model.applications[APP].reset_config(["influxdb-secret"])
    unit = ops_test.model.applications[APP].units[0]
    await ops_test.model.block_until(
        lambda: unit.workload_status_message == NO_CREDENTIALS, timeout=TIMEOUT
    )
    assert unit.workload_status == "blocked"
