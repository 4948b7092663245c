"""The Mojo spec's files: collect parses and fetches with python-codetree (what Mojo's collect
phase runs), the manifests use only Mojo's phases, and bundle.yaml renders per stage into a
bundle whose options and endpoints the charm really declares."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest
from codetree.config import Config
from codetree.handlers import GitSourceHandler

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "mojo"
APP = "ubuntu-community-metrics"
STAGES = ("production", "staging", "devel")
SUBORDINATES = ("telegraf", "landscape-client", "ubuntu-advantage")

# Mojo's phases (mojo.canonical.com/readme.html, "Phases") and the options this spec may give
# them; a script phase also takes KEY=VALUE pairs, which Mojo hands the script as environment.
MOJO_PHASES: dict[str, set[str]] = {
    "secrets": set(),
    "collect": {"config"},
    "builddeps": {"config"},
    "script": {"config", "lxc"},
    "build": {"config"},
    "repo": {"config"},
    "deploy": {"config", "delay", "target", "wait", "timeout"},
    "bundle": {"config", "local", "max-wait", "wait"},
    "sleep": {"config"},
    "verify": {"config", "retry", "sleep"},
    "nagios-check": {"skip-checks", "max-wait", "retry", "sleep"},
    "juju-check-wait": {"timeout"},
    "stop-on": {"return-code"},
}
NUMERIC_OPTIONS = {"max-wait", "timeout", "delay", "retry", "sleep", "return-code"}


def manifest_steps(name: str) -> list[tuple[str, dict[str, str]]]:
    """The (phase, options) steps of a manifest, as Mojo reads them: one per line, comments
    and blank lines ignored."""
    steps = []
    for line in (SPEC / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        phase, *words = line.split()
        options = {}
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"{name}: {word!r} in {line!r} is not key=value"
            assert key, f"{name}: {word!r} in {line!r} has no key"
            assert value, f"{name}: {word!r} in {line!r} has no value"
            options[key] = value
        steps.append((phase, options))
    return steps


# collect


def test_collect_parses_with_codetree_into_the_charm_directory() -> None:
    config = Config([str(SPEC / "collect")])

    assert list(config.directive_map) == [APP]
    directive = config.directive_map[APP]
    assert isinstance(directive.source, GitSourceHandler)
    assert directive.source_options == {"branch": "built", "overwrite": "True"}


@pytest.fixture
def built_branch_server(tmp_path: Path) -> Iterator[str]:
    """A real git repository with a `built` branch holding a charm, served over loopback HTTP
    (git's dumb protocol, which codetree's git handler clones like any https remote)."""
    work, bare = tmp_path / "work", tmp_path / "served" / "charm.git"
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "built", str(work)], check=True)
    (work / "metadata.yaml").write_text(f"name: {APP}\n")
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "built charm"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served")
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"git+http://127.0.0.1:{server.server_address[1]}/charm.git"
    finally:
        server.shutdown()
        server.server_close()


def test_collect_line_fetches_the_built_branch(
    built_branch_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spec's own line, with only the remote swapped for the loopback one.
    (line,) = [
        line
        for line in (SPEC / "collect").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dest, source = line.split(None, 1)
    options = source.rsplit(";", 1)[1]
    collect = tmp_path / "collect"
    collect.write_text(f"{dest} {built_branch_server};{options}\n")
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    monkeypatch.chdir(build_dir)

    assert Config([str(collect)]).build()
    assert (build_dir / APP / "metadata.yaml").read_text() == f"name: {APP}\n"
    # A second collect (overwrite=True) replaces the checkout instead of failing.
    assert Config([str(collect)]).build()


# manifests


@pytest.mark.parametrize("manifest", ["manifest", "manifest-upgrade"])
def test_manifest_uses_only_mojo_phases_with_well_formed_options(manifest: str) -> None:
    steps = manifest_steps(manifest)

    assert steps, f"{manifest} has no steps"
    for phase, options in steps:
        assert phase in MOJO_PHASES, f"{manifest}: {phase!r} is not a Mojo phase"
        for key, value in options.items():
            if phase == "script" and key.isupper():
                continue
            assert key in MOJO_PHASES[phase], f"{manifest}: {phase} takes no {key}="
            if key in NUMERIC_OPTIONS:
                assert value.isdigit(), f"{manifest}: {phase} {key}={value} is not a number"
        config = options.get("config")
        if config is not None:
            assert (SPEC / config).is_file(), f"{manifest}: {phase} config={config} is missing"
            if phase == "script":
                assert (SPEC / config).stat().st_mode & 0o111, f"{config} is not executable"


def test_manifest_deploys_then_publishes_credentials_then_waits() -> None:
    assert manifest_steps("manifest") == [
        ("secrets", {}),
        ("collect", {}),
        ("bundle", {"config": "bundle.yaml", "max-wait": "1800"}),
        ("script", {"config": "scripts/publish-influxdb-secret"}),
        ("juju-check-wait", {}),
    ]


def test_manifest_upgrade_collects_refreshes_and_waits() -> None:
    assert manifest_steps("manifest-upgrade") == [
        ("collect", {}),
        ("script", {"config": "scripts/upgrade-charm"}),
        ("juju-check-wait", {}),
    ]


# bundle.yaml


def test_bundle_uses_only_the_variables_mojo_supplies() -> None:
    environment = jinja2.Environment()  # noqa: S701 (parsed only, never rendered)
    parsed = environment.parse((SPEC / "bundle.yaml").read_text())

    assert jinja2.meta.find_undeclared_variables(parsed) == {"series", "local_dir", "stage_name"}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("series", "base"), [("jammy", "ubuntu@22.04"), ("noble", "ubuntu@24.04")]
)
def test_bundle_renders_to_a_bundle_of_the_collected_charm(
    render_bundle: Callable[..., dict[str, Any]], stage: str, series: str, base: str
) -> None:
    bundle = render_bundle(stage, series)

    assert bundle["default-base"] == base
    application = bundle["applications"][APP]
    # Where Mojo's collect phase leaves the charm, relative to the repository it deploys from.
    assert application["charm"] == f"./{series}/{APP}"
    assert application["num_units"] == 1


def test_bundle_refuses_a_series_the_charm_is_not_built_for(
    bundle_text: Callable[..., str],
) -> None:
    with pytest.raises(jinja2.UndefinedError, match="focal"):
        bundle_text("production", "focal")


@pytest.mark.parametrize("stage", STAGES)
def test_every_option_set_exists_in_config_yaml_with_its_type(
    render_bundle: Callable[..., dict[str, Any]],
    charm_options: dict[str, dict[str, Any]],
    stage: str,
) -> None:
    python_types: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "int": (int,),
        "float": (int, float),
        "boolean": (bool,),
        "secret": (str,),
    }
    options = render_bundle(stage)["applications"][APP]["options"]

    assert options
    for name, value in options.items():
        assert name in charm_options, f"{stage}: option {name} is not in config.yaml"
        declared = charm_options[name]["type"]
        assert isinstance(value, python_types[declared]), (
            f"{stage}: {name}={value!r} is not a {declared}"
        )
        if declared in ("int", "float"):
            assert not isinstance(value, bool), f"{stage}: {name}={value!r} is not a {declared}"
    # The credentials never travel through the bundle: the script sets the secret's URI.
    assert "influxdb-secret" not in options


@pytest.mark.parametrize("stage", STAGES)
def test_every_relation_endpoint_exists(
    render_bundle: Callable[..., dict[str, Any]], charm_metadata: dict[str, Any], stage: str
) -> None:
    bundle = render_bundle(stage)
    declared = {
        name
        for kind in ("requires", "provides", "peers")
        for name in (charm_metadata.get(kind) or {})
    }
    declared.add("juju-info")  # every machine charm provides it implicitly

    for relation in bundle["relations"]:
        assert len(relation) == 2, f"{stage}: {relation} does not join two endpoints"
        for endpoint in relation:
            application, _, name = endpoint.partition(":")
            assert application in bundle["applications"], f"{stage}: {endpoint}: no such app"
            if application == APP:
                assert name in declared, f"{stage}: {endpoint} is not in metadata.yaml"


def test_production_keeps_influxdb_outside_the_model(
    render_bundle: Callable[..., dict[str, Any]],
) -> None:
    bundle = render_bundle("production")

    assert "influxdb" not in bundle["applications"]
    assert not [r for r in bundle["relations"] if f"{APP}:influxdb" in r]


@pytest.mark.parametrize("stage", ["staging", "devel"])
def test_staging_and_devel_relate_to_an_influxdb_in_the_model(
    render_bundle: Callable[..., dict[str, Any]], charm_metadata: dict[str, Any], stage: str
) -> None:
    bundle = render_bundle(stage)

    assert bundle["applications"]["influxdb"]["charm"] == "influxdb"
    assert [f"{APP}:influxdb", "influxdb:query"] in bundle["relations"]
    assert charm_metadata["requires"]["influxdb"]["interface"] == "influxdb-api"


@pytest.mark.parametrize(
    ("stage", "expected"),
    [("production", SUBORDINATES), ("staging", SUBORDINATES), ("devel", ())],
)
def test_operational_subordinates_follow_the_stage(
    render_bundle: Callable[..., dict[str, Any]], stage: str, expected: tuple[str, ...]
) -> None:
    bundle = render_bundle(stage)

    present = tuple(name for name in SUBORDINATES if name in bundle["applications"])
    assert present == expected
    for name in expected:
        assert [f"{APP}:juju-info", name] in bundle["relations"]
        assert "num_units" not in bundle["applications"][name], f"{name} is a subordinate"


@pytest.mark.parametrize("stage", STAGES)
def test_no_secret_value_reaches_the_rendered_bundle(
    bundle_text: Callable[..., str], tmp_path: Path, stage: str
) -> None:
    secret_files = {
        "influxdb-host": "influx-host-sentinel.example",
        "influxdb-username": "influx-user-sentinel",
        "influxdb-password": "influx-password-sentinel",
        "landscape-registration-key": "landscape-key-sentinel",
        "ubuntu-advantage-token": "ua-token-sentinel",
    }
    for name, value in secret_files.items():
        (tmp_path / name).write_text(value + "\n")

    text = bundle_text(stage, "noble", str(tmp_path))

    for value in secret_files.values():
        assert value not in text
    # Not even by reference: an include-file:// would put the value into juju config.
    assert "influxdb-password" not in text
    assert "influxdb-username" not in text
