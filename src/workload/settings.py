"""What the charm's configuration asks of the workload, and its copy on disk for `workload sync`.

Settings hold no InfluxDB secret; `settings.json` is root-only all the same, as the repository
URL may carry an access token.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import ownership
from .files import write_if_changed
from .timespan import parse_timespan

# The charm's own copy of the collectors tree: charmcraft dumps `collectors/` beside `src/`.
BUNDLED_TREE = Path(__file__).resolve().parents[2] / "collectors"


@dataclass(frozen=True)
class Proxy:
    """Proxy for git, pip and the collector services; empty strings mean no proxy."""

    http: str = ""
    https: str = ""
    no_proxy: str = ""

    def environment(self) -> dict[str, str]:
        """The variables git, pip and Python's urllib read, in both spellings."""
        env: dict[str, str] = {}
        for name, value in (
            ("http_proxy", self.http),
            ("https_proxy", self.https),
            ("no_proxy", self.no_proxy),
        ):
            if value:
                env[name] = value
                env[name.upper()] = value
        return env


@dataclass(frozen=True)
class Settings:
    """The charm's configuration as the workload needs it.

    `repo` empty: run `bundled_tree` (the tree shipped in the charm). Otherwise check out
    `branch` (or the pinned `revision`: a commit or tag) of `repo` and use the folder `path`
    inside it as the collectors tree.
    """

    repo: str = ""
    branch: str = "main"
    path: str = "collectors"
    revision: str = ""
    pull_interval: str = "1h"
    collector_timeout: str = "10m"
    dry_run: bool = False
    proxy: Proxy = field(default_factory=Proxy)
    bundled_tree: Path = BUNDLED_TREE
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9581
    # This unit and the application's other units (the cluster peer relation): each unit
    # schedules only the collectors it owns (workload.ownership). No unit: every collector.
    unit: str = ""
    peers: tuple[str, ...] = ()
    # This unit is being removed (the cluster relation departs from it): it runs nothing, so
    # that it does not take over the collectors of the peers it sees depart meanwhile.
    leaving: bool = False
    # The collectors' log as a file under /var/log, for the cos-agent subordinate to ship.
    log_file: bool = False

    @property
    def metrics_beyond_this_machine(self) -> bool:
        """Whether the metrics endpoint listens on more than loopback (its port is opened)."""
        try:
            return not ipaddress.ip_address(self.metrics_address).is_loopback
        except ValueError:
            return False

    def owned(self, names: list[str], owners: dict[str, str] | None = None) -> list[str]:
        """Of the schedulable collectors `names`, those this unit runs (`owners`: the owner of
        each, when already computed)."""
        if self.leaving:
            return []
        if not self.unit:
            return list(names)
        if owners is None:
            return ownership.owned(names, self.unit, self.peers)
        return [name for name in names if owners[name] == self.unit]

    def problems(self) -> list[str]:
        """One line per option that cannot work, naming the option and what to do."""
        problems = []
        for option, value, floor, example in (
            ("pull-interval", self.pull_interval, "1s", "1h"),
            ("collector-timeout", self.collector_timeout, "1s", "10m"),
        ):
            try:
                if parse_timespan(value) < parse_timespan(floor):
                    problems.append(
                        f"config {option}={value!r} is shorter than {floor}, the shortest it"
                        f" may be: set e.g. {example}"
                    )
            except ValueError as error:
                problems.append(
                    f"config {option}={value!r} is not a systemd time span ({error}): "
                    f"set e.g. {example}"
                )
        try:
            ipaddress.ip_address(self.metrics_address)
        except ValueError:
            problems.append(
                f"config metrics-address={self.metrics_address[:80]!r} is not an IP address:"
                " set 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface)"
            )
        if not 0 < self.metrics_port < 65536:
            problems.append(
                f"config metrics-port={self.metrics_port} is not a TCP port: set e.g. 9581"
            )
        if self.repo:
            bad_url = url_problem(self.repo)
            if bad_url:
                problems.append(bad_url)
            if not self.branch.strip() and not self.revision.strip():
                problems.append("config collectors-branch is empty: set it, e.g. to main")
            tree = PurePosixPath(self.path)
            if tree.is_absolute() or ".." in tree.parts:
                problems.append(
                    f"config collectors-path={self.path!r} must be a folder inside the "
                    "repository (relative, no ..): set e.g. collectors"
                )
        return problems

    def source(self) -> dict[str, str]:
        """What decides which tree runs: a change here means a new checkout."""
        if not self.repo:
            return {"bundled": str(self.bundled_tree)}
        return {
            "repo": self.repo,
            "branch": self.branch,
            "path": self.path,
            "revision": self.revision,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bundled_tree"] = str(self.bundled_tree)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        data = dict(data)
        data["proxy"] = Proxy(**data.get("proxy", {}))
        data["bundled_tree"] = Path(data.get("bundled_tree", BUNDLED_TREE))
        data["peers"] = tuple(data.get("peers", ()))
        return cls(**data)


def save_settings(settings: Settings, path: Path) -> bool:
    """Write `settings.json` when it changed; True when it was written.

    Root-only (0600): no InfluxDB secret is in it, but `collectors-repo` may carry a token.
    """
    text = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    return write_if_changed(path, text.encode(), mode=0o600)


def load_settings(path: Path) -> Settings:
    """The settings reconcile saved; FileNotFoundError when the charm has not run yet."""
    return Settings.from_json(json.loads(path.read_text()))


def display_url(url: str) -> str:
    """`url` without a user name or password, for messages (whatever the URL holds)."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal keeps its brackets
            host = f"[{host}]"
        if parts.port:
            host += f":{parts.port}"
    except ValueError:  # a bad port or IPv6 literal: drop everything up to the last @
        return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/]*@", r"\1", url)
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def url_problem(url: str) -> str | None:
    """Why git could not use `url` as collectors-repo, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as error:
        return f"config collectors-repo={display_url(url)!r} is not a valid URL ({error}): fix it"
    if any(ord(c) < 32 or c.isspace() for c in url):
        return "config collectors-repo contains spaces or control characters: fix it"
    return None
