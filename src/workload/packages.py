"""The Debian packages a unit needs before the first checkout: git, and venv for the collectors.

Ubuntu cloud images have git but usually not `python3-venv`, without which no collectors' venv
can be built. Installed once on install and on upgrade-charm; apt failures raise, so Juju
retries the hook.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

PACKAGES = ("git", "python3-venv")


class PackagesError(Exception):
    """apt could not install the packages; the message names them and apt's last words."""


def missing_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    """The packages of `packages` that dpkg does not list as installed."""
    result = subprocess.run(
        ["dpkg-query", "--show", "--showformat=${Package} ${db:Status-Status}\\n", *packages],
        capture_output=True,
        text=True,
        check=False,  # exits 1 when a package is unknown, which only means "missing"
    )
    installed = {
        line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")
    }
    return [package for package in packages if package not in installed]


def ensure_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    """Install what is missing of `packages` with apt; return what was installed."""
    missing = missing_packages(packages)
    if not missing:
        return []
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "--quiet"],
        ["apt-get", "install", "--yes", "--quiet", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(
            command, capture_output=True, text=True, env=environment, check=False
        )
        if result.returncode != 0:
            last_words = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
            raise PackagesError(
                f"cannot install {', '.join(missing)}: {' '.join(command[:2])} exited "
                f"{result.returncode}: {' / '.join(last_words)}: check the unit's apt sources "
                "and proxy (juju model-config apt-http-proxy)"
            )
    return missing
