"""The Debian packages a unit needs before the first checkout: git, and venv for the collectors,
plus those the operator lists in `extra-packages` for the collectors' own use (`rsync`, say).

Ubuntu cloud images have git but usually not `python3-venv`, without which no collectors' venv
can be built. What is missing is installed by the next hook; apt failures raise
`PackagesError`, which the charm shows in the status. A package removed from the option stays
installed (removing it could take others with it).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence

PACKAGES = ("git", "python3-venv")


# A Debian package name (Debian Policy 5.6.1), optionally with an architecture.
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")


def extra_packages(option: str) -> tuple[list[str], str | None]:
    """The package names of the `extra-packages` option (separated by spaces or commas), and
    a problem naming the option when one is not a Debian package name."""
    names = [name for name in re.split(r"[\s,]+", option.strip()) if name]
    wrong = [name for name in names if not _PACKAGE_NAME.match(name)]
    if wrong:
        shown = ", ".join(repr(name[:40]) for name in wrong[:3])
        return [], (
            f"config extra-packages: not a Debian package name: {shown} (lowercase letters,"
            " digits, + - and .): fix the list"
        )
    return names, None


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
