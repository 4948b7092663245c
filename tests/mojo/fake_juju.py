"""A recording stand-in for the `juju` client, for running the Mojo scripts for real.

It answers the few commands the scripts use the way Juju 3 does, keeps a model's secrets and
application config in a JSON state file (FAKE_JUJU_STATE) so that later calls see earlier
changes, and appends every call to a JSON-lines log (FAKE_JUJU_LOG): its argv, and for a
`--file` argument the file's mode and whether it existed at that moment.

Unknown commands fail loudly, so a script that calls something new fails its test.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

MODEL = "model-3f9a1c1e-0c1b-4b6e-8f7e-9d7d6c1e2a10"


def load_state(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"secrets": {}, "config": {}, "refreshed": [], "next_id": 1}


def option_value(args: list[str], flag: str) -> str | None:
    if flag in args:
        return args[args.index(flag) + 1]
    return None


def positional(args: list[str]) -> list[str]:
    """The arguments that are neither flags nor flag values."""
    result: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--file", "--info", "--format", "--path", "-m"):
            skip = True
        elif not arg.startswith("--"):
            result.append(arg)
    return result


def read_content(file: str) -> dict[str, str]:
    content = yaml.safe_load(Path(file).read_text())
    if not isinstance(content, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in content.items()
    ):
        fail(f"ERROR {file}: secret content must be a map of string keys to string values")
    return content


def find_secret(state: dict[str, Any], ref: str) -> str:
    ref = ref.removeprefix("secret:")
    for secret_id, secret in state["secrets"].items():
        if ref in (secret_id, secret["name"]):
            return secret_id
    fail(f'ERROR secret "{ref}" not found')


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(1)


def run(args: list[str], state: dict[str, Any]) -> None:
    command, rest = args[0], args[1:]
    if command == "secrets":
        listing = {
            secret_id: {
                "revision": secret["revision"],
                "owner": "<model>",
                "name": secret["name"],
                "description": secret["description"],
                "created": "2026-01-01T00:00:00Z",
                "updated": "2026-01-01T00:00:00Z",
            }
            for secret_id, secret in state["secrets"].items()
        }
        print(json.dumps(listing))
    elif command == "add-secret":
        (name,) = positional(rest)
        if any(s["name"] == name for s in state["secrets"].values()):
            fail(f'ERROR secret with name "{name}" already exists')
        file = option_value(rest, "--file") or fail("ERROR add-secret needs --file here")
        secret_id = f"d{state['next_id']:019d}"
        state["next_id"] += 1
        state["secrets"][secret_id] = {
            "name": name,
            "description": option_value(rest, "--info") or "",
            "revision": 1,
            "content": read_content(file),
            "access": [],
        }
        print(f"secret:{secret_id}")
    elif command == "update-secret":
        (ref,) = positional(rest)
        secret = state["secrets"][find_secret(state, ref)]
        file = option_value(rest, "--file") or fail("ERROR update-secret needs --file here")
        secret["content"] = read_content(file)
        secret["revision"] += 1
    elif command == "show-secret":
        (ref,) = positional(rest)
        secret_id = find_secret(state, ref)
        secret = state["secrets"][secret_id]
        shown: dict[str, Any] = {
            "revision": secret["revision"],
            "owner": "<model>",
            "name": secret["name"],
            "description": secret["description"],
            "access": [
                {"target": f"application-{app}", "scope": MODEL, "role": "view"}
                for app in secret["access"]
            ],
        }
        if "--reveal" in rest:
            # What Juju 3's show-secret writes in JSON: the values under a "Data" key.
            shown["content"] = {"Data": secret["content"]}
        print(json.dumps({secret_id: shown}))
    elif command == "grant-secret":
        ref, apps = positional(rest)
        secret = state["secrets"][find_secret(state, ref)]
        secret["access"] = sorted(set(secret["access"]) | set(apps.split(",")))
    elif command == "config":
        app, *settings = positional(rest)
        config = state["config"].setdefault(app, {})
        if len(settings) == 1 and "=" not in settings[0]:
            print(config.get(settings[0], ""))
            return
        for setting in settings:
            key, value = setting.split("=", 1)
            if key == "influxdb-secret":
                find_secret(state, value)
            config[key] = value
    elif command == "refresh":
        (app,) = positional(rest)
        state["refreshed"].append({"app": app, "path": option_value(rest, "--path")})
    else:
        fail(f"fake juju: unknown command {args!r}")


def main() -> None:
    args = sys.argv[1:]
    entry: dict[str, Any] = {"argv": args}
    file = option_value(args, "--file")
    if file is not None:
        entry["file_existed"] = os.path.exists(file)
        if entry["file_existed"]:
            entry["file_mode"] = oct(stat.S_IMODE(os.stat(file).st_mode))
    with open(os.environ["FAKE_JUJU_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")
    state_path = Path(os.environ["FAKE_JUJU_STATE"])
    state = load_state(state_path)
    run(args, state)
    state_path.write_text(json.dumps(state))


if __name__ == "__main__":
    main()
