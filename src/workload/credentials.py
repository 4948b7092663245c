"""The InfluxDB credentials file: root-only JSON that the units read through `LoadCredential=`.

Never logged, never in an environment variable; the password is not in `repr()` either. The
CA certificate of a private CA travels in the same file (it is not secret, but it decides whom
the collectors trust, so only root may change it).
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .files import write_if_changed


@dataclass(frozen=True)
class InfluxCredentials:
    """Where the collectors write their points and as whom."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    database: str
    ssl: bool = False
    verify_ssl: bool = True
    # PEM certificates of the CA(s) that signed InfluxDB's certificate; empty: the system's.
    ca_cert: str = field(default="", repr=False)

    def problem(self) -> str | None:
        """One line when a field cannot work (never showing the password), else None."""
        if not self.host:
            return "InfluxDB host is empty: check the influxdb relation or influxdb-secret"
        if not is_host(self.host):
            return (
                f"InfluxDB host {self.host[:80]!r} is not a host name or IP address: check the"
                " influxdb relation or influxdb-secret"
            )
        if not 0 < self.port < 65536:
            return f"InfluxDB port {self.port} is not a TCP port: check the relation or secret"
        if not self.database:
            return "InfluxDB database is empty: set influxdb-database or the secret's database"
        return None


def ca_cert_problem(text: str) -> str | None:
    """None when `text` is PEM certificates that OpenSSL loads as trust anchors; otherwise
    what is wrong with it, to follow "a ca-cert that". Never quotes the text."""
    if "PRIVATE KEY-----" in text:
        return "holds a private key, which must stay on the InfluxDB server"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError):
        return (
            "is not PEM certificate text (-----BEGIN CERTIFICATE----- ... "
            "-----END CERTIFICATE-----, one block per certificate)"
        )
    return None


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def is_host(host: str) -> bool:
    """An IP address or a DNS name (labels of 1 to 63 letters, digits, - and _, 253 at most)."""
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        return True
    except ValueError:
        pass
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def write_credentials(path: Path, credentials: InfluxCredentials | None) -> bool:
    """Write the file (root 0600, atomically, created with that mode) or remove it when there
    are no credentials; True when something changed."""
    if credentials is None:
        if path.exists():
            path.unlink()
            return True
        return False
    text = json.dumps(asdict(credentials), indent=2, sort_keys=True) + "\n"
    return write_if_changed(path, text.encode(), mode=0o600)


def read_credentials(path: Path) -> InfluxCredentials | None:
    """The credentials last written, or None."""
    try:
        return InfluxCredentials(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
