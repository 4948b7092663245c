"""The Nagios plugin behind the nrpe-external-master relation's checks: `checks.py`, installed
as it is where nagios-nrpe-server looks for local plugins."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from . import checks
from .files import write_if_changed

PLUGIN = "usr/local/lib/nagios/plugins/check_ucm"


def install_plugin(*, root: Path = Path("/")) -> Path:
    """Write the plugin, root's and 0755 (the nagios user runs it); return its path."""
    path = root / PLUGIN
    write_if_changed(path, Path(checks.__file__).read_bytes(), mode=0o755)
    return path


def remove_plugin(*, root: Path = Path("/")) -> None:
    (root / PLUGIN).unlink(missing_ok=True)


def endpoint_url(address: str, port: int) -> str:
    """Where a process on this machine reaches the endpoint listening on `address`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"http://{address}:{port}/metrics"
    if ip.is_unspecified:  # every interface: loopback is one of them
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"http://{host}:{port}/metrics"
