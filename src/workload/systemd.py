"""Installing rendered units into systemd, and reading back what systemd knows of collectors.

- `Systemctl`: runs `systemctl` and `journalctl` (found on PATH). Tests and benchmarks put a
  recording shim first on PATH, or pass another runner with the same two methods.
- `apply_units(wanted, unit_dir, *, systemctl) -> ApplyResult`: make `unit_dir` hold exactly
  the generated files in `wanted` (file name -> content, from `units.render_units`). Writes
  only files whose content changed (atomically), deletes stale generated files (recognised by
  name and generated-by first line: a foreign file is never touched, nor overwritten), then at
  most one `disable --now` (stale timers), one `daemon-reload`, one `enable --now` (every
  wanted timer, so a half-finished earlier apply heals) and one `restart` (timers whose file
  changed). Nothing changed: no write and no systemctl call. `apply_units({}, ...)` removes
  every generated unit.
- `collector_states(names, *, systemctl) -> dict[str, CollectorState]`: last result, last run,
  next run of many collectors in one `systemctl show` call (no call for no names).
- `run_collector_now(name, *, dry_run, systemctl) -> CollectorRun`: start the collector's
  service and wait for it (the run-collector action), then its exit status and log tail.
- `journal_tail(unit, lines, *, systemctl)`: the last lines a unit logged.

Every failing systemctl or journalctl call raises `SystemctlError` naming the command.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .timespan import USEC_INFINITY, parse_timespan
from .units import (
    collector_dry_run_service,
    collector_replay_service,
    collector_service,
    collector_timer,
    is_generated,
    is_generated_name,
    is_started,
)

# `systemctl show` prints timestamps in the local time zone; in UTC they parse the same on
# every systemd (`--timestamp=unix` arrived after 249, Ubuntu 22.04's).
_ENVIRONMENT_OVERRIDES = {"TZ": "UTC"}


class SystemctlError(RuntimeError):
    """A systemctl or journalctl call failed; the message names the command and its error."""


class Systemctl:
    """Runs `systemctl` and `journalctl`; each call is one process."""

    def __init__(self, systemctl: str = "systemctl", journalctl: str = "journalctl") -> None:
        self._systemctl = systemctl
        self._journalctl = journalctl

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._call(self._systemctl, args, check)

    def journal(self, *args: str) -> str:
        return self._call(self._journalctl, args, True).stdout

    @staticmethod
    def _call(program: str, args: Sequence[str], check: bool) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                [program, *args],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **_ENVIRONMENT_OVERRIDES},
            )
        except OSError as error:
            raise SystemctlError(f"{program} could not run: {error}") from None
        if check and result.returncode != 0:
            shown = " ".join(args) if len(args) < 8 else " ".join([*args[:6], "..."])
            raise SystemctlError(
                f"{program} {shown} failed (exit status {result.returncode}):"
                f" {result.stderr.strip() or result.stdout.strip()}"
            )
        return result


@dataclass(frozen=True)
class ApplyResult:
    """What one `apply_units` changed (unit file names) and how many systemctl calls it made."""

    written: list[str]
    removed: list[str]
    enabled: list[str]
    disabled: list[str]
    restarted: list[str]
    foreign: list[str]
    systemctl_calls: int

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def _generated_files(unit_dir: Path) -> dict[str, str]:
    """Our files in `unit_dir`: a generated name, a regular file, the generated-by line."""
    found: dict[str, str] = {}
    try:
        entries = list(os.scandir(unit_dir))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not is_generated_name(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        content = Path(entry.path).read_text(errors="replace")
        if is_generated(entry.name, content):
            found[entry.name] = content
    return found


def _write_files(unit_dir: Path, files: Mapping[str, str]) -> None:
    """Replace each file atomically (a temporary file renamed over it), with a single flush to
    disk for all of them: an fsync per file costs seconds for a thousand collectors."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    renames: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            temporary = unit_dir / f".{name}.tmp-{os.getpid()}"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            renames.append((temporary, unit_dir / name))
            with os.fdopen(fd, "w") as file:
                os.fchmod(fd, 0o644)  # whatever the umask
                file.write(content)
        os.sync()  # the contents are on disk before any name points at them
        for temporary, path in renames:
            os.replace(temporary, path)
    finally:
        for temporary, _ in renames:
            temporary.unlink(missing_ok=True)
    directory = os.open(unit_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def apply_units(
    wanted: Mapping[str, str], unit_dir: Path, *, systemctl: Systemctl | None = None
) -> ApplyResult:
    """Install exactly `wanted` into `unit_dir`, with as few systemctl calls as possible."""
    systemctl = systemctl or Systemctl()
    for name, content in wanted.items():
        if not is_generated(name, content):
            raise ValueError(f"{name} is not a generated unit file; render it with render_units")
    existing = _generated_files(unit_dir)
    foreign = sorted(
        name for name in wanted if name not in existing and os.path.lexists(unit_dir / name)
    )
    written = sorted(
        name for name in wanted if name not in foreign and existing.get(name) != wanted[name]
    )
    removed = sorted(name for name in existing if name not in wanted)
    if not written and not removed:
        return ApplyResult([], [], [], [], [], foreign, 0)

    calls = 0
    disabled = [name for name in removed if is_started(name)]
    if disabled:
        # Before deleting: systemctl needs the file to know what enabling it created.
        systemctl.run("disable", "--now", *disabled)
        calls += 1
    for name in removed:
        (unit_dir / name).unlink(missing_ok=True)
    _write_files(unit_dir, {name: wanted[name] for name in written})
    systemctl.run("daemon-reload")
    calls += 1
    enabled = sorted(name for name in wanted if is_started(name) and name not in foreign)
    if enabled:
        systemctl.run("enable", "--now", *enabled)
        calls += 1
    # A timer keeps its old schedule, the endpoint its old port, until restarted; a new one
    # was just started.
    restarted = [name for name in written if is_started(name) and name in existing]
    if restarted:
        systemctl.run("restart", *restarted)
        calls += 1
    return ApplyResult(written, removed, enabled, disabled, restarted, foreign, calls)


@dataclass(frozen=True)
class CollectorState:
    """What systemd knows of one collector's timer and service."""

    name: str
    scheduled: bool  # the timer is active (waiting)
    running: bool
    # "success", "exit-code (status 1)", "timeout", "running", None: never ran
    last_result: str | None
    last_run: datetime | None
    next_run: datetime | None

    @property
    def failed(self) -> bool:
        return self.last_result not in (None, "success", "running")


_SHOW_PROPERTIES = (
    "Id",
    "ActiveState",
    "Result",
    "ExecMainStatus",
    "ExecMainStartTimestamp",
    "LastTriggerUSec",
    "NextElapseUSecRealtime",
    "NextElapseUSecMonotonic",
)


def _show(systemctl: Systemctl, units: Sequence[str]) -> dict[str, dict[str, str]]:
    """Properties of each unit, from one `systemctl show` call, keyed by unit name."""
    output = systemctl.run("show", f"--property={','.join(_SHOW_PROPERTIES)}", *units).stdout
    shown: dict[str, dict[str, str]] = {}
    for block in output.split("\n\n"):
        properties = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in properties:
            shown[properties["Id"]] = properties
    return shown


def _timestamp(value: str | None) -> datetime | None:
    """A timestamp as `systemctl show` prints it with TZ=UTC ("Thu 2026-12-03 23:40:01 UTC");
    None when unset ("", "n/a") or in another form."""
    fields = (value or "").split()
    if len(fields) != 4 or fields[3] != "UTC":
        return None
    try:
        moment = datetime.strptime(f"{fields[1]} {fields[2]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc)


def _next_run(timer: Mapping[str, str]) -> datetime | None:
    realtime = _timestamp(timer.get("NextElapseUSecRealtime"))
    try:
        monotonic = parse_timespan(timer.get("NextElapseUSecMonotonic", ""))
    except ValueError:
        monotonic = 0
    if monotonic in (0, USEC_INFINITY):
        return realtime
    # OnUnitInactiveSec= is on the monotonic clock: turn it into wall-clock time.
    wall = time.time() + monotonic / 1_000_000 - time.monotonic()
    elapse = datetime.fromtimestamp(wall, tz=timezone.utc).replace(microsecond=0)
    return min(elapse, realtime) if realtime else elapse


def _last_result(service: Mapping[str, str]) -> str | None:
    if _timestamp(service.get("ExecMainStartTimestamp")) is None:
        return None
    result = service.get("Result", "")
    if result == "exit-code":
        return f"exit-code (status {service.get('ExecMainStatus', '?')})"
    return result or None


def collector_states(
    names: Sequence[str], *, systemctl: Systemctl | None = None
) -> dict[str, CollectorState]:
    """State of each named collector's timer and service, read with one systemctl call."""
    if not names:
        return {}
    systemctl = systemctl or Systemctl()
    units = [unit for name in names for unit in (collector_timer(name), collector_service(name))]
    shown = _show(systemctl, units)
    states = {}
    for name in names:
        timer = shown.get(collector_timer(name), {})
        service = shown.get(collector_service(name), {})
        running = service.get("ActiveState") in ("activating", "active", "deactivating")
        states[name] = CollectorState(
            name=name,
            scheduled=timer.get("ActiveState") == "active",
            running=running,
            # systemd resets Result when a run starts: "success" would be a guess.
            last_result="running" if running else _last_result(service),
            last_run=_timestamp(timer.get("LastTriggerUSec"))
            or _timestamp(service.get("ExecMainStartTimestamp")),
            next_run=_next_run(timer),
        )
    return states


@dataclass(frozen=True)
class CollectorRun:
    """One run started by `run_collector_now`."""

    exit_status: int
    result: str
    log_tail: str


def replay_spools(
    names: Sequence[str], *, wait: bool, systemctl: Systemctl | None = None
) -> list[str]:
    """Start the replay service of each collector in `names` (their spooled points written
    without running them); with `wait`, until they end. The names whose replay failed (points
    still spooled, InfluxDB unreachable); without `wait`, none."""
    if not names:
        return []
    systemctl = systemctl or Systemctl()
    units = [collector_replay_service(name) for name in names]
    if not wait:
        systemctl.run("start", "--no-block", *units)
        return []
    # One start job per unit, all at once: a oneshot's job ends when its run ends.
    systemctl.run("start", *units, check=False)
    shown = _show(systemctl, units)
    return [
        name
        for name, unit in zip(names, units, strict=True)
        if shown.get(unit, {}).get("Result", "success") != "success"
    ]


def run_collector_now(
    name: str, *, dry_run: bool = False, lines: int = 30, systemctl: Systemctl | None = None
) -> CollectorRun:
    """Run a collector's service now and wait for it; its exit status and the log of this run.

    `dry_run` uses the dry-run twin of the service template, so the run changes nothing and
    the collector's timer and configuration stay as they are.
    """
    systemctl = systemctl or Systemctl()
    unit = collector_dry_run_service(name) if dry_run else collector_service(name)
    # A oneshot service's start job ends when the run ends; a failed run fails the call.
    started = systemctl.run("start", unit, check=False)
    properties = systemctl.run(
        "show", "--property=Result,ExecMainStatus,InvocationID", unit
    ).stdout
    shown = dict(line.split("=", 1) for line in properties.splitlines() if "=" in line)
    if started.returncode != 0 and shown.get("Result") == "success":
        # The run never started (no such unit, a refused job): nothing of it to report.
        raise SystemctlError(
            f"systemctl start {unit} failed (exit status {started.returncode}):"
            f" {started.stderr.strip()}"
        )
    invocation = shown.get("InvocationID", "")
    if invocation:
        log = systemctl.journal(
            f"_SYSTEMD_INVOCATION_ID={invocation}", "-n", str(lines), "-o", "cat", "--no-pager"
        )
    else:
        log = journal_tail(unit, lines, systemctl=systemctl)
    status = shown.get("ExecMainStatus", "")
    return CollectorRun(
        exit_status=int(status) if status.lstrip("-").isdigit() else -1,
        result=shown.get("Result", "unknown"),
        log_tail=log,
    )


def journal_tail(unit: str, lines: int = 30, *, systemctl: Systemctl | None = None) -> str:
    """The last `lines` messages `unit` logged, without metadata."""
    systemctl = systemctl or Systemctl()
    return systemctl.journal("-u", unit, "-n", str(lines), "-o", "cat", "--no-pager")
