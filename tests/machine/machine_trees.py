"""Collectors trees the machine tests push to the remote branch.

Each tree is the real framework (`collectors/metrics` and `requirements.txt` of this
repository, as a team's branch carries it) plus small collectors written here, each showing
one behaviour: a numbered point per run, a crash, a hang, a syntax error, a sandbox probe.
"""

from __future__ import annotations

from pathlib import Path

from machine_harness import GitRemote

REPOSITORY = Path(__file__).resolve().parents[2]
FRAMEWORK = REPOSITORY / "collectors"

_MAIN = """\
import sys

from metrics.lib.basemetric import main

from . import run_metric

sys.exit(main(run_metric))
"""

_TICKER = '''\
"""One point per run, numbered from 1, so a test can tell every run landed exactly once."""

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "{interval}"


class Ticker(Metric):
    def collect(self):
        counter = self.state_dir / "runs"
        run = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.parent.mkdir(parents=True, exist_ok=True)
        counter.write_text(str(run))
        yield {{
            "measurement": "{measurement}",
            "tags": {{"collector": __name__.rsplit(".", 1)[-1]}},
            "fields": {{"run": run}},
        }}


def run_metric(dry_run=False, verbose=False):
    Ticker(dry_run, verbose).run()
'''

_RAISES = '''\
"""Fails every run with an exception the framework reports."""

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "3s"


class Raises(Metric):
    def collect(self):
        raise RuntimeError("upstream answered nonsense")


def run_metric(dry_run=False, verbose=False):
    Raises(dry_run, verbose).run()
'''

_HANGS = '''\
"""Never finishes: systemd must stop it at the collector timeout."""

import time

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "3s"


class Hangs(Metric):
    def collect(self):
        time.sleep(3600)
        return []


def run_metric(dry_run=False, verbose=False):
    Hangs(dry_run, verbose).run()
'''

_SYNTAX_ERROR = '''\
"""Does not parse: discovery must skip it and say where."""

RUN_INTERVAL = "3s"

def run_metric(dry_run=False, verbose=False)
    pass
'''

_BAD_INTERVAL = '''\
"""RUN_INTERVAL is not a systemd time span: discovery must skip it and say so."""

RUN_INTERVAL = "every other tuesday"


def run_metric(dry_run=False, verbose=False):
    pass
'''

# Tries what the sandbox must forbid and records the errno of each attempt as a field, so
# the point that reaches InfluxDB also shows the network still works.
_SANDBOX_PROBE = '''\
"""Probes the sandbox: what it may not touch, reported in one point."""

import errno
import json
import os
from pathlib import Path

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "3s"


def attempt(action):
    try:
        action()
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    return "allowed"


def write_outside():
    Path("/var/lib/ubuntu-community-metrics/probe").write_text("escaped")


def write_etc():
    Path("/etc/probe").write_text("escaped")


def read_other_state():
    Path("/var/lib/private/metrics-collector/ticker/runs").read_text()


def password_in_environment():
    credentials = Path(os.environ["CREDENTIALS_DIRECTORY"]) / "influxdb"
    password = json.loads(credentials.read_text())["password"]
    return any(password in value for value in os.environ.values())


class SandboxProbe(Metric):
    def collect(self):
        (self.state_dir / "own").write_text("mine")
        yield {
            "measurement": "sandbox_probe",
            "fields": {
                "read_credentials": attempt(
                    lambda: Path("/etc/ubuntu-community-metrics/influxdb.json").read_text()
                ),
                "write_state_root": attempt(write_outside),
                "write_etc": attempt(write_etc),
                "read_other_state": attempt(read_other_state),
                "write_own_state": attempt(
                    lambda: (self.state_dir / "own").write_text("mine again")
                ),
                "uid": os.getuid(),
                "password_in_environment": password_in_environment(),
            },
        }


def run_metric(dry_run=False, verbose=False):
    SandboxProbe(dry_run, verbose).run()
'''


_FETCHES = '''\
"""Reads a number from its upstream, a host that only the model's HTTP proxy can reach."""

from metrics.lib.basemetric import Metric
from metrics.lib.helpers import fetch_json

RUN_INTERVAL = "5s"


class Fetches(Metric):
    def collect(self):
        count = fetch_json("{url}")["count"]
        yield {{"measurement": "{measurement}", "tags": {{}}, "fields": {{"count": count}}}}


def run_metric(dry_run=False, verbose=False):
    Fetches(dry_run, verbose).run()
'''


LOAD_AVERAGE = '''\
"""The unit's load average: a collector that needs no network, for the demo."""

import os

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "10s"


class LoadAverage(Metric):
    def collect(self):
        one, five, fifteen = os.getloadavg()
        yield {
            "measurement": "load_average",
            "tags": {},
            "fields": {"load1": one, "load5": five, "load15": fifteen},
        }


def run_metric(dry_run=False, verbose=False):
    LoadAverage(dry_run, verbose).run()
'''


_REAL_LIBRARIES = '''\
"""What the original collectors load: launchpadlib (httplib2), lxml and bs4, and an HTTPS
request, all under the unit's real sandbox."""

import ssl

import bs4
import httplib2
import launchpadlib.launchpad  # noqa: F401
import lxml.etree
import requests

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "5s"


class RealLibraries(Metric):
    def collect(self):
        page = bs4.BeautifulSoup("<table><td class='x'>7</td></table>", features="lxml")
        http = httplib2.Http(disable_ssl_certificate_validation=True, timeout=10)
        answer, body = http.request("{url}/count")
        through_requests = requests.get("{url}/count", verify=False, timeout=10).json()
        yield {{
            "measurement": "real_libraries",
            "tags": {{}},
            "fields": {{
                "parsed": int(page.td.string),
                "httplib2_status": int(answer.status),
                "requests_count": through_requests["count"],
                "lxml": ".".join(map(str, lxml.etree.LXML_VERSION)),
                "openssl": ssl.OPENSSL_VERSION,
            }},
        }}


def run_metric(dry_run=False, verbose=False):
    RealLibraries(dry_run, verbose).run()
'''


def real_libraries(url: str) -> str:
    """A collector that loads the original collectors' libraries and reads `url` over HTTPS."""
    return _REAL_LIBRARIES.format(url=url)


def fetches(url: str, measurement: str) -> str:
    """A collector that writes the `count` of the JSON document at `url`."""
    return _FETCHES.format(url=url, measurement=measurement)


def ticker(interval: str, measurement: str = "tick") -> str:
    return _TICKER.format(interval=interval, measurement=measurement)


RAISES = _RAISES
HANGS = _HANGS
SYNTAX_ERROR = _SYNTAX_ERROR
BAD_INTERVAL = _BAD_INTERVAL
SANDBOX_PROBE = _SANDBOX_PROBE


def push_tree(
    remote: GitRemote,
    collectors: dict[str, str],
    *,
    message: str,
    path: str = "collectors",
    force: bool = False,
) -> str:
    """Make the branch hold the framework plus exactly `collectors` (name -> `__init__.py`).

    Returns the new commit. With `force`, the commit has no parent and is force-pushed: the
    branch's history is rewritten.
    """
    if force:
        remote.git("checkout", "-q", "--orphan", f"rewrite-{remote.head()[:12]}", cwd=remote.clone)
    remote.copy_tree(FRAMEWORK / "metrics", f"{path}/metrics")
    remote.write(f"{path}/requirements.txt", (FRAMEWORK / "requirements.txt").read_text())
    package = remote.clone / path / "metrics" / "collectors"
    if not (package / "__init__.py").exists():
        remote.write(f"{path}/metrics/collectors/__init__.py", "")
    for old in package.iterdir():
        # This repository's own collectors, or ones an earlier push added, are not wanted.
        if old.is_dir() and old.name not in collectors:
            remote.remove(str(old.relative_to(remote.clone)))
    for name, source in collectors.items():
        remote.write(f"{path}/metrics/collectors/{name}/__init__.py", source)
        remote.write(f"{path}/metrics/collectors/{name}/__main__.py", _MAIN)
    return remote.commit_and_push(message, force=force)
