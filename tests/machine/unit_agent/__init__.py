"""A stand-in for Juju's unit agent on a booted container: it unpacks a `.charm` where Juju does,
serves the hook tools (`hooktools.py`) from the model it keeps, and runs the charm's `dispatch`
with the environment Juju sets for each hook and action, in the order Juju sends them.

Only Juju is replaced: the packed charm, its venv, the unit's Python, systemd, git and InfluxDB
are real. Operator commands map to methods: `juju deploy` is `deploy`, `juju config` is
`configure`, `juju integrate` is `relate` then `join`, `juju add-secret`/`grant-secret`/
`update-secret` are `add_secret`/`grant_secret`/`update_secret`, `juju run` is `run_action`,
`juju refresh` is `upgrade`, `juju remove-unit` is `remove`.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from machine_harness import CONTAINER_ENV, Container, HarnessError

from .hooktools import TOOLS

HOOKTOOLS = Path(__file__).with_name("hooktools.py")
JUJU_VERSION = "3.6.12"
APP = "ubuntu-community-metrics"
UNIT = f"{APP}/0"
# Hooks take as long as the workload needs (a first venv); Juju itself has no hook timeout.
HOOK_TIMEOUT = 900


@dataclass
class Dispatch:
    """One hook or action as the agent ran it, and what it left in the model."""

    path: str
    returncode: int
    stdout: str
    stderr: str
    status: dict[str, str]
    action: dict[str, Any] | None = None

    @property
    def message(self) -> str:
        return self.status["message"]


@dataclass
class ModelProxy:
    """The model's juju-http-proxy, juju-https-proxy and juju-no-proxy."""

    http: str = ""
    https: str = ""
    no_proxy: str = ""


@dataclass
class UnitAgent:
    """The unit agent of one unit of the charm, on a booted container."""

    container: Container
    leader: bool = True
    proxy: ModelProxy = field(default_factory=ModelProxy)
    number: int = 0  # the unit's number: ubuntu-community-metrics/<number>
    model_name: str = "metrics"
    model_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    history: list[Dispatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = new_model(leader=self.leader, unit=self.unit)
        self._options: dict[str, Any] = {}
        self._actions: dict[str, Any] = {}
        self._manifest: list[str] = []
        self._relation_ids = iter(range(3, 1000))
        self._contexts = iter(range(1, 1_000_000))

    # Names and paths

    @property
    def unit(self) -> str:
        return f"{APP}/{self.number}"

    @property
    def agent(self) -> str:
        return f"unit-{APP}-{self.number}"

    @property
    def charm_path(self) -> str:
        """The charm's folder on the unit."""
        return f"/var/lib/juju/agents/{self.agent}/charm"

    @property
    def tools_path(self) -> str:
        return f"/var/lib/juju/tools/{self.agent}"

    @property
    def charm_dir(self) -> Path:
        return self.container.root / self.charm_path.lstrip("/")

    @property
    def tools_dir(self) -> Path:
        return self.container.root / self.tools_path.lstrip("/")

    @property
    def status(self) -> dict[str, str]:
        return self.model["status"]["unit"]

    # juju deploy / refresh / remove-unit

    def deploy(self, charm: Path, config: dict[str, Any] | None = None) -> list[Dispatch]:
        """`juju deploy ./CHARM --config ...`: unpack, then install, leader-elected,
        config-changed, start, as Juju runs them for a new unit."""
        self._install_tools()
        self._unpack(charm)
        self.model["config"] = self._config_with(config or {})
        names = ["install", "leader-elected" if self.leader else "leader-settings-changed"]
        return [self.hook(name) for name in (*names, "config-changed", "start")]

    def upgrade(self, charm: Path) -> list[Dispatch]:
        """`juju refresh --path CHARM`: the new charm's files replace the old one's (files the
        charm created, such as ops' state, stay), then upgrade-charm and config-changed."""
        self._unpack(charm)
        self.model["config"] = self._config_with(self._explicit_config())
        return [self.hook("upgrade-charm"), self.hook("config-changed")]

    def remove(self) -> list[Dispatch]:
        """`juju remove-unit`: every relation departs and breaks, then stop and remove; the
        agent then deletes the charm and its tools. In each of its relation-departed hooks,
        the departing unit is this one."""
        dispatched: list[Dispatch] = []
        for relation in list(self.model["relations"]):
            for unit in sorted(relation["units"]):
                dispatched.append(self.depart(relation["id"], unit, departing=self.unit))
            dispatched.append(self.break_relation(relation["id"]))
        dispatched += [self.hook("stop"), self.hook("remove")]
        shutil.rmtree(self.charm_dir.parent)
        shutil.rmtree(self.tools_dir)
        return dispatched

    # juju config

    def configure(self, **changes: Any) -> Dispatch:
        """`juju config APP key=value ...` (None resets an option to its default)."""
        explicit = self._explicit_config()
        for name, value in changes.items():
            option = name.replace("_", "-")
            if value is None:
                explicit.pop(option, None)
            else:
                explicit[option] = value
        self.model["config"] = self._config_with(explicit)
        return self.hook("config-changed")

    def _explicit_config(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in self.model["config"].items()
            if value != self._options[name].get("default")
        }

    def _config_with(self, values: dict[str, Any]) -> dict[str, Any]:
        """What config-get shows: defaults, then the values set, each checked as Juju does."""
        config = {
            name: option["default"]
            for name, option in self._options.items()
            if "default" in option
        }
        types = {"string": str, "boolean": bool, "int": int, "float": float, "secret": str}
        for name, value in values.items():
            if name not in self._options:
                raise HarnessError(f'juju config: unknown option "{name}"')
            kind = self._options[name]["type"]
            if not isinstance(value, types[kind]) or (kind == "int" and isinstance(value, bool)):
                raise HarnessError(f"juju config: option {name!r} expects a {kind}, got {value!r}")
            if kind == "secret" and not str(value).startswith("secret:"):
                raise HarnessError(f"juju config: option {name!r} expects a secret URI")
            config[name] = value
        return config

    # juju integrate

    def relate(self, endpoint: str, remote_app: str) -> int:
        """`juju integrate`: the relation exists (relation-created), no remote unit yet."""
        number = next(self._relation_ids)
        self.model["relations"].append(new_relation(number, endpoint, remote_app))
        self.hook(f"{endpoint}-relation-created", relation=number)
        return number

    def join(self, relation: int, unit: str, data: dict[str, str] | None = None) -> list[Dispatch]:
        """A remote unit enters with its settings: relation-joined, then relation-changed."""
        self._relation(relation)["units"][unit] = dict(data or {})
        endpoint = self._relation(relation)["endpoint"]
        return [
            self.hook(f"{endpoint}-relation-joined", relation=relation, remote_unit=unit),
            self.hook(f"{endpoint}-relation-changed", relation=relation, remote_unit=unit),
        ]

    def change(self, relation: int, unit: str, data: dict[str, str]) -> Dispatch:
        """The remote unit replaces its settings: relation-changed."""
        self._relation(relation)["units"][unit] = dict(data)
        endpoint = self._relation(relation)["endpoint"]
        return self.hook(f"{endpoint}-relation-changed", relation=relation, remote_unit=unit)

    def depart(self, relation: int, unit: str, *, departing: str | None = None) -> Dispatch:
        """The remote unit leaves this unit's view: relation-departed (its settings still
        readable). The departing unit is the remote one, or this one when it is being removed."""
        record = self._relation(relation)
        record["departing"] = {unit: record["units"].pop(unit)}
        try:
            return self.hook(
                f"{record['endpoint']}-relation-departed",
                relation=relation,
                remote_unit=unit,
                departing=departing or unit,
            )
        finally:
            record["departing"] = {}

    def break_relation(self, relation: int) -> Dispatch:
        """`juju remove-relation`, once every remote unit has departed: relation-broken."""
        record = self._relation(relation)
        if record["units"]:
            raise HarnessError(f"relation {relation} still has units {sorted(record['units'])}")
        try:
            return self.hook(f"{record['endpoint']}-relation-broken", relation=relation)
        finally:
            self.model["relations"].remove(record)

    def _relation(self, number: int) -> dict[str, Any]:
        for relation in self.model["relations"]:
            if relation["id"] == number:
                return relation
        raise HarnessError(f"no relation {number}")

    # juju add-secret / grant-secret / update-secret

    def add_secret(self, content: dict[str, str]) -> str:
        """`juju add-secret`: a user secret, owned by the model, granted to no one."""
        key = base64.b32hexencode(secrets.token_bytes(15)).decode().lower()[:20]
        self.model["secrets"][key] = {"owner": "model", "granted": [], "revisions": {"1": content}}
        return f"secret:{key}"

    def grant_secret(self, uri: str) -> None:
        """`juju grant-secret URI APP`: Juju runs no hook for a grant."""
        self.model["secrets"][_secret_key(uri)]["granted"].append(APP)

    def update_secret(self, uri: str, content: dict[str, str]) -> Dispatch | None:
        """`juju update-secret`: a new revision; a unit that tracks the secret gets
        secret-changed."""
        key = _secret_key(uri)
        revisions = self.model["secrets"][key]["revisions"]
        revisions[str(max(int(r) for r in revisions) + 1)] = content
        if key not in self.model["tracked"]:
            return None
        return self.hook("secret-changed", secret=uri)

    # Dispatching

    def hook(
        self,
        name: str,
        *,
        relation: int | None = None,
        remote_unit: str | None = None,
        departing: str | None = None,
        secret: str | None = None,
        check: bool = True,
    ) -> Dispatch:
        """Run one hook through the charm's dispatch, as the agent does."""
        env = {"JUJU_HOOK_NAME": name}
        if relation is not None:
            record = self._relation(relation)
            env |= {
                "JUJU_RELATION": record["endpoint"],
                "JUJU_RELATION_ID": f"{record['endpoint']}:{relation}",
                "JUJU_REMOTE_APP": record["remote_app"],
            }
            if remote_unit:
                env["JUJU_REMOTE_UNIT"] = remote_unit
            if departing:
                env["JUJU_DEPARTING_UNIT"] = departing
        if secret is not None:
            env["JUJU_SECRET_ID"] = secret
        return self._dispatch(f"hooks/{name}", env, check=check)

    def run_action(self, name: str, /, **params: Any) -> Dispatch:
        """`juju run UNIT NAME key=value ...`: params checked against actions.yaml, defaults
        filled in, as Juju does before the unit sees them."""
        if name not in self._actions:
            raise HarnessError(f'juju run: action "{name}" not defined')
        self.model["action"] = {
            "params": self._action_params(name, params),
            "results": {},
            "failed": None,
            "log": [],
        }
        env = {"JUJU_ACTION_NAME": name, "JUJU_ACTION_UUID": str(uuid.uuid4())}
        try:
            return self._dispatch(f"actions/{name}", env, check=True)
        finally:
            self.model["action"] = None

    def _action_params(self, name: str, given: dict[str, Any]) -> dict[str, Any]:
        spec = self._actions[name] or {}
        declared = spec.get("params", {})
        params = {key.replace("_", "-"): value for key, value in given.items()}
        unknown = sorted(set(params) - set(declared))
        if unknown and spec.get("additionalProperties", True) is False:
            raise HarnessError(f"juju run {name}: additional property {unknown[0]} not allowed")
        missing = sorted(set(spec.get("required", [])) - set(params))
        if missing:
            raise HarnessError(f"juju run {name}: {missing[0]} is required")
        types = {"string": str, "boolean": bool, "integer": int, "number": (int, float)}
        for key, value in params.items():
            kind = declared.get(key, {}).get("type")
            if kind and not isinstance(value, types[kind]):
                raise HarnessError(f"juju run {name}: {key} expects a {kind}, got {value!r}")
        defaults = {k: v["default"] for k, v in declared.items() if "default" in v}
        return defaults | params

    def _environment(self) -> dict[str, str]:
        """What Juju 3.6 sets for every hook and action of a machine unit."""
        return {
            "PATH": f"{self.tools_path}:{CONTAINER_ENV['PATH']}",
            "JUJU_CHARM_DIR": self.charm_path,
            "JUJU_CONTEXT_ID": f"{self.unit}-run-commands-{next(self._contexts)}",
            "JUJU_UNIT_NAME": self.unit,
            "JUJU_MODEL_NAME": self.model_name,
            "JUJU_MODEL_UUID": self.model_uuid,
            "JUJU_VERSION": JUJU_VERSION,
            "JUJU_MACHINE_ID": str(self.number),
            "JUJU_PRINCIPAL_UNIT": "",
            "JUJU_AVAILABILITY_ZONE": "",
            "JUJU_AGENT_SOCKET_ADDRESS": f"@/var/lib/juju/agents/{self.agent}/agent.socket",
            "JUJU_AGENT_SOCKET_NETWORK": "unix",
            "JUJU_API_ADDRESSES": "192.0.2.1:17070",
            "JUJU_CHARM_HTTP_PROXY": self.proxy.http,
            "JUJU_CHARM_HTTPS_PROXY": self.proxy.https,
            "JUJU_CHARM_FTP_PROXY": "",
            "JUJU_CHARM_NO_PROXY": self.proxy.no_proxy,
            "CLOUD_API_VERSION": "",
        }

    def _dispatch(self, path: str, extra: dict[str, str], *, check: bool) -> Dispatch:
        env = self._environment() | {"JUJU_DISPATCH_PATH": path} | extra
        model = self.tools_dir / "model.json"
        model.write_text(json.dumps(self.model, indent=1))
        result = self.container.run(
            [f"{self.charm_path}/dispatch"],
            env=env,
            cwd=self.charm_path,
            timeout=HOOK_TIMEOUT,
            check=False,
        )
        self.model = json.loads(model.read_text())
        done = Dispatch(
            path=path,
            returncode=result.returncode,
            stdout=result.stdout,
            stderr=result.stderr,
            status=dict(self.status),
            action=copy.deepcopy(self.model["action"]),
        )
        self.history.append(done)
        if check and result.returncode != 0:
            # Juju would put the unit in error state and retry the hook.
            raise HarnessError(
                f"{path} failed with exit status {result.returncode} (unit in error state):\n"
                f"{result.stderr[-4000:]}"
            )
        return done

    def calls(self) -> list[dict[str, Any]]:
        """Every hook tool call so far: tool, argv, dispatch path."""
        log = self.tools_dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    # Unpacking

    def _install_tools(self) -> None:
        """The tools folder Juju fills with its jujud links; here, links to the stand-in."""
        self.tools_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOOKTOOLS, self.tools_dir / "hooktools.py")
        (self.tools_dir / "hooktools.py").chmod(0o755)
        for tool in TOOLS:
            (self.tools_dir / tool).symlink_to("hooktools.py")

    def _unpack(self, charm: Path) -> None:
        """The charm's files where Juju puts them, each with the mode the archive records;
        files of the previous charm that this one lacks are removed, others left alone."""
        with zipfile.ZipFile(charm) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            names = {info.filename for info in members}
            for stale in set(self._manifest) - names:
                (self.charm_dir / stale).unlink(missing_ok=True)
            for info in members:
                relative = PurePosixPath(info.filename)
                if relative.is_absolute() or ".." in relative.parts:
                    raise HarnessError(f"{charm.name}: unsafe member {info.filename}")
                target = self.charm_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                with archive.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                mode = (info.external_attr >> 16) & 0o7777
                target.chmod(mode or 0o644)
            self._manifest = sorted(names)
        self._options = _yaml(self.charm_dir / "config.yaml").get("options", {})
        self._actions = _yaml(self.charm_dir / "actions.yaml")


def new_model(*, leader: bool, unit: str = UNIT) -> dict[str, Any]:
    """The model of a unit just deployed: what `hooktools.py` reads and changes."""
    return {
        "unit": unit,
        "leader": leader,
        "config": {},
        "relations": [],
        "secrets": {},
        "tracked": {},
        "status": {
            "unit": {"status": "maintenance", "message": ""},
            "application": {"status": "unknown", "message": ""},
        },
        "status_history": [],
        "version": "",
        "log": [],
        "ports": [],
        "action": None,
    }


def new_relation(number: int, endpoint: str, remote_app: str) -> dict[str, Any]:
    """A relation of the model, with no remote unit yet and empty data bags."""
    return {
        "id": number,
        "endpoint": endpoint,
        "remote_app": remote_app,
        "units": {},
        "departing": {},
        "remote_app_data": {},
        "local_unit_data": {},
        "local_app_data": {},
    }


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def _secret_key(uri: str) -> str:
    return uri.rpartition("/")[2].removeprefix("secret:")
