"""The base class of every collector, and the command line of its `__main__.py`.

    class QueueSizes(Metric):
        def collect(self):
            for queue, size in ...:
                yield {"measurement": "queue_size", "tags": {"queue": queue},
                       "fields": {"count": size}}

    def run_metric(dry_run=False, verbose=False):
        QueueSizes(dry_run, verbose).run()

`run()` writes the points in batches (replaying points that earlier runs could not write
first), then one `collector_run` health point, and raises `CollectorError` if anything failed.
With `dry_run` it prints the line protocol instead and needs no credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import discovery, health, helpers
from .errors import CollectorError
from .influx import InfluxWriter, Stopped, WriteSettings, load_credentials
from .lineprotocol import LineEncoder
from .spool import DEFAULT_MAX_BYTES, Spool

HEALTH_MEASUREMENT = "collector_run"


def state_directory(collector: str) -> Path:
    """`$STATE_DIRECTORY` under systemd; otherwise a folder per collector in the user's state."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "ubuntu-community-metrics" / collector


class Metric:
    """Subclass it and implement `collect()`; see the module's docstring."""

    # Collectors and tests may override these on their subclass.
    write_settings = WriteSettings()
    spool_max_bytes = DEFAULT_MAX_BYTES
    # Default: the package under metrics.collectors. Not `name`, which subclasses may use.
    collector_name: str | None = None

    def __init__(self, dry_run: bool = False, verbose: bool = False) -> None:
        self.dry_run = dry_run
        self.verbose = verbose
        module = type(self).__module__.split(".")
        self.collector_name = self.collector_name or (
            module[2]
            if module[:2] == ["metrics", "collectors"] and len(module) > 2
            else type(self).__name__
        )
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("metrics").setLevel(logging.DEBUG if verbose else logging.INFO)
        self.log = logging.getLogger(f"metrics.collectors.{self.collector_name}")
        self.state_dir = state_directory(self.collector_name)
        self._counters: helpers.Counters | None = None

    def collect(self) -> Iterable[dict[str, Any]]:
        """The points to write: a list, or a generator (which keeps memory use flat)."""
        raise NotImplementedError(f"{type(self).__name__} must implement collect()")

    def fetch_json(self, url: str) -> Any:
        return helpers.fetch_json(url)

    @property
    def counters(self) -> helpers.Counters:
        """Persistent running totals, for `self.counters.increment(...)`."""
        if self._counters is None:
            self._counters = helpers.Counters(self.state_dir / "counters.json")
        return self._counters

    def run(self) -> None:
        if self.dry_run:
            encoder = LineEncoder()
            count = 0
            for count, point in enumerate(self.collect(), start=1):
                print(encoder.encode(point, count - 1))
            self.log.info("dry run: %d points not written", count)
            return

        started = time.monotonic()
        writer = InfluxWriter(
            load_credentials(),
            Spool(self.state_dir / "spool", self.spool_max_bytes),
            self.write_settings,
        )
        failure = None
        with self._one_run_at_a_time(), _StopOnSigterm(writer) as sigterm:
            try:
                sigterm.interrupts = True
                try:
                    writer.replay_spool()
                    writer.write(self.collect())
                finally:
                    sigterm.interrupts = False
            except Stopped:
                writer.abandon()
            except CollectorError as error:
                failure = str(error)
            except Exception as error:
                self.log.exception("collector %s crashed", self.collector_name)
                failure = f"{type(error).__name__}: {error}"
            if writer.stopping:
                stopped = (
                    "stopped by SIGTERM (a timeout or systemctl stop) before the run ended; "
                    "unwritten points are spooled"
                )
                failure = f"{stopped}; {failure}" if failure else stopped
            if self._counters is not None:
                self._counters.save()
            self._write_health(writer, started, failure)

    def _one_run_at_a_time(self) -> contextlib.AbstractContextManager[None]:
        return _one_run_at_a_time(self.state_dir, self.collector_name or "", self.log)

    def _write_health(self, writer: InfluxWriter, started: float, failure: str | None) -> None:
        global _health_written
        result = writer.result
        errors = ([failure] if failure else []) + result.errors
        ok = not errors and not result.spooled and not result.dropped
        health = _health_point(
            self.collector_name or "",
            started,
            (result.written, result.spooled, result.dropped),
            errors,
        )
        _health_written = True
        self.log.info(
            "%d points written, %d spooled, %d dropped",
            result.written,
            result.spooled,
            result.dropped,
        )
        written, dropped = result.written, result.dropped  # the collector's, not the health's
        writer.write([health])  # spooled at once if stopped, also while it is being sent
        _record_run(self.state_dir, started, ok, written, dropped, writer.spool)
        if errors:
            raise CollectorError("; ".join(errors))
        if not ok:
            raise CollectorError(f"{result.spooled} points spooled and {result.dropped} dropped")


@contextlib.contextmanager
def _one_run_at_a_time(state_dir: Path, collector: str, log: logging.Logger) -> Iterator[None]:
    """Runs of one collector (its timer, `run-collector`, a person, a replay) take turns: two
    at once would replay the same spooled batches twice and count them twice."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "run.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another run of %s is in progress: waiting for it", collector)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def replay_spool(collector: str) -> int:
    """Write what `collector`'s spool holds without running the collector (`python3 -m metrics
    replay NAME`): a unit hands a collector's points over this way when the collector moves to
    another unit. 0 when the spool is empty afterwards, else 1."""
    log = logging.getLogger("metrics")
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("metrics").setLevel(logging.INFO)
    state_dir = state_directory(collector)
    spool = Spool(state_dir / "spool", DEFAULT_MAX_BYTES)
    if not spool.points():
        log.info("nothing spooled for %s", collector)
        return 0
    writer = InfluxWriter(load_credentials(), spool, WriteSettings())
    with _one_run_at_a_time(state_dir, collector, log):
        writer.replay_spool()
    left = spool.points()
    log.info(
        "%s: replayed %d spooled points, %d dropped, %d still spooled",
        collector,
        writer.result.written,
        writer.result.dropped,
        left,
    )
    return 0 if not left else 1


# Whether this process wrote its run's health point: main() writes one for a run that failed
# before Metric.run() could (constructing the collector, a login in its __init__).
_health_written = False


def _health_point(
    collector: str, started: float, counts: tuple[int, int, int], errors: list[str]
) -> dict[str, Any]:
    written, spooled, dropped = counts
    return {
        "measurement": HEALTH_MEASUREMENT,
        "tags": {
            "collector": collector,
            "host": socket.gethostname(),
            # The Juju unit that ran it, when the charm's unit file says so.
            **({"unit": os.environ["METRICS_UNIT"]} if os.environ.get("METRICS_UNIT") else {}),
        },
        "fields": {
            "duration": round(time.monotonic() - started, 3),
            "points_written": written,
            "points_spooled": spooled,
            "points_dropped": dropped,
            "ok": not errors and not spooled and not dropped,
            "error": "; ".join(errors)[:1000],
        },
        "time": time.time_ns(),
    }


def health_written() -> bool:
    """Whether this process wrote its run's health point (or spooled it)."""
    return _health_written


def _record_run(
    state_dir: Path, started: float, ok: bool, written: int, dropped: int, spool: Spool
) -> None:
    """Keep the run in health.json for the unit's metrics endpoint; a failure is only logged:
    the points are written already."""
    ended = time.time()
    try:
        health.record_run(
            state_dir,
            started=ended - (time.monotonic() - started),
            ended=ended,
            ok=ok,
            written=written,
            dropped=dropped,
            spooled_now=spool.points(),
        )
    except OSError as error:
        logging.getLogger("metrics").error(
            "cannot record the run in %s: %s", state_dir / health.FILE_NAME, error
        )


def report_early_failure(collector: str, started: float, failure: str) -> None:
    """The health point of a run that ended before Metric.run() reported, written (or spooled)
    as run() writes its own, and the run kept in health.json; a failure to write it is only
    logged."""
    log = logging.getLogger("metrics")
    state_dir = state_directory(collector)
    spool = Spool(state_dir / "spool", DEFAULT_MAX_BYTES)
    try:
        writer = InfluxWriter(load_credentials(), spool, WriteSettings())
        writer.write([_health_point(collector, started, (0, 0, 0), [failure])])
    except Exception as error:  # the run failed already: say why there is no health point
        log.error("no collector_run point for %s: %s: %s", collector, type(error).__name__, error)
    _record_run(state_dir, started, False, 0, 0, spool)


def _warn_if_skipped(collector: str) -> None:
    """Say so when the charm would not schedule this collector (a bad RUN_INTERVAL, say): a
    run by hand works, yet on a unit it would never run."""
    tree = Path(__file__).resolve().parents[2]
    if not (tree / "metrics" / "collectors" / collector).is_dir():
        return
    problem = discovery.inspect_collector(tree, collector).problem
    if problem:
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("metrics").warning(
            "the charm skips this collector, so it never runs on a unit: %s", problem
        )


def _collector_of(run_metric: Callable[..., Any]) -> str:
    """The collector a `run_metric` belongs to: its package under metrics.collectors."""
    parts = str(getattr(run_metric, "__module__", "")).split(".")
    if parts[:2] == ["metrics", "collectors"] and len(parts) > 2:
        return parts[2]
    return parts[-1]


class _StopOnSigterm:
    """While active, SIGTERM stops the writer's retries; it also raises `Stopped` once in the
    main thread while `interrupts` is true, to cut short a collector or a wait that hangs.

    Only the main thread can handle signals; elsewhere this does nothing.
    """

    def __init__(self, writer: InfluxWriter) -> None:
        self.writer = writer
        self.interrupts = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        first = not self.writer.stopping
        self.writer.stop()
        if first and self.interrupts:
            raise Stopped


def run_metric_main(module: str, cls: str) -> None:
    """The original framework's `__main__.py` entry point, kept for collectors that use it:
    `run_metric_main("metrics.collectors.<name>", "<Class>")`."""
    metric = getattr(importlib.import_module(module), cls)

    def run_metric(dry_run: bool = False, verbose: bool = False) -> None:
        metric(dry_run=dry_run, verbose=verbose).run()

    run_metric.__module__ = module
    sys.exit(main(run_metric))


def main(run_metric: Callable[..., Any], argv: list[str] | None = None) -> int:
    """The command line of a collector's `__main__.py`: `sys.exit(main(run_metric))`."""
    parser = argparse.ArgumentParser(description="Run this collector once.")
    parser.add_argument(
        "-n", "--dry-run", action="store_true", help="print the points instead of writing them"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    started = time.monotonic()
    log = logging.getLogger("metrics")
    _warn_if_skipped(_collector_of(run_metric))
    try:
        run_metric(dry_run=args.dry_run, verbose=args.verbose)
    except CollectorError as error:
        if not _health_written and not args.dry_run:
            report_early_failure(_collector_of(run_metric), started, str(error))
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        log.error("collector failed: %s", error)
        return 1
    except Exception as error:  # before run(): constructing the collector, logging in
        failure = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        if not _health_written and not args.dry_run:
            report_early_failure(_collector_of(run_metric), started, failure)
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        log.error("collector failed before its run: %s", failure, exc_info=args.verbose)
        return 1
    return 0
