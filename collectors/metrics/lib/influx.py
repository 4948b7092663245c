"""InfluxDB credentials and the streaming, batched, retrying, spooling write path."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import queue
import random
import re
import ssl
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import requests

from .errors import CollectorError
from .lineprotocol import LineEncoder
from .spool import Spool


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    database: str
    ssl: bool = False
    verify_ssl: bool = True
    # PEM certificates of the private CA that signed InfluxDB's certificate: with it, only
    # that CA is trusted; empty, the CAs requests trusts.
    ca_cert: str = field(default="", repr=False)


def load_credentials(environ: dict[str, str] | None = None) -> Credentials:
    """From `$CREDENTIALS_DIRECTORY/influxdb` (systemd), else the `INFLUXDB_*` variables."""
    environ = dict(os.environ) if environ is None else environ
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / "influxdb").is_file():
        path = Path(directory) / "influxdb"
        try:
            data = json.loads(path.read_text())
            return Credentials(
                host=str(data["host"]),
                port=int(data.get("port", 8086)),
                username=str(data.get("username", "")),
                password=str(data.get("password", "")),
                database=str(data["database"]),
                ssl=_flag(data.get("ssl", False)),
                verify_ssl=_flag(data.get("verify_ssl", True)),
                ca_cert=_text(data.get("ca_cert", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise CollectorError(
                f"{path}: not a JSON object with host, port, username, password and database "
                f"({type(error).__name__}: {error}); check the charm's influxdb settings"
            ) from None
    missing = [
        name for name in ("INFLUXDB_HOSTNAME", "INFLUXDB_DATABASE") if not environ.get(name)
    ]
    if missing:
        raise CollectorError(
            f"no InfluxDB credentials: set {' and '.join(missing)} (and INFLUXDB_PORT, "
            "INFLUXDB_USERNAME, INFLUXDB_PASSWORD), or use --dry-run"
        )
    try:
        port = int(environ.get("INFLUXDB_PORT") or 8086)
    except ValueError:
        raise CollectorError(
            f"INFLUXDB_PORT={environ['INFLUXDB_PORT']!r} is not a port number"
        ) from None
    return Credentials(
        host=environ["INFLUXDB_HOSTNAME"],
        port=port,
        username=environ.get("INFLUXDB_USERNAME", ""),
        password=environ.get("INFLUXDB_PASSWORD", ""),
        database=environ["INFLUXDB_DATABASE"],
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"ca_cert is {type(value).__name__}, not a string")
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"{value!r} is not true or false")


@dataclass
class WriteSettings:
    """How hard a run tries before it spools: at most `retry_budget` seconds per run.

    Worst case with InfluxDB down or hanging: the batches in flight (one per connection, at
    the same time) spend the budget (30 s: attempts of at most `timeout` s each, with backoff
    sleeps between them); after that the run is marked down and every later batch goes
    straight to the spool.
    """

    batch_size: int = 5000
    # Requests in flight at once, each on its own keep-alive connection. InfluxDB answers a
    # write only once its WAL has it, so while one request waits the server has CPU to spare.
    connections: int = 2
    timeout: float = 10.0  # seconds per request (connect, and each read)
    attempts: int = 5  # per batch, for connection errors, timeouts, 5xx and 429
    backoff: float = 0.5  # seconds; doubles per attempt, with full jitter
    max_backoff: float = 4.0
    retry_budget: float = 30.0  # seconds from a batch's first attempt to giving up on it

    def __post_init__(self) -> None:
        for name in ("batch_size", "connections", "attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"WriteSettings.{name} must be at least 1")


@dataclass
class WriteResult:
    written: int = 0
    spooled: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


class Stopped(BaseException):
    """SIGTERM arrived: raised once in the main thread to interrupt the collector or a wait.

    A BaseException, like KeyboardInterrupt, so that a collector's `except Exception` does
    not swallow it.
    """


class _Batch(NamedTuple):
    body: bytes
    points: int
    made: int  # when it was made (ns since the epoch, increasing): its place in the spool


class _Unreachable(Exception):
    """InfluxDB could not take a batch now; it goes to the spool."""


# How long a spooled batch waits for the InfluxDB and database it was going to, once the
# credentials point elsewhere: long enough for an operator to move them back, bounded so that
# points for a database that is gone do not fill the spool for ever.
KEEP_ELSEWHERE = 7 * 86400  # seconds


class _Late(Exception):
    """A request was still unanswered when its batch's retry budget ran out."""


class _Rejected(Exception):
    """InfluxDB refused a batch for its content (HTTP 400); spooling it would not help."""


class InfluxWriter:
    """Writes points in batches, replaying the spool first; holds at most
    `connections` + 2 batches (four by default).

    `stop()` (on SIGTERM) ends retries at once; `abandon()` then spools every batch that is
    not confirmed written, so a stopped run loses nothing.
    """

    def __init__(
        self,
        credentials: Credentials,
        spool: Spool,
        settings: WriteSettings | None = None,
    ) -> None:
        self.settings = settings or WriteSettings()
        self.spool = spool
        self.database = credentials.database
        scheme = "https" if credentials.ssl else "http"
        self.url = f"{scheme}://{credentials.host}:{credentials.port}"
        # A batch is replayed only into the host and database it was going to (a port or
        # scheme change is the same InfluxDB moving, not another one).
        digest = hashlib.sha256(f"{credentials.host}/{self.database}".encode()).hexdigest()
        spool.destination = digest[:12]
        self._credentials = credentials
        # What requests verifies InfluxDB's certificate with. requests takes no certificate
        # text, so a CA certificate goes to a file private to this process (0600, in the
        # run's PrivateTmp under systemd), deleted with the writer or at exit.
        self._verify: bool | str = credentials.verify_ssl
        if credentials.ca_cert and credentials.verify_ssl:
            self._verify = _ca_file(credentials.ca_cert)
            weakref.finalize(self, _remove, self._verify)
        self._sessions = [self._new_session()]  # the first also replays the spool
        # Points without a time get the run's, so that a replayed batch overwrites its twin.
        self.run_time = time.time_ns()
        self.result = WriteResult()
        self._down = False  # once a batch could not be written, the rest of the run spools
        self._stopping = threading.Event()
        # Batches handed to the sender thread and not yet written, spooled or refused, and the
        # lines of the batch being filled: what abandon() must spool. Changed under _lock.
        self._lock = threading.Lock()
        self._unconfirmed: list[_Batch] = []
        self._last_made = 0
        self._filling: list[str] = []
        self.log = logging.getLogger("metrics.influx")

    def _new_session(self) -> requests.Session:
        """The requests session InfluxDBClient would use, driven directly: a keep-alive
        connection, and the timeouts, retries and stop decided here. One per thread."""
        session = requests.Session()
        if self._credentials.username:
            session.auth = (self._credentials.username, self._credentials.password)
        session.headers["Content-Type"] = "application/octet-stream"
        return session

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop retrying and sending (safe from a signal handler: it only sets a flag)."""
        self._stopping.set()

    def abandon(self) -> None:
        """After stop(): spool every batch not confirmed written, and the one being filled."""
        self._stopping.set()
        with self._lock:
            pending, self._unconfirmed = self._unconfirmed, []
            if self._filling:
                pending.append(self._batch(self._filling))
                self._filling = []
            for batch in pending:
                self._spool(batch)

    def _batch(self, lines: list[str]) -> _Batch:
        # Spooled batches keep the order they were made in, whichever sender spools them.
        self._last_made = max(time.time_ns(), self._last_made + 1)
        return _Batch(_body(lines), len(lines), self._last_made)

    def replay_spool(self) -> None:
        elsewhere = 0
        for batch in self.spool.batches():
            if self._down or self.stopping:
                return
            if batch.destination not in ("", self.spool.destination):
                if time.time() - batch.made > KEEP_ELSEWHERE:
                    message = (
                        f"dropped {batch.points} spooled points that were going to another"
                        f" InfluxDB or database for more than {KEEP_ELSEWHERE // 86400} days"
                    )
                    self.log.error("%s", message)
                    self.result.dropped += batch.points
                    self.result.errors.append(message)
                    batch.delete()
                    continue
                elsewhere += batch.points  # another InfluxDB or database: not replayed here
                continue
            try:
                body = batch.read()
            except OSError as error:
                self.spool.set_aside(batch.path, f"unreadable: {error.strerror or error}")
                continue
            try:
                self._post(self._sessions[0], body)
            except _Unreachable:
                return
            except _Rejected as error:
                self.log.error("dropped a spooled batch of %d points: %s", batch.points, error)
                self.result.dropped += batch.points
                self.result.errors.append(str(error))
            else:
                self.result.written += batch.points
                self.log.info("replayed %d spooled points", batch.points)
            batch.delete()
        if elsewhere:
            self.log.warning(
                "kept %d spooled points that were going to another InfluxDB or database: they"
                " are replayed when the credentials point there again (or dropped, oldest"
                " first, when the spool is full)",
                elsewhere,
            )

    def write(self, points: Iterable[Any]) -> None:
        """Encode and send `points`; on an exception from `points`, send what came before it.

        Sender threads (`connections` of them) post batches while this thread encodes the
        next (a request releases the GIL), so the collector and InfluxDB work at the same
        time. The queue between them holds one batch: with the batches in flight and the one
        being filled, at most `connections` + 2 batches are in memory. On `Stopped` the caller
        calls abandon().
        """
        encoder = LineEncoder()
        run_time = self.run_time
        batch_size = self.settings.batch_size
        batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        failures: list[BaseException] = []

        def send_batches(session: requests.Session) -> None:
            while (batch := batches.get()) is not None:
                if not failures and not self.stopping:
                    try:
                        self._send(session, batch)
                    except BaseException as error:  # re-raised by the encoding thread
                        failures.append(error)

        def hand_over(lines: list[str]) -> None:
            batch = self._batch(lines)
            with self._lock:
                self._unconfirmed.append(batch)
                self._filling = []
            batches.put(batch)

        while len(self._sessions) < self.settings.connections:
            self._sessions.append(self._new_session())
        # Daemons: after SIGTERM, a request that hangs must not keep the process alive.
        senders = [
            threading.Thread(
                target=send_batches, args=(session,), name=f"influx-sender-{number}", daemon=True
            )
            for number, session in enumerate(self._sessions[: self.settings.connections])
        ]
        for sender in senders:
            sender.start()
        lines: list[str] = []
        self._filling = lines
        iterator = iter(points)
        index = 0
        # After each answer the sender needs the GIL for a moment to post the next batch; with
        # the default 5 ms switch interval InfluxDB would wait that long while this thread
        # encodes.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, _SWITCH_INTERVAL))
        try:
            while True:
                encoder.encode_into(lines, iterator, batch_size, index, run_time)
                if len(lines) < batch_size:
                    break
                index += len(lines)
                hand_over(lines)
                lines = []
                self._filling = lines
        finally:
            # Once stopped, abandon() spools what is left: wait neither for room in the
            # queue nor for a request that hangs.
            sys.setswitchinterval(switch_interval)
            if not self.stopping:
                if lines:
                    hand_over(lines)
                for _ in senders:
                    batches.put(None)
                for sender in senders:
                    while sender.is_alive() and not self.stopping:
                        sender.join(0.05)
        if self.stopping:
            self.abandon()
        elif failures:
            raise failures[0]

    def _send(self, session: requests.Session, batch: _Batch) -> None:
        if not self._down:
            try:
                self._post(session, batch.body)
            except _Unreachable:
                pass
            except _Rejected as error:
                # InfluxDB keeps the valid lines of a batch and says how many it dropped.
                dropped = _partial_write_dropped(str(error), batch.points)
                with self._lock:
                    if self._confirm(batch):
                        self.result.written += batch.points - dropped
                        self.result.dropped += dropped
                    self.result.errors.append(str(error))
                self.log.error("%s", error)
                return
            else:
                with self._lock:
                    if self._confirm(batch):
                        self.result.written += batch.points
                return
        with self._lock:
            if self._confirm(batch):
                self._spool(batch)

    def _confirm(self, batch: _Batch) -> bool:
        """Take `batch` off the unconfirmed list; False if abandon() already spooled it."""
        for index, pending in enumerate(self._unconfirmed):
            if pending is batch:
                del self._unconfirmed[index]
                return True
        return False

    def _spool(self, batch: _Batch) -> None:
        try:
            self.result.dropped += self.spool.add(batch.body, batch.points, made=batch.made)
        except OSError as error:  # a full disk, a file-size limit: the points are lost, counted
            self.result.dropped += batch.points
            message = f"cannot spool {batch.points} points ({error.strerror or error}): dropped"
            self.result.errors.append(message)
            self.log.error("%s", message)
            return
        self.result.spooled += batch.points

    def _post(self, session: requests.Session, body: bytes) -> None:
        settings = self.settings
        give_up_at = time.monotonic() + settings.retry_budget
        for attempt in itertools.count(1):
            if self.stopping:
                raise _Unreachable("stopped")
            timeout = max(0.1, min(settings.timeout, give_up_at - time.monotonic()))
            try:
                response = self._post_by(give_up_at, session, body, timeout)
            except _Late:
                self._give_up(
                    f"InfluxDB at {self.url} did not finish answering within the"
                    f" {settings.retry_budget:g} s a batch may take (it answers too slowly);"
                    " points are spooled and replayed by the next run"
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as error:
                not_verified = _not_verified(error, with_ca=bool(self._credentials.ca_cert))
                if not_verified:  # the same certificate fails again: no retries
                    self._give_up(
                        f"TLS verification of InfluxDB at {self.url} failed: {not_verified}; "
                        "points are spooled and replayed once it succeeds"
                    )
                problem = f"{type(error).__name__}: {error}"
            except requests.RequestException as error:
                # A redirect loop, a URL requests cannot use: retrying would not help, and the
                # points must not be lost, so they are spooled.
                self._give_up(
                    f"cannot write to InfluxDB at {self.url} ({type(error).__name__}: {error});"
                    " points are spooled and replayed by the next run"
                )
            else:
                code = response.status_code
                if code == 204:
                    return
                message = _server_message(response.content)
                if code == 400:
                    raise _Rejected(_explain_400(message, body))
                if code in (401, 403):
                    self._give_up(
                        f"InfluxDB rejected the credentials (HTTP {code}) for database "
                        f"{self.database!r}: check the username, password and grants; points "
                        "are spooled and replayed once they work"
                    )
                if code != 429 and code < 500:
                    self._give_up(f"InfluxDB answered HTTP {code}: {message}")
                problem = f"HTTP {code}: {message}"
            remaining = give_up_at - time.monotonic()
            if attempt >= settings.attempts or remaining <= 0:
                self._give_up(
                    f"cannot write to InfluxDB at {self.url} after {attempt} "
                    f"attempts ({problem}); points are spooled and replayed by the next run"
                )
            backoff = min(settings.max_backoff, settings.backoff * 2**attempt)
            delay = min(remaining, random.uniform(0, backoff))  # noqa: S311
            self.log.warning("write failed (%s); retrying in %.1f s", problem, delay)
            if self._stopping.wait(delay):
                raise _Unreachable("stopped")

    def _post_by(
        self, deadline: float, session: requests.Session, body: bytes, timeout: float
    ) -> requests.Response:
        """One POST, abandoned at `deadline`: requests' timeout bounds each read, so a server
        that trickles its answer a byte at a time would hold the run for ever. An abandoned
        request keeps its session, which is why the caller gives up the run's writes then."""
        outcome: list[requests.Response | BaseException] = []

        def post() -> None:
            try:
                outcome.append(
                    session.post(
                        f"{self.url}/write",
                        params={"db": self.database},
                        data=body,
                        timeout=timeout,
                        # Per request, not session.verify: requests lets REQUESTS_CA_BUNDLE or
                        # CURL_CA_BUNDLE override a session's verify, never a request's.
                        verify=self._verify,
                    )
                )
            except BaseException as error:  # re-raised in the calling thread
                outcome.append(error)

        request = threading.Thread(target=post, name="influx-request", daemon=True)
        request.start()
        while not outcome and time.monotonic() < deadline and not self.stopping:
            request.join(min(0.5, max(0.0, deadline - time.monotonic())))
        if not outcome:
            if self.stopping:
                raise _Unreachable("stopped")
            raise _Late
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _give_up(self, message: str) -> NoReturn:
        with self._lock:  # two senders may give up at once: report it once
            first, self._down = not self._down, True
            if first:
                self.result.errors.append(message)
        if first:
            self.log.error("%s", message)
        raise _Unreachable(message)


_SWITCH_INTERVAL = 0.0005  # seconds; see write()
_FIELD_CONFLICT = re.compile(r'input field "(?P<field>[^"]+)" on measurement "(?P<m>[^"]+)"')
_UNPARSABLE = re.compile(r"unable to parse '(?P<line>[^']*)'")


# OpenSSL's X509_V_ERR_* codes that another fix than the CA certificate cures.
_CERT_HAS_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def _not_verified(error: BaseException, *, with_ca: bool) -> str | None:
    """Why InfluxDB's certificate was not trusted, and the fix, when that is what `error`
    (requests' wrapping of urllib3's wrapping of ssl's) comes from; else None."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        cause = pending.pop()
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            if cause.verify_code == _HOSTNAME_MISMATCH:
                fix = "use a host name or address that InfluxDB's certificate names"
            elif cause.verify_code == _CERT_HAS_EXPIRED:
                fix = "renew InfluxDB's certificate"
            elif with_ca:
                fix = "the ca-cert given did not sign InfluxDB's certificate: set the right CA"
            else:
                fix = (
                    "set ca-cert in influxdb-secret (or the relation) to the CA that signed "
                    "InfluxDB's certificate"
                )
            return f"certificate verify failed: {cause.verify_message}; {fix}"
        pending += [
            *cause.args,
            getattr(cause, "reason", None),
            cause.__cause__,
            cause.__context__,
        ]
    return None


def _ca_file(ca_cert: str) -> str:
    descriptor, path = tempfile.mkstemp(prefix="influxdb-ca-", suffix=".pem")
    with os.fdopen(descriptor, "w") as file:
        file.write(ca_cert)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _body(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _server_message(content: Any) -> str:
    """InfluxDB's {"error": "..."} text, or the body as it came."""
    try:
        return str(json.loads(content)["error"])
    except (ValueError, TypeError, KeyError):
        return str(content).strip()


def _partial_write_dropped(message: str, points: int) -> int:
    """How many points of a refused batch InfluxDB dropped: its "dropped=N" (a partial write),
    else all of them."""
    match = re.search(r"dropped=(\d+)", message)
    return min(points, int(match.group(1))) if match else points


def _explain_400(message: str, body: bytes) -> str:
    """The measurement, field and first offending line of a batch InfluxDB refused."""
    conflict = _FIELD_CONFLICT.search(message)
    if conflict:
        measurement, field_name = conflict["m"], conflict["field"]
        prefix = measurement.replace(" ", "\\ ").replace(",", "\\,").encode()
        needle = f"{field_name}=".encode()
        line = next(
            (
                raw.decode()
                for raw in body.splitlines()
                if raw.startswith(prefix)
                and raw[len(prefix) : len(prefix) + 1] in (b",", b" ")
                and needle in raw
            ),
            "?",
        )
        return (
            f"InfluxDB refused measurement {measurement!r} field {field_name!r} (HTTP 400, "
            f"{message}); first offending line: {line}; a field keeps the type it "
            "was first written with: write the same type, or use a new field name"
        )
    unparsable = _UNPARSABLE.search(message)
    line = unparsable["line"] if unparsable else body.split(b"\n", 1)[0].decode()
    measurement = re.split(r"(?<!\\)[, ]", line, maxsplit=1)[0]
    return (
        f"InfluxDB refused points of measurement {measurement!r} (HTTP 400, {message}); "
        f"first offending line: {line}"
    )
