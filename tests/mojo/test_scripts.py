"""The Mojo scripts, run for real under bash against a recording stand-in `juju` first on
PATH (tests/mojo/fake_juju.py): the exact juju calls, idempotence, and that no credential ever
shows in an argument, stdout or stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from metrics.testing import ThrowawayCA

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "mojo" / "scripts"
FAKE_JUJU = Path(__file__).resolve().parent / "fake_juju.py"
APP = "ubuntu-community-metrics"
SECRET_NAME = "ubuntu-community-metrics-influxdb"
SECRET_INFO = "InfluxDB credentials for ubuntu-community-metrics (published by Mojo)"
FIRST_ID = "d0000000000000000001"

# Values chosen to break naive quoting (YAML, shell and JSON specials) and easy to grep for.
CREDENTIALS = {
    "influxdb-host": "influx-sentinel-host.internal",
    "influxdb-username": "sentinel-user",
    "influxdb-password": "pa55:#'\"sentinel word",
}
NEW_PASSWORD = "rotated-sentinel-$(id)-`x`"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]
    log: list[dict[str, Any]]


class FakeJuju:
    """Runs a script with the recording `juju` first on PATH and Mojo's environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        juju = self.bin / "juju"
        juju.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_JUJU}" "$@"\n')
        juju.chmod(0o755)
        self.state_file = tmp_path / "juju-state.json"
        self.log_file = tmp_path / "juju-calls.jsonl"
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir()
        self.local_dir = tmp_path / "local"
        self.local_dir.mkdir()
        self.repo_dir = tmp_path / "repo"
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "TMPDIR": str(self.tmpdir),
            "FAKE_JUJU_STATE": str(self.state_file),
            "FAKE_JUJU_LOG": str(self.log_file),
            "MOJO_STAGE": "mojo/production",
            "MOJO_SERIES": "noble",
            "MOJO_LOCAL_DIR": str(self.local_dir),
            "MOJO_REPO_DIR": str(self.repo_dir),
        }

    def place(self, files: dict[str, str]) -> None:
        """Put secret files where Mojo's secrets phase copies them, newline-terminated."""
        for name, value in files.items():
            (self.local_dir / name).write_text(value + "\n")

    def run(self, script: str, **env: str) -> Run:
        self.log_file.write_text("")
        result = subprocess.run(
            ["bash", str(SCRIPTS / script)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        log = [json.loads(line) for line in self.log_file.read_text().splitlines()]
        return Run(result.returncode, result.stdout, result.stderr, [e["argv"] for e in log], log)

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())


@pytest.fixture
def juju(tmp_path: Path) -> FakeJuju:
    return FakeJuju(tmp_path)


def without_file_paths(calls: list[list[str]]) -> list[list[str]]:
    """The calls with every temporary --file path replaced by <file>."""
    return [
        [
            "<file>" if index > 0 and call[index - 1] == "--file" else arg
            for index, arg in enumerate(call)
        ]
        for call in calls
    ]


def assert_no_secret_leaks(run: Run, secrets: list[str]) -> None:
    for secret in secrets:
        for call in run.calls:
            assert not any(secret in arg for arg in call), f"a credential is in juju {call}"
        assert secret not in run.stdout
        assert secret not in run.stderr


# shellcheck


def test_every_script_is_strict_bash_and_passes_shellcheck() -> None:
    scripts = sorted(SCRIPTS.iterdir())
    assert [s.name for s in scripts] == ["publish-influxdb-secret", "upgrade-charm"]
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/bin/bash\n"), f"{script.name}: not a bash script"
        assert "\nset -euo pipefail\n" in text, f"{script.name}: no set -euo pipefail"
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: ./dev setup installs it"
    result = subprocess.run(
        [shellcheck, "--shell=bash", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# publish-influxdb-secret


def test_first_run_creates_grants_and_configures_the_secret(juju: FakeJuju) -> None:
    juju.place(CREDENTIALS)

    run = juju.run("publish-influxdb-secret")

    assert run.returncode == 0, run.stderr
    assert without_file_paths(run.calls) == [
        ["secrets", "--format", "json"],
        ["add-secret", SECRET_NAME, "--file", "<file>", "--info", SECRET_INFO],
        ["grant-secret", FIRST_ID, APP],
        ["config", APP, "influxdb-secret"],
        ["config", APP, f"influxdb-secret=secret:{FIRST_ID}"],
    ]
    state = juju.state()
    assert state["secrets"][FIRST_ID]["content"] == {
        "host": CREDENTIALS["influxdb-host"],
        "port": "8086",
        "username": CREDENTIALS["influxdb-username"],
        "password": CREDENTIALS["influxdb-password"],
        "database": "metrics",
    }
    assert state["secrets"][FIRST_ID]["access"] == [APP]
    assert state["config"][APP] == {"influxdb-secret": f"secret:{FIRST_ID}"}
    assert_no_secret_leaks(run, list(CREDENTIALS.values()))


def test_content_file_is_private_and_removed(juju: FakeJuju) -> None:
    juju.place(CREDENTIALS)

    run = juju.run("publish-influxdb-secret")

    (add,) = [entry for entry in run.log if entry["argv"][0] == "add-secret"]
    assert add["file_existed"]
    assert add["file_mode"] == "0o600"
    file = add["argv"][add["argv"].index("--file") + 1]
    assert Path(file).parent == juju.tmpdir
    assert not Path(file).exists()
    assert list(juju.tmpdir.iterdir()) == []


def test_rerun_with_unchanged_files_changes_nothing(juju: FakeJuju) -> None:
    juju.place(CREDENTIALS)
    assert juju.run("publish-influxdb-secret").returncode == 0
    before = juju.state()

    run = juju.run("publish-influxdb-secret")

    assert run.returncode == 0, run.stderr
    assert run.calls == [
        ["secrets", "--format", "json"],
        ["show-secret", FIRST_ID, "--reveal", "--format", "json"],
        ["config", APP, "influxdb-secret"],
    ]
    assert juju.state() == before
    assert "up to date" in run.stdout
    assert_no_secret_leaks(run, list(CREDENTIALS.values()))
    assert list(juju.tmpdir.iterdir()) == []


def test_changed_password_updates_the_secret_content(juju: FakeJuju) -> None:
    juju.place(CREDENTIALS)
    assert juju.run("publish-influxdb-secret").returncode == 0
    juju.place({"influxdb-password": NEW_PASSWORD})

    run = juju.run("publish-influxdb-secret")

    assert run.returncode == 0, run.stderr
    assert without_file_paths(run.calls) == [
        ["secrets", "--format", "json"],
        ["show-secret", FIRST_ID, "--reveal", "--format", "json"],
        ["update-secret", FIRST_ID, "--file", "<file>"],
        ["config", APP, "influxdb-secret"],
    ]
    secret = juju.state()["secrets"][FIRST_ID]
    # A new revision of the same secret: Juju tells the charm with secret-changed.
    assert secret["revision"] == 2
    assert secret["content"]["password"] == NEW_PASSWORD
    assert secret["access"] == [APP]
    (update,) = [entry for entry in run.log if entry["argv"][0] == "update-secret"]
    assert update["file_mode"] == "0o600"
    assert_no_secret_leaks(run, [*CREDENTIALS.values(), NEW_PASSWORD])


def test_optional_files_set_port_database_and_ssl(juju: FakeJuju) -> None:
    juju.place(
        {
            **CREDENTIALS,
            "influxdb-port": "8087",
            "influxdb-database": "ubuntu",
            "influxdb-ssl": "true",
        }
    )

    run = juju.run("publish-influxdb-secret")

    assert run.returncode == 0, run.stderr
    content = juju.state()["secrets"][FIRST_ID]["content"]
    assert (content["port"], content["database"], content["ssl"]) == ("8087", "ubuntu", "true")


def test_a_ca_cert_file_becomes_the_secrets_ca_cert(juju: FakeJuju, tmp_path: Path) -> None:
    pem = ThrowawayCA(tmp_path / "ca").cert_pem
    juju.place({**CREDENTIALS, "influxdb-ca-cert": f"{pem}\n"})

    run = juju.run("publish-influxdb-secret")

    assert run.returncode == 0, run.stderr
    content = juju.state()["secrets"][FIRST_ID]["content"]
    assert content["ca-cert"] == pem
    assert "ssl" not in content  # the charm takes a ca-cert to mean https


@pytest.mark.parametrize("problem", ["not-pem", "private-key", "ssl-false"])
def test_a_bad_ca_cert_file_stops_naming_it(juju: FakeJuju, tmp_path: Path, problem: str) -> None:
    ca = ThrowawayCA(tmp_path / "ca")
    files = {
        "not-pem": {"influxdb-ca-cert": "-----BEGIN CERTIFICATE-----\nnot base64\n"},
        "private-key": {"influxdb-ca-cert": ca.key.read_text() + ca.cert_pem},
        "ssl-false": {"influxdb-ca-cert": ca.cert_pem, "influxdb-ssl": "false"},
    }[problem]
    juju.place({**CREDENTIALS, **files})

    run = juju.run("publish-influxdb-secret")

    assert run.returncode != 0
    assert str(juju.local_dir / "influxdb-ca-cert") in run.stderr
    assert "PRIVATE KEY" not in run.stderr
    assert run.calls == []
    assert list(juju.tmpdir.iterdir()) == []


def test_an_interrupted_run_is_completed_by_the_next(juju: FakeJuju) -> None:
    # A secret that a previous run created before it stopped: not granted, not configured.
    juju.place(CREDENTIALS)
    content = juju.local_dir / "content.yaml"
    content.write_text(
        json.dumps(
            {
                "host": CREDENTIALS["influxdb-host"],
                "port": "8086",
                "username": CREDENTIALS["influxdb-username"],
                "password": CREDENTIALS["influxdb-password"],
                "database": "metrics",
            }
        )
    )
    subprocess.run(
        [juju.bin / "juju", "add-secret", SECRET_NAME, "--file", str(content)],
        env=juju.env,
        check=True,
        capture_output=True,
    )
    content.unlink()

    run = juju.run("publish-influxdb-secret")

    assert run.returncode == 0, run.stderr
    assert run.calls == [
        ["secrets", "--format", "json"],
        ["show-secret", FIRST_ID, "--reveal", "--format", "json"],
        ["grant-secret", FIRST_ID, APP],
        ["config", APP, "influxdb-secret"],
        ["config", APP, f"influxdb-secret=secret:{FIRST_ID}"],
    ]


@pytest.mark.parametrize("missing", sorted(CREDENTIALS))
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_missing_or_empty_secret_file_stops_naming_it(
    juju: FakeJuju, missing: str, how: str
) -> None:
    juju.place(CREDENTIALS)
    if how == "absent":
        (juju.local_dir / missing).unlink()
    else:
        (juju.local_dir / missing).write_text("")

    run = juju.run("publish-influxdb-secret")

    assert run.returncode != 0
    assert str(juju.local_dir / missing) in run.stderr
    assert run.calls == []
    assert_no_secret_leaks(run, list(CREDENTIALS.values()))


@pytest.mark.parametrize(
    ("name", "value"),
    [("influxdb-password", "\n"), ("influxdb-port", "eighty"), ("influxdb-ssl", "yes")],
)
def test_malformed_secret_file_stops_naming_it(juju: FakeJuju, name: str, value: str) -> None:
    juju.place(CREDENTIALS)
    (juju.local_dir / name).write_text(value)

    run = juju.run("publish-influxdb-secret")

    assert run.returncode != 0
    assert str(juju.local_dir / name) in run.stderr
    assert run.calls == []
    assert list(juju.tmpdir.iterdir()) == []


@pytest.mark.parametrize("stage", ["mojo/staging", "mojo/devel"])
def test_stages_with_influxdb_in_the_model_publish_nothing(juju: FakeJuju, stage: str) -> None:
    run = juju.run("publish-influxdb-secret", MOJO_STAGE=stage)

    assert run.returncode == 0, run.stderr
    assert run.calls == []
    assert "influxdb application in the model" in run.stdout


@pytest.mark.parametrize("stage", ["production", "staging", "devel"])
def test_the_script_publishes_exactly_where_the_bundle_has_no_influxdb(
    juju: FakeJuju, render_bundle: Callable[..., dict[str, Any]], stage: str
) -> None:
    juju.place(CREDENTIALS)

    run = juju.run("publish-influxdb-secret", MOJO_STAGE=f"mojo/{stage}")

    assert run.returncode == 0, run.stderr
    influxdb_in_model = "influxdb" in render_bundle(stage)["applications"]
    assert bool(run.calls) is not influxdb_in_model


def test_outside_mojo_the_script_says_what_is_missing(juju: FakeJuju) -> None:
    env = {key: value for key, value in juju.env.items() if key != "MOJO_LOCAL_DIR"}
    result = subprocess.run(
        ["bash", str(SCRIPTS / "publish-influxdb-secret")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "MOJO_LOCAL_DIR" in result.stderr


# upgrade-charm


def test_upgrade_refreshes_from_the_collected_charm(juju: FakeJuju) -> None:
    charm = juju.repo_dir / "noble" / APP
    charm.mkdir(parents=True)
    (charm / "metadata.yaml").write_text(f"name: {APP}\n")

    run = juju.run("upgrade-charm")

    assert run.returncode == 0, run.stderr
    assert run.calls == [["refresh", APP, "--path", str(charm)]]


def test_upgrade_without_a_collected_charm_stops_naming_the_path(juju: FakeJuju) -> None:
    run = juju.run("upgrade-charm")

    assert run.returncode != 0
    assert str(juju.repo_dir / "noble" / APP) in run.stderr
    assert run.calls == []
