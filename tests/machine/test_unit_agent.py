"""The hook-tool stand-in answers ops' own hook-command wrappers as Juju does: values in the
shapes ops parses, and failures that become the exceptions Juju's would (ModelError,
SecretNotFoundError, RelationNotFoundError), so a deployment test fails where Juju would."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import ops
import pytest
import yaml
from ops import hookcmds
from ops.model import _ModelBackend
from unit_agent import HOOKTOOLS, UNIT, new_model, new_relation
from unit_agent.hooktools import TOOLS

SECRET = "csdcrfni2t1vlshbt4bg"


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    shutil.copyfile(HOOKTOOLS, tmp_path / "hooktools.py")
    (tmp_path / "hooktools.py").chmod(0o755)
    for tool in TOOLS:
        (tmp_path / tool).symlink_to("hooktools.py")
    model = new_model(leader=False)
    model["config"] = {"collectors-branch": "main", "dry-run": False}
    relation = new_relation(3, "influxdb", "influxdb")
    relation["units"] = {"influxdb/0": {"hostname": "db", "port": "8086"}}
    model["relations"] = [relation]
    model["secrets"] = {
        SECRET: {"owner": "model", "granted": [], "revisions": {"1": {"password": "one"}}}
    }
    (tmp_path / "model.json").write_text(json.dumps(model))
    return tmp_path


@pytest.fixture
def backend(tools: Path, monkeypatch: pytest.MonkeyPatch) -> _ModelBackend:
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    monkeypatch.setenv("JUJU_UNIT_NAME", UNIT)
    monkeypatch.setenv("JUJU_VERSION", "3.6.12")
    monkeypatch.setenv("JUJU_DISPATCH_PATH", "hooks/config-changed")
    monkeypatch.delenv("JUJU_ACTION_NAME", raising=False)
    return _ModelBackend()


def model(tools: Path) -> dict[str, object]:
    return json.loads((tools / "model.json").read_text())


def test_values_come_back_in_the_shapes_ops_parses(backend: _ModelBackend, tools: Path) -> None:
    assert backend.config_get() == {"collectors-branch": "main", "dry-run": False}
    assert backend.is_leader() is False
    assert backend.relation_ids("influxdb") == [3]
    assert backend.relation_ids("cos-agent") == []
    assert backend.relation_list(3) == ["influxdb/0"]
    assert backend.relation_remote_app_name(3) == "influxdb"
    assert backend.relation_get(3, "influxdb/0", is_app=False) == {
        "hostname": "db",
        "port": "8086",
    }
    backend.relation_set(3, {"ready": "yes"}, is_app=False)
    assert backend.relation_get(3, UNIT, is_app=False) == {"ready": "yes"}
    backend.status_set("blocked", "fix it: juju config x=y")
    assert backend.status_get() == {"status": "blocked", "message": "fix it: juju config x=y"}
    backend.application_version_set("0123456789ab")
    backend.juju_log("WARNING", "careful")
    assert model(tools)["version"] == "0123456789ab"
    assert model(tools)["log"] == [{"level": "WARNING", "message": "careful"}]


# ops logs a refused secret-get as a security event; outside a charm it warns that no handler
# carries that to juju-log.
@pytest.mark.filterwarnings("ignore:JujuLogHandler is not set up")
def test_a_secret_is_read_only_once_granted_and_tracks_its_revision(
    backend: _ModelBackend, tools: Path
) -> None:
    # Juju 3.6 says "permission denied" to a consumer not granted the secret.
    with pytest.raises(ops.ModelError, match="permission denied") as refused:
        backend.secret_get(id=f"secret:{SECRET}", refresh=True)
    assert not isinstance(refused.value, ops.SecretNotFoundError)
    with pytest.raises(ops.SecretNotFoundError):
        backend.secret_get(id="secret:d0000000000000000000")

    state = model(tools)
    state["secrets"][SECRET]["granted"].append("ubuntu-community-metrics")  # type: ignore[index]
    (tools / "model.json").write_text(json.dumps(state))
    assert backend.secret_get(id=f"secret:{SECRET}") == {"password": "one"}

    state = model(tools)
    state["secrets"][SECRET]["revisions"]["2"] = {"password": "two"}  # type: ignore[index]
    (tools / "model.json").write_text(json.dumps(state))
    # Still on the tracked revision until a refresh; a peek sees the latest without moving.
    assert backend.secret_get(id=f"secret:{SECRET}") == {"password": "one"}
    assert backend.secret_get(id=f"secret:{SECRET}", peek=True) == {"password": "two"}
    assert backend.secret_get(id=f"secret:{SECRET}") == {"password": "one"}
    assert backend.secret_get(id=f"secret:{SECRET}", refresh=True) == {"password": "two"}
    # Only the owner sees a secret's metadata; a user secret belongs to the model.
    with pytest.raises(ops.SecretNotFoundError):
        backend.secret_info_get(id=f"secret:{SECRET}")


def test_failures_become_the_exceptions_juju_s_would(backend: _ModelBackend) -> None:
    with pytest.raises(ops.RelationNotFoundError):
        backend.relation_get(9, "influxdb/0", is_app=False)
    with pytest.raises(ops.ModelError, match="settings not found"):
        backend.relation_get(3, "influxdb/7", is_app=False)
    with pytest.raises(ops.ModelError, match="not the leader"):
        backend.status_set("active", "", is_app=True)
    # Action tools outside an action, as in a hook.
    with pytest.raises(ops.ModelError, match="not running an action"):
        backend.action_get()
    with pytest.raises(ops.ModelError, match="not running an action"):
        backend.action_set({"count": "1"})
    # A tool the stand-in does not serve is missing, not silently answered.
    with pytest.raises(FileNotFoundError, match="goal-state"):
        backend.planned_units()


def test_action_results_are_checked_as_juju_checks_them(
    backend: _ModelBackend, tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = model(tools)
    state["action"] = {"params": {"name": "ticker"}, "results": {}, "failed": None, "log": []}
    (tools / "model.json").write_text(json.dumps(state))
    monkeypatch.setenv("JUJU_ACTION_NAME", "run-collector")
    assert backend.action_get() == {"name": "ticker"}
    backend.action_set({"exit-status": "0", "log": {"tail": "ok"}})
    backend.action_log("running")
    backend.action_fail("collector ticker exited with status 1")
    with pytest.raises(ops.ModelError, match="reserved"):
        backend.action_set({"stdout": "x"})
    # ops checks keys itself first; what reaches Juju unchecked, Juju refuses too.
    with pytest.raises(hookcmds.Error) as refused:
        hookcmds.action_set({"Exit_Status": "x"})
    assert refused.value.returncode == 2
    assert "lowercase" in refused.value.stderr
    action = model(tools)["action"]
    assert action == {
        "params": {"name": "ticker"},
        "results": {"exit-status": "0", "log.tail": "ok"},
        "failed": "collector ticker exited with status 1",
        "log": ["running"],
    }


@pytest.fixture
def hookenv(backend: _ModelBackend, tools: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """charmhelpers' hookenv, as src/nrpe.py's NRPE uses it, with its per-hook caches empty
    (it keeps answers for the life of the process, which a hook is)."""
    from charmhelpers.core import hookenv

    hookenv.cache.clear()
    monkeypatch.setattr(hookenv, "_cache_config", None)
    monkeypatch.setenv("JUJU_CHARM_DIR", str(tools))
    state: Any = model(tools)
    relation = new_relation(4, "nrpe-external-master", "nrpe")
    relation["units"] = {"nrpe/0": {"nagios_hostname": "juju-metrics-ucm-0"}}
    state["relations"].append(relation)
    (tools / "model.json").write_text(json.dumps(state))
    return hookenv


def test_charmhelpers_calls_are_answered_as_juju_answers_them(hookenv: Any, tools: Path) -> None:
    assert hookenv.config()["collectors-branch"] == "main"
    assert hookenv.relation_ids("nrpe-external-master") == ["nrpe-external-master:4"]
    assert hookenv.relations_of_type("nrpe-external-master") == [
        {
            "nagios_hostname": "juju-metrics-ucm-0",
            "__unit__": "nrpe/0",
            "__relid__": "nrpe-external-master:4",
        }
    ]
    # charmhelpers asks `relation-set --help` whether --file exists, then writes YAML there.
    monitors = yaml.dump({"monitors": {"remote": {"nrpe": {"ucm_pull": {"command": "check_x"}}}}})
    hookenv.relation_set(relation_id="nrpe-external-master:4", relation_settings={"primary": True})
    hookenv.relation_set(relation_id="nrpe-external-master:4", monitors=monitors)
    assert hookenv.relation_get(unit=UNIT, rid="nrpe-external-master:4") == {
        "primary": "True",
        "monitors": monitors,
    }
    hookenv.log("Setting charm primary status True")
    hookenv.log("Check command not found: check_ucm", level="WARNING")
    log: Any = model(tools)["log"]
    assert log[-2:] == [
        {"level": "INFO", "message": "Setting charm primary status True"},
        {"level": "WARNING", "message": "Check command not found: check_ucm"},
    ]
    assert not (tools / ".juju-persistent-config").exists()  # only charmhelpers' hooks save it


def test_a_settings_file_is_read_as_the_yaml_map_juju_reads(
    backend: _ModelBackend, tools: Path
) -> None:
    def relation_set(text: str) -> subprocess.CompletedProcess[str]:
        (tools / "settings.yaml").write_text(text)
        return subprocess.run(
            ["relation-set", "-r", "influxdb:3", "--file", str(tools / "settings.yaml")],
            capture_output=True,
            text=True,
            check=False,
        )

    assert relation_set("ready: true\nport: 8086\nnote: 'a: b'\n").returncode == 0
    assert backend.relation_get(3, UNIT, is_app=False) == {
        "ready": "true",
        "port": "8086",
        "note": "a: b",
    }
    assert relation_set("ready:\n").returncode == 0  # an empty value deletes the key
    assert "ready" not in backend.relation_get(3, UNIT, is_app=False)
    for bad in ("- a list\n", "nested: {a: b}\n", "key: [unclosed\n"):
        refused = relation_set(bad)
        assert refused.returncode == 1, bad
        assert refused.stderr.startswith("ERROR "), refused.stderr
    helped = subprocess.run(["relation-set", "--help"], capture_output=True, text=True, check=True)
    assert "--file" in helped.stdout
