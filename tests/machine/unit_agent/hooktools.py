#!/usr/bin/env python3
"""Juju's hook tools, as the unit agent serves them to a machine charm, for the machine suite.

Installed on a booted unit as one file plus a symlink per tool name, in the folder Juju puts its
tools in (first on the hook's PATH); the tool is the name it is called by. The model the unit
sees is `model.json` beside this file, written by the driver (`unit_agent.UnitAgent`) before a
hook or action and read back after it. Each call is appended to `calls.jsonl` (tool, argv,
dispatch path) so that a test can check what the charm asked and passed on command lines.

Flags, `--format=json` output, exit codes and error texts follow Juju 3.6 for what ops 3.9
sends (`ops/hookcmds`) and what charmhelpers' NRPE sends (`-l` for juju-log, `relation-set
--help` to learn whether `--file` exists, then a YAML `--file`); a tool the stand-in does not
serve is not on the PATH, so calling it fails loudly, as a tool missing from an older Juju
would. Runs on the unit's own Python (3.10 on Ubuntu 22.04): the standard library and
python3-yaml, which every Ubuntu cloud image has (cloud-init needs it), for the YAML Juju reads.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.json"
CALLS = HERE / "calls.jsonl"
STATUSES = ("active", "blocked", "maintenance", "waiting")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Juju's action result keys: lowercase words joined by hyphens, dotted for nesting.
ACTION_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
RESERVED_ACTION_KEYS = ("stdout", "stdout-encoding", "stderr", "stderr-encoding")


class ToolError(Exception):
    """Ends the tool as Juju's do: `ERROR <text>` on stderr and exit status `code`."""

    def __init__(self, text: str, code: int = 1):
        super().__init__(text)
        self.code = code


class Usage:
    """A small getopt that rejects what Juju's gnuflag rejects: unknown flags, missing values."""

    def __init__(
        self,
        argv: list[str],
        *,
        flags: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
        aliases: dict[str, str] | None = None,
    ):
        self.flags: set[str] = set()
        self.options: dict[str, str] = {}
        self.args: list[str] = []
        rest = list(argv)
        while rest:
            word = rest.pop(0)
            if word == "--":
                self.args += rest
                break
            if not word.startswith("-") or word == "-":
                self.args.append(word)
                continue
            name, has_value, value = word.lstrip("-").partition("=")
            name = (aliases or {}).get(name, name)
            if name in options:
                if not has_value:
                    if not rest:
                        raise ToolError(f"option needs an argument: {word}", 2)
                    value = rest.pop(0)
                self.options[name] = value
            elif name in flags:
                if has_value and value.lower() not in ("true", "false"):
                    raise ToolError(f'invalid value "{value}" for flag {word.split("=")[0]}', 2)
                if not has_value or value.lower() == "true":
                    self.flags.add(name)
            else:
                raise ToolError(f"flag provided but not defined: {word.split('=')[0]}", 2)

    def at_most(self, count: int) -> None:
        if len(self.args) > count:
            raise ToolError(f"unrecognized args: {json.dumps(self.args[count:])}", 2)


def out(value: Any, usage: Usage) -> None:
    """Print as `--format=json` does (ops always asks for it); YAML-ish text otherwise."""
    if usage.options.get("format") == "json":
        print(json.dumps(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            print(f"{key}: {item}")
    elif isinstance(value, list):
        for item in value:
            print(item)
    elif value is not None:
        print(str(value).lower() if isinstance(value, bool) else value)


# Context


def in_action(model: dict[str, Any]) -> dict[str, Any]:
    action = model.get("action")
    if not os.environ.get("JUJU_ACTION_NAME") or action is None:
        raise ToolError("not running an action")
    return action


def relation_of(model: dict[str, Any], ref: str | None) -> dict[str, Any]:
    """The relation `-r` names (`endpoint:id` or `id`), else the hook's own relation."""
    if ref is None:
        ref = os.environ.get("JUJU_RELATION_ID")
        if not ref:
            raise ToolError("no relation id specified", 2)
    number = ref.rpartition(":")[2]
    for relation in model["relations"]:
        if str(relation["id"]) == number and ref in (number, f"{relation['endpoint']}:{number}"):
            return relation
    raise ToolError(f'invalid value "{ref}" for option -r: relation not found', 2)


def secret_key(model: dict[str, Any], uri: str) -> str:
    """The secret's id whatever form names it (`secret:ID`, `secret://MODEL/ID`, `ID`)."""
    key = uri.rpartition("/")[2].removeprefix("secret:")
    if key not in model["secrets"]:
        raise ToolError(f'secret "{key}" not found')
    return key


# Tools


def config_get(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(1)
    config = model["config"]
    out(config.get(usage.args[0]) if usage.args else config, usage)


def is_leader(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(0)
    out(bool(model["leader"]), usage)


def juju_log(model: dict[str, Any], usage: Usage) -> None:
    level = usage.options.get("log-level", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ToolError(f'invalid log level "{level}"', 2)
    if not usage.args:
        raise ToolError("no message specified", 2)
    model["log"].append({"level": level, "message": " ".join(usage.args)})


def status_set(model: dict[str, Any], usage: Usage) -> None:
    if not usage.args:
        raise ToolError("invalid args, require <status> [message] [data]", 2)
    status, message = usage.args[0], " ".join(usage.args[1:2])
    if status not in STATUSES:
        raise ToolError(f'invalid status "{status}", expected one of {list(STATUSES)}', 2)
    who = "application" if usage.options.get("application") == "True" else "unit"
    if who == "application" and not model["leader"]:
        raise ToolError("setting application status: this unit is not the leader")
    model["status"][who] = {"status": status, "message": message}
    model["status_history"].append({"who": who, "status": status, "message": message})


def status_get(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(0)
    unit = {**model["status"]["unit"], "status-data": {}}
    if usage.options.get("application", "false").lower() != "true":
        out(unit, usage)
        return
    if not model["leader"]:
        raise ToolError("finding application status: this unit is not the leader")
    application = {**model["status"]["application"], "status-data": {}}
    out({"application-status": application, "units": {model["unit"]: unit}}, usage)


def application_version_set(model: dict[str, Any], usage: Usage) -> None:
    if len(usage.args) != 1:
        raise ToolError("no version specified" if not usage.args else "unrecognized args", 2)
    model["version"] = usage.args[0]


def relation_ids(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(1)
    endpoint = usage.args[0] if usage.args else os.environ.get("JUJU_RELATION", "")
    if not endpoint:
        raise ToolError("no endpoint name specified", 2)
    out(
        [f"{r['endpoint']}:{r['id']}" for r in model["relations"] if r["endpoint"] == endpoint],
        usage,
    )


def relation_list(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(0)
    relation = relation_of(model, usage.options.get("r"))
    if "app" in usage.flags:
        out(relation["remote_app"], usage)
    else:
        out(sorted(relation["units"]), usage)


def relation_get(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(2)
    relation = relation_of(model, usage.options.get("r"))
    key = usage.args[0] if usage.args else "-"
    member = usage.args[1] if len(usage.args) > 1 else os.environ.get("JUJU_REMOTE_UNIT", "")
    if not member:
        raise ToolError("no unit or application specified", 2)
    if "app" in usage.flags:
        app = member.partition("/")[0]
        if app == relation["remote_app"]:
            data = relation["remote_app_data"]
        elif app == model["unit"].partition("/")[0]:
            if not model["leader"]:
                raise ToolError("permission denied")
            data = relation["local_app_data"]
        else:
            raise ToolError(f'application "{app}" not found in relation')
    elif member == model["unit"]:
        data = relation["local_unit_data"]
    elif member in relation["units"]:
        data = relation["units"][member]
    elif member in relation["departing"]:
        # Juju still serves a departing unit's settings during its relation-departed hook.
        data = relation["departing"][member]
    else:
        raise ToolError(
            f'cannot read settings for unit "{member}" in relation '
            f'"{relation["endpoint"]}:{relation["id"]}": unit "{member}": settings not found'
        )
    out(data if key == "-" else data.get(key, ""), usage)


def relation_set(model: dict[str, Any], usage: Usage) -> None:
    relation = relation_of(model, usage.options.get("r"))
    changes: dict[str, str] = {}
    source = usage.options.get("file")
    if source is not None:
        # Juju reads the file as YAML: ops writes JSON (which is YAML), charmhelpers YAML.
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ToolError(f"cannot parse settings: {error}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ToolError(f"expected settings map, got {type(loaded).__name__}")
        for key, value in loaded.items():
            if isinstance(value, (dict, list)):
                raise ToolError(f"cannot unmarshal settings: {key!r} is not a string")
            changes[str(key)] = "" if value is None else yaml_scalar(value)
    for word in usage.args:
        key, equals, value = word.partition("=")
        if not equals:
            raise ToolError(f'expected "key=value", got "{word}"', 2)
        changes[key] = value
    if "app" in usage.flags:
        if not model["leader"]:
            raise ToolError("cannot write relation settings")
        data = relation["local_app_data"]
    else:
        data = relation["local_unit_data"]
    for key, value in changes.items():
        if value:
            data[key] = value
        else:
            data.pop(key, None)


def yaml_scalar(value: Any) -> str:
    """A YAML scalar as Juju stores it in a string setting (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def secret_get(model: dict[str, Any], usage: Usage) -> None:
    if "label" in usage.options:
        raise ToolError("the stand-in looks secrets up by id only", 2)
    usage.at_most(2)
    if not usage.args:
        raise ToolError("require either a secret URI or label", 2)
    if "refresh" in usage.flags and "peek" in usage.flags:
        raise ToolError("specify one of --peek or --refresh but not both", 2)
    key = secret_key(model, usage.args[0])
    secret = model["secrets"][key]
    unit_app = model["unit"].partition("/")[0]
    if unit_app not in secret["granted"] and secret["owner"] != unit_app:
        # Juju 3.6 answers a consumer not granted a user secret so (ops raises ModelError);
        # a secret that does not exist is "not found" (SecretNotFoundError).
        raise ToolError("permission denied")
    latest = max(int(revision) for revision in secret["revisions"])
    tracked = model["tracked"].get(key)
    if tracked is None or "refresh" in usage.flags:
        tracked = model["tracked"][key] = latest
    revision = latest if "peek" in usage.flags else tracked
    content = secret["revisions"][str(revision)]
    if len(usage.args) == 2:
        out(content.get(usage.args[1], ""), usage)
    else:
        out(content, usage)


def secret_info_get(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(1)
    if not usage.args:
        raise ToolError("require either a secret URI or label", 2)
    key = secret_key(model, usage.args[0])
    secret = model["secrets"][key]
    if secret["owner"] != model["unit"].partition("/")[0]:
        # Only the owner sees the metadata; a user secret belongs to the model.
        raise ToolError(f'secret "{key}" not found')
    revision = max(int(revision) for revision in secret["revisions"])
    out({key: {"revision": revision, "label": secret.get("label") or ""}}, usage)


def action_get(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(1)
    params = in_action(model)["params"]
    out(params.get(usage.args[0]) if usage.args else params, usage)


def action_set(model: dict[str, Any], usage: Usage) -> None:
    action = in_action(model)
    if not usage.args:
        raise ToolError("no key=value pairs specified", 2)
    for word in usage.args:
        key, equals, value = word.partition("=")
        if not equals:
            raise ToolError(f'argument "{word}" must be of the form key=value', 2)
        for part in key.split("."):
            if not ACTION_KEY.match(part):
                raise ToolError(
                    f'key "{key}" must start and end with lowercase alphanumeric, '
                    "and contain only lowercase alphanumeric, hyphens and periods",
                    2,
                )
        if key in RESERVED_ACTION_KEYS:
            raise ToolError(f'cannot set reserved action key "{key}"', 2)
        action["results"][key] = value


def action_fail(model: dict[str, Any], usage: Usage) -> None:
    action = in_action(model)
    action["failed"] = " ".join(usage.args) or "action failed without reason given"


def action_log(model: dict[str, Any], usage: Usage) -> None:
    action = in_action(model)
    if not usage.args:
        raise ToolError("no message specified", 2)
    action["log"].append(" ".join(usage.args))


def opened_ports(model: dict[str, Any], usage: Usage) -> None:
    usage.at_most(0)
    out(list(model["ports"]), usage)


TOOLS = {
    "config-get": (config_get, ("all",), ("format",)),
    "is-leader": (is_leader, (), ("format",)),
    "juju-log": (juju_log, ("debug",), ("log-level",)),
    "status-set": (status_set, (), ("application",)),
    "status-get": (status_get, ("include-data",), ("format", "application")),
    "application-version-set": (application_version_set, (), ()),
    "relation-ids": (relation_ids, (), ("format",)),
    "relation-list": (relation_list, ("app",), ("format", "r")),
    "relation-get": (relation_get, ("app",), ("format", "r")),
    "relation-set": (relation_set, ("app",), ("format", "r", "file")),
    "secret-get": (secret_get, ("refresh", "peek"), ("format", "label")),
    "secret-info-get": (secret_info_get, (), ("format", "label")),
    "action-get": (action_get, (), ("format",)),
    "action-set": (action_set, (), ()),
    "action-fail": (action_fail, (), ()),
    "action-log": (action_log, (), ()),
    "opened-ports": (opened_ports, ("endpoints",), ("format",)),
}


# Juju's short names of long flags.
ALIASES = {"juju-log": {"l": "log-level"}}


def usage_text(tool: str) -> str:
    """What `TOOL --help` prints on stdout: the options, as Juju's gnuflag lists them."""
    _, flags, options = TOOLS[tool]
    lines = [f"Usage: {tool} [options]", "", "Options:"]
    lines += [f"--{name}  (= false)" for name in flags]
    lines += [f"{'-' if len(name) == 1 else '--'}{name}  (= )" for name in options]
    return "\n".join(lines)


def main() -> NoReturn:
    tool = Path(sys.argv[0]).name
    if sys.argv[1:] in (["--help"], ["-h"]):
        print(usage_text(tool))
        sys.exit(0)
    with CALLS.open("a") as calls:
        record = {
            "tool": tool,
            "argv": sys.argv[1:],
            "dispatch": os.environ.get("JUJU_DISPATCH_PATH", ""),
        }
        calls.write(json.dumps(record) + "\n")
    with MODEL.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one tool at a time changes the model
        model = json.load(handle)
        try:
            function, flags, options = TOOLS[tool]
            usage = Usage(sys.argv[1:], flags=flags, options=options, aliases=ALIASES.get(tool))
            function(model, usage)
        except ToolError as error:
            print(f"ERROR {error}", file=sys.stderr)
            sys.exit(error.code)
        handle.seek(0)
        handle.truncate()
        json.dump(model, handle, indent=1)
    sys.exit(0)


if __name__ == "__main__":
    main()
