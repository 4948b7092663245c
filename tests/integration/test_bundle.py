"""Deploy what mojo/bundle.yaml describes for a stage with InfluxDB in the model, and check that
the charm goes active with the rendered options over the rendered relation.

The bundle is rendered as Mojo's bundle phase renders it; only the charm path changes, to the
charm packed from this checkout. Runs against the current Juju controller (conftest.py skips
every test when there is none). MOJO_STAGE (default `devel`) and MOJO_SERIES (default `jammy`)
choose the rendering; the stage must relate to an influxdb application in the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from pytest_operator.plugin import OpsTest

ROOT = Path(__file__).resolve().parents[2]
APP = "ubuntu-community-metrics"
STAGE = os.environ.get("MOJO_STAGE", "devel").rsplit("/", 1)[-1]
SERIES = os.environ.get("MOJO_SERIES", "jammy")
TIMEOUT = 30 * 60  # the manifest's bundle max-wait


def rendered_bundle(local_dir: Path) -> dict[str, Any]:
    # YAML, not HTML: escaping would corrupt values, as it would in Mojo.
    environment = jinja2.Environment(  # noqa: S701
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    template = environment.from_string((ROOT / "mojo" / "bundle.yaml").read_text())
    text = template.render(series=SERIES, local_dir=str(local_dir), stage_name=STAGE)
    return yaml.safe_load(text)


@pytest.mark.abort_on_fail
async def test_rendered_bundle_deploys_and_goes_active(ops_test: OpsTest, tmp_path: Path) -> None:
    assert ops_test.model is not None
    bundle = rendered_bundle(tmp_path)
    assert "influxdb" in bundle["applications"], f"stage {STAGE} has no influxdb in the model"
    application = bundle["applications"][APP]
    charm = await ops_test.build_charm(ROOT)

    await ops_test.model.deploy(
        charm,
        application_name=APP,
        num_units=application["num_units"],
        config=application["options"],
        base=bundle["default-base"],
    )
    influxdb = bundle["applications"]["influxdb"]
    await ops_test.model.deploy(
        influxdb["charm"], application_name="influxdb", num_units=influxdb["num_units"]
    )
    # The subordinates of the staging stage stay out: this test is about the charm's own wiring.
    deployed = {APP, "influxdb"}
    relations = [
        relation
        for relation in bundle["relations"]
        if {endpoint.split(":")[0] for endpoint in relation} <= deployed
    ]
    assert [f"{APP}:influxdb", "influxdb:query"] in relations
    for first, second in relations:
        await ops_test.model.integrate(first, second)
    await ops_test.model.wait_for_idle(apps=[APP, "influxdb"], status="active", timeout=TIMEOUT)

    unit = ops_test.model.applications[APP].units[0]
    assert unit.workload_status == "active", unit.workload_status_message
    config = await ops_test.model.applications[APP].get_config()
    for name, value in application["options"].items():
        assert config[name]["value"] == value, f"{name} is not what the bundle sets"
