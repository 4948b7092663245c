"""The provider side of the `cos_agent` interface: what the opentelemetry-collector (or
grafana-agent) subordinate on this machine should scrape, alert on and show in Grafana.

The interface's schema (charm-relation-interfaces, `interfaces/cos_agent/v0`) has the provider
write one key, `config`, into its own unit data bag (a subordinate relation carries nothing
else): JSON holding

- `metrics_scrape_jobs`: Prometheus `scrape_configs` the subordinate runs on this machine;
- `metrics_alert_rules`: one Prometheus rules file (`{"groups": [...]}`, `{}` for none), each
  rule labelled with the Juju topology so that COS can scope its expression to this
  application;
- `log_alert_rules`: the same for Loki (none here);
- `dashboards`: each Grafana dashboard as JSON, LZMA-compressed, then base64-encoded;
- `log_slots`: snap slots to read logs from (none: the collectors' log is a file under
  `/var/log`, which the subordinate reads by itself).

The charm library that usually writes this needs `cosl`, which brings pydantic (11 MB, more
than the whole charm; docs/design.md); this module writes the same data with the standard
library and PyYAML (which ops needs anyway), and tests/unit/test_cos_agent.py checks it against
the schema and against cosl's own output.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import lzma
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ops
import yaml

RELATION = "cos-agent"
KEY = "config"
# The charm's own tree (src/ and what is beside it), in the repository as on a unit.
CHARM_DIR = Path(__file__).resolve().parents[1]
RULES_DIR = CHARM_DIR / "src" / "prometheus_alert_rules"
DASHBOARDS_DIR = CHARM_DIR / "src" / "grafana_dashboards"
# As the library's provider reads them; *.test.yaml (promtool's tests) is not a rules file.
RULE_SUFFIXES = (".rule", ".rules")
METRICS_PATH = "/metrics"
_NOT_IN_GROUP_NAME = re.compile(r"[^a-zA-Z0-9_:]")


@dataclass(frozen=True)
class Topology:
    """Where this unit sits in Juju, as COS labels what it receives."""

    model: str
    model_uuid: str
    application: str
    charm: str

    @classmethod
    def of(cls, charm: ops.CharmBase) -> Topology:
        return cls(charm.model.name, charm.model.uuid, charm.app.name, charm.meta.name)

    @property
    def identifier(self) -> str:
        """`model_<uuid prefix>_application`: the prefix COS expects in rule group names."""
        return f"{self.model}_{self.model_uuid[:8]}_{self.application}"

    @property
    def labels(self) -> dict[str, str]:
        """The `juju_*` labels of every rule; the unit is left out so that one rule covers
        every unit of the application."""
        labels = {
            "juju_model": self.model,
            "juju_model_uuid": self.model_uuid,
            "juju_application": self.application,
            "juju_charm": self.charm,
        }
        return {name: value for name, value in labels.items() if value}


def alert_rules(folder: Path, topology: Topology) -> dict[str, Any]:
    """Every group of the rules files in `folder`, named and labelled for `topology`.

    A group is renamed `<topology identifier>_<name>_rules` (so that two applications' groups
    never clash in Prometheus) and each rule gets the topology labels it does not set itself.
    Raises ValueError naming the file when one is not a Prometheus rules file.
    """
    groups: list[dict[str, Any]] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in RULE_SUFFIXES or not path.is_file():
            continue
        content = yaml.safe_load(path.read_text())
        if not isinstance(content, dict) or not isinstance(content.get("groups"), list):
            raise ValueError(f"{path} is not a Prometheus rules file: it has no list of groups")
        for group in content["groups"]:
            name = f"{topology.identifier}_{group['name']}"
            if not name.endswith("_rules"):
                name += "_rules"
            rules = [
                {**rule, "labels": {**topology.labels, **rule.get("labels", {})}}
                for rule in group["rules"]
            ]
            groups.append({**group, "name": _NOT_IN_GROUP_NAME.sub("_", name), "rules": rules})
    return {"groups": groups} if groups else {}


def dashboard_uid(charm_name: str, relative_path: str) -> str:
    """A dashboard's uid in COS: 40 hex digits from the charm and the file's path in it, so
    that Grafana keeps one dashboard per file however many applications send it."""
    return hashlib.shake_256(f"{charm_name}-{relative_path}".encode()).hexdigest(20)


def encode(text: str) -> str:
    """LZMA-compressed, then base64: how the interface carries a dashboard."""
    return base64.b64encode(lzma.compress(text.encode())).decode()


def dashboards(folder: Path, charm_dir: Path, charm_name: str) -> list[str]:
    """Each `*.json` dashboard of `folder`, with COS's uid and a `charm: NAME` tag, encoded."""
    encoded = []
    for path in sorted(folder.glob("*.json")):
        dashboard = json.loads(path.read_text())
        dashboard["uid"] = dashboard_uid(charm_name, str(path.relative_to(charm_dir)))
        tags = list(dashboard.get("tags", []))
        if not any(str(tag).startswith("charm: ") for tag in tags):
            tags.append(f"charm: {charm_name}")
        dashboard["tags"] = tags
        encoded.append(encode(json.dumps(dashboard)))
    return encoded


def scrape_jobs(application: str, address: str, port: int) -> list[dict[str, Any]]:
    """The one job that scrapes the unit's metrics endpoint from the subordinate on this
    machine: at the address it listens on, or `localhost` when it listens on every address."""
    try:
        listen = ipaddress.ip_address(address)
    except ValueError:  # the status names the option; the endpoint keeps its last address
        host = "localhost"
    else:
        if listen.is_unspecified:
            host = "localhost"
        else:
            host = f"[{listen}]" if listen.version == 6 else str(listen)
    return [
        {
            "job_name": f"{application}_metrics-exporter",
            "metrics_path": METRICS_PATH,
            "static_configs": [{"targets": [f"{host}:{port}"]}],
        }
    ]


class CosAgentProvider(ops.Object):
    """Keeps this unit's data bag on the `cos-agent` relation up to date.

    `metrics_endpoint` returns the address and port the metrics endpoint listens on (the
    charm's config). The rules and dashboards are the charm's own (`src/`).
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        relation_name: str = RELATION,
        *,
        metrics_endpoint: Callable[[], tuple[str, int]],
    ) -> None:
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self._metrics_endpoint = metrics_endpoint
        events = charm.on[relation_name]
        # The data changes with the config (the port) and with the charm (rules, dashboards);
        # it lives in the unit's own bag, so leadership does not matter.
        for event in (
            events.relation_created,
            events.relation_joined,
            events.relation_changed,
            charm.on.config_changed,
            charm.on.upgrade_charm,
        ):
            self.framework.observe(event, self._on_refresh)

    @property
    def related(self) -> bool:
        """Whether the relation exists; during relation-broken ops already leaves it out."""
        return self.model.get_relation(self._relation_name) is not None

    def unit_data(self) -> dict[str, str]:
        """What this unit publishes, as the schema has it."""
        address, port = self._metrics_endpoint()
        config = {
            "metrics_scrape_jobs": scrape_jobs(self._charm.app.name, address, port),
            "metrics_alert_rules": alert_rules(RULES_DIR, Topology.of(self._charm)),
            "log_alert_rules": {},
            "dashboards": dashboards(DASHBOARDS_DIR, CHARM_DIR, self._charm.meta.name),
            "log_slots": [],
        }
        return {KEY: json.dumps(config, sort_keys=True)}

    def _on_refresh(self, _: ops.EventBase) -> None:
        relations = self.model.relations[self._relation_name]
        if not relations:
            return
        wanted = self.unit_data()
        for relation in relations:
            bag = relation.data[self.model.unit]
            if bag.get(KEY) != wanted[KEY]:  # LZMA output is stable: no write when unchanged
                bag.update(wanted)
