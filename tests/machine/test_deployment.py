"""The packed charm deployed as Juju deploys it, on booted Ubuntu 22.04 and 24.04 units.

`unit_agent.UnitAgent` stands in for Juju's unit agent only: it unzips the `.charm` (modes
kept), serves the hook tools and runs the charm's `dispatch` with Juju's environment, hook by
hook. The charm, its venv, the unit's Python and systemd, git and InfluxDB are real. Each step
checks the status an operator reads, the timers, and the points that land in InfluxDB.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from machine_deploy import (
    COLLECTORS_PASSWORD,
    COLLECTORS_USER,
    DATABASE,
    CharmUnit,
    RecordingProxy,
    deploy_with_influxdb,
    own_metrics_port,
    relation_data,
    serving_remote,
)
from machine_harness import Container, GitRemote, wait_for
from machine_trees import fetches, push_tree, ticker
from metrics.testing import InfluxServer, ThrowawayCA
from pack import pack_commit, previous_charm_commit
from unit_agent import APP, ModelProxy, UnitAgent

ROTATED_DATABASE = "metrics_rotated"
UPSTREAM = "http://upstream.example/count"
ACTIVE = {"status": "active", "message": "1 collector scheduled"}
FAILING = "failing: ticker (see run-collector)"
NO_CREDENTIALS = "no InfluxDB credentials: integrate with influxdb or set influxdb-secret"


def _log(line: str) -> None:
    print(f"machine: {line}", file=sys.stderr)


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitRemote]:
    with serving_remote(tmp_path / "remote") as serving:
        yield serving


def following(remote: GitRemote) -> dict[str, object]:
    """The config of a unit that follows `remote`'s branch of offline collectors."""
    return {"collectors-repo": remote.url, "collector-timeout": "15s", **own_metrics_port()}


def secret_content(influx: InfluxServer, database: str) -> dict[str, str]:
    return {
        "host": influx.host,
        "port": str(influx.port),
        "username": COLLECTORS_USER,
        "password": COLLECTORS_PASSWORD,
        "database": database,
    }


def runs(influx: InfluxServer, database: str, measurement: str) -> list[int]:
    """The `run` numbers of a ticker's points in `database`, in order."""
    points = influx.query(f'SELECT "run" FROM "{measurement}"', database)  # noqa: S608
    return sorted(int(p["run"]) for p in points)  # type: ignore[arg-type]


def wait_for_new_run(
    influx: InfluxServer, database: str, measurement: str, *, after: int = 0
) -> int:
    """Wait until a ticker run numbered above `after` lands in `database`; its number."""
    wait_for(
        f"a {measurement} point after run {after} in {database}",
        lambda: any(run > after for run in runs(influx, database, measurement)),
        timeout=60,
    )
    return max(runs(influx, database, measurement))


def test_credentials_from_the_relation_then_from_a_secret(
    container: Container, charm: Path, remote: GitRemote, influx: InfluxServer, release: str
) -> None:
    tick = f"tick_secret_{release}"
    push_tree(remote, {"ticker": ticker("3s", tick)}, message="one offline collector")
    agent = UnitAgent(container)
    deployed = agent.deploy(
        charm,
        following(remote) | {"pull-interval": "1h"},
    )
    assert [d.path for d in deployed] == [
        "hooks/install",
        "hooks/leader-elected",
        "hooks/config-changed",
        "hooks/start",
    ]
    # The install hook says what it is doing while it checks out and builds the venv.
    assert agent.model["status_history"][0] == {
        "who": "unit",
        "status": "maintenance",
        "message": "checking out the collectors tree",
    }
    assert agent.status == {"status": "blocked", "message": NO_CREDENTIALS}
    assert agent.model["version"] == remote.head()[:12]
    timers = ["metrics-collector@ticker.timer", "metrics-pull.timer"]
    assert _timers(container) == timers

    # juju integrate: the InfluxDB unit joins with an empty bag, then publishes.
    relation = agent.relate("influxdb", "influxdb")
    waiting = {
        "status": "waiting",
        "message": "waiting for influxdb to publish hostname, port, user, password on the "
        "influxdb relation",
    }
    assert [d.status for d in agent.join(relation, "influxdb/0")] == [waiting, waiting]
    changed = agent.change(relation, "influxdb/0", relation_data(influx))
    # A run without credentials may have failed: the status says so until one succeeds.
    assert changed.status["status"] == "active"
    assert changed.message in (ACTIVE["message"], f"{ACTIVE['message']}; {FAILING}")
    last = wait_for_new_run(influx, DATABASE, tick)
    assert agent.hook("update-status").status == ACTIVE

    # The InfluxDB unit leaves, then the relation goes: no credentials stay on the unit.
    departed = agent.depart(relation, "influxdb/0")
    assert departed.status == {
        "status": "waiting",
        "message": "waiting for a unit of influxdb to join the relation",
    }
    assert not _exists(container, "/etc/ubuntu-community-metrics/influxdb.json")
    broken = agent.break_relation(relation)
    assert broken.status == {"status": "blocked", "message": NO_CREDENTIALS}
    assert _timers(container) == timers  # collectors keep their schedule; their runs spool

    # juju add-secret, then config before grant-secret: blocked, naming the fix.
    uri = agent.add_secret(secret_content(influx, DATABASE))
    configured = agent.configure(influxdb_secret=uri)
    assert configured.status == {
        "status": "blocked",
        "message": f"cannot read influxdb-secret {uri} (not granted, or removed): "
        f"juju grant-secret {uri} {APP}",
    }
    # juju grant-secret runs no hook: the next update-status picks the grant up.
    agent.grant_secret(uri)
    updated = agent.hook("update-status")
    assert updated.status["status"] == "active"
    assert updated.message in (ACTIVE["message"], f"{ACTIVE['message']}; {FAILING}")
    last = wait_for_new_run(influx, DATABASE, tick, after=last)
    assert agent.hook("update-status").status == ACTIVE
    # The runs while the unit had no credentials spooled their points, replayed since.
    assert runs(influx, DATABASE, tick) == list(range(1, last + 1))

    # juju update-secret: the new revision (another database) arrives with secret-changed.
    influx.create_database(ROTATED_DATABASE)
    influx.grant(COLLECTORS_USER, ROTATED_DATABASE, "ALL")
    changed_secret = agent.update_secret(uri, secret_content(influx, ROTATED_DATABASE))
    assert changed_secret is not None
    assert changed_secret.path == "hooks/secret-changed"
    assert changed_secret.status == ACTIVE
    wait_for_new_run(influx, ROTATED_DATABASE, tick, after=last)

    # The password went through no hook tool's command line and no log line.
    for call in agent.calls():
        assert not any(COLLECTORS_PASSWORD in arg for arg in call["argv"]), call
    assert not any(COLLECTORS_PASSWORD in line["message"] for line in agent.model["log"])


def test_a_private_ca_in_the_secret_verifies_influxdb_over_https(
    container: Container,
    charm: Path,
    remote: GitRemote,
    https_influx: InfluxServer,
    release: str,
    tmp_path: Path,
) -> None:
    tick = f"tick_tls_{release}"
    push_tree(remote, {"ticker": ticker("3s", tick)}, message="one offline collector")
    assert https_influx.https is not None
    agent = UnitAgent(container)
    unit = CharmUnit(container, agent)
    content = secret_content(https_influx, DATABASE) | {"ca-cert": https_influx.https.ca_cert}
    # juju add-secret influxdb host=... ca-cert#file=ca.pem; juju grant-secret; juju deploy.
    uri = agent.add_secret(content)
    agent.grant_secret(uri)
    deployed = agent.deploy(charm, following(remote) | {"influxdb-secret": uri})

    assert deployed[-1].status == ACTIVE
    last = wait_for_new_run(https_influx, DATABASE, tick)

    # A CA that did not sign InfluxDB's certificate: the status and every run say so.
    other_ca = ThrowawayCA(tmp_path / "other-ca", "another CA").cert_pem
    changed = agent.update_secret(uri, content | {"ca-cert": other_ca})
    assert changed is not None
    assert changed.status == {
        "status": "blocked",
        "message": f"InfluxDB at 127.0.0.1:{https_influx.port}: TLS certificate not verified "
        "(unable to get local issuer certificate): the ca-cert given is not the CA that signed "
        "InfluxDB's certificate: set the right one",
    }
    wait_for(
        "a ticker run saying that TLS verification failed",
        lambda: (
            (
                f"TLS verification of InfluxDB at {https_influx.url} failed: certificate verify "
                "failed: unable to get local issuer certificate; the ca-cert given did not sign "
                "InfluxDB's certificate: set the right CA"
            )
            in unit.journal("metrics-collector@ticker.service")
        ),
    )

    # The right CA again: active, and the runs spooled meanwhile land.
    restored = agent.update_secret(uri, content)
    assert restored is not None
    assert restored.status["status"] == "active"
    last = wait_for_new_run(https_influx, DATABASE, tick, after=last)
    assert runs(https_influx, DATABASE, tick) == list(range(1, last + 1))


def test_branch_proxy_and_actions(
    container: Container, charm: Path, remote: GitRemote, influx: InfluxServer, release: str
) -> None:
    tick, upstream = f"tick_proxy_{release}", f"upstream_{release}"
    push_tree(
        remote,
        {"ticker": ticker("3s", tick), "fetches": fetches(UPSTREAM, upstream)},
        message="an offline collector and one behind the proxy",
    )
    with RecordingProxy("upstream.example", {"count": 42}) as proxy:
        agent = UnitAgent(
            container,
            proxy=ModelProxy(http=proxy.url, https=proxy.url, no_proxy=influx.host),
        )
        deploy_with_influxdb(agent, charm, following(remote), influx)
        assert agent.status["status"] == "active"
        wait_for(
            "the upstream's count, fetched through the model's proxy",
            lambda: influx.query(f'SELECT "count" FROM "{upstream}"', DATABASE),  # noqa: S608
            timeout=60,
        )
        wait_for_new_run(influx, DATABASE, tick)
        assert agent.hook("update-status").status == {
            "status": "active",
            "message": "2 collectors scheduled",
        }
        assert UPSTREAM in proxy.requests
        # pip installed the collectors' requirements through it too.
        assert any(request.startswith("CONNECT ") for request in proxy.requests)

        listed = agent.run_action("list-collectors")
        assert listed.action is not None
        assert listed.action["failed"] is None
        assert listed.action["results"]["count"] == "2"
        rows = listed.action["results"]["collectors"].splitlines()
        assert rows[0].split() == [
            "NAME",
            "INTERVAL",
            "OWNER",
            "LAST-RESULT",
            "LAST-RUN",
            "NEXT-RUN",
            "PROBLEM",
        ]
        assert sorted(row.split()[0] for row in rows[1:]) == ["fetches", "ticker"]

        dry = agent.run_action("run-collector", name="ticker", dry_run=True)
        assert dry.action is not None
        assert dry.action["failed"] is None
        assert dry.action["results"]["exit-status"] == "0"
        assert dry.action["results"]["dry-run"] == "true"

        unknown = agent.run_action("run-collector", name="nope")
        assert unknown.action is not None
        assert "nope" in unknown.action["failed"]
        assert "list-collectors" in unknown.action["failed"]

        # A merged collector: the pull action fetches it and schedules it at once.
        before = remote.head()
        tock = f"tock_proxy_{release}"
        after = push_tree(
            remote,
            {
                "ticker": ticker("3s", tick),
                "fetches": fetches(UPSTREAM, upstream),
                "tocker": ticker("4s", tock),
            },
            message="merge a collector",
        )
        pulled = agent.run_action("pull")
        assert pulled.action is not None
        assert pulled.action["failed"] is None
        assert pulled.action["results"] == {
            "old-commit": before,
            "new-commit": after,
            "added": "tocker",
            "removed": "none",
        }
        # A ticker run failed under load would add "; failing: ticker": not this check's point.
        assert pulled.status["status"] == "active"
        assert pulled.status["message"].startswith("3 collectors scheduled"), container.run(
            ["journalctl", "--no-pager", "-n", "40", "-u", "metrics-collector@ticker.service"]
        ).stdout
        assert "metrics-collector@tocker.timer" in _timers(container)
        wait_for(
            "the merged collector's first point",
            lambda: runs(influx, DATABASE, tock),
            timeout=60,
        )


def _timers(container: Container) -> list[str]:
    out = container.run(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--type=timer", "metrics-*"]
    ).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def _exists(container: Container, path: str) -> bool:
    return container.run(["test", "-e", path], check=False).returncode == 0


def test_upgrade_from_the_previous_charm_loses_no_point_and_remove_leaves_nothing(
    container: Container,
    charm: Path,
    remote: GitRemote,
    influx: InfluxServer,
    release: str,
) -> None:
    tick = f"tick_upgrade_{release}"
    push_tree(remote, {"ticker": ticker("3s", tick)}, message="one offline collector")
    # The charm before its newest change (UCM_PREVIOUS_CHARM_COMMIT names another, e.g. the
    # commit of the revision released on Charmhub).
    commit = os.environ.get("UCM_PREVIOUS_CHARM_COMMIT") or previous_charm_commit()
    previous = pack_commit(release, commit, log=_log)
    agent = UnitAgent(container)
    deploy_with_influxdb(agent, previous, following(remote), influx)
    before = wait_for_new_run(influx, DATABASE, tick, after=2)
    timer = "metrics-collector@ticker.timer"
    unit = CharmUnit(container, agent)
    started = unit.show(timer, "ActiveEnterTimestampMonotonic")

    upgraded = agent.upgrade(charm)
    assert [d.path for d in upgraded] == ["hooks/upgrade-charm", "hooks/config-changed"]
    assert upgraded[-1].status["status"] == "active"
    with zipfile.ZipFile(charm) as archive:
        new_entrypoint = archive.read("src/charm.py")
    assert (agent.charm_dir / "src/charm.py").read_bytes() == new_entrypoint
    # The timer was not restarted (a restart can skip or repeat a run), and runs go on.
    assert unit.show(timer, "ActiveEnterTimestampMonotonic") == started
    last = wait_for_new_run(influx, DATABASE, tick, after=before + 2)
    assert runs(influx, DATABASE, tick) == list(range(1, last + 1))

    # An option of the new charm: a system package for the collectors, from the archive.
    configured = agent.configure(extra_packages="rsync")
    assert configured.status["status"] == "active", configured.status
    installed = container.run(["dpkg-query", "--show", "--showformat=${Status}", "rsync"])
    assert installed.stdout == "install ok installed"

    removed = agent.remove()
    assert [d.path for d in removed] == [
        "hooks/influxdb-relation-departed",
        "hooks/influxdb-relation-broken",
        "hooks/stop",
        "hooks/remove",
    ]
    assert _timers(container) == []
    leftover_units = container.run(
        ["sh", "-c", "ls /etc/systemd/system | grep '^metrics-' || true"]
    ).stdout.split()
    assert leftover_units == []
    for path in (
        "/etc/ubuntu-community-metrics",
        "/var/lib/ubuntu-community-metrics",
        "/var/lib/juju/agents/unit-ubuntu-community-metrics-0",
    ):
        assert not _exists(container, path), path
    processes = container.run(["pgrep", "-u", APP, "-a"], check=False)
    assert processes.returncode == 1, processes.stdout
    # Kept on purpose (docs/operating.md, "Removal"): the account, and the collectors' state,
    # whose spool may hold points not yet written.
    assert container.run(["getent", "passwd", APP], check=False).returncode == 0
    assert _exists(container, "/var/lib/private/metrics-collector/ticker")


def test_a_hostile_branch_costs_only_its_bad_collectors(
    container: Container,
    charm: Path,
    remote: GitRemote,
    influx: InfluxServer,
    release: str,
) -> None:
    """An __init__.py that crashes Python 3.10's parser (22.04) or exhausts 3.12's (24.04),
    and collectors linked to root-only files and folders: each is skipped with a problem, the
    good collector runs, no hook fails."""
    tick = f"tick_hostile_{release}"
    deep = "x = " + "+".join(["1"] * 120_000) + "\n" + ticker("3s", "never")
    push_tree(remote, {"ticker": ticker("3s", tick), "deep": deep}, message="hostile tree")
    package = remote.clone / "collectors/metrics/collectors"
    (package / "linked_folder").symlink_to("/etc")
    (package / "shadow").mkdir()
    (package / "shadow/__init__.py").symlink_to("/etc/shadow")
    remote.commit_and_push("links to root-only places")

    agent = UnitAgent(container)
    deploy_with_influxdb(agent, charm, following(remote), influx)

    wait_for_new_run(influx, DATABASE, tick)
    status = agent.hook("update-status").status
    assert status == {
        "status": "active",
        "message": "1 collector scheduled; skipped: deep, linked_folder, shadow "
        "(see list-collectors)",
    }
    listed = agent.run_action("list-collectors")
    assert listed.action is not None
    rows = {r.split()[0]: r for r in listed.action["results"]["collectors"].splitlines()[1:]}
    expected = "crashed Python's parser" if release == "jammy" else "too deeply nested"
    assert expected in rows["deep"], rows["deep"]
    assert "symbolic link" in rows["linked_folder"]
    assert "symbolic link" in rows["shadow"]
    assert _timers(container) == ["metrics-collector@ticker.timer", "metrics-pull.timer"]
