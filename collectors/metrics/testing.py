"""Real parts for tests: a throwaway InfluxDB server and a server of recorded upstream answers.

Collector authors and the project's own tests use these instead of mocks.

    from metrics.testing import InfluxServer, UpstreamServer

    with InfluxServer() as influx:               # Debian's influxd on a free loopback port
        influx.create_database("metrics")
        ...                                      # point a collector at influx.host/influx.port
        assert influx.count("queue_size", "metrics") == 3
        rows = influx.query('SELECT * FROM "queue_size"', "metrics")

    with UpstreamServer({"/queues.json": (200, '{"noble": {}}')}) as upstream:
        url = upstream.url + "/queues.json"      # http://127.0.0.1:PORT/queues.json
        assert upstream.requests == []           # paths asked for so far, in order

    ca = ThrowawayCA(tmp_path / "ca")            # a private CA made by openssl
    with InfluxServer(https=ca.issue(tmp_path / "server")) as influx:
        ...                                      # https://127.0.0.1:PORT, trust ca.cert_pem
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password"  # noqa: S105 - a throwaway test server on loopback


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_CONFIG = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[http]
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false
  pprof-enabled = false
  max-body-size = {max_body_size}
{https}"""

_HTTPS = """\
  https-enabled = true
  https-certificate = "{certificate}"
  https-private-key = "{private_key}"
"""

# Every influxd this process started, so none survives a test run that crashes.
_RUNNING: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_RUNNING):
        process.kill()
        process.wait()


class ServerCertificate(NamedTuple):
    """A server's certificate and key files, and the PEM text of the CA that signed it."""

    certificate: Path
    private_key: Path
    ca_cert: str


class ThrowawayCA:
    """A private certificate authority made by `openssl` in `folder`, valid for two days.

    `.cert_pem` is its certificate (what a client trusts); `.issue(folder, ip)` makes a server
    key and a certificate for `ip` (subjectAltName) signed by this CA.
    """

    def __init__(self, folder: Path, name: str = "throwaway test CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.key = folder / "ca.key"
        self.certificate = folder / "ca.pem"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.key, "-out", self.certificate, "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        self.cert_pem = self.certificate.read_text()

    def issue(self, folder: Path, ip: str = "127.0.0.1") -> ServerCertificate:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder / "server.key"
        request = folder / "server.csr"
        certificate = folder / "server.pem"
        extensions = folder / "server.ext"
        extensions.write_text(
            f"subjectAltName = IP:{ip}\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", request, "-subj", f"/CN={ip}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", request, "-CA", self.certificate, "-CAkey", self.key,
            "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", certificate,
        )  # fmt: skip
        return ServerCertificate(certificate, key, self.cert_pem)


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


class InfluxError(RuntimeError):
    """influxd did not start, or a query to it failed."""


class InfluxServer:
    """Debian's `influxd` (InfluxDB 1.x) on free 127.0.0.1 ports with a throwaway data directory.

    Use it as a context manager; on exit the process is killed and the directory deleted.

    - `InfluxServer(auth=False, max_body_size=25_000_000, https=None)`: with `auth=True` the
      HTTP API requires credentials and an admin user `ADMIN_USER`/`ADMIN_PASSWORD` exists;
      the helper methods below authenticate as that admin. With `https` (a
      `ServerCertificate`, see `ThrowawayCA.issue`) the API is served over TLS only, and the
      helper methods trust the CA that signed it.
    - `.host` ("127.0.0.1"), `.port` (HTTP), `.url` ("http://127.0.0.1:PORT", or https),
      `.data_dir`.
    - `.start()`: start (waits until `/ping` answers, raises `InfluxError` with the tail of
      influxd's log otherwise); `.stop()`: stop; `.restart()`: stop then start again on the
      same port with the same data.
    - `.create_database(name)`, `.create_user(name, password, admin=False)`,
      `.grant(user, database, privilege)` (privilege: READ, WRITE or ALL).
    - `.query(q, database=None) -> list[dict]`: one dict per row (column name -> value, plus
      the series' tags when the query groups by tags); raises `InfluxError` on an error.
    - `.count(measurement, database) -> int`: how many points the measurement holds.
    """

    def __init__(
        self,
        *,
        auth: bool = False,
        max_body_size: int = 25_000_000,
        https: ServerCertificate | None = None,
    ) -> None:
        self.auth = auth
        self.max_body_size = max_body_size
        self.https = https
        # What the helper methods verify the server with.
        self._context = ssl.create_default_context(cadata=https.ca_cert) if https else None
        self.host = "127.0.0.1"
        self.port = free_port()
        self.rpc_port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="influxd-test-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self.data_dir / "influxd.log"
        self._admin_created = False

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host}:{self.port}"

    def __enter__(self) -> InfluxServer:
        try:
            for attempt in range(3):
                try:
                    self.start()
                    break
                except InfluxError:
                    # Another process may have taken a port between free_port() and influxd.
                    if attempt == 2 or "address already in use" not in self.log_tail():
                        raise
                    self.port, self.rpc_port = free_port(), free_port()
                    self._log_path.unlink()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        if self._process is not None:
            return
        config = self.data_dir / "influxd.conf"
        config.write_text(
            _CONFIG.format(
                root=self.data_dir,
                port=self.port,
                rpc_port=self.rpc_port,
                auth="true" if self.auth else "false",
                max_body_size=self.max_body_size,
                https=(
                    _HTTPS.format(
                        certificate=self.https.certificate, private_key=self.https.private_key
                    )
                    if self.https
                    else ""
                ),
            )
        )
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                ["influxd", "run", "-config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _RUNNING.add(self._process)
        self._wait_until_up()
        if self.auth and not self._admin_created:
            # InfluxDB 1.x lets anyone create the first user, which must be an admin.
            self._post_query(
                f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES",
                None,
            )
            self._admin_created = True

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _RUNNING.discard(process)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_until_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            status = self._process.poll()
            if status is not None:
                self.stop()
                raise InfluxError(
                    f"influxd exited with status {status} on port {self.port}; "
                    f"its log ends with:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(  # noqa: S310 - http(s)://127.0.0.1
                    f"{self.url}/ping", timeout=1, context=self._context
                ) as response,
            ):
                if response.status == 204:
                    return
            time.sleep(0.05)
        self.stop()
        raise InfluxError(
            f"influxd did not answer /ping on {self.url} within {timeout:.0f} s; "
            f"its log ends with:\n{self.log_tail()}"
        )

    def _post_query(self, q: str, database: str | None) -> list[dict[str, Any]]:
        params = {"q": q}
        if database:
            params["db"] = database
        request = urllib.request.Request(  # noqa: S310 - always http(s)://127.0.0.1
            f"{self.url}/query",
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
        )
        if self.auth and self._admin_created:
            token = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=60, context=self._context
            ) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise InfluxError(
                f"query {q!r} failed: HTTP {error.code} {error.read().decode(errors='replace')}"
            ) from error
        rows: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxError(f"query {q!r} failed: {result['error']}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows

    def query(self, q: str, database: str | None = None) -> list[dict[str, Any]]:
        return self._post_query(q, database)

    def create_database(self, name: str) -> None:
        self._post_query(f'CREATE DATABASE "{name}"', None)

    def create_user(self, name: str, password: str, admin: bool = False) -> None:
        suffix = " WITH ALL PRIVILEGES" if admin else ""
        self._post_query(f"CREATE USER \"{name}\" WITH PASSWORD '{password}'{suffix}", None)

    def grant(self, user: str, database: str, privilege: str) -> None:
        self._post_query(f'GRANT {privilege} ON "{database}" TO "{user}"', None)

    def count(self, measurement: str, database: str) -> int:
        return len(self._post_query(f'SELECT * FROM "{measurement}"', database))  # noqa: S608


Response = tuple[int, str | bytes]


class UpstreamServer:
    """Serves recorded upstream answers on 127.0.0.1 to a collector under test.

    `UpstreamServer({path: (status, body)})`, body as str or bytes, served as JSON unless
    `content_type` says otherwise; a list of responses instead is served one per request, in
    order, the last one repeating (e.g. `[(503, ""), (204, "")]` to test retries). GET and POST
    are answered alike. A request's path with its query string is looked up first, then the
    path alone; anything else is a 404. `.url` is the base URL, `.requests` lists the paths
    (with query strings) asked for, in order, and `.bodies` the request bodies; `.routes` may
    be changed between requests.
    """

    def __init__(
        self,
        routes: dict[str, Response | list[Response]],
        content_type: str = "application/json",
    ) -> None:
        self.routes = dict(routes)
        self.content_type = content_type
        self.requests: list[str] = []
        self.bodies: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.bodies.append(self.rfile.read(length) if length else b"")
                server.requests.append(self.path)
                key = (
                    self.path
                    if self.path in server.routes
                    else urllib.parse.urlsplit(self.path).path
                )
                route = server.routes.get(key, (404, "not found"))
                if isinstance(route, list):
                    status, body = route.pop(0) if len(route) > 1 else route[0]
                else:
                    status, body = route
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> UpstreamServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
