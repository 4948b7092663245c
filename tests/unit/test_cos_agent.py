"""The cos-agent relation: what the unit publishes, checked against the interface's documented
schema (charm-relation-interfaces, interfaces/cos_agent/v0/schema.py) and against what cosl's
helpers, which the cos_agent charm library uses, make of the same files; and the log-file
flag the charm gives the workload. The workload is replaced by test_charm's FakeWorkload."""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import cosl
import pytest
import test_charm
import yaml
from ops import testing
from test_charm import FakeWorkload

import charm
import cos_agent

# The charm tests' fixture: the workload replaced by a FakeWorkload.
fake = test_charm.fake

REPOSITORY = Path(__file__).resolve().parents[2]
RULES = REPOSITORY / "src" / "prometheus_alert_rules"
DASHBOARDS = REPOSITORY / "src" / "grafana_dashboards"
MODEL = testing.Model(name="metrics", uuid="58b48ff0-608b-435f-83b9-ea643e0b98db")
APP = "ubuntu-community-metrics"
# What Juju itself puts in every unit's bag.
JUJU_KEYS = {"egress-subnets", "ingress-address", "private-address"}


def check_schema(bag: dict[str, str]) -> dict[str, Any]:
    """The provider's unit data bag as the v0 schema has it; its parsed `config`.

    ProviderUnitData: `config`, a JSON string of NestedDataModel: `metrics_alert_rules`
    (dict), `log_alert_rules` (dict), `dashboards` (list of str, each base64 of LZMA of a
    dashboard's JSON), `metrics_scrape_jobs` (list of dict), `log_slots` (list of str); the
    library adds an optional `tracing_protocols` (list of str).
    """
    ours = set(bag) - JUJU_KEYS
    assert ours == {"config"}, "the provider writes only `config` in its unit bag"
    config = json.loads(bag["config"])
    assert isinstance(config, dict)
    required = {
        "metrics_alert_rules": dict,
        "log_alert_rules": dict,
        "dashboards": list,
        "metrics_scrape_jobs": list,
        "log_slots": list,
    }
    for key, kind in required.items():
        assert isinstance(config.get(key), kind), f"{key} must be a {kind.__name__}"
    assert set(config) <= {*required, "tracing_protocols", "subordinate"}
    assert all(isinstance(slot, str) for slot in config["log_slots"])
    for job in config["metrics_scrape_jobs"]:
        assert isinstance(job, dict)
        assert isinstance(job["job_name"], str)
        for static in job["static_configs"]:
            assert all(isinstance(target, str) for target in static["targets"])
    for rules in (config["metrics_alert_rules"], config["log_alert_rules"]):
        if not rules:
            continue
        assert set(rules) == {"groups"}
        for group in rules["groups"]:
            assert isinstance(group["name"], str)
            for rule in group["rules"]:
                assert isinstance(rule["alert"], str)
                assert isinstance(rule["expr"], str)
                for mapping in ("labels", "annotations"):
                    assert all(
                        isinstance(k, str) and isinstance(v, str)
                        for k, v in rule.get(mapping, {}).items()
                    )
    for dashboard in config["dashboards"]:
        assert isinstance(dashboard, str)
        assert isinstance(json.loads(cosl.LZMABase64.decompress(dashboard)), dict)
    return config


def cos_relation() -> testing.Relation:
    return testing.Relation(
        endpoint="cos-agent",
        interface="cos_agent",
        remote_app_name="opentelemetry-collector",
        remote_units_data={0: {}},
    )


@pytest.fixture
def ctx() -> testing.Context[Any]:
    return testing.Context(charm.UbuntuCommunityMetricsCharm)


def published(
    ctx: testing.Context[Any], config: dict[str, Any] | None = None
) -> tuple[dict[str, Any], testing.State]:
    relation = cos_relation()
    state = testing.State(relations={relation}, model=MODEL, config=config or {})
    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), state)
    return check_schema(dict(out.get_relation(relation.id).local_unit_data)), out


def test_joined_publishes_config_that_the_schema_accepts(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    config, _ = published(ctx)

    assert config["log_slots"] == []  # the log is a file under /var/log: no snap slot
    assert config["log_alert_rules"] == {}
    assert len(config["dashboards"]) == len(list(DASHBOARDS.glob("*.json")))


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1", "127.0.0.1:9999"),
        ("0.0.0.0", "localhost:9999"),  # noqa: S104 (what an operator sets)
        ("::", "localhost:9999"),
        ("::1", "[::1]:9999"),
        ("10.1.2.3", "10.1.2.3:9999"),
    ],
)
def test_the_scrape_job_targets_the_configured_endpoint_on_this_machine(
    ctx: testing.Context[Any], fake: FakeWorkload, address: str, target: str
) -> None:
    config, _ = published(ctx, {"metrics-address": address, "metrics-port": 9999})

    assert config["metrics_scrape_jobs"] == [
        {
            "job_name": f"{APP}_metrics-exporter",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [target]}],
        }
    ]


def test_config_changed_moves_the_scrape_job_to_the_new_port(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    _, state = published(ctx)
    (relation,) = state.relations

    out = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(state, config={"metrics-port": 9700})
    )

    config = check_schema(dict(out.get_relation(relation.id).local_unit_data))
    assert config["metrics_scrape_jobs"][0]["static_configs"] == [{"targets": ["127.0.0.1:9700"]}]


def expected_rules(topology: cosl.JujuTopology) -> dict[str, Any]:
    """What cosl's AlertRules, as the cos_agent library uses it, makes of our rules file.

    Given the file, not the folder: cosl would also read collectors.test.yaml as rules.
    """
    rules = cosl.AlertRules(query_type="promql", topology=topology)
    for path in sorted(RULES.glob("*.rule")):
        rules.add_path(path)
    return rules.as_dict()


def test_alert_rules_are_ours_with_the_juju_topology_as_cosl_makes_them(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    config, _ = published(ctx)
    rules = config["metrics_alert_rules"]

    topology = cosl.JujuTopology(
        model=MODEL.name, model_uuid=MODEL.uuid, application=APP, charm_name=APP
    )
    assert rules == expected_rules(topology)
    on_disk = yaml.safe_load((RULES / "collectors.rule").read_text())
    ours = [rule["alert"] for group in on_disk["groups"] for rule in group["rules"]]
    sent = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert sent == ours
    for group in rules["groups"]:
        assert group["name"].startswith(f"metrics_58b48ff0_{APP.replace('-', '_')}_")
        for rule in group["rules"]:
            assert rule["labels"]["juju_model"] == "metrics"
            assert rule["labels"]["juju_model_uuid"] == MODEL.uuid
            assert rule["labels"]["juju_application"] == APP
            assert rule["labels"]["juju_charm"] == APP
            assert rule["labels"]["severity"] in ("warning", "critical")


def test_only_rule_files_are_read_as_rules(tmp_path: Path) -> None:
    """promtool's test file sits beside the rules in the repository: it is not a rule file."""
    shutil.copy(RULES / "collectors.rule", tmp_path / "collectors.rule")
    shutil.copy(RULES / "collectors.test.yaml", tmp_path / "collectors.test.yaml")
    topology = cos_agent.Topology("m", str(uuid.uuid4()), "app", "charm")

    rules = cos_agent.alert_rules(tmp_path, topology)

    (tmp_path / "collectors.test.yaml").unlink()
    assert rules == cos_agent.alert_rules(tmp_path, topology)
    assert rules["groups"]


def test_a_file_that_is_not_a_rules_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.rule").write_text("- alert: NoGroups\n")

    with pytest.raises(ValueError, match=r"broken\.rule is not a Prometheus rules file"):
        cos_agent.alert_rules(tmp_path, cos_agent.Topology("m", "u", "a", "c"))


def test_dashboards_decode_to_the_files_with_cos_uid_and_charm_tag(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    config, _ = published(ctx)

    files = sorted(DASHBOARDS.glob("*.json"))
    assert len(config["dashboards"]) == len(files)
    for encoded, path in zip(config["dashboards"], files, strict=True):
        sent = json.loads(cosl.LZMABase64.decompress(encoded))
        original = json.loads(path.read_text())
        relative = str(path.relative_to(REPOSITORY))
        assert sent["uid"] == cosl.DashboardPath40UID.generate(APP, relative)
        assert sent["tags"] == [*original.get("tags", []), f"charm: {APP}"]
        assert {k: v for k, v in sent.items() if k not in ("uid", "tags")} == {
            k: v for k, v in original.items() if k not in ("uid", "tags")
        }


def test_the_published_data_is_the_same_at_every_hook(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    _, state = published(ctx)
    (relation,) = state.relations

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)

    assert out.get_relation(relation.id).local_unit_data == relation.local_unit_data


def test_relation_created_turns_the_log_file_on(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = cos_relation()

    ctx.run(ctx.on.relation_created(relation), testing.State(relations={relation}, model=MODEL))

    assert fake.settings.log_file is True


def test_without_the_relation_nothing_is_published_and_no_log_file(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    out = ctx.run(ctx.on.config_changed(), testing.State(model=MODEL))

    assert fake.settings.log_file is False
    assert not out.relations


def test_relation_broken_turns_the_log_file_off(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = cos_relation()
    state = testing.State(relations={relation}, model=MODEL)
    ctx.run(ctx.on.relation_created(relation), state)
    assert fake.settings.log_file is True

    ctx.run(ctx.on.relation_broken(relation), state)

    assert fake.settings.log_file is False


def test_scrape_job_for_an_address_that_is_not_one_falls_back_to_localhost() -> None:
    """The status names the bad option; the job points where an unspecified address would."""
    assert cos_agent.scrape_jobs("app", "not-an-ip", 9581)[0]["static_configs"] == [
        {"targets": ["localhost:9581"]}
    ]


def test_encoding_is_what_cosl_decodes() -> None:
    text = json.dumps({"title": "ü", "panels": list(range(100))})
    assert cosl.LZMABase64.decompress(cos_agent.encode(text)) == text
