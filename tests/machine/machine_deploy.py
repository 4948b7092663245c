"""How the machine tests set up a unit: the test InfluxDB's users, the remote branch, the
machine's root file system, and a booted unit with the packed charm deployed by the unit
agent stand-in and related to InfluxDB.

Shared by conftest.py's fixtures, the scenarios that need their own unit, and the demo.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import selectors
import shutil
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from machine_harness import Container, GitRemote, Result, _prepare_rootfs, booted
from machine_trees import BAD_INTERVAL, HANGS, RAISES, SANDBOX_PROBE, SYNTAX_ERROR, ticker
from metrics.testing import InfluxServer, free_port
from pack import ubuntu_root
from unit_agent import UnitAgent

DATABASE = "metrics"
COLLECTORS_USER = "collectors"
COLLECTORS_PASSWORD = "machine-test-password"  # a throwaway server on loopback

# The tree most scenarios share: good collectors with two intervals, the bad ones of
# scenario 3 and the sandbox probe of scenario 7, all in one branch, as on a real unit.
STEADY_TREE = {
    "ticker": ticker("3s"),
    "slow_ticker": ticker("7s", measurement="slow_tick"),
    "raises": RAISES,
    "hangs": HANGS,
    "syntax_error": SYNTAX_ERROR,
    "bad_interval": BAD_INTERVAL,
    "sandbox_probe": SANDBOX_PROBE,
}
# Short, so that scenario 3's hanging collector is stopped quickly, yet longer than a run
# usually spends retrying an InfluxDB that is down (scenario 4), so that one exercises the spool
# of a run that gave up rather than of one stopped at the timeout.
COLLECTOR_TIMEOUT = "15s"


def prepare_influx(influx: InfluxServer) -> None:
    """The database and the collectors' user (not an admin), as an operator sets them up."""
    influx.create_database(DATABASE)
    influx.create_user(COLLECTORS_USER, COLLECTORS_PASSWORD)
    influx.grant(COLLECTORS_USER, DATABASE, "ALL")


def relation_data(influx: InfluxServer) -> dict[str, str]:
    """What an InfluxDB charm publishes on the influxdb-api interface."""
    return {
        "hostname": influx.host,
        "port": str(influx.port),
        "user": COLLECTORS_USER,
        "password": COLLECTORS_PASSWORD,
    }


@contextlib.contextmanager
def serving_remote(workdir: Path) -> Iterator[GitRemote]:
    """A bare repository in `workdir` served by git daemon on loopback until the block ends."""
    remote = GitRemote(workdir)
    workdir.mkdir(parents=True)
    remote.start()
    try:
        yield remote
    finally:
        remote.stop()


def own_metrics_port() -> dict[str, object]:
    """Config giving a unit's metrics endpoint a free port: the units share the host's network,
    so two on the default port would take turns failing to listen."""
    return {"metrics-port": free_port()}


class CharmUnit:
    """A booted unit running the packed charm, driven as Juju and an operator drive it."""

    def __init__(self, container: Container, agent: UnitAgent) -> None:
        self.container = container
        self.agent = agent

    def workload(self, *args: str, check: bool = True, timeout: float = 300) -> Result:
        """`python3 -m workload ARGS` as an operator runs it on the unit (docs/operating.md)."""
        return self.container.run(
            ["python3", "-m", "workload", *args],
            env={"PYTHONPATH": f"{self.agent.charm_path}/src:{self.agent.charm_path}/venv"},
            check=check,
            timeout=timeout,
        )

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show` properties of a unit."""
        out = self.container.run(
            ["systemctl", "show", unit, *(f"--property={p}" for p in properties)]
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def timers(self) -> list[str]:
        """Names of the loaded metrics-collector@*.timer units."""
        out = self.container.run(
            [
                "systemctl",
                "list-units",
                "--all",
                "--plain",
                "--no-legend",
                "--type=timer",
                "metrics-collector@*",
            ]
        ).stdout
        return sorted(line.split()[0] for line in out.splitlines() if line.strip())

    @property
    def metrics_url(self) -> str:
        """The unit's metrics endpoint, as the host reaches it (the network is shared)."""
        return f"http://127.0.0.1:{self.agent.model['config']['metrics-port']}/metrics"

    def journal(self, unit: str, lines: int = 40) -> str:
        return self.container.run(
            ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit],
            check=False,
        ).stdout


@contextlib.contextmanager
def deployed_unit(
    image: Path,
    charm: Path,
    influx: InfluxServer,
    remote: GitRemote,
    *,
    pull_interval: str = "1h",
) -> Iterator[CharmUnit]:
    """A booted unit: the packed charm deployed following `remote`'s branch, and integrated
    with the InfluxDB (its unit joined with credentials)."""
    with booted(image) as container:
        agent = UnitAgent(container)
        config = {
            "collectors-repo": remote.url,
            "collectors-branch": remote.branch,
            "pull-interval": pull_interval,
            "collector-timeout": COLLECTOR_TIMEOUT,
        }
        deploy_with_influxdb(agent, charm, config, influx)
        yield CharmUnit(container, agent)


def deploy_with_influxdb(
    agent: UnitAgent, charm: Path, config: Mapping[str, object], influx: InfluxServer
) -> None:
    """`juju deploy` with `config`, then `juju integrate` with the test InfluxDB, whose unit
    joins with the collectors' credentials."""
    agent.deploy(charm, {**own_metrics_port(), **config})
    relation = agent.relate("influxdb", "influxdb")
    agent.join(relation, "influxdb/0", relation_data(influx))


# What a cloud image of the release has that the charm relies on, plus python3-venv, which the
# charm's install hook adds with apt; python3-yaml is the hook-tool stand-in's (Juju reads YAML).
UNIT_PACKAGES = (
    "ca-certificates",
    "dbus",
    "git",
    "libnss-systemd",
    "logrotate",
    "python3",
    "python3-venv",
    "python3-yaml",
    "systemd",
    "systemd-sysv",
)


def _prepare_unit_root(root: Path) -> None:
    """Boot quickly under nspawn; resolve names as the host does (Ubuntu's /etc/resolv.conf
    links to systemd-resolved's stub, which the harness masks as it shares the host network)."""
    _prepare_rootfs(root)
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)


def unit_image(release: str, log: Callable[[str], None]) -> Path:
    """The cached root file system of a machine of `release`, as Juju provisions one."""
    return ubuntu_root(
        release,
        UNIT_PACKAGES,
        purpose="unit",
        finish=_prepare_unit_root,
        key_extra="resolv.conf from the host",
        log=log,
    )


class RecordingProxy:
    """A forward HTTP proxy on loopback that records every request it gets (the proof that the
    unit used the model's proxy): it answers for one made-up upstream host itself and tunnels
    CONNECT (pip's HTTPS) to the real host."""

    def __init__(self, upstream: str, answer: dict[str, object]) -> None:
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests.append(self.path)
                found = urllib.parse.urlsplit(self.path).hostname == upstream
                body = json.dumps(answer if found else {"error": "unknown host"}).encode()
                self.send_response(200 if found else 502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_CONNECT(self) -> None:
                proxy.requests.append(f"CONNECT {self.path}")
                host, _, port = self.path.rpartition(":")
                try:
                    upstream_socket = socket.create_connection((host, int(port)), timeout=30)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200)
                self.end_headers()
                _tunnel(self.connection, upstream_socket)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _tunnel(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    with upstream, selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            for key, _ in selector.select(timeout=60):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)
