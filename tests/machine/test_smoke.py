"""The harness itself: a container boots, runs commands, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

from machine_harness import Container, _processes_in_group, booted, mounts_below


def test_boots_and_runs_systemd(container: Container) -> None:
    state = container.run(["systemctl", "is-system-running"], check=False).stdout.strip()
    assert state in ("running", "degraded")
    assert container.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    hostname = container.run(["hostname"]).stdout.strip()
    assert hostname == "ucm-machine-test"


def test_stop_leaves_no_process_or_mount(machine_image: Path) -> None:
    with booted(machine_image) as container:
        assert container.process is not None
        group = container.process.pid
        leader = container.leader
        workdir = container.workdir
        assert leader is not None
        assert Path(f"/proc/{leader}").exists()
    assert _processes_in_group(group) == []
    assert not Path(f"/proc/{leader}").exists()
    assert mounts_below(workdir) == []
    assert not workdir.exists()
