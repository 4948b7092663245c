"""The optional nrpe-external-master relation: Nagios checks of the collectors and the pull.

Each check runs the plugin `workload/checks.py`, installed as
/usr/local/lib/nagios/plugins/check_ucm, against the unit's metrics endpoint. charmhelpers'
NRPE does the rest as every charm with this relation does: it writes each check's NRPE command
(/etc/nagios/nrpe.d/check_<name>.cfg), the Nagios service the nrpe subordinate exports
(/var/lib/nagios/export/service__<host>_check_<name>.cfg), restarts nagios-nrpe-server, and
sets `primary` and `monitors` in this unit's relation data. It takes the Nagios host name from
the subordinate's `nagios_hostname`, else `<nagios-context>-<unit>`, and talks to Juju through
the hook tools itself (config-get, relation-ids, relation-list, relation-get, relation-set,
juju-log).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

from workload import nagios

RELATION = "nrpe-external-master"
PLUGIN = "check_ucm"


@dataclass(frozen=True)
class NagiosCheck:
    shortname: str
    # Shown in Nagios; it refuses `~!$%^&*"|'<>?,()=` in a service description.
    description: str
    kind: str


CHECKS = (
    NagiosCheck(
        "ucm_collectors_stale", "Collectors without a successful run for 3 intervals", "stale"
    ),
    NagiosCheck("ucm_collectors_failing", "Collectors whose last 2 runs failed", "failing"),
    NagiosCheck("ucm_pull", "Pulls of the collectors branch", "pull"),
)


@dataclass(frozen=True)
class Settings:
    """What the checks depend on: the endpoint, the unit named in the fixes, and the
    nagios-context and nagios-servicegroups options."""

    address: str
    port: int
    unit: str
    context: str = "juju"
    servicegroups: str = ""


def commands(settings: Settings) -> dict[str, str]:
    """Each check's command line, by short name."""
    url = nagios.endpoint_url(settings.address, settings.port)
    return {
        check.shortname: f"{PLUGIN} {check.kind} --url {url} --unit {settings.unit}"
        for check in CHECKS
    }


def charmhelpers_nrpe() -> Any:
    """charmhelpers.contrib.charmsupport.nrpe, imported only when the relation needs it:
    charmhelpers reads /etc/os-release and /etc/lsb-release on import.

    Its hookenv imports `distutils.version.LooseVersion` (for `has_juju_version`, which nothing
    here calls); Python 3.12 has no distutils, and setuptools, which would stand in, is left
    out of the charm for its size, so `looseversion` (that class, out of distutils) does.
    """
    try:
        import distutils.version  # noqa: F401 - Python 3.10 (Ubuntu 22.04) still has it
    except ModuleNotFoundError:
        from looseversion import LooseVersion

        version = types.ModuleType("distutils.version")
        version.LooseVersion = LooseVersion  # type: ignore[attr-defined]
        package = types.ModuleType("distutils")
        package.__path__ = []
        package.version = version  # type: ignore[attr-defined]
        sys.modules["distutils"], sys.modules["distutils.version"] = package, version
    from charmhelpers.contrib.charmsupport import nrpe

    return nrpe


def update_checks(settings: Settings) -> None:
    """Install the plugin, then write every check and publish them on the relation."""
    charmhelpers = charmhelpers_nrpe()
    from charmhelpers.core import hookenv

    nagios.install_plugin()  # first: charmhelpers looks the command up in the plugin folders
    # NRPE reads these two from the config under the names older charms used (snake case);
    # the options here are named as this charm's others are, so hand them over.
    config = hookenv.config()
    if config is None:  # charmhelpers has logged why
        raise RuntimeError("charmhelpers could not read the config from config-get")
    config["nagios_context"] = settings.context
    config["nagios_servicegroups"] = settings.servicegroups
    nrpe = charmhelpers.NRPE()
    lines = commands(settings)
    for check in CHECKS:
        nrpe.add_check(
            shortname=check.shortname,
            description=check.description,
            check_cmd=lines[check.shortname],
        )
    nrpe.write()


def remove_checks() -> None:
    """Delete what `update_checks` wrote on the machine (the relation is gone with its data)."""
    check_class = charmhelpers_nrpe().Check
    # Check, not NRPE: NRPE() sets relation data on every relation of the endpoint that Juju
    # lists, and in relation-broken it still lists the one going away.
    for check in CHECKS:
        check_class(check.shortname, check.description, PLUGIN).remove(hostname=None)
    nagios.remove_plugin()
