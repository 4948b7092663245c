"""The unprivileged system user that runs git and pip: repository code never runs as root.

`pip install` may run a package's build code and git talks to a team's own server, so both run
as `ubuntu-community-metrics`, a system user with no login and no home of its own. `Account`
is the seam: `Account(None)` runs them as the current user, for tests that do not run as root.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "ubuntu-community-metrics"

# What a child sees of the environment besides what the caller passes: never a secret.
_PASSED = ("PATH", "LANG", "LC_ALL", "TZ")
# The exit status `timeout(1)` gives a command it stopped.
_TIMED_OUT = 124


@dataclass(frozen=True)
class Account:
    """Who git and pip run as; `name=None`: the current user (tests only)."""

    name: str | None = SYSTEM_USER

    def ensure(self) -> None:
        """Create the system user when it does not exist (`useradd --system`)."""
        if self.name is None or self._entry() is not None:
            return
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "ubuntu-community-metrics git and pip",
                self.name,
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"cannot create the system user {self.name} that runs git and pip "
                f"(useradd: {result.stderr.strip()}): create it with useradd --system {self.name}"
            )

    def own(self, path: Path) -> None:
        """Give a folder the workload created to this user, so git or pip can write in it."""
        entry = self._entry()
        if entry is not None:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def run(
        self,
        args: Sequence[str],
        *,
        home: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        """Run `args` as this user with umask 022 (what it writes stays readable by the
        collectors' DynamicUser) and a clean environment; output captured, never raises on a
        non-zero exit."""
        child_env = {name: os.environ[name] for name in _PASSED if name in os.environ}
        child_env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        child_env["HOME"] = str(home)
        child_env.update(env or {})
        entry = self._entry()
        if self.name is not None and entry is None:
            raise RuntimeError(f"system user {self.name} does not exist: call Account.ensure()")
        try:
            return subprocess.run(
                list(args),
                env=child_env,
                cwd=cwd,
                user=entry.pw_uid if entry else None,
                group=entry.pw_gid if entry else None,
                extra_groups=[] if entry else None,
                umask=0o022,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            # Killed at the deadline: a failure the caller reports, not an exception that
            # would end the hook with nothing in the status.
            output = expired.stdout or ""
            return subprocess.CompletedProcess(
                list(args),
                _TIMED_OUT,
                output.decode(errors="replace") if isinstance(output, bytes) else output,
                f"{Path(args[0]).name} timed out after {timeout:.0f} s and was stopped",
            )

    def _entry(self) -> pwd.struct_passwd | None:
        if self.name is None:
            return None
        try:
            return pwd.getpwnam(self.name)
        except KeyError:
            return None
