"""apply_units and friends on real files, with a recording systemctl shim first on PATH.

The shim is a real executable run as a subprocess: it appends each command line to a log and
answers `show` with canned text, so each test can count and read the calls systemd would get.
"""

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from workload.discovery import Collector
from workload.systemd import (
    Systemctl,
    SystemctlError,
    apply_units,
    collector_states,
    journal_tail,
    run_collector_now,
)
from workload.timespan import format_timespan
from workload.units import UnitOptions, render_units

SHIM = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "$SHIM_DIR/calls"
if [ "$(basename "$0")" = journalctl ]; then
    cat "$SHIM_DIR/journal" 2>/dev/null
elif [ "$1" = show ]; then
    cat "$SHIM_DIR/show" 2>/dev/null
fi
if [ -f "$SHIM_DIR/exit-$1" ]; then
    cat "$SHIM_DIR/stderr-$1" >&2 2>/dev/null
    exit "$(cat "$SHIM_DIR/exit-$1")"
fi
exit 0
"""


class Shim:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def calls(self) -> list[str]:
        log = self.folder / "calls"
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return calls

    def answer(self, verb: str, text: str) -> None:
        (self.folder / verb).write_text(text)

    def fail(self, verb: str, status: int, stderr: str) -> None:
        (self.folder / f"exit-{verb}").write_text(str(status))
        (self.folder / f"stderr-{verb}").write_text(stderr)


@pytest.fixture
def shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shim:
    folder = tmp_path / "shim"
    folder.mkdir()
    for program in ("systemctl", "journalctl"):
        path = folder / program
        path.write_text(SHIM)
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    monkeypatch.setenv("SHIM_DIR", str(folder))
    return Shim(folder)


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "systemd" / "system"


def units_for(*collectors: tuple[str, str], pull: bool = True) -> dict[str, str]:
    return render_units(
        [Collector(name, interval, None) for name, interval in collectors],
        UnitOptions(pull=pull),
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in folder.iterdir()}


def test_first_apply_writes_everything_with_two_calls(shim: Shim, unit_dir: Path) -> None:
    wanted = units_for(("a", "5m"), ("b", "15s"))
    result = apply_units(wanted, unit_dir, systemctl=Systemctl())
    assert sorted(path.name for path in unit_dir.iterdir()) == sorted(wanted)
    for name, content in wanted.items():
        assert (unit_dir / name).read_text() == content
        assert (unit_dir / name).stat().st_mode & 0o777 == 0o644
    started = [
        "metrics-collector@a.timer",
        "metrics-collector@b.timer",
        "metrics-exporter.service",
        "metrics-pull.timer",
    ]
    assert shim.calls() == [
        "systemctl daemon-reload",
        f"systemctl enable --now {' '.join(started)}",
    ]
    assert result.systemctl_calls == 2
    assert result.written == sorted(wanted)
    assert result.enabled == started
    assert (result.removed, result.disabled, result.restarted) == ([], [], [])


def test_nothing_changed_means_no_write_and_no_call(shim: Shim, unit_dir: Path) -> None:
    wanted = units_for(("a", "5m"), ("b", "15s"))
    apply_units(wanted, unit_dir)
    shim.calls()
    before = snapshot(unit_dir)
    result = apply_units(units_for(("a", "5m"), ("b", "15s")), unit_dir)
    assert shim.calls() == []
    assert snapshot(unit_dir) == before
    assert result.systemctl_calls == 0
    assert not result.changed


def test_changed_interval_restarts_only_that_timer(shim: Shim, unit_dir: Path) -> None:
    apply_units(units_for(("a", "5m"), ("b", "15s")), unit_dir)
    shim.calls()
    result = apply_units(units_for(("a", "10m"), ("b", "15s")), unit_dir)
    assert result.written == ["metrics-collector@a.timer"]
    assert "OnUnitInactiveSec=10min" in (unit_dir / "metrics-collector@a.timer").read_text()
    calls = shim.calls()
    assert calls[0] == "systemctl daemon-reload"
    assert calls[1].startswith("systemctl enable --now ")
    assert calls[2:] == ["systemctl restart metrics-collector@a.timer"]


def test_config_change_rewrites_the_service_without_restarting_timers(
    shim: Shim, unit_dir: Path
) -> None:
    apply_units(units_for(("a", "5m")), unit_dir)
    shim.calls()
    wanted = render_units([Collector("a", "5m", None)], UnitOptions(dry_run=True))
    result = apply_units(wanted, unit_dir)
    assert result.written == ["metrics-collector@.service"]
    assert result.restarted == []
    assert len(shim.calls()) == 2  # daemon-reload, enable --now


def test_removed_collector_loses_its_timer(shim: Shim, unit_dir: Path) -> None:
    apply_units(units_for(("a", "5m"), ("b", "15s")), unit_dir)
    shim.calls()
    result = apply_units(units_for(("a", "5m")), unit_dir)
    assert not (unit_dir / "metrics-collector@b.timer").exists()
    assert (unit_dir / "metrics-collector@a.timer").exists()
    calls = shim.calls()
    assert calls[:2] == [
        "systemctl disable --now metrics-collector@b.timer",
        "systemctl daemon-reload",
    ]
    assert calls[2].startswith("systemctl enable --now ")
    assert len(calls) == 3
    assert (result.removed, result.disabled) == (["metrics-collector@b.timer"],) * 2


def test_foreign_files_are_never_touched(shim: Shim, unit_dir: Path) -> None:
    unit_dir.mkdir(parents=True)
    # An operator's own unit with one of our names, a masked collector timer, unrelated units.
    (unit_dir / "metrics-collector@own.timer").write_text("[Timer]\nOnCalendar=daily\n")
    (unit_dir / "metrics-collector@masked.timer").symlink_to("/dev/null")
    (unit_dir / "cron.service").write_text("# Generated by ubuntu-community-metrics\n")
    (unit_dir / "metrics-collector@stale.timer.bak").write_text("x")
    before = {p.name: p.read_text() for p in unit_dir.iterdir() if not p.is_symlink()}

    result = apply_units(units_for(("own", "5m"), ("masked", "5m"), ("a", "5m")), unit_dir)
    after = {p.name: p.read_text() for p in unit_dir.iterdir() if p.name in before}
    assert after == before
    assert os.readlink(unit_dir / "metrics-collector@masked.timer") == "/dev/null"
    assert result.foreign == ["metrics-collector@masked.timer", "metrics-collector@own.timer"]
    enable = [call for call in shim.calls() if " enable " in call]
    assert enable == [
        "systemctl enable --now metrics-collector@a.timer metrics-exporter.service"
        " metrics-pull.timer"
    ]

    # Removing everything leaves them too.
    apply_units({}, unit_dir)
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(
        [*before, "metrics-collector@masked.timer"]
    )


def test_remove_everything(shim: Shim, unit_dir: Path) -> None:
    apply_units(units_for(("a", "5m"), ("b", "15s")), unit_dir)
    shim.calls()
    result = apply_units({}, unit_dir)
    assert list(unit_dir.iterdir()) == []
    assert shim.calls() == [
        "systemctl disable --now metrics-collector@a.timer metrics-collector@b.timer"
        " metrics-exporter.service metrics-pull.timer",
        "systemctl daemon-reload",
    ]
    assert result.systemctl_calls == 2
    assert apply_units({}, unit_dir).systemctl_calls == 0


def test_writes_are_atomic_and_leave_no_temporary_file(shim: Shim, unit_dir: Path) -> None:
    apply_units(units_for(("a", "5m")), unit_dir)
    apply_units(units_for(("a", "7m")), unit_dir)
    assert not [p.name for p in unit_dir.iterdir() if p.name.startswith(".")]


def test_refuses_a_file_that_is_not_generated(shim: Shim, unit_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"evil\.service is not a generated unit file"):
        apply_units({"evil.service": "[Service]\nExecStart=/bin/true\n"}, unit_dir)
    assert shim.calls() == []


def test_systemctl_failure_names_the_command(shim: Shim, unit_dir: Path) -> None:
    shim.fail("daemon-reload", 1, "Failed to reload daemon: Access denied")
    with pytest.raises(SystemctlError, match=r"systemctl daemon-reload failed .*Access denied"):
        apply_units(units_for(("a", "5m")), unit_dir)


def test_collector_states_in_one_call(shim: Shim) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    in_two_minutes = format_timespan(int((time.monotonic() + 120) * 1_000_000))
    # As systemctl prints it with TZ=UTC, whatever the unit's time zone.
    last = (now - timedelta(minutes=3)).strftime("%a %Y-%m-%d %H:%M:%S UTC")
    shim.answer(
        "show",
        f"""Id=metrics-collector@a.timer
ActiveState=active
LastTriggerUSec={last}
NextElapseUSecRealtime=
NextElapseUSecMonotonic={in_two_minutes}

Id=metrics-collector@a.service
ActiveState=inactive
Result=success
ExecMainStatus=0
ExecMainStartTimestamp={last}

Id=metrics-collector@b.timer
ActiveState=active
LastTriggerUSec={last}
NextElapseUSecRealtime=
NextElapseUSecMonotonic=infinity

Id=metrics-collector@b.service
ActiveState=failed
Result=exit-code
ExecMainStatus=3
ExecMainStartTimestamp={last}

Id=metrics-collector@new.timer
ActiveState=active
LastTriggerUSec=
NextElapseUSecRealtime=
NextElapseUSecMonotonic=0

Id=metrics-collector@new.service
ActiveState=inactive
Result=success
ExecMainStatus=0
ExecMainStartTimestamp=
""",
    )
    states = collector_states(["a", "b", "new"], systemctl=Systemctl())
    (call,) = shim.calls()
    assert call.startswith("systemctl show --property=Id,")
    assert call.endswith(
        " metrics-collector@a.timer metrics-collector@a.service"
        " metrics-collector@b.timer metrics-collector@b.service"
        " metrics-collector@new.timer metrics-collector@new.service"
    )
    a, b, new = states["a"], states["b"], states["new"]
    assert (a.last_result, a.failed, a.scheduled, a.running) == ("success", False, True, False)
    assert a.last_run == now - timedelta(minutes=3)
    assert a.next_run is not None
    assert abs((a.next_run - (now + timedelta(minutes=2))).total_seconds()) < 3
    assert (b.last_result, b.failed, b.next_run) == ("exit-code (status 3)", True, None)
    assert (new.last_result, new.failed, new.last_run, new.next_run) == (None, False, None, None)


def test_a_collector_running_now_shows_running_not_the_result_systemd_reset(
    shim: Shim,
) -> None:
    shim.answer(
        "show",
        """Id=metrics-collector@slow.timer
ActiveState=active
LastTriggerUSec=Tue 2023-11-14 22:13:20 UTC

Id=metrics-collector@slow.service
ActiveState=activating
Result=success
ExecMainStatus=0
ExecMainStartTimestamp=Tue 2023-11-14 22:13:20 UTC
""",
    )
    slow = collector_states(["slow"], systemctl=Systemctl())["slow"]
    assert (slow.running, slow.last_result, slow.failed) == (True, "running", False)


def test_collector_states_without_names_makes_no_call(shim: Shim) -> None:
    assert collector_states([], systemctl=Systemctl()) == {}
    assert shim.calls() == []


def test_run_collector_now_reports_exit_status_and_this_runs_log(shim: Shim) -> None:
    shim.fail("start", 3, "Job for metrics-collector@a.service failed.")
    shim.answer("show", "Result=exit-code\nExecMainStatus=2\nInvocationID=0123abcd\n")
    shim.answer("journal", "collecting\nCollectorError: upstream answered 500\n")
    run = run_collector_now("a", systemctl=Systemctl())
    assert (run.exit_status, run.result) == (2, "exit-code")
    assert run.log_tail == "collecting\nCollectorError: upstream answered 500\n"
    assert shim.calls() == [
        "systemctl start metrics-collector@a.service",
        "systemctl show --property=Result,ExecMainStatus,InvocationID metrics-collector@a.service",
        "journalctl _SYSTEMD_INVOCATION_ID=0123abcd -n 30 -o cat --no-pager",
    ]


def test_run_collector_now_dry_run_uses_the_dry_run_service(shim: Shim) -> None:
    shim.answer("show", "Result=success\nExecMainStatus=0\nInvocationID=\n")
    run = run_collector_now("a", dry_run=True, lines=5, systemctl=Systemctl())
    assert run.exit_status == 0
    assert shim.calls() == [
        "systemctl start metrics-collector-dry-run@a.service",
        "systemctl show --property=Result,ExecMainStatus,InvocationID"
        " metrics-collector-dry-run@a.service",
        "journalctl -u metrics-collector-dry-run@a.service -n 5 -o cat --no-pager",
    ]


def test_run_collector_now_when_the_run_never_started(shim: Shim) -> None:
    shim.fail("start", 5, "Failed to start metrics-collector@nope.service: Unit not found.")
    shim.answer("show", "Result=success\nExecMainStatus=0\nInvocationID=\n")
    with pytest.raises(SystemctlError, match="Unit not found"):
        run_collector_now("nope", systemctl=Systemctl())
    assert not [call for call in shim.calls() if call.startswith("journalctl")]


def test_journal_tail(shim: Shim) -> None:
    shim.answer("journal", "line 1\nline 2\n")
    assert journal_tail("metrics-collector@a.service", 2) == "line 1\nline 2\n"
    assert shim.calls() == ["journalctl -u metrics-collector@a.service -n 2 -o cat --no-pager"]


def test_missing_systemctl_is_a_systemctl_error(tmp_path: Path) -> None:
    with pytest.raises(SystemctlError, match="could not run"):
        Systemctl(systemctl=str(tmp_path / "nowhere" / "systemctl")).run("daemon-reload")
