"""reconcile, sync, list, run and remove on a temporary root: real files, real git, real pip,
and a recording `systemctl` that answers `show` as systemd would."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from githttp import TOKEN, GitHttpServer
from trees import write_tree

from workload import (
    InfluxCredentials,
    Report,
    Settings,
    list_collectors,
    reconcile,
    remove,
    run_collector,
    sync,
)
from workload.account import Account
from workload.paths import Paths
from workload.settings import Proxy, load_settings, save_settings
from workload.systemd import Systemctl

AS_ME = Account(None)
CREDENTIALS = InfluxCredentials("127.0.0.1", 8086, "metrics", "pw-9d2e", "metrics")


def collector(interval: str = "5m") -> str:
    return (
        f'RUN_INTERVAL = "{interval}"\n\n\n'
        "def run_metric(dry_run=False, verbose=False):\n    pass\n"
    )


class Recorder(Systemctl):
    """systemctl and journalctl as shell scripts that log their arguments; `show` prints what
    the test put in `answers` (blocks of properties, as `systemctl show` does)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "calls"
        self.show_answer = folder / "show"
        self.show_answer.write_text("")
        for program in ("systemctl", "journalctl"):
            script = folder / program
            script.write_text(
                "#!/bin/sh\n"
                f'printf "{program} %s\\n" "$*" >> {self.log}\n'
                f'if [ "$1" = show ]; then cat {self.show_answer}; fi\n'
                f'if [ -e {folder}/fail-"$1" ]; then echo "Access denied" >&2; exit 1; fi\n'
                f'if [ "{program}" = journalctl ]; then echo "collector said hello"; fi\n'
            )
            script.chmod(0o755)
        self.folder = folder
        super().__init__(str(folder / "systemctl"), str(folder / "journalctl"))

    def fail(self, command: str) -> None:
        """Make `systemctl COMMAND ...` fail from now on."""
        (self.folder / f"fail-{command}").touch()

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def changes(self) -> list[str]:
        """Calls that change something (everything but show and journalctl)."""
        return [c for c in self.calls() if not c.startswith(("systemctl show", "journalctl"))]

    def forget(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def systemctl(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "bin")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "charm" / "collectors",
        {"queue_size": collector("15m"), "bugs": collector("1h"), "broken": "x = (\n"},
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its inode and modification time."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            found[os.path.join(folder, name)] = (info.st_ino, info.st_mtime_ns)
    return found


def test_a_fresh_unit_runs_the_bundled_tree(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    report = reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )
    paths = Paths(root)

    assert report.problems == []
    assert report.scheduled == ["bugs", "queue_size"]
    assert [c.name for c in report.skipped] == ["broken"]
    assert (report.commit or "").startswith("bundled-")
    assert report.failing == []
    assert stat.S_IMODE(paths.credentials.stat().st_mode) == 0o600
    assert json.loads(paths.settings.read_text())["bundled_tree"] == str(bundled)
    assert (paths.current / "metrics" / "collectors" / "queue_size").is_dir()
    assert (paths.venv / "bin" / "python3").exists()
    units = sorted(p.name for p in paths.unit_dir.iterdir())
    assert units == [
        "metrics-collector-dry-run@.service",
        "metrics-collector-replay@.service",
        "metrics-collector@.service",
        "metrics-collector@bugs.timer",
        "metrics-collector@queue_size.timer",
        "metrics-exporter.service",
    ]
    service = (paths.unit_dir / "metrics-collector@.service").read_text()
    assert f"WorkingDirectory={paths.current}" in service
    assert systemctl.changes() == [
        "systemctl daemon-reload",
        "systemctl enable --now metrics-collector@bugs.timer metrics-collector@queue_size.timer"
        " metrics-exporter.service",
    ]


def test_reconciling_again_with_nothing_changed_writes_nothing_and_changes_nothing(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    settings = Settings(bundled_tree=bundled)
    first = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    before = snapshot(root)
    systemctl.forget()

    again = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    assert again == first
    assert snapshot(root) == before
    assert systemctl.changes() == []


def test_no_credentials_remove_the_file_and_rotated_ones_replace_it(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    settings = Settings(bundled_tree=bundled)
    paths = Paths(root)
    reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    reconcile(settings, None, root=root, systemctl=systemctl, account=AS_ME)
    assert not paths.credentials.exists()

    rotated = InfluxCredentials("127.0.0.1", 8086, "metrics", "rotated-7", "metrics")
    reconcile(settings, rotated, root=root, systemctl=systemctl, account=AS_ME)
    assert json.loads(paths.credentials.read_text())["password"] == "rotated-7"


def test_bad_settings_are_reported_and_change_nothing_but_the_credentials(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    good = Settings(bundled_tree=bundled)
    reconcile(good, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    saved = Paths(root).settings.read_text()
    systemctl.forget()
    bad = Settings(
        bundled_tree=bundled,
        pull_interval="1 fortnight",
        collector_timeout="0",
        metrics_address="localhost",
        metrics_port=70000,
    )

    report = reconcile(bad, None, root=root, systemctl=systemctl, account=AS_ME)

    assert (report.commit or "").startswith("bundled-")
    assert len(report.problems) == 4
    assert report.problems[0].startswith("config pull-interval='1 fortnight' is not a systemd")
    assert report.problems[1] == (
        "config collector-timeout='0' is shorter than 1s, the shortest it may be: set e.g. 10m"
    )
    assert report.problems[2] == (
        "config metrics-address='localhost' is not an IP address: set 127.0.0.1 (this machine"
        " only), 0.0.0.0 or :: (every interface)"
    )
    assert report.problems[3] == "config metrics-port=70000 is not a TCP port: set e.g. 9581"
    assert not Paths(root).credentials.exists()  # the relation went away: so do they
    assert Paths(root).settings.read_text() == saved
    assert systemctl.calls() == []


def test_a_changed_bundled_tree_is_picked_up_by_the_next_hook(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    settings = Settings(bundled_tree=bundled)
    first = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    shutil.rmtree(bundled / "metrics" / "collectors" / "bugs")
    write_tree(bundled, {"reviews": collector("30m")})
    systemctl.forget()

    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    assert report.commit != first.commit
    assert report.scheduled == ["queue_size", "reviews"]
    assert "systemctl disable --now metrics-collector@bugs.timer" in systemctl.changes()


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


class Remote:
    """A bare repository (the remote) and a working clone whose tree is `collectors/`."""

    def __init__(self, folder: Path) -> None:
        self.url = str(folder / "remote.git")
        self.work = folder / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", self.url)
        git("init", "--quiet", "--initial-branch=main", str(self.work))

    def push(self, collectors: dict[str, str], *, drop: tuple[str, ...] = ()) -> str:
        for name in drop:
            git(
                "-C",
                str(self.work),
                "rm",
                "-r",
                "--quiet",
                f"collectors/metrics/collectors/{name}",
            )
        write_tree(self.work / "collectors", collectors)
        git("-C", str(self.work), "add", "--all")
        git("-C", str(self.work), "commit", "--quiet", "--allow-empty", "-m", "change")
        git("-C", str(self.work), "push", "--quiet", self.url, "HEAD:main")
        return git("-C", str(self.work), "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "git")


def test_a_branch_is_checked_out_by_the_hook_and_followed_by_sync(
    root: Path, remote: Remote, systemctl: Recorder
) -> None:
    first = remote.push({"queue_size": collector(), "bugs": collector()})
    settings = Settings(repo=remote.url)

    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    second = remote.push({"reviews": collector("1h")}, drop=("bugs",))
    again = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    pulled = sync(root=root, systemctl=systemctl, account=AS_ME)

    assert report.commit == first
    assert report.problems == []
    assert {"metrics-pull.service", "metrics-pull.timer"} <= set(os.listdir(Paths(root).unit_dir))
    assert again.commit == first  # hooks never fetch: pulling is the timer's job
    assert pulled.old_commit == first
    assert pulled.new_commit == second
    assert pulled.added == ["reviews"]
    assert pulled.removed == ["bugs"]
    assert pulled.problems == []
    record = json.loads(Paths(root).sync_result.read_text())
    assert record["commit"] == second
    assert record["last_pull"]


def test_a_failed_pull_keeps_the_commit_and_the_status_says_so_until_a_pull_works(
    root: Path, remote: Remote, systemctl: Recorder, tmp_path: Path
) -> None:
    live = remote.push({"queue_size": collector()})
    settings = Settings(repo=remote.url)
    reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    shutil.move(remote.url, tmp_path / "away.git")

    pulled = sync(root=root, systemctl=systemctl, account=AS_ME)
    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    assert pulled.new_commit == live
    assert len(pulled.problems) == 1
    assert pulled.problems[0].startswith(f"cannot fetch branch 'main' of {remote.url} (")
    assert pulled.problems[0].endswith(f"(keeping {live[:12]})")
    assert report.problems == pulled.problems
    assert report.scheduled == ["queue_size"]

    shutil.move(tmp_path / "away.git", remote.url)
    assert sync(root=root, systemctl=systemctl, account=AS_ME).problems == []
    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    assert report.problems == []


def test_a_first_checkout_that_fails_is_named_and_the_pull_timer_keeps_trying(
    root: Path, systemctl: Recorder, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nothing-here.git")

    report = reconcile(
        Settings(repo=missing), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )

    assert report.commit is None
    assert report.scheduled == []
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        f"first checkout failed: cannot fetch branch 'main' of {missing} ("
    )
    assert (Paths(root).unit_dir / "metrics-pull.timer").is_file()


def test_a_changed_branch_is_checked_out_by_the_hook_without_waiting_for_the_timer(
    root: Path, remote: Remote, systemctl: Recorder
) -> None:
    remote.push({"queue_size": collector()})
    git("-C", str(remote.work), "checkout", "--quiet", "-b", "staging")
    staging = remote.push({"staging_only": collector()})
    git("-C", str(remote.work), "push", "--quiet", remote.url, "HEAD:staging")
    reconcile(
        Settings(repo=remote.url), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )

    report = reconcile(
        Settings(repo=remote.url, branch="staging"),
        CREDENTIALS,
        root=root,
        systemctl=systemctl,
        account=AS_ME,
    )

    assert report.commit == staging
    assert report.scheduled == ["queue_size", "staging_only"]


def test_switching_back_to_the_bundled_tree_removes_the_pull_timer_and_the_git_cache(
    root: Path, remote: Remote, bundled: Path, systemctl: Recorder
) -> None:
    remote.push({"queue_size": collector()})
    reconcile(
        Settings(repo=remote.url, bundled_tree=bundled),
        CREDENTIALS,
        root=root,
        systemctl=systemctl,
        account=AS_ME,
    )
    systemctl.forget()

    report = reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )

    paths = Paths(root)
    assert (report.commit or "").startswith("bundled-")
    assert not (paths.unit_dir / "metrics-pull.timer").exists()
    assert list(paths.git_cache.iterdir()) == []
    assert "systemctl disable --now metrics-pull.timer" in systemctl.changes()


SHOW_AFTER_RUNS = """\
Id=metrics-collector@bugs.timer
ActiveState=active
LastTriggerUSec=Wed 2026-11-18 11:06:40 UTC
NextElapseUSecRealtime=Wed 2026-11-18 12:06:40 UTC
NextElapseUSecMonotonic=0

Id=metrics-collector@bugs.service
ActiveState=inactive
Result=exit-code
ExecMainStatus=1
ExecMainStartTimestamp=Wed 2026-11-18 11:06:40 UTC

Id=metrics-collector@queue_size.timer
ActiveState=active
LastTriggerUSec=Wed 2026-11-18 11:08:20 UTC
NextElapseUSecRealtime=Wed 2026-11-18 11:23:20 UTC
NextElapseUSecMonotonic=0

Id=metrics-collector@queue_size.service
ActiveState=inactive
Result=success
ExecMainStatus=0
ExecMainStartTimestamp=Wed 2026-11-18 11:08:20 UTC
"""


def test_failing_collectors_are_read_from_systemd(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    systemctl.show_answer.write_text(SHOW_AFTER_RUNS)

    report = reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )

    assert report.failing == ["bugs"]
    assert (
        "systemctl show --property=Id,ActiveState,Result,ExecMainStatus,"
        "ExecMainStartTimestamp,LastTriggerUSec,NextElapseUSecRealtime,NextElapseUSecMonotonic "
        "metrics-collector@bugs.timer metrics-collector@bugs.service "
        "metrics-collector@queue_size.timer metrics-collector@queue_size.service"
    ) in systemctl.calls()


def test_list_collectors_shows_every_collector_with_its_last_and_next_run(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )
    systemctl.show_answer.write_text(SHOW_AFTER_RUNS)

    statuses = {s.name: s for s in list_collectors(root=root, systemctl=systemctl)}

    assert sorted(statuses) == ["broken", "bugs", "queue_size"]
    bugs = statuses["bugs"]
    assert (bugs.interval, bugs.problem) == ("1h", None)
    assert bugs.last_result == "exit-code (status 1)"
    assert bugs.last_run == "2026-11-18 11:06:40 UTC"
    assert bugs.next_run == "2026-11-18 12:06:40 UTC"
    assert statuses["queue_size"].last_result == "success"
    broken = statuses["broken"]
    assert broken.problem is not None
    assert "syntax error" in broken.problem
    assert (broken.last_result, broken.last_run, broken.next_run) == (None, None, None)


def test_list_collectors_before_any_checkout_is_empty(root: Path, systemctl: Recorder) -> None:
    assert list_collectors(root=root, systemctl=systemctl) == []


def test_run_collector_starts_its_unit_or_its_dry_run_twin_and_returns_the_log(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )
    systemctl.show_answer.write_text("Result=exit-code\nExecMainStatus=3\nInvocationID=abc123\n")
    systemctl.forget()

    result = run_collector("bugs", dry_run=False, root=root, systemctl=systemctl)
    dry = run_collector("bugs", dry_run=True, root=root, systemctl=systemctl)

    assert result.exit_status == 3
    assert result.log_tail.strip() == "collector said hello"
    assert dry.exit_status == 3
    assert systemctl.changes() == [
        "systemctl start metrics-collector@bugs.service",
        "systemctl start metrics-collector-dry-run@bugs.service",
    ]
    assert "journalctl _SYSTEMD_INVOCATION_ID=abc123 -n 30 -o cat --no-pager" in (
        systemctl.calls()
    )


def test_run_collector_names_the_known_collectors_or_why_one_cannot_run(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )
    systemctl.forget()

    with pytest.raises(ValueError, match="no collector named 'nope': known collectors: bugs, "):
        run_collector("nope", root=root, systemctl=systemctl)
    with pytest.raises(ValueError, match=r"collector 'broken' cannot run: .*syntax error"):
        run_collector("broken", root=root, systemctl=systemctl)
    assert systemctl.calls() == []


def test_a_failing_requirements_install_is_reported_and_retried_by_the_pull_not_each_hook(
    root: Path, remote: Remote, systemctl: Recorder, tmp_path: Path
) -> None:
    wheels = tmp_path / "empty-wheel-folder"
    wheels.mkdir()
    remote.push({"queue_size": collector()})
    (remote.work / "collectors" / "requirements.txt").write_text(
        f"--no-index\n--find-links {wheels}\nno-such-package-7f3a9c\n"
    )
    remote.push({})
    settings = Settings(repo=remote.url)

    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    venvs_after_failure = snapshot(Paths(root).venvs)
    again = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    assert len(report.problems) == 1
    assert report.problems[0].startswith("installing requirements.txt of the collectors tree")
    assert "no venv yet, so no collector can run" in report.problems[0]
    assert again.problems == report.problems
    assert snapshot(Paths(root).venvs) == venvs_after_failure  # pip was not run again
    assert report.scheduled == ["queue_size"]  # the timers are still installed

    (remote.work / "collectors" / "requirements.txt").write_text("")
    remote.push({})
    assert sync(root=root, systemctl=systemctl, account=AS_ME).problems == []
    assert (Paths(root).venv / "bin" / "python3").exists()


def test_sync_before_the_charm_configured_the_unit_says_so(
    root: Path, systemctl: Recorder
) -> None:
    result = sync(root=root, systemctl=systemctl, account=AS_ME)

    assert result.new_commit is None
    assert result.problems == [
        f"{Paths(root).settings} is missing: the charm has not configured this unit yet"
    ]


def test_remove_disables_and_deletes_everything_the_charm_wrote(
    root: Path, remote: Remote, systemctl: Recorder
) -> None:
    remote.push({"queue_size": collector()})
    reconcile(
        Settings(repo=remote.url), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )
    systemctl.forget()
    paths = Paths(root)
    (paths.unit_dir / "someone-else.service").write_text("[Service]\n")

    remove(root=root, systemctl=systemctl)

    assert systemctl.changes() == [
        # What its spool holds is written first, while the credentials are there.
        "systemctl start metrics-collector-replay@queue_size.service",
        "systemctl disable --now metrics-collector@queue_size.timer metrics-exporter.service"
        " metrics-pull.timer",
        "systemctl daemon-reload",
    ]
    assert os.listdir(paths.unit_dir) == ["someone-else.service"]
    assert not paths.config_dir.exists()
    assert not paths.state_dir.exists()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            Settings(repo="https://git.example/c.git", path="../elsewhere"),
            "config collectors-path='../elsewhere' must be a folder inside the repository "
            "(relative, no ..): set e.g. collectors",
        ),
        (
            Settings(repo="https://git.example/c.git", path="/srv/collectors"),
            "config collectors-path='/srv/collectors' must be a folder inside the repository "
            "(relative, no ..): set e.g. collectors",
        ),
        (
            Settings(repo="https://git.example/c.git", branch=" "),
            "config collectors-branch is empty: set it, e.g. to main",
        ),
        (
            Settings(pull_interval="500ms"),
            "config pull-interval='500ms' is shorter than 1s, the shortest it may be: set e.g. 1h",
        ),
    ],
)
def test_settings_that_cannot_work_name_the_option_and_the_fix(
    settings: Settings, problem: str
) -> None:
    assert settings.problems() == [problem]


def test_saved_settings_read_back_equal(tmp_path: Path) -> None:
    settings = Settings(
        repo="https://git.example/c.git",
        revision="v2",
        dry_run=True,
        proxy=Proxy(http="http://squid:3128", no_proxy="localhost"),
        bundled_tree=tmp_path / "charm" / "collectors",
    )
    path = tmp_path / "settings.json"

    assert save_settings(settings, path)
    assert not save_settings(settings, path)
    assert load_settings(path) == settings
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the repository URL may hold a token


def test_the_tree_and_venv_stay_reachable_by_the_collectors_under_a_strict_umask(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    old = os.umask(0o077)
    try:
        reconcile(
            Settings(bundled_tree=bundled),
            CREDENTIALS,
            root=root,
            systemctl=systemctl,
            account=AS_ME,
        )
    finally:
        os.umask(old)

    paths = Paths(root)
    init = paths.current / "metrics" / "collectors" / "bugs" / "__init__.py"
    for folder in (root / "var", root / "var" / "lib", paths.state_dir, paths.checkouts):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    assert init.stat().st_mode & 0o004
    assert (paths.venv / "pyvenv.cfg").stat().st_mode & 0o004
    assert stat.S_IMODE(paths.credentials.stat().st_mode) == 0o600


def test_a_hook_waits_for_a_pull_in_progress(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    settings = Settings(bundled_tree=bundled)
    reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    shutil.rmtree(bundled / "metrics" / "collectors" / "bugs")
    reports = []
    with Paths(root).lock.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a running `workload sync` holds
        hook = threading.Thread(
            target=lambda: reports.append(
                reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
            )
        )
        hook.start()
        hook.join(timeout=1)
        assert hook.is_alive()
        assert (Paths(root).unit_dir / "metrics-collector@bugs.timer").exists()
        fcntl.flock(lock, fcntl.LOCK_UN)
    hook.join(timeout=60)

    assert reports[0].scheduled == ["queue_size"]
    assert not (Paths(root).unit_dir / "metrics-collector@bugs.timer").exists()


def test_systemctl_failures_are_reported_not_raised(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    systemctl.fail("daemon-reload")
    systemctl.fail("show")

    report = reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )

    assert report.scheduled == ["bugs", "queue_size"]
    assert report.failing == []
    program = systemctl.folder / "systemctl"
    assert report.problems == [
        f"units written but not all applied: {program} daemon-reload failed (exit status 1): "
        "Access denied: see journalctl -xe",
        f"cannot read the collectors' state from systemd: {program} show "
        "--property=Id,ActiveState,Result,ExecMainStatus,ExecMainStartTimestamp,"
        "LastTriggerUSec,NextElapseUSecRealtime,NextElapseUSecMonotonic "
        "metrics-collector@bugs.timer metrics-collector@bugs.service "
        "metrics-collector@queue_size.timer metrics-collector@queue_size.service failed "
        "(exit status 1): Access denied",
    ]


@pytest.fixture
def forge(remote: Remote) -> Iterator[GitHttpServer]:
    """The remote served over smart HTTP behind a token, as a team's forge serves it."""
    with GitHttpServer(Path(remote.url).parent) as server:
        yield server


def test_a_token_in_collectors_repo_is_kept_in_root_only_files(
    root: Path, remote: Remote, forge: GitHttpServer, systemctl: Recorder
) -> None:
    commit = remote.push({"queue_size": collector()})
    settings = Settings(repo=forge.url("remote.git"))

    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    pulled = sync(root=root, systemctl=systemctl, account=AS_ME)

    assert report.commit == commit
    assert pulled.problems == []
    holding = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink() and TOKEN.encode() in path.read_bytes():
                holding.append((str(path.relative_to(root)), stat.S_IMODE(path.stat().st_mode)))
    assert holding == [("etc/ubuntu-community-metrics/settings.json", 0o600)]


def test_a_token_in_collectors_repo_is_on_no_command_line_during_a_fetch(
    root: Path, remote: Remote, forge: GitHttpServer, systemctl: Recorder
) -> None:
    remote.push({"queue_size": collector()})
    settings = Settings(repo=forge.url("remote.git"))
    forge.hold.clear()  # every request waits: the fetch stays in flight
    hook = threading.Thread(
        target=reconcile,
        args=(settings, CREDENTIALS),
        kwargs={"root": root, "systemctl": systemctl, "account": AS_ME},
    )
    hook.start()
    try:
        assert forge.waiting.wait(timeout=30), "git never reached the server"
        command_lines = []
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                command_lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" "))
        helpers = [line for line in command_lines if b"remote-http" in line]
        assert helpers, "no git remote helper running: the fetch did not go over HTTP"
        assert [line for line in command_lines if TOKEN.encode() in line] == []
    finally:
        forge.hold.set()
        hook.join(timeout=60)
    assert forge.requests > 0


def test_credentials_that_cannot_work_are_not_written_for_the_collectors(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    bad = InfluxCredentials("influx\nforged", 8086, "metrics", "pw-9d2e", "metrics")

    reconcile(Settings(bundled_tree=bundled), bad, root=root, systemctl=systemctl, account=AS_ME)

    assert not Paths(root).credentials.exists()


def test_a_malformed_repository_url_is_reported_not_raised(
    root: Path, systemctl: Recorder
) -> None:
    settings = Settings(repo="https://user:tok-1@host:99999/repo.git")

    report = reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    assert len(report.problems) == 1
    assert "collectors-repo" in report.problems[0]
    assert "tok-1" not in report.problems[0]


def timers_of(root: Path) -> list[str]:
    return sorted(
        name.removeprefix("metrics-collector@").removesuffix(".timer")
        for name in os.listdir(Paths(root).unit_dir)
        if name.startswith("metrics-collector@") and name.endswith(".timer")
    )


def test_units_of_one_application_share_the_collectors_and_hand_over_when_one_joins(
    tmp_path: Path, systemctl: Recorder
) -> None:
    names = [f"collector_{n}" for n in range(12)]
    bundled = write_tree(tmp_path / "charm" / "collectors", {n: collector() for n in names})
    units = [f"ubuntu-community-metrics/{n}" for n in range(3)]
    roots = {unit: tmp_path / unit.replace("/", "-") for unit in units}

    def on(unit: str, peers: list[str], **changes: object) -> Report:
        settings = Settings(
            bundled_tree=bundled, unit=unit, peers=tuple(p for p in peers if p != unit)
        )
        settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
        return reconcile(
            settings, CREDENTIALS, root=roots[unit], systemctl=systemctl, account=AS_ME
        )

    reports = {unit: on(unit, units[:2]) for unit in units[:2]}
    first = {unit: timers_of(roots[unit]) for unit in units[:2]}
    assert sorted(first[units[0]] + first[units[1]]) == sorted(names)
    assert reports[units[0]].of_application == 12
    assert reports[units[0]].scheduled == first[units[0]]

    systemctl.forget()
    reports = {unit: on(unit, units) for unit in units}  # a third unit joined
    after = {unit: timers_of(roots[unit]) for unit in units}
    assert sorted(after[units[0]] + after[units[1]] + after[units[2]]) == sorted(names)
    moved = sorted(set(first[units[0]]) - set(after[units[0]]))
    moved += sorted(set(first[units[1]]) - set(after[units[1]]))
    assert sorted(moved) == after[units[2]]  # only what the new unit took moved
    # The units that gave collectors away write those collectors' spools now.
    starts = [call for call in systemctl.changes() if call.startswith("systemctl start")]
    assert sorted(word for call in starts for word in call.split()[3:]) == sorted(
        f"metrics-collector-replay@{name}.service" for name in moved
    )
    assert all(call.startswith("systemctl start --no-block ") for call in starts)
    record = json.loads(Paths(roots[units[2]]).sync_result.read_text())
    assert {owner for owner in record["owners"].values()} == set(units)

    # Removing a unit: while it leaves it runs nothing, and the others take its share.
    on(units[2], units, leaving=True)
    assert timers_of(roots[units[2]]) == []
    for unit in units[:2]:
        on(unit, units[:2])
    assert sorted(timers_of(roots[units[0]]) + timers_of(roots[units[1]])) == sorted(names)


# The collectors' log file (cos-agent related)


def test_log_file_setting_adds_the_log_service_its_folder_and_logrotate(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    paths = Paths(root)

    reconcile(
        Settings(bundled_tree=bundled, log_file=True),
        CREDENTIALS,
        root=root,
        systemctl=systemctl,
        account=AS_ME,
    )

    assert (paths.unit_dir / "metrics-log.service").is_file()
    enable = next(c for c in systemctl.changes() if c.startswith("systemctl enable --now"))
    assert "metrics-log.service" in enable.split()
    assert stat.S_IMODE(paths.log_dir.stat().st_mode) == 0o755
    assert stat.S_IMODE(paths.logrotate.stat().st_mode) == 0o644
    assert f"{paths.log_file} {{" in paths.logrotate.read_text()


def test_without_the_log_file_setting_the_service_stops_and_logrotate_goes_the_log_stays(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    paths = Paths(root)
    with_log = Settings(bundled_tree=bundled, log_file=True)
    reconcile(with_log, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    paths.log_file.write_text("2026-12-04 a line\n")
    systemctl.forget()

    reconcile(
        Settings(bundled_tree=bundled), CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME
    )

    assert "systemctl disable --now metrics-log.service" in systemctl.changes()
    assert not (paths.unit_dir / "metrics-log.service").exists()
    assert not paths.logrotate.exists()
    assert paths.log_file.read_text() == "2026-12-04 a line\n"


def test_a_logrotate_file_that_is_not_ours_is_left_alone(
    root: Path, bundled: Path, systemctl: Recorder
) -> None:
    paths = Paths(root)
    paths.logrotate.parent.mkdir(parents=True)
    paths.logrotate.write_text("# the operator's own\n")

    for log_file in (True, False):
        reconcile(
            Settings(bundled_tree=bundled, log_file=log_file),
            CREDENTIALS,
            root=root,
            systemctl=systemctl,
            account=AS_ME,
        )
        assert paths.logrotate.read_text() == "# the operator's own\n"


def test_remove_deletes_the_logrotate_file(root: Path, bundled: Path, systemctl: Recorder) -> None:
    settings = Settings(bundled_tree=bundled, log_file=True)
    reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    remove(root=root, systemctl=systemctl)

    assert not Paths(root).logrotate.exists()


def test_the_pull_keeps_the_log_service(root: Path, bundled: Path, systemctl: Recorder) -> None:
    """The pull timer re-renders the units from the saved settings: the flag is in them."""
    settings = Settings(bundled_tree=bundled, log_file=True)
    reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)

    sync(root=root, systemctl=systemctl, account=AS_ME)

    assert load_settings(Paths(root).settings).log_file is True
    assert (Paths(root).unit_dir / "metrics-log.service").is_file()


LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


@pytest.mark.skipif(not Path(LOGROTATE).exists(), reason="logrotate is not installed")
def test_logrotate_rotates_the_log_with_the_rendered_configuration(
    root: Path, bundled: Path, systemctl: Recorder, tmp_path: Path
) -> None:
    """The real logrotate, forced, on the file the service appends to: rotated, copied and
    truncated in place, so that the open file goes on receiving lines."""
    paths = Paths(root)
    settings = Settings(bundled_tree=bundled, log_file=True)
    reconcile(settings, CREDENTIALS, root=root, systemctl=systemctl, account=AS_ME)
    with paths.log_file.open("a") as appender:  # as systemd's StandardOutput=append: does
        appender.write("before rotation\n")
        appender.flush()
        inode = paths.log_file.stat().st_ino

        subprocess.run(
            [LOGROTATE, "--force", "--state", str(tmp_path / "state"), str(paths.logrotate)],
            check=True,
            capture_output=True,
        )
        appender.write("after rotation\n")
        appender.flush()

    assert (paths.log_dir / "collectors.log.1").read_text() == "before rotation\n"
    assert paths.log_file.stat().st_ino == inode
    assert paths.log_file.read_text() == "after rotation\n"
