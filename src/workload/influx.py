"""Does InfluxDB answer, accept the credentials, and hold the database? One real HTTP round each.

The answer is one line for the charm's status; it never contains the password.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPResponse

from .credentials import InfluxCredentials

TIMEOUT = 5.0


def check_influxdb(credentials: InfluxCredentials, *, timeout: float = TIMEOUT) -> str | None:
    """None when InfluxDB at the credentials' address answers `/ping`, accepts the user and has
    the database; otherwise one line saying which part is wrong and what to do."""
    problem = credentials.problem()
    if problem:
        return problem
    scheme = "https" if credentials.ssl else "http"
    where = f"InfluxDB at {credentials.host}:{credentials.port}"
    base = f"{scheme}://{_host(credentials.host)}:{credentials.port}"
    context = None
    if credentials.ssl:
        # With a CA certificate, only that CA is trusted, as the collectors trust only it.
        context = ssl.create_default_context(cadata=credentials.ca_cert or None)
        if not credentials.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE

    not_influx = f"{where} answers /ping with HTTP {{}}, not as InfluxDB: check the host and port"
    try:
        with _open(base + "/ping", None, timeout, context) as response:
            if response.status != 204 and not response.headers.get("X-Influxdb-Version"):
                return not_influx.format(response.status)
    except urllib.error.HTTPError as error:
        return not_influx.format(error.code)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return _not_verified(where, reason, with_ca=bool(credentials.ca_cert))
        return f"{where} is unreachable ({reason}): check the host, port and that InfluxDB runs"

    database = credentials.database
    query = urllib.parse.urlencode({"q": f'SHOW RETENTION POLICIES ON "{_quoted(database)}"'})
    auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    try:
        with _open(f"{base}/query?{query}", auth, timeout, context) as response:
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        message = _error_message(error)
        if error.code == 401:
            return (
                f"{where} rejected user {credentials.username!r} ({message}): "
                "check the username and password"
            )
        if error.code == 403:
            return (
                f"{where}: user {credentials.username!r} may not read database {database!r} "
                f'({message}): GRANT ALL ON "{database}" TO "{credentials.username}"'
            )
        return f"{where} answered HTTP {error.code} ({message}): check the InfluxDB logs"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"{where} did not answer a query ({reason}): check that InfluxDB runs"

    results = body.get("results") or [{}]
    error_text = results[0].get("error") or body.get("error")
    if error_text and "database not found" in error_text:
        return (
            f"database {database!r} does not exist on {where}: create it "
            f'(CREATE DATABASE "{database}") or set influxdb-database'
        )
    if error_text:
        return f"{where} refused a query on database {database!r} ({error_text})"
    return None


# OpenSSL's X509_V_ERR_* codes that another fix than the CA certificate cures.
_CERT_HAS_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def _not_verified(where: str, error: ssl.SSLCertVerificationError, *, with_ca: bool) -> str:
    """The status line of a TLS handshake whose certificate check failed, with the fix."""
    if error.verify_code == _HOSTNAME_MISMATCH:
        fix = "use a host name or address that InfluxDB's certificate names (subjectAltName)"
    elif error.verify_code == _CERT_HAS_EXPIRED:
        fix = "renew InfluxDB's certificate"
    elif with_ca:
        fix = (
            "the ca-cert given is not the CA that signed InfluxDB's certificate: set the right one"
        )
    else:
        fix = "set ca-cert (influxdb-secret, or the influxdb relation) to the CA that signed it"
    return f"{where}: TLS certificate not verified ({error.verify_message}): {fix}"


def _open(
    url: str, auth: str | None, timeout: float, context: ssl.SSLContext | None
) -> HTTPResponse:
    request = urllib.request.Request(url)  # noqa: S310 - the URL is built from http(s) only
    if auth:
        request.add_header("Authorization", f"Basic {auth}")
    # No proxy: InfluxDB is reached directly, as the collectors reach it.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    return opener.open(request, timeout=timeout)


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        return json.loads(error.read() or b"{}").get("error") or error.reason
    except ValueError:
        return str(error.reason)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')
