"""The charm's side of every hook and action, with Juju simulated by ops.testing.

Most tests replace the workload (what touches the machine) by `FakeWorkload`, which records
what the charm asks of it and answers with chosen reports. The last ones run the real workload
in a temporary root against a real influxd, with systemctl recorded. Every test also checks
that the InfluxDB password shows in no status, log or action output.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from metrics.testing import ADMIN_PASSWORD, ADMIN_USER, InfluxServer, ThrowawayCA, free_port
from ops import testing

import charm
import workload
from workload.account import Account
from workload.discovery import Collector
from workload.systemd import Systemctl, SystemctlError

PASSWORD = "hunter2-Very-Secret"
APP = "ubuntu-community-metrics"
NO_CREDENTIALS = "no InfluxDB credentials: integrate with influxdb or set influxdb-secret"
RELATION_DATA = {"hostname": "10.1.2.3", "port": "8086", "user": "metrics", "password": PASSWORD}
SECRET_CONTENT = {
    "host": "influx.example.com",
    "port": "8087",
    "username": "collector",
    "password": PASSWORD,
    "database": "community",
    "ssl": "true",
}


def collector_status(name: str, problem: str | None = None) -> Any:
    return workload.CollectorStatus(
        name=name,
        interval="5m",
        problem=problem,
        last_result="success" if problem is None else None,
        last_run="2026-11-23 07:00:00 UTC" if problem is None else None,
        next_run="2026-11-23 07:05:00 UTC" if problem is None else None,
        owner="ubuntu-community-metrics/1" if problem is None else None,
    )


@dataclasses.dataclass
class FakeWorkload:
    """The workload functions charm.py calls: records the calls, returns what a test chose."""

    report: Any = dataclasses.field(
        default_factory=lambda: workload.Report(
            commit="0123abc",
            scheduled=["bugs", "downloads", "uploads"],
            skipped=[],
            failing=[],
            problems=[],
        )
    )
    influx_problem: str | None = None
    packages_problem: str | None = None
    packages: list[str] = dataclasses.field(default_factory=list)
    collectors: list[Any] = dataclasses.field(
        default_factory=lambda: [
            collector_status("bugs"),
            collector_status("downloads"),
            collector_status("broken", "RUN_INTERVAL '5 parsecs' is not a systemd time span"),
        ]
    )
    run_result: Any = dataclasses.field(
        default_factory=lambda: workload.RunResult(exit_status=0, log_tail="wrote 12 points")
    )
    sync_result: Any = dataclasses.field(
        default_factory=lambda: workload.SyncResult(
            old_commit="0123abc",
            new_commit="4567def",
            added=["uploads"],
            removed=["downloads"],
            problems=[],
        )
    )
    calls: list[str] = dataclasses.field(default_factory=list)
    reconciled: list[tuple[Any, Any]] = dataclasses.field(default_factory=list)
    checked: list[Any] = dataclasses.field(default_factory=list)
    ran: list[tuple[str, bool]] = dataclasses.field(default_factory=list)
    synced: int = 0
    removed: int = 0

    def ensure_packages(self, packages: list[str]) -> list[str]:
        self.calls.append("ensure_packages")
        self.packages = list(packages)
        if self.packages_problem:
            raise workload.PackagesError(self.packages_problem)
        return []

    def reconcile(self, settings: Any, credentials: Any, **_: Any) -> Any:
        self.calls.append("reconcile")
        self.reconciled.append((settings, credentials))
        return self.report

    def check_influxdb(self, credentials: Any, **_: Any) -> str | None:
        self.checked.append(credentials)
        return self.influx_problem

    def list_collectors(self, **_: Any) -> list[Any]:
        return self.collectors

    def run_collector(self, name: str, *, dry_run: bool, **_: Any) -> Any:
        known = [c.name for c in self.collectors if c.problem is None]
        if name not in known:  # as the workload answers a name it cannot run
            raise ValueError(f"no collector named {name!r}: known collectors: {', '.join(known)}")
        self.ran.append((name, dry_run))
        return self.run_result

    def sync(self, **_: Any) -> Any:
        self.calls.append("sync")
        self.synced += 1
        return self.sync_result

    def remove(self, **_: Any) -> None:
        self.removed += 1

    def saved_credentials(self, **_: Any) -> Any:
        return self.reconciled[-1][1] if self.reconciled else None

    @property
    def credentials(self) -> Any:
        """The credentials of the last reconcile."""
        assert self.reconciled, "the charm did not reconcile"
        return self.reconciled[-1][1]

    @property
    def settings(self) -> Any:
        assert self.reconciled, "the charm did not reconcile"
        return self.reconciled[-1][0]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeWorkload:
    fake = FakeWorkload()
    for name in (
        "ensure_packages",
        "reconcile",
        "check_influxdb",
        "list_collectors",
        "run_collector",
        "sync",
        "remove",
        "saved_credentials",
    ):
        monkeypatch.setattr(charm.workload, name, getattr(fake, name))
    for variable in ("JUJU_CHARM_HTTP_PROXY", "JUJU_CHARM_HTTPS_PROXY", "JUJU_CHARM_NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return fake


@pytest.fixture
def ctx(caplog: pytest.LogCaptureFixture) -> Iterator[testing.Context[Any]]:
    caplog.set_level(logging.DEBUG)
    context = testing.Context(charm.UbuntuCommunityMetricsCharm)
    yield context
    assert PASSWORD not in caplog.text
    assert_no_password_in_logs(context)


def assert_no_password_in_logs(context: testing.Context[Any]) -> None:
    """Whatever the test did: the password never reached a log or an action's output."""
    for line in context.juju_log:
        assert PASSWORD not in line.message
    assert PASSWORD not in repr(context.action_results)


def influxdb_relation(**units: dict[str, str]) -> testing.Relation:
    """The influxdb relation with one data bag per remote unit (`u0=...`, `u1=...`)."""
    return testing.Relation(
        endpoint="influxdb",
        interface="influxdb-api",
        remote_app_name="influxdb",
        remote_units_data={int(key[1:]): data for key, data in units.items()},
    )


def run(ctx: testing.Context[Any], event: Any, state: testing.State) -> testing.State:
    out = ctx.run(event, state)
    assert PASSWORD not in out.unit_status.message
    return out


# Events that converge the unit


@pytest.mark.parametrize(
    "event_name", ["install", "start", "config_changed", "upgrade_charm", "update_status"]
)
def test_every_lifecycle_event_reconciles_once_with_relation_credentials(
    ctx: testing.Context[Any], fake: FakeWorkload, event_name: str
) -> None:
    state = testing.State(relations={influxdb_relation(u0=RELATION_DATA)})

    out = run(ctx, getattr(ctx.on, event_name)(), state)

    assert len(fake.reconciled) == 1
    assert fake.credentials == workload.InfluxCredentials(
        host="10.1.2.3", port=8086, username="metrics", password=PASSWORD, database="metrics"
    )
    assert fake.checked == [fake.credentials]
    assert out.unit_status == testing.ActiveStatus("3 collectors scheduled")
    assert out.workload_version == "0123abc"


@pytest.mark.parametrize(
    "event_name", ["install", "start", "config_changed", "upgrade_charm", "update_status"]
)
def test_lifecycle_events_never_fetch(
    ctx: testing.Context[Any], fake: FakeWorkload, event_name: str
) -> None:
    run(ctx, getattr(ctx.on, event_name)(), testing.State())

    assert fake.calls == ["ensure_packages", "reconcile"]


def test_packages_apt_cannot_install_block_and_the_next_hook_tries_again(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.packages_problem = "cannot install python3-venv: apt-get install exited 100: ..."
    state = testing.State(relations={influxdb_relation(u0=RELATION_DATA)})

    out = run(ctx, ctx.on.install(), state)

    assert out.unit_status == testing.BlockedStatus(fake.packages_problem)
    fake.packages_problem = None
    out = run(ctx, ctx.on.update_status(), out)
    assert fake.calls.count("ensure_packages") == 2
    assert out.unit_status == testing.ActiveStatus("3 collectors scheduled")


def test_install_shows_maintenance_while_it_works(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    run(ctx, ctx.on.install(), testing.State(relations={influxdb_relation(u0=RELATION_DATA)}))

    assert ctx.unit_status_history[-1] == testing.MaintenanceStatus(
        "checking out the collectors tree"
    )


@pytest.mark.parametrize(
    ("commit", "version"),
    [
        ("4f6c2a9e1b7d3c5e8a0f4b6d2c9e7a1f3b5d8c0e", "4f6c2a9e1b7d"),
        ("bundled-0123456789abcdef", "bundled-0123456789abcdef"),
    ],
)
def test_the_workload_version_is_the_live_commit(
    ctx: testing.Context[Any], fake: FakeWorkload, commit: str, version: str
) -> None:
    fake.report = dataclasses.replace(fake.report, commit=commit)

    out = run(ctx, ctx.on.update_status(), testing.State())

    assert out.workload_version == version


def test_settings_follow_the_config_and_run_the_bundled_tree_from_the_charm(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    config = {
        "collectors-repo": "https://git.example.com/metrics.git",
        "collectors-branch": "production",
        "collectors-path": "tree",
        "collectors-revision": "v1.2",
        "pull-interval": "30min",
        "collector-timeout": "2m",
        "dry-run": True,
    }
    with ctx(ctx.on.config_changed(), testing.State(config=config)) as manager:
        manager.run()
        charm_dir = manager.charm.charm_dir

    settings = fake.settings
    assert (
        settings.repo,
        settings.branch,
        settings.path,
        settings.revision,
        settings.pull_interval,
        settings.collector_timeout,
        settings.dry_run,
    ) == ("https://git.example.com/metrics.git", "production", "tree", "v1.2", "30min", "2m", True)
    assert settings.bundled_tree == charm_dir / "collectors"
    assert settings.proxy == workload.Proxy()


@pytest.mark.parametrize(
    ("address", "opened"),
    [("127.0.0.1", set()), ("0.0.0.0", {9100}), ("::", {9100}), ("::1", set())],  # noqa: S104
)
def test_the_metrics_port_is_opened_only_when_it_listens_beyond_the_machine(
    ctx: testing.Context[Any], fake: FakeWorkload, address: str, opened: set[int]
) -> None:
    state = testing.State(
        config={"metrics-address": address, "metrics-port": 9100},
        opened_ports={testing.TCPPort(9100)} if address == "127.0.0.1" else frozenset(),
    )
    out = run(ctx, ctx.on.config_changed(), state)

    assert {port.port for port in out.opened_ports} == opened
    assert (fake.settings.metrics_address, fake.settings.metrics_port) == (address, 9100)


def test_default_config_is_the_design_defaults(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    run(ctx, ctx.on.install(), testing.State())

    settings = fake.settings
    assert dataclasses.replace(settings, bundled_tree=Path("x")) == workload.Settings(
        bundled_tree=Path("x"), unit="ubuntu-community-metrics/0"
    )


def test_proxy_config_wins_over_the_model_proxy_which_fills_the_rest(
    ctx: testing.Context[Any], fake: FakeWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUJU_CHARM_HTTP_PROXY", "http://model-proxy:3128")
    monkeypatch.setenv("JUJU_CHARM_HTTPS_PROXY", "http://model-proxy:3128")
    monkeypatch.setenv("JUJU_CHARM_NO_PROXY", "10.0.0.0/8")
    state = testing.State(config={"https-proxy": "http://squid.internal:3128"})

    run(ctx, ctx.on.config_changed(), state)

    assert fake.settings.proxy == workload.Proxy(
        http="http://model-proxy:3128",
        https="http://squid.internal:3128",
        no_proxy="10.0.0.0/8",
    )


def test_remove_disables_everything_and_does_not_reconcile(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    run(ctx, ctx.on.remove(), testing.State(relations={influxdb_relation(u0=RELATION_DATA)}))

    assert fake.removed == 1
    assert fake.reconciled == []


# Credentials from the influxdb relation


@pytest.mark.parametrize("event_name", ["relation_joined", "relation_changed"])
def test_relation_data_becomes_the_credentials_with_the_configured_database(
    ctx: testing.Context[Any], fake: FakeWorkload, event_name: str
) -> None:
    relation = influxdb_relation(u0=RELATION_DATA)
    state = testing.State(relations={relation}, config={"influxdb-database": "ubuntu"})

    out = run(ctx, getattr(ctx.on, event_name)(relation, remote_unit=0), state)

    assert fake.credentials.host == "10.1.2.3"
    assert fake.credentials.database == "ubuntu"
    assert out.unit_status == testing.ActiveStatus("3 collectors scheduled")


def test_relation_without_keys_yet_waits_and_removes_stale_credentials(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0={"hostname": "10.1.2.3", "port": "8086"})

    out = run(
        ctx, ctx.on.relation_changed(relation, remote_unit=0), testing.State(relations={relation})
    )

    assert fake.credentials is None
    assert fake.checked == []
    assert out.unit_status == testing.WaitingStatus(
        "waiting for influxdb to publish hostname, port, user, password on the influxdb relation"
    )


def test_the_first_unit_with_every_key_is_used(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0={"hostname": "10.0.0.9"}, u1=RELATION_DATA)

    run(ctx, ctx.on.relation_changed(relation, remote_unit=1), testing.State(relations={relation}))

    assert fake.credentials.host == "10.1.2.3"


def test_non_numeric_port_blocks_naming_the_unit_and_the_value(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0={**RELATION_DATA, "port": "eighty-eighty"})

    out = run(
        ctx, ctx.on.relation_changed(relation, remote_unit=0), testing.State(relations={relation})
    )

    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(
        "influxdb/0 sent port 'eighty-eighty' on the influxdb relation, not a port number: "
        "fix the influxdb application"
    )


@pytest.mark.parametrize("port", ["0", "65536", "-1", " "])
def test_out_of_range_port_blocks(
    ctx: testing.Context[Any], fake: FakeWorkload, port: str
) -> None:
    relation = influxdb_relation(u0={**RELATION_DATA, "port": port})

    out = run(
        ctx, ctx.on.relation_changed(relation, remote_unit=0), testing.State(relations={relation})
    )

    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert "not a port number" in out.unit_status.message


def test_departing_unit_is_not_used(ctx: testing.Context[Any], fake: FakeWorkload) -> None:
    relation = influxdb_relation(u0=RELATION_DATA, u1={**RELATION_DATA, "hostname": "10.9.9.9"})
    event = ctx.on.relation_departed(relation, remote_unit=0, departing_unit=0)

    run(ctx, event, testing.State(relations={relation}))

    assert fake.credentials.host == "10.9.9.9"


def test_last_unit_departing_waits_for_a_unit(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0=RELATION_DATA)
    event = ctx.on.relation_departed(relation, remote_unit=0, departing_unit=0)

    out = run(ctx, event, testing.State(relations={relation}))

    assert fake.credentials is None
    assert out.unit_status == testing.WaitingStatus(
        "waiting for a unit of influxdb to join the relation"
    )


def test_relation_broken_removes_the_credentials_and_asks_for_new_ones(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0=RELATION_DATA)

    out = run(ctx, ctx.on.relation_broken(relation), testing.State(relations={relation}))

    assert len(fake.reconciled) == 1
    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(NO_CREDENTIALS)


def test_no_relation_and_no_secret_blocks_with_both_fixes(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    out = run(ctx, ctx.on.install(), testing.State())

    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(NO_CREDENTIALS)


# Credentials from the influxdb-secret user secret


def secret_state(secret: testing.Secret, **config: str | bool) -> testing.State:
    return testing.State(config={"influxdb-secret": secret.id, **config}, secrets={secret})


def test_secret_becomes_the_credentials_with_its_own_database(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    secret = testing.Secret(tracked_content=SECRET_CONTENT)

    out = run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert fake.credentials == workload.InfluxCredentials(
        host="influx.example.com",
        port=8087,
        username="collector",
        password=PASSWORD,
        database="community",
        ssl=True,
    )
    assert out.unit_status == testing.ActiveStatus("3 collectors scheduled")


def test_secret_wins_over_the_relation(ctx: testing.Context[Any], fake: FakeWorkload) -> None:
    secret = testing.Secret(tracked_content=SECRET_CONTENT)
    state = dataclasses.replace(
        secret_state(secret), relations={influxdb_relation(u0=RELATION_DATA)}
    )

    run(ctx, ctx.on.config_changed(), state)

    assert fake.credentials.host == "influx.example.com"
    assert any("influxdb-secret is set" in line.message for line in ctx.juju_log)


def test_secret_without_ssl_key_means_plain_http(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    content = {key: value for key, value in SECRET_CONTENT.items() if key != "ssl"}
    secret = testing.Secret(tracked_content=content)

    run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert fake.credentials.ssl is False


@pytest.mark.parametrize(("word", "ssl"), [("True", True), ("false", False), (" FALSE ", False)])
def test_secret_ssl_is_true_or_false_in_any_case(
    ctx: testing.Context[Any], fake: FakeWorkload, word: str, ssl: bool
) -> None:
    secret = testing.Secret(tracked_content={**SECRET_CONTENT, "ssl": word})

    run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert fake.credentials.ssl is ssl


def test_secret_changed_uses_the_new_revision(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    secret = testing.Secret(
        tracked_content=SECRET_CONTENT,
        latest_content={**SECRET_CONTENT, "host": "new-influx.example.com"},
    )

    run(ctx, ctx.on.secret_changed(secret), secret_state(secret))

    assert fake.credentials.host == "new-influx.example.com"


def test_secret_not_granted_blocks_with_the_grant_command(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    uri = "secret:d3fm5ugr5ri0kt7lbqhg"

    out = run(ctx, ctx.on.config_changed(), testing.State(config={"influxdb-secret": uri}))

    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(
        f"cannot read influxdb-secret {uri} (not granted, or removed): "
        f"juju grant-secret {uri} {APP}"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"host": "influx", "port": "8086", "password": PASSWORD},
            "lacks username, database: update it with keys host, port, username, password, "
            "database and optionally ssl, ca-cert ({update})",
        ),
        (
            {**SECRET_CONTENT, "password": ""},
            "lacks password: update it with keys host, port, username, password, "
            "database and optionally ssl, ca-cert ({update})",
        ),
        (
            # A password pasted into the wrong key is never shown back.
            {**SECRET_CONTENT, "port": "hunter2-password"},
            "has a port that is not a port number (1-65535): update it with the port InfluxDB "
            "listens on ({update})",
        ),
        (
            {**SECRET_CONTENT, "ssl": "hunter2-password"},
            "has an ssl value that is not true or false: update it ({update})",
        ),
    ],
    ids=["missing-keys", "empty-password", "bad-port", "bad-ssl"],
)
def test_bad_secret_content_blocks_saying_what_to_update(
    ctx: testing.Context[Any], fake: FakeWorkload, content: dict[str, str], message: str
) -> None:
    secret = testing.Secret(tracked_content=content)

    out = run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(
        f"influxdb-secret {secret.id} "
        + message.format(update=f"juju update-secret {secret.id} --file <credentials.yaml>")
    )


# A private CA's certificate (ca-cert) in the secret or the relation


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


def test_a_ca_cert_in_the_secret_reaches_the_credentials_and_implies_https(
    ctx: testing.Context[Any], fake: FakeWorkload, ca: ThrowawayCA
) -> None:
    content = {key: value for key, value in SECRET_CONTENT.items() if key != "ssl"}
    # As `juju add-secret ... ca-cert#file=ca.pem` stores it; blank lines around are dropped.
    secret = testing.Secret(tracked_content={**content, "ca-cert": f"\n{ca.cert_pem}\n\n"})

    out = run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert fake.credentials.ssl is True
    assert fake.credentials.ca_cert == ca.cert_pem
    assert fake.credentials.verify_ssl is True
    assert out.unit_status == testing.ActiveStatus("3 collectors scheduled")
    # The repr shown in logs and tracebacks carries neither the password nor the long PEM.
    assert PASSWORD not in repr(fake.credentials)
    assert "BEGIN CERTIFICATE" not in repr(fake.credentials)


def test_a_ca_cert_in_the_relation_reaches_the_credentials_and_implies_https(
    ctx: testing.Context[Any], fake: FakeWorkload, ca: ThrowawayCA
) -> None:
    relation = influxdb_relation(u0={**RELATION_DATA, "ca-cert": ca.cert_pem})

    run(ctx, ctx.on.relation_changed(relation), testing.State(relations={relation}))

    assert fake.credentials.ssl is True
    assert fake.credentials.ca_cert == ca.cert_pem


def test_without_a_ca_cert_the_relation_means_plain_http(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0=RELATION_DATA)

    run(ctx, ctx.on.relation_changed(relation), testing.State(relations={relation}))

    assert (fake.credentials.ssl, fake.credentials.ca_cert) == (False, "")


NOT_PEM = (
    "is not PEM certificate text (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----, "
    "one block per certificate)"
)


@pytest.mark.parametrize(
    ("ca_cert", "ssl", "message"),
    [
        (
            "hunter2-garbage",
            "true",
            f"has a ca-cert that {NOT_PEM}: update it with the PEM certificate of the CA that "
            "signed InfluxDB's certificate ({update})",
        ),
        (
            "{truncated}",
            None,
            f"has a ca-cert that {NOT_PEM}: update it with the PEM certificate of the CA that "
            "signed InfluxDB's certificate ({update})",
        ),
        (
            "{key}{pem}",
            None,
            "has a ca-cert that holds a private key, which must stay on the InfluxDB server: "
            "update it with the PEM certificate of the CA that signed InfluxDB's certificate "
            "({update})",
        ),
        (
            "{pem}",
            "false",
            "has ssl false and a ca-cert, which is only used over https: set ssl to true (or "
            "remove it), or remove ca-cert ({update})",
        ),
    ],
    ids=["garbage", "truncated", "private-key", "ssl-false"],
)
def test_a_bad_ca_cert_in_the_secret_blocks_saying_what_to_update(
    ctx: testing.Context[Any],
    fake: FakeWorkload,
    ca: ThrowawayCA,
    ca_cert: str,
    ssl: str | None,
    message: str,
) -> None:
    pem = ca.cert_pem
    text = ca_cert.format(pem=pem, truncated=pem[:120] + pem[-30:], key=ca.key.read_text())
    content = {key: value for key, value in SECRET_CONTENT.items() if key != "ssl"}
    secret = testing.Secret(
        tracked_content={**content, "ca-cert": text, **({"ssl": ssl} if ssl else {})}
    )

    out = run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(
        f"influxdb-secret {secret.id} "
        + message.format(update=f"juju update-secret {secret.id} --file <credentials.yaml>")
    )
    assert "hunter2" not in out.unit_status.message


def test_a_bad_ca_cert_on_the_relation_blocks_naming_the_unit(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = influxdb_relation(u0={**RELATION_DATA, "ca-cert": "not a certificate"})

    out = run(ctx, ctx.on.relation_changed(relation), testing.State(relations={relation}))

    assert fake.credentials is None
    assert out.unit_status == testing.BlockedStatus(
        f"influxdb/0 sent a ca-cert that {NOT_PEM} on the influxdb relation: fix the influxdb "
        "application"
    )


# What the checks and the reconcile found


def test_influxdb_problem_blocks_with_the_check_message_and_never_the_password(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.influx_problem = (
        f"InfluxDB at 10.1.2.3:8086 rejected user 'metrics' (password {PASSWORD} wrong): "
        "check the username and password"
    )

    out = run(
        ctx, ctx.on.update_status(), testing.State(relations={influxdb_relation(u0=RELATION_DATA)})
    )

    assert out.unit_status == testing.BlockedStatus(
        "InfluxDB at 10.1.2.3:8086 rejected user 'metrics' (password ******** wrong): "
        "check the username and password"
    )


@pytest.mark.parametrize(
    "problem",
    [
        "first clone of https://git.example.com/metrics.git failed (could not resolve host): "
        "check collectors-repo and the proxy",
        "no collectors found in collectors/metrics/collectors: check collectors-path",
        "pull failed, kept commit 0123abc: branch 'prod' does not exist: set collectors-branch",
        "venv install failed, kept the previous one: pip: no matching distribution for foo==9",
    ],
)
def test_each_workload_problem_is_the_status(
    ctx: testing.Context[Any], fake: FakeWorkload, problem: str
) -> None:
    fake.report = dataclasses.replace(fake.report, problems=[problem])

    out = run(
        ctx, ctx.on.update_status(), testing.State(relations={influxdb_relation(u0=RELATION_DATA)})
    )

    assert out.unit_status == testing.BlockedStatus(problem)


def test_missing_credentials_come_before_workload_problems(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.report = dataclasses.replace(fake.report, problems=["no collectors found: ..."])

    out = run(ctx, ctx.on.install(), testing.State())

    assert out.unit_status == testing.BlockedStatus(NO_CREDENTIALS)


def test_active_status_names_skipped_and_failing_collectors(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.report = dataclasses.replace(
        fake.report,
        scheduled=["bugs"],
        skipped=[Collector("broken", "5m", "bad interval"), Collector("9lives", "5m", "name")],
        failing=["bugs"],
    )
    state = testing.State(
        relations={influxdb_relation(u0=RELATION_DATA)}, config={"dry-run": True}
    )

    out = run(ctx, ctx.on.update_status(), state)

    assert out.unit_status == testing.ActiveStatus(
        "1 collector scheduled; dry-run: nothing written; "
        "skipped: broken, 9lives (see list-collectors); failing: bugs (see run-collector)"
    )


def test_an_action_leaves_the_status_as_the_last_hook_set_it(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    state = testing.State(unit_status=testing.BlockedStatus("what the last hook said"))

    out = run(ctx, ctx.on.action("list-collectors"), state)

    assert fake.reconciled == []
    assert out.unit_status == testing.BlockedStatus("what the last hook said")


# Actions


def test_list_collectors_shows_every_column(ctx: testing.Context[Any], fake: FakeWorkload) -> None:
    run(ctx, ctx.on.action("list-collectors"), testing.State())

    results = ctx.action_results
    assert results is not None
    assert results["count"] == "3"
    lines = results["collectors"].splitlines()
    assert lines[0].split() == [
        "NAME",
        "INTERVAL",
        "OWNER",
        "LAST-RESULT",
        "LAST-RUN",
        "NEXT-RUN",
        "PROBLEM",
    ]
    assert lines[1].split() == [
        "bugs",
        "5m",
        "ubuntu-community-metrics/1",
        "success",
        "2026-11-23",
        "07:00:00",
        "UTC",
        "2026-11-23",
        "07:05:00",
        "UTC",
        "-",
    ]
    assert lines[3].startswith("broken ")
    assert lines[3].endswith("RUN_INTERVAL '5 parsecs' is not a systemd time span")


def test_list_collectors_before_any_checkout_is_an_empty_table(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.collectors = []

    run(ctx, ctx.on.action("list-collectors"), testing.State())

    assert ctx.action_results is not None
    assert ctx.action_results["count"] == "0"
    assert ctx.action_results["collectors"].split() == [
        "NAME",
        "INTERVAL",
        "OWNER",
        "LAST-RESULT",
        "LAST-RUN",
        "NEXT-RUN",
        "PROBLEM",
    ]


def test_run_collector_returns_exit_status_and_log_tail(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    run(ctx, ctx.on.action("run-collector", params={"name": "bugs"}), testing.State())

    assert fake.ran == [("bugs", False)]
    assert ctx.action_results == {
        "exit-status": "0",
        "dry-run": "false",
        "log-tail": "wrote 12 points",
    }


@pytest.mark.parametrize(
    ("param", "config", "expected"),
    [(True, False, True), (False, True, True), (False, False, False)],
)
def test_run_collector_is_dry_when_asked_or_when_the_unit_is(
    ctx: testing.Context[Any], fake: FakeWorkload, param: bool, config: bool, expected: bool
) -> None:
    event = ctx.on.action("run-collector", params={"name": "bugs", "dry-run": param})

    run(ctx, event, testing.State(config={"dry-run": config}))

    assert fake.ran == [("bugs", expected)]


def test_run_collector_failure_fails_the_action_with_the_log_and_no_password(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.run_result = workload.RunResult(
        exit_status=1, log_tail=f"CollectorError: auth failed for metrics:{PASSWORD}"
    )
    state = testing.State(relations={influxdb_relation(u0=RELATION_DATA)})

    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("run-collector", params={"name": "bugs"}), state)

    assert failure.value.message == "collector bugs exited with status 1: see log-tail"
    assert ctx.action_results is not None
    assert ctx.action_results["exit-status"] == "1"
    assert ctx.action_results["log-tail"] == "CollectorError: auth failed for metrics:********"


def test_run_collector_that_cannot_run_fails_with_the_workloads_reason(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("run-collector", params={"name": "nope"}), testing.State())

    assert failure.value.message == (
        "no collector named 'nope': known collectors: bugs, downloads (see list-collectors)"
    )
    assert fake.ran == []


@pytest.mark.parametrize(
    ("action", "params", "message"),
    [
        ("list-collectors", {}, "cannot ask systemd about the collectors: "),
        ("run-collector", {"name": "bugs"}, "cannot run collector bugs: "),
    ],
)
def test_a_systemd_failure_fails_the_action_with_the_command(
    ctx: testing.Context[Any],
    fake: FakeWorkload,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    params: dict[str, str],
    message: str,
) -> None:
    error = SystemctlError("systemctl start metrics-collector@bugs.service failed (exit status 1)")

    def fail(*_: Any, **__: Any) -> None:
        raise error

    monkeypatch.setattr(charm.workload, action.replace("-", "_"), fail)

    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action(action, params=params), testing.State())

    assert failure.value.message == message + str(error)


@pytest.mark.parametrize(
    ("action", "params", "prefix"),
    [
        ("list-collectors", {}, ""),
        ("run-collector", {"name": "bugs"}, "cannot run collector bugs: "),
    ],
)
def test_a_tree_that_cannot_be_listed_fails_the_action_with_why(
    ctx: testing.Context[Any],
    fake: FakeWorkload,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    params: dict[str, str],
    prefix: str,
) -> None:
    error = workload.DiscoveryError(
        "cannot list the collectors of /var/lib/ubuntu-community-metrics/current "
        "(it took more than 60 s)"
    )

    def fail(*_: Any, **__: Any) -> None:
        raise error

    monkeypatch.setattr(charm.workload, action.replace("-", "_"), fail)

    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action(action, params=params), testing.State())

    assert failure.value.message == prefix + str(error)


def test_pull_returns_commits_and_collector_changes_and_refreshes_the_status(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    state = testing.State(
        config={"collectors-repo": "https://git.example.com/metrics.git"},
        relations={influxdb_relation(u0=RELATION_DATA)},
    )

    out = run(ctx, ctx.on.action("pull"), state)

    assert fake.synced == 1
    assert ctx.action_results == {
        "old-commit": "0123abc",
        "new-commit": "4567def",
        "added": "uploads",
        "removed": "downloads",
    }
    assert len(fake.reconciled) == 1
    assert out.unit_status == testing.ActiveStatus("3 collectors scheduled")


def test_pull_problem_fails_the_action_with_it(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    problem = "fetch of https://git.example.com/metrics.git failed (timeout): kept 0123abc"
    fake.sync_result = dataclasses.replace(
        fake.sync_result, new_commit="0123abc", added=[], removed=[], problems=[problem]
    )
    state = testing.State(config={"collectors-repo": "https://git.example.com/metrics.git"})

    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("pull"), state)

    assert failure.value.message == problem
    assert ctx.action_results is not None
    assert ctx.action_results["added"] == "none"


def test_pull_without_a_repository_fails_saying_what_to_set(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("pull"), testing.State())

    assert failure.value.message == (
        "collectors-repo is empty, so the tree bundled in the charm runs and there is "
        "nothing to pull: set collectors-repo to follow a branch"
    )
    assert fake.synced == 0


# The charm over the real workload: files in a temporary root, a real influxd, and systemctl
# as a script that records its calls (the machine tests drive a real systemd).


# The optional nrpe-external-master relation. charmhelpers' NRPE calls Juju's hook tools
# itself and writes under /etc/nagios, so the charm's part is checked here with src/nrpe.py's two
# entry points recorded; tests/machine/test_nrpe.py runs them for real through NRPE.


@dataclasses.dataclass
class FakeNrpe:
    updated: list[Any] = dataclasses.field(default_factory=list)
    removed: int = 0

    def update_checks(self, settings: Any) -> None:
        self.updated.append(settings)

    def remove_checks(self) -> None:
        self.removed += 1


@pytest.fixture
def fake_nrpe(monkeypatch: pytest.MonkeyPatch) -> FakeNrpe:
    recorder = FakeNrpe()
    monkeypatch.setattr(charm.nrpe, "update_checks", recorder.update_checks)
    monkeypatch.setattr(charm.nrpe, "remove_checks", recorder.remove_checks)
    return recorder


def nrpe_relation() -> testing.SubordinateRelation:
    return testing.SubordinateRelation(
        endpoint="nrpe-external-master",
        interface="nrpe-external-master",
        remote_app_name="nrpe",
        remote_unit_data={"nagios_hostname": "juju-metrics-ucm-0"},
    )


def test_without_the_nrpe_relation_nothing_is_written_for_nagios(
    ctx: testing.Context[Any], fake: FakeWorkload, fake_nrpe: FakeNrpe
) -> None:
    state = testing.State(relations={influxdb_relation(u0=RELATION_DATA)})
    for event in (ctx.on.install(), ctx.on.config_changed(), ctx.on.upgrade_charm()):
        run(ctx, event, state)
    assert fake_nrpe.updated == []
    assert fake_nrpe.removed == 0


@pytest.mark.parametrize("event_name", ["joined", "changed", "config_changed", "upgrade_charm"])
def test_with_the_nrpe_relation_the_checks_follow_the_endpoint_and_options(
    ctx: testing.Context[Any], fake: FakeWorkload, fake_nrpe: FakeNrpe, event_name: str
) -> None:
    relation = nrpe_relation()
    state = testing.State(
        relations={influxdb_relation(u0=RELATION_DATA), relation},
        config={
            "metrics-address": "0.0.0.0",  # noqa: S104 - the option's value under test
            "metrics-port": 9600,
            "nagios-context": "prod",
            "nagios-servicegroups": "metrics,ubuntu",
        },
    )
    event = {
        "joined": ctx.on.relation_joined(relation, remote_unit=0),
        "changed": ctx.on.relation_changed(relation, remote_unit=0),
        "config_changed": ctx.on.config_changed(),
        "upgrade_charm": ctx.on.upgrade_charm(),
    }[event_name]
    out = run(ctx, event, state)
    assert fake_nrpe.updated == [
        charm.nrpe.Settings(
            address="0.0.0.0",  # noqa: S104
            port=9600,
            unit=f"{APP}/0",
            context="prod",
            servicegroups="metrics,ubuntu",
        )
    ]
    # The relation adds Nagios checks and nothing else: `juju status` is the one without it.
    if event_name in ("joined", "changed"):
        assert fake.calls == []
        assert out.unit_status == state.unit_status
    else:
        without = dataclasses.replace(state, relations={influxdb_relation(u0=RELATION_DATA)})
        alone = run(ctx, event, without)
        assert (
            out.unit_status == alone.unit_status == testing.ActiveStatus("3 collectors scheduled")
        )
        assert out.opened_ports == alone.opened_ports


def test_nrpe_relation_broken_removes_the_checks(
    ctx: testing.Context[Any], fake: FakeWorkload, fake_nrpe: FakeNrpe
) -> None:
    relation = nrpe_relation()
    state = testing.State(relations={influxdb_relation(u0=RELATION_DATA), relation})
    run(ctx, ctx.on.relation_broken(relation), state)
    assert fake_nrpe.removed == 1
    assert fake_nrpe.updated == []


def test_the_nrpe_checks_run_the_plugin_against_the_endpoint() -> None:
    settings = charm.nrpe.Settings(address="::", port=9600, unit=f"{APP}/1")
    assert charm.nrpe.commands(settings) == {
        "ucm_collectors_stale": f"check_ucm stale --url http://[::1]:9600/metrics --unit {APP}/1",
        "ucm_collectors_failing": (
            f"check_ucm failing --url http://[::1]:9600/metrics --unit {APP}/1"
        ),
        "ucm_pull": f"check_ucm pull --url http://[::1]:9600/metrics --unit {APP}/1",
    }
    for check in charm.nrpe.CHECKS:
        # What charmhelpers' Check accepts as a short name, and Nagios in a description.
        assert re.fullmatch(r"[A-Za-z0-9-_.@]+", check.shortname), check
        assert not set(check.description) & set("`~!$%^&*\"|'<>?,()="), check


def write_collectors_tree(folder: Path) -> None:
    for name, text in {
        "metrics/__init__.py": "",
        "metrics/collectors/__init__.py": "",
        "metrics/collectors/bugs/__init__.py": (
            'RUN_INTERVAL = "15m"\n\n\ndef run_metric(dry_run=False, verbose=False):\n    pass\n'
        ),
        "metrics/collectors/broken/__init__.py": 'RUN_INTERVAL = "5 parsecs"\n',
    }.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@dataclasses.dataclass
class RealUnit:
    root: Path
    charm_root: Path
    systemctl_log: Path

    @property
    def credentials_file(self) -> Path:
        return self.root / "etc/ubuntu-community-metrics/influxdb.json"

    def systemctl_calls(self) -> list[str]:
        if not self.systemctl_log.exists():
            return []
        return [c for c in self.systemctl_log.read_text().splitlines() if " show " not in c]


@pytest.fixture
def unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RealUnit:
    real = RealUnit(tmp_path / "root", tmp_path / "charm", tmp_path / "systemctl.log")
    write_collectors_tree(real.charm_root / "collectors")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("systemctl", "journalctl"):
        script = bin_dir / program
        script.write_text(f'#!/bin/sh\nprintf "{program} %s\\n" "$*" >> {real.systemctl_log}\n')
        script.chmod(0o755)
    systemctl = Systemctl(str(bin_dir / "systemctl"), str(bin_dir / "journalctl"))
    as_me = Account(None)  # git and pip as the test's user, not the system user
    for name, function in (
        ("reconcile", functools.partial(workload.reconcile, account=as_me)),
        ("sync", functools.partial(workload.sync, account=as_me)),
        ("list_collectors", workload.list_collectors),
        ("run_collector", workload.run_collector),
        ("remove", workload.remove),
    ):
        bound = functools.partial(function, root=real.root, systemctl=systemctl)
        monkeypatch.setattr(charm.workload, name, bound)
    for variable in ("JUJU_CHARM_HTTP_PROXY", "JUJU_CHARM_HTTPS_PROXY", "JUJU_CHARM_NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return real


@pytest.fixture(scope="module")
def influxd() -> Iterator[InfluxServer]:
    with InfluxServer(auth=True) as server:
        server.create_database("metrics")
        server.create_user("collector", PASSWORD)
        server.grant("collector", "metrics", "ALL")
        yield server


@pytest.fixture
def real_ctx(unit: RealUnit, caplog: pytest.LogCaptureFixture) -> Iterator[testing.Context[Any]]:
    caplog.set_level(logging.DEBUG)
    context = testing.Context(charm.UbuntuCommunityMetricsCharm, charm_root=unit.charm_root)
    yield context
    assert PASSWORD not in caplog.text
    assert_no_password_in_logs(context)


def relation_to(influxd: InfluxServer, **overrides: str) -> testing.Relation:
    data = {
        "hostname": influxd.host,
        "port": str(influxd.port),
        "user": "collector",
        "password": PASSWORD,
        **overrides,
    }
    return influxdb_relation(u0=data)


def test_real_unit_related_to_influxdb_schedules_the_bundled_collectors(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:

    out = run(real_ctx, real_ctx.on.install(), testing.State(relations={relation_to(influxd)}))

    assert out.unit_status == testing.ActiveStatus(
        "1 collector scheduled; skipped: broken (see list-collectors)"
    )
    assert stat.S_IMODE(unit.credentials_file.stat().st_mode) == 0o600
    assert json.loads(unit.credentials_file.read_text())["password"] == PASSWORD
    settings = (unit.root / "etc/ubuntu-community-metrics/settings.json").read_text()
    assert PASSWORD not in settings
    assert (unit.root / "etc/systemd/system/metrics-collector@bugs.timer").is_file()
    assert (
        "systemctl enable --now metrics-collector@bugs.timer metrics-exporter.service"
        in unit.systemctl_calls()
    )


def test_real_unit_reconciled_again_changes_nothing(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    state = testing.State(relations={relation_to(influxd)})
    run(real_ctx, real_ctx.on.install(), state)
    unit.systemctl_log.unlink()

    run(real_ctx, real_ctx.on.update_status(), state)

    assert unit.systemctl_calls() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"password": "not-the-password"},
            "InfluxDB at 127.0.0.1:{port} rejected user 'collector' ",
        ),
        ({"user": "nobody"}, "InfluxDB at 127.0.0.1:{port} rejected user 'nobody' "),
    ],
    ids=["wrong-password", "unknown-user"],
)
def test_real_unit_says_which_credential_influxdb_rejects(
    unit: RealUnit,
    influxd: InfluxServer,
    real_ctx: testing.Context[Any],
    overrides: dict[str, str],
    expected: str,
) -> None:

    out = run(
        real_ctx,
        real_ctx.on.install(),
        testing.State(relations={relation_to(influxd, **overrides)}),
    )

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(expected.format(port=influxd.port))
    assert out.unit_status.message.endswith("check the username and password")
    assert "not-the-password" not in out.unit_status.message


def test_real_unit_names_a_missing_database(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    # As an admin: InfluxDB answers anyone else "not authorized" for a database it lacks.
    admin = relation_to(influxd, user=ADMIN_USER, password=ADMIN_PASSWORD)
    state = testing.State(relations={admin}, config={"influxdb-database": "nonexistent"})

    out = run(real_ctx, real_ctx.on.install(), state)

    assert out.unit_status == testing.BlockedStatus(
        f"database 'nonexistent' does not exist on InfluxDB at 127.0.0.1:{influxd.port}: "
        'create it (CREATE DATABASE "nonexistent") or set influxdb-database'
    )


def test_real_unit_with_unreachable_influxdb_says_so(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    closed_port = str(free_port())

    out = run(
        real_ctx,
        real_ctx.on.install(),
        testing.State(relations={relation_to(influxd, port=closed_port)}),
    )

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        f"InfluxDB at 127.0.0.1:{closed_port} is unreachable"
    )


def test_real_unit_relation_broken_deletes_the_credentials_file(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    relation = relation_to(influxd)
    run(real_ctx, real_ctx.on.install(), testing.State(relations={relation}))
    assert unit.credentials_file.exists()

    out = run(real_ctx, real_ctx.on.relation_broken(relation), testing.State(relations={relation}))

    assert not unit.credentials_file.exists()
    assert out.unit_status == testing.BlockedStatus(NO_CREDENTIALS)


def test_real_unit_list_collectors_names_the_skipped_ones_problem(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    state = testing.State(relations={relation_to(influxd)})
    run(real_ctx, real_ctx.on.install(), state)

    run(real_ctx, real_ctx.on.action("list-collectors"), state)

    assert real_ctx.action_results is not None
    lines = real_ctx.action_results["collectors"].splitlines()
    assert [line.split()[0] for line in lines] == ["NAME", "broken", "bugs"]
    assert "5 parsecs" in lines[1]


def test_real_unit_remove_deletes_every_unit_and_file(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    state = testing.State(relations={relation_to(influxd)})
    run(real_ctx, real_ctx.on.install(), state)

    run(real_ctx, real_ctx.on.remove(), state)

    assert not unit.credentials_file.exists()
    assert not (unit.root / "var/lib/ubuntu-community-metrics").exists()
    assert list((unit.root / "etc/systemd/system").iterdir()) == []


def test_real_unit_with_a_bad_pull_interval_names_the_option_and_keeps_running(
    unit: RealUnit, influxd: InfluxServer, real_ctx: testing.Context[Any]
) -> None:
    relation = relation_to(influxd)
    run(real_ctx, real_ctx.on.install(), testing.State(relations={relation}))
    unit.systemctl_log.unlink()
    state = testing.State(relations={relation}, config={"pull-interval": "1 fortnight"})

    out = run(real_ctx, real_ctx.on.config_changed(), state)

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "config pull-interval='1 fortnight' is not a systemd time span"
    )
    assert unit.systemctl_calls() == []
    assert (unit.root / "etc/systemd/system/metrics-collector@bugs.timer").is_file()


def test_collector_names_from_the_branch_are_escaped_and_bounded_in_the_status(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    skipped = [
        workload.Collector(f"bad\x1b[31m{index}\nforged: line", "5m", "not an identifier")
        for index in range(3000)
    ]
    fake.report = dataclasses.replace(fake.report, scheduled=["ok"], skipped=skipped)

    state = run(
        ctx, ctx.on.update_status(), testing.State(relations={influxdb_relation(u0=RELATION_DATA)})
    )

    message = state.unit_status.message
    assert state.unit_status.name == "active"
    assert "\n" not in message
    assert "\x1b" not in message
    assert "bad\\x1b[31m0\\nforged: line" in message
    assert "and 2995 more (see list-collectors)" in message
    assert len(message) <= 480


def test_extra_packages_are_installed_with_the_ones_the_charm_needs(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    state = testing.State(
        config={"extra-packages": "rsync, lftp  jq"},
        relations={influxdb_relation(u0=RELATION_DATA)},
    )

    out = run(ctx, ctx.on.config_changed(), state)

    assert fake.packages == [*workload.PACKAGES, "rsync", "lftp", "jq"]
    assert out.unit_status.name == "active"


def test_a_bad_extra_package_name_blocks_naming_the_option(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    state = testing.State(
        config={"extra-packages": "rsync; rm -rf /"},
        relations={influxdb_relation(u0=RELATION_DATA)},
    )

    out = run(ctx, ctx.on.config_changed(), state)

    assert fake.packages == list(workload.PACKAGES)
    assert out.unit_status == testing.BlockedStatus(
        "config extra-packages: not a Debian package name: 'rsync;', '-rf', '/' (lowercase"
        " letters, digits, + - and .): fix the list"
    )


@pytest.fixture(scope="module")
def https_influxd(
    ca: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfluxServer]:
    """influxd serving HTTPS only, with a certificate for 127.0.0.1 that `ca` signed."""
    with InfluxServer(auth=True, https=ca.issue(tmp_path_factory.mktemp("tls"))) as server:
        server.create_database("metrics")
        server.create_user("collector", PASSWORD)
        server.grant("collector", "metrics", "ALL")
        yield server


def test_real_unit_trusts_the_secrets_ca_cert_and_says_when_it_did_not_sign_influxdb(
    unit: RealUnit,
    https_influxd: InfluxServer,
    ca: ThrowawayCA,
    real_ctx: testing.Context[Any],
    tmp_path: Path,
) -> None:
    content = {
        "host": https_influxd.host,
        "port": str(https_influxd.port),
        "username": "collector",
        "password": PASSWORD,
        "database": "metrics",
        "ca-cert": ca.cert_pem,
    }
    secret = testing.Secret(tracked_content=content)

    out = run(real_ctx, real_ctx.on.install(), secret_state(secret))

    assert out.unit_status == testing.ActiveStatus(
        "1 collector scheduled; skipped: broken (see list-collectors)"
    )
    written = json.loads(unit.credentials_file.read_text())
    assert (written["ssl"], written["verify_ssl"], written["ca_cert"]) == (True, True, ca.cert_pem)
    assert stat.S_IMODE(unit.credentials_file.stat().st_mode) == 0o600

    other = ThrowawayCA(tmp_path / "other", "another CA").cert_pem
    secret = testing.Secret(tracked_content={**content, "ca-cert": other})

    out = run(real_ctx, real_ctx.on.update_status(), secret_state(secret))

    assert out.unit_status == testing.BlockedStatus(
        f"InfluxDB at 127.0.0.1:{https_influxd.port}: TLS certificate not verified (unable to "
        "get local issuer certificate): the ca-cert given is not the CA that signed InfluxDB's "
        "certificate: set the right one"
    )
    # The collectors get the CA they were given, and say the same in their runs.
    assert json.loads(unit.credentials_file.read_text())["ca_cert"] == other


# Several units (the cluster peer relation)


def cluster(*others: int) -> testing.PeerRelation:
    return testing.PeerRelation("cluster", peers_data={n: {} for n in others})


def test_a_single_unit_runs_every_collector(ctx: testing.Context[Any], fake: FakeWorkload) -> None:
    run(ctx, ctx.on.config_changed(), testing.State(relations={cluster()}))

    assert (fake.settings.unit, fake.settings.peers, fake.settings.leaving) == (
        "ubuntu-community-metrics/0",
        (),
        False,
    )


def test_a_joining_peer_shares_the_collectors_with_no_leader_round_trip(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = cluster(2, 1)
    state = testing.State(relations={relation}, leader=False)

    run(ctx, ctx.on.relation_joined(relation, remote_unit=2), state)

    assert fake.settings.peers == ("ubuntu-community-metrics/1", "ubuntu-community-metrics/2")
    assert fake.settings.leaving is False


def test_a_departing_peer_is_left_out_and_the_leaving_unit_runs_nothing(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    relation = cluster(1, 2)
    state = testing.State(relations={relation})

    run(ctx, ctx.on.relation_departed(relation, remote_unit=2, departing_unit=2), state)
    assert fake.settings.peers == ("ubuntu-community-metrics/1",)
    assert fake.settings.leaving is False

    # On the unit being removed, each peer departs from its view in turn: it must not take
    # their collectors over meanwhile. (Unit 3 here: ops.testing reads departing unit 0 as none.)
    leaving = testing.Context(charm.UbuntuCommunityMetricsCharm, unit_id=3)
    run(leaving, leaving.on.relation_departed(relation, remote_unit=1, departing_unit=3), state)
    assert fake.settings.unit == "ubuntu-community-metrics/3"
    assert fake.settings.leaving is True


def test_a_leader_change_moves_no_collector(ctx: testing.Context[Any], fake: FakeWorkload) -> None:
    relation = cluster(1)
    run(ctx, ctx.on.config_changed(), testing.State(relations={relation}, leader=False))
    before = fake.settings
    run(ctx, ctx.on.leader_elected(), testing.State(relations={relation}, leader=True))

    assert fake.settings == before


def test_the_status_says_how_many_collectors_run_on_this_unit(
    ctx: testing.Context[Any], fake: FakeWorkload
) -> None:
    fake.report = dataclasses.replace(fake.report, of_application=7)

    secret = testing.Secret(tracked_content=SECRET_CONTENT)
    out = run(ctx, ctx.on.config_changed(), secret_state(secret))

    assert out.unit_status == testing.ActiveStatus("3 of 7 collectors on this unit")
