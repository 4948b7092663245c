"""Where the workload keeps its files on a unit, relative to a root so tests use a temporary one.

The table in docs/design.md ("On the unit") is the same list in prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = "etc/ubuntu-community-metrics"
STATE_DIR = "var/lib/ubuntu-community-metrics"
UNIT_DIR = "etc/systemd/system"
LOG_DIR = "var/log/ubuntu-community-metrics"
LOGROTATE = "etc/logrotate.d/ubuntu-community-metrics"


@dataclass(frozen=True)
class Paths:
    """Every path the workload writes, under `root` (`/` on a unit)."""

    root: Path = Path("/")

    @property
    def config_dir(self) -> Path:
        return self.root / CONFIG_DIR

    @property
    def credentials(self) -> Path:
        """InfluxDB credentials (root 0600), read by the units through `LoadCredential=`."""
        return self.config_dir / "influxdb.json"

    @property
    def settings(self) -> Path:
        """What `python3 -m workload sync` needs (no secrets), saved by reconcile."""
        return self.config_dir / "settings.json"

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def checkouts(self) -> Path:
        """One folder per commit (or per bundled tree hash)."""
        return self.state_dir / "checkouts"

    @property
    def current(self) -> Path:
        """Symlink to the live collectors tree (the folder that holds `metrics/`)."""
        return self.state_dir / "current"

    @property
    def venvs(self) -> Path:
        """One venv per hash of `requirements.txt` and the Python version."""
        return self.state_dir / "venvs"

    @property
    def venv(self) -> Path:
        """Symlink to the live venv."""
        return self.state_dir / "venv"

    @property
    def git_cache(self) -> Path:
        """Bare repositories the checkouts are fetched into, one per repository URL."""
        return self.state_dir / "git-cache"

    @property
    def home(self) -> Path:
        """HOME of the unprivileged user while it runs git and pip (their config and caches)."""
        return self.state_dir / "home"

    @property
    def sync_result(self) -> Path:
        """The last checkout result (source, commit, problems, time), read for the status."""
        return self.state_dir / "sync.json"

    @property
    def lock(self) -> Path:
        """Held while reconcile or sync changes anything, so the timer and a hook never race."""
        return self.state_dir / "lock"

    @property
    def collector_states(self) -> Path:
        """Each collector's state directory (its spool, counters and health.json), which
        systemd keeps there for a `DynamicUser=` service: 0700, owned by the collector's user."""
        return self.root / "var/lib/private/metrics-collector"

    @property
    def unit_dir(self) -> Path:
        return self.root / UNIT_DIR

    @property
    def log_dir(self) -> Path:
        """The collectors' log folder (root 0755), only while cos-agent is related."""
        return self.root / LOG_DIR

    @property
    def log_file(self) -> Path:
        """The collectors' and the pull's log, appended by `metrics-log.service`."""
        return self.log_dir / "collectors.log"

    @property
    def logrotate(self) -> Path:
        """logrotate's configuration for `log_file`."""
        return self.root / LOGROTATE
