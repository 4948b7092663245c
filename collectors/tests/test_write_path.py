"""Metric.run() against a real influxd: points, health series, batches, spool, 400 and 401."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from metrics.lib.basemetric import Metric
from metrics.lib.errors import CollectorError
from metrics.lib.influx import WriteSettings
from metrics.lib.spool import Spool
from metrics.testing import InfluxServer, Response, UpstreamServer, free_port


class Numbers(Metric):
    """Yields `count` points of measurement "numbers", then raises `then_raise` if set."""

    collector_name = "numbers"

    def __init__(self, count: int, offset: int = 0, then_raise: Exception | None = None) -> None:
        super().__init__()
        self.count = count
        self.offset = offset
        self.then_raise = then_raise

    def collect(self) -> Iterator[dict[str, Any]]:
        for i in range(self.offset, self.offset + self.count):
            yield {"measurement": "numbers", "tags": {"n": str(i)}, "fields": {"value": i}}
        if self.then_raise:
            raise self.then_raise


def health(influx: InfluxServer, database: str) -> list[dict[str, Any]]:
    return influx.query('SELECT * FROM "collector_run"', database)


def write_to(monkeypatch: pytest.MonkeyPatch, host: str, port: int | str) -> None:
    """Point manual runs (INFLUXDB_*) at database "metrics" of a server of the test's own."""
    monkeypatch.setenv("INFLUXDB_HOSTNAME", host)
    monkeypatch.setenv("INFLUXDB_PORT", str(port))
    monkeypatch.setenv("INFLUXDB_DATABASE", "metrics")


def points_in(batch: Path) -> int:
    """The point count a spooled batch's name records: `<ns>-<seq>-<points>.<where>.lp`."""
    return int(batch.name.split("-")[2].split(".")[0])


def spool_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "state" / "spool").glob("*.lp"))


@pytest.mark.parametrize("connections", [1, 2, 3])
def test_points_and_health_point_are_written(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch, connections: int
) -> None:
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(connections=connections))

    Numbers(12_001).run()

    assert influx.count("numbers", database) == 12_001
    (run,) = health(influx, database)
    assert run["collector"] == "numbers"
    assert run["host"] == socket.gethostname()
    assert run["ok"] is True
    assert run["error"] == ""
    assert (run["points_written"], run["points_spooled"], run["points_dropped"]) == (12_001, 0, 0)
    assert run["duration"] > 0


def test_points_are_written_while_the_generator_still_runs(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(batch_size=10))
    seen_while_collecting = []

    class Watcher(Numbers):
        def collect(self) -> Iterator[dict[str, Any]]:
            for index, point in enumerate(super().collect()):
                if index == 95:
                    seen_while_collecting.append(influx.count("numbers", database))
                yield point

    Watcher(100).run()

    # Nine batches were handed over; at most one waits and two are in flight.
    assert seen_while_collecting[0] >= 60
    assert influx.count("numbers", database) == 100


def test_dry_run_prints_line_protocol_and_needs_no_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INFLUXDB_HOSTNAME", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    metric = Numbers(2)
    metric.dry_run = True

    metric.run()

    assert capsys.readouterr().out == "numbers,n=0 value=0i\nnumbers,n=1 value=1i\n"


def test_collector_error_is_raised_after_points_and_health_are_written(
    influx: InfluxServer, database: str
) -> None:
    with pytest.raises(CollectorError, match="upstream went away"):
        Numbers(3, then_raise=CollectorError("upstream went away")).run()

    assert influx.count("numbers", database) == 3
    (run,) = health(influx, database)
    assert run["ok"] is False
    assert run["error"] == "upstream went away"
    assert run["points_written"] == 3


def test_a_crash_in_collect_is_reported_in_the_health_point(
    influx: InfluxServer, database: str
) -> None:
    with pytest.raises(CollectorError, match="KeyError: 'entries'"):
        Numbers(1, then_raise=KeyError("entries")).run()

    (run,) = health(influx, database)
    assert run["ok"] is False
    assert run["error"] == "KeyError: 'entries'"


def test_invalid_point_fails_the_run_naming_its_index(influx: InfluxServer, database: str) -> None:
    class Bad(Numbers):
        def collect(self) -> Iterator[dict[str, Any]]:
            yield from super().collect()
            yield {"measurement": "numbers", "fields": {"value": {"nested": 1}}}

    with pytest.raises(
        CollectorError, match=r"point 2 \('numbers'\) field 'value' holds a nested"
    ):
        Bad(2).run()

    assert influx.count("numbers", database) == 2
    assert health(influx, database)[0]["ok"] is False


def test_missing_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("INFLUXDB_HOSTNAME", raising=False)
    monkeypatch.delenv("INFLUXDB_DATABASE", raising=False)

    with pytest.raises(CollectorError, match="no InfluxDB credentials: set INFLUXDB_HOSTNAME and"):
        Numbers(1).run()


def test_credentials_file_from_systemd_is_used_before_the_environment(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "influxdb").write_text(
        json.dumps(
            {
                "host": influx.host,
                "port": influx.port,
                "username": "",
                "password": "",
                "database": database,
                "ssl": False,
                "verify_ssl": True,
            }
        )
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("INFLUXDB_DATABASE", "no-such-database")

    Numbers(4).run()

    assert influx.count("numbers", database) == 4


def test_unreadable_credentials_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "influxdb").write_text('{"host": "db", "port": 8086, "ssl": "maybe"}')
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    with pytest.raises(CollectorError, match=r"influxdb: not a JSON object with host, port"):
        Numbers(1).run()


def test_spool_is_replayed_once_after_influxd_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        Metric, "write_settings", WriteSettings(batch_size=3, attempts=2, backoff=0.01)
    )
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with InfluxServer() as influx:
        influx.create_database("metrics")
        write_to(monkeypatch, influx.host, influx.port)
        influx.stop()

        with pytest.raises(CollectorError, match="points are spooled and replayed by the next"):
            Numbers(7).run()
        # 3 + 3 + 1 points, and the health point of the failed run
        assert [points_in(p) for p in spool_files(tmp_path)] == [3, 3, 1, 1]

        influx.start()
        Numbers(5, offset=7).run()

        assert spool_files(tmp_path) == []
        assert influx.count("numbers", database="metrics") == 12
        failed, replayed = health(influx, "metrics")
        assert (failed["ok"], failed["points_spooled"], failed["points_written"]) == (False, 7, 0)
        assert "cannot write to InfluxDB" in failed["error"]
        assert (replayed["ok"], replayed["points_written"]) == (True, 7 + 1 + 5)

        Numbers(1, offset=12).run()

        assert health(influx, "metrics")[-1]["points_written"] == 1
        assert influx.count("numbers", database="metrics") == 13


def test_full_spool_drops_the_oldest_batches_and_counts_them(
    influx: InfluxServer,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(batch_size=10, attempts=1))
    monkeypatch.setattr(Metric, "spool_max_bytes", 1000)  # room for 3 batches of ~250 bytes
    monkeypatch.setenv("INFLUXDB_PORT", str(free_port()))  # nothing listens there

    with pytest.raises(CollectorError):
        Numbers(100).run()

    assert "spool full (1000 bytes): dropped the 10 oldest spooled points" in caplog.text
    assert sum(p.stat().st_size for p in spool_files(tmp_path)) <= 1000

    monkeypatch.setenv("INFLUXDB_PORT", str(influx.port))
    Numbers(0).run()

    values = {row["value"] for row in influx.query('SELECT * FROM "numbers"', database)}
    assert 99 in values
    assert 0 not in values
    spooled_run, _ = health(influx, database)
    assert spooled_run["points_dropped"] == 80
    # Spooling the health point itself dropped 10 more; only the log can say so.
    assert caplog.text.count("dropped the 10 oldest spooled points") == 9
    assert len(values) == 10


def test_field_type_conflict_is_not_spooled_and_names_measurement_field_and_line(
    influx: InfluxServer, database: str, tmp_path: Path
) -> None:
    Numbers(1).run()

    class Words(Metric):
        collector_name = "words"

        def collect(self) -> list[dict[str, Any]]:
            return [
                {"measurement": "other", "fields": {"value": 1}},
                {"measurement": "numbers", "tags": {"n": "5"}, "fields": {"value": "five"}},
            ]

    with pytest.raises(CollectorError) as raised:
        Words().run()

    message = str(raised.value)
    assert "InfluxDB refused measurement 'numbers' field 'value' (HTTP 400" in message
    assert 'first offending line: numbers,n=5 value="five"' in message
    assert spool_files(tmp_path) == []
    words_run = [run for run in health(influx, database) if run["collector"] == "words"]
    assert words_run[0]["ok"] is False
    assert "field 'value'" in words_run[0]["error"]


def test_rejected_credentials_are_spooled_and_never_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with InfluxServer(auth=True) as influx:
        influx.create_database("metrics")
        influx.create_user("collector", "right-horse-battery")
        influx.grant("collector", "metrics", "WRITE")
        write_to(monkeypatch, influx.host, influx.port)
        monkeypatch.setenv("INFLUXDB_USERNAME", "collector")
        monkeypatch.setenv("INFLUXDB_PASSWORD", "wrong-staple-secret")

        with pytest.raises(CollectorError, match=r"InfluxDB rejected the credentials \(HTTP 401"):
            Numbers(3).run()

        assert len(spool_files(tmp_path)) == 2
        assert "wrong-staple-secret" not in caplog.text

        monkeypatch.setenv("INFLUXDB_PASSWORD", "right-horse-battery")
        Numbers(0).run()

        assert spool_files(tmp_path) == []
        assert influx.count("numbers", "metrics") == 3
        assert "right-horse-battery" not in caplog.text


def test_server_errors_and_429_are_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # influxd cannot be made to answer 503 or 429 on demand; a real HTTP server can.
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(attempts=3, backoff=0.01))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    answers: list[Response] = [
        (503, '{"error": "busy"}'),
        (429, '{"error": "slow down"}'),
        (204, ""),
    ]
    with UpstreamServer({"/write": answers}) as server:
        host, port = server.url.removeprefix("http://").split(":")
        write_to(monkeypatch, host, port)

        Numbers(2).run()

    assert [path.split("?")[0] for path in server.requests] == ["/write"] * 4
    assert server.bodies[2].startswith(b"numbers,n=0 value=0i ")
    assert b"collector_run,collector=numbers" in server.bodies[3]
    assert spool_files(tmp_path) == []


# A collector run as systemd runs it: its own process, which SIGTERM may stop at any moment.
_HANGING_COLLECTOR = """
import sys, time
from pathlib import Path
from metrics.lib.basemetric import Metric, main
from metrics.lib.influx import WriteSettings

class Hanging(Metric):
    collector_name = "hanging"
    # InfluxDB is down: without SIGTERM this run would retry for minutes.
    write_settings = WriteSettings(batch_size=10, attempts=100, backoff=60, max_backoff=60,
                                   retry_budget=600)

    def collect(self):
        for i in range(25):
            yield {"measurement": "numbers", "tags": {"n": str(i)}, "fields": {"value": i}}
        Path(sys.argv[1]).touch()
        time.sleep(3600)  # an upstream that never answers

sys.exit(main(lambda dry_run, verbose: Hanging(dry_run, verbose).run(), []))
"""


def test_sigterm_spools_every_unwritten_point_and_the_next_run_replays_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    marker = tmp_path / "collected"
    with InfluxServer() as influx:
        influx.create_database("metrics")
        write_to(monkeypatch, influx.host, influx.port)
        influx.stop()
        collectors = Path(__file__).resolve().parents[1]
        process = subprocess.Popen(
            [sys.executable, "-c", _HANGING_COLLECTOR, str(marker)],
            env={**os.environ, "PYTHONPATH": str(collectors)},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not marker.exists() and process.poll() is None:
                assert time.monotonic() < deadline, "the collector never yielded its points"
                time.sleep(0.05)
            time.sleep(0.2)  # the sender is in its backoff wait with the first batch
            stopped_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            seconds = time.monotonic() - stopped_at
        finally:
            process.kill()
            process.wait()

        assert process.returncode == 1, stderr
        assert seconds < 5, f"took {seconds:.1f} s to stop"
        assert "stopped by SIGTERM" in stderr
        # Batches in flight or queued, five points still being batched, the health point.
        spooled = sorted(points_in(p) for p in spool_files(tmp_path))
        assert sum(spooled) == 25 + 1, spooled

        influx.start()
        Numbers(0).run()

        assert spool_files(tmp_path) == []
        rows = influx.query('SELECT * FROM "numbers"', "metrics")
        assert sorted(row["value"] for row in rows) == list(range(25))
        stopped, replayed = health(influx, "metrics")
        assert (stopped["collector"], stopped["ok"]) == ("hanging", False)
        assert stopped["error"].startswith("stopped by SIGTERM")
        assert stopped["points_spooled"] == 25
        assert (replayed["ok"], replayed["points_written"]) == (True, 25 + 1)


def test_sigterm_during_retries_against_503_spools_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with UpstreamServer({"/write": (503, '{"error": "busy"}')}) as server:
        host, port = server.url.removeprefix("http://").split(":")
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "INFLUXDB_HOSTNAME": host,
            "INFLUXDB_PORT": port,
            "INFLUXDB_DATABASE": "metrics",
        }
        marker = tmp_path / "collected"
        process = subprocess.Popen(
            [sys.executable, "-c", _HANGING_COLLECTOR, str(marker)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not (server.requests and marker.exists()) and process.poll() is None:
                assert time.monotonic() < deadline, "the collector never posted"
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()

    assert process.returncode == 1, stderr
    assert "HTTP 503: busy" in stderr
    assert sum(points_in(p) for p in spool_files(tmp_path)) == 25 + 1


@pytest.mark.parametrize("name", ["batch_size", "connections", "attempts"])
def test_write_settings_below_one_are_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=f"WriteSettings.{name} must be at least 1"):
        WriteSettings(**{name: 0})


def test_a_full_spool_keeps_the_newest_batches_whatever_order_they_come_in(
    tmp_path: Path,
) -> None:
    # Two senders may spool batch 1 after batches 2 to 4.
    spool = Spool(tmp_path / "spool", max_bytes=300)
    body = b"x" * 100
    for made in (2, 3, 4):
        assert spool.add(body, 10 + made, made=made) == 0

    assert spool.add(body, 11, made=1) == 11
    assert spool.add(body, 15, made=5) == 12

    assert [batch.points for batch in spool.batches()] == [13, 14, 15]


def test_a_host_requests_cannot_use_spools_every_point(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not a connection error: requests refuses the URL. The points are kept, not lost."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    write_to(monkeypatch, "in valid", 8086)

    with pytest.raises(CollectorError, match=r"cannot write to InfluxDB at .*InvalidURL"):
        Numbers(50).run()

    spooled = sum(points_in(path) for path in spool_files(tmp_path))
    assert spooled == 51  # the 50 points and the run's health point


def test_a_partial_write_counts_the_points_influxdb_dropped(
    influx: InfluxServer, database: str
) -> None:
    Numbers(1).run()

    class Mixed(Metric):
        collector_name = "mixed"

        def collect(self) -> list[dict[str, Any]]:
            return [
                {"measurement": "other", "fields": {"value": 1}},
                {"measurement": "numbers", "tags": {"n": "5"}, "fields": {"value": "five"}},
                {"measurement": "other", "fields": {"value": 2}, "time": 1},
            ]

    with pytest.raises(CollectorError, match="field 'value'"):
        Mixed().run()

    (run,) = [run for run in health(influx, database) if run["collector"] == "mixed"]
    assert run["points_written"] == 2
    assert run["points_dropped"] == 1
    assert influx.count("other", database) == 2


@pytest.mark.skipif(os.getuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_under_the_spool_counts_the_points_as_dropped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(state)], check=True)
    try:
        monkeypatch.setenv("STATE_DIRECTORY", str(state))
        monkeypatch.setattr(Metric, "write_settings", WriteSettings(attempts=1, batch_size=500))
        write_to(monkeypatch, "127.0.0.1", free_port())  # nothing listens: every batch spools

        with pytest.raises(CollectorError) as raised:
            Numbers(2000).run()
    finally:
        subprocess.run(["umount", str(state)], check=True)

    message = str(raised.value)
    assert "No space left on device" in message
    assert "dropped" in message
    assert "cannot spool 500 points (No space left on device): dropped" in caplog.text


def test_a_stray_file_in_the_spool_is_set_aside_and_a_stale_partial_deleted(
    influx: InfluxServer, database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "state" / "spool"
    spool.mkdir(parents=True)
    (spool / "notes.lp").write_text("written by hand\n")
    (spool / "00000000000000000001-1-folder.lp").mkdir()
    stale = spool / ".00000000000000000002-1-5.lp.partial"
    stale.write_text("numbers,n=9 value=9i 1\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    kept = Spool(spool)
    kept.add(b"numbers,n=7 value=7i 1\n", 1)

    Numbers(2).run()
    Numbers(0).run()  # the next run is not stopped by them either

    assert influx.count("numbers", database) == 3  # two new points and the replayed one
    assert sorted(p.name for p in (spool / "rejected").iterdir()) == [
        "00000000000000000001-1-folder.lp",
        "notes.lp",
    ]
    assert not stale.exists()
    assert spool_files(tmp_path) == []
    assert "set aside notes.lp from the spool (not a batch this spool wrote)" in caplog.text


def test_two_runs_at_once_take_turns_and_replay_the_spool_once(
    influx: InfluxServer, database: str, tmp_path: Path
) -> None:
    """The timer's run and a run-collector at the same moment: the spooled batch is replayed
    and counted by one of them only."""
    spool = Spool(tmp_path / "state" / "spool")
    for n in range(20):
        spool.add(f"numbers,n=s{n} value={n}i 1\n".encode() * 50, 50)

    class Slow(Numbers):
        def collect(self) -> Iterator[dict[str, Any]]:
            time.sleep(0.3)  # both runs are inside run() at once without the lock
            yield from super().collect()

    errors: list[BaseException] = []

    def one_run() -> None:
        try:
            Slow(3).run()
        except BaseException as error:
            errors.append(error)

    runs = [threading.Thread(target=one_run) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)

    assert errors == []
    written = [row["points_written"] for row in health(influx, database)]
    assert sorted(written) == [3, 3 + 20 * 50]
    assert spool_files(tmp_path) == []


def test_points_spooled_for_one_database_are_not_replayed_into_another(
    influx: InfluxServer,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The credentials moved to another database while points were spooled: those points wait
    for their own database instead of landing in the new one."""
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(attempts=1))
    monkeypatch.setenv("INFLUXDB_PORT", str(free_port()))  # the first database's server is down
    with pytest.raises(CollectorError):
        Numbers(5).run()
    assert len(spool_files(tmp_path)) == 2  # the points and the health point

    other = f"{database}_moved"
    influx.create_database(other)
    monkeypatch.setenv("INFLUXDB_PORT", str(influx.port))
    monkeypatch.setenv("INFLUXDB_DATABASE", other)
    Numbers(1, offset=100).run()

    assert influx.count("numbers", other) == 1
    assert len(spool_files(tmp_path)) == 2
    assert "kept 6 spooled points that were going to another InfluxDB or database" in caplog.text

    monkeypatch.setenv("INFLUXDB_DATABASE", database)
    Numbers(0).run()

    assert influx.count("numbers", database) == 5
    assert spool_files(tmp_path) == []


def test_points_waiting_over_a_week_for_another_database_are_dropped_and_counted(
    influx: InfluxServer, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Metric, "write_settings", WriteSettings(attempts=1))
    monkeypatch.setenv("INFLUXDB_PORT", str(free_port()))
    with pytest.raises(CollectorError):
        Numbers(5).run()
    week_ago = time.time_ns() - 8 * 86400 * 10**9
    for batch in spool_files(tmp_path):  # made eight days ago, as far as the spool can tell
        batch.rename(batch.with_name(f"{week_ago:020d}{batch.name[20:]}"))
        week_ago += 1
    other = f"{database}_elsewhere"
    influx.create_database(other)
    monkeypatch.setenv("INFLUXDB_PORT", str(influx.port))
    monkeypatch.setenv("INFLUXDB_DATABASE", other)

    with pytest.raises(CollectorError, match="more than 7 days"):
        Numbers(1, offset=100).run()

    assert spool_files(tmp_path) == []
    (run,) = health(influx, other)
    assert (run["points_written"], run["points_dropped"]) == (1, 6)
    assert influx.count("numbers", database) == 0


class Trickler:
    """A server that takes a request, then answers one byte every half second, for ever: each
    read succeeds within any per-read timeout."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            answer = b"HTTP/1.1 204 No Content\r\nX-Padding: " + b"x" * 10_000
            for byte in answer:
                if self.closing.wait(0.5):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.closing.set()
        self.listener.close()


def test_a_server_trickling_its_answer_cannot_hold_a_run_past_its_budget(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    budget = 3.0
    monkeypatch.setattr(
        Metric, "write_settings", WriteSettings(timeout=2.0, retry_budget=budget, backoff=0.01)
    )
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    trickler = Trickler()
    write_to(monkeypatch, "127.0.0.1", trickler.port)
    started = time.monotonic()
    try:
        with pytest.raises(CollectorError, match="did not finish answering within the 3 s"):
            Numbers(20).run()
    finally:
        trickler.close()
    elapsed = time.monotonic() - started

    assert elapsed < budget + 2, f"the run took {elapsed:.1f} s"
    # Nothing lost: the points and the run's health point wait in the spool.
    assert sum(points_in(batch) for batch in spool_files(tmp_path)) == 21
