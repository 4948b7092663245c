"""Boot a throwaway machine with a real systemd and drive it from the host.

Root file systems are made once by debootstrap and cached outside the repository (`pack.py`
builds the Ubuntu ones), each keyed by what goes into it. Every boot runs on a fresh copy, under
`systemd-nspawn --boot --register=no --keep-unit` sharing the host's network, so the
container reaches servers the tests start on loopback. Commands run inside through
`nsenter` into the container's PID 1. `Container.stop()` leaves no process or mount behind.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_serial = itertools.count(1)
CACHE_DIR = Path(os.environ.get("UCM_MACHINE_CACHE", "/var/cache/ubuntu-community-metrics"))
# The containers' writes live in memory; a unit with a venv and a few checkouts uses ~200 MB.
TMPFS_SIZE = "2g"
# A PATH that is valid inside the container whatever the host's is.
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}


# Every container and git daemon this process started and has not stopped yet, so that none
# survives an interpreter that exits without unwinding (pytest on an internal error).
_LIVE: set[Container | GitRemote] = set()


@atexit.register
def _stop_leftovers() -> None:
    for leftover in list(_LIVE):
        with contextlib.suppress(Exception):
            leftover.stop()


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt, so `with` blocks and pytest's fixture
    finalizers stop containers and daemons when a run is cancelled (`timeout`, CI)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class HarnessError(RuntimeError):
    """The machine harness could not build, boot, drive or stop a container."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run the machine suite, or None when it can."""
    if os.geteuid() != 0:
        return "machine tests need root (debootstrap, systemd-nspawn and nsenter)"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            return f"machine tests need {tool} on PATH: run ./dev setup"
    return None


def build_in_place(target: Path, build: Callable[[Path], None], *, done: str) -> None:
    """Run `build(folder)` on a temporary sibling of `target`, then rename it to `target`, so
    an interrupted build never leaves a half tree under that name. `done` is a path that only
    a finished tree holds (another run may finish the same target first)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target.parent)
    building = Path(tempfile.mkdtemp(prefix=f"{target.name}.building-", dir=target.parent))
    try:
        build(building)
        building.chmod(0o755)
        try:
            building.rename(target)
        except OSError:
            if not (target / done).exists():
                raise
            shutil.rmtree(building)
    except BaseException:
        # debootstrap mounts /proc and /sys in the tree: never delete through a mount.
        _unmount_below(building)
        shutil.rmtree(building, ignore_errors=True)
        raise


def _remove_abandoned_builds(folder: Path, older_than: float = 3600) -> None:
    """Builds left by a killed run; a live one is younger than debootstrap's own timeout."""
    for stale in folder.glob("*.building-*"):
        if time.time() - stale.stat().st_mtime > older_than:
            _unmount_below(stale)
            shutil.rmtree(stale, ignore_errors=True)


def _prepare_rootfs(root: Path) -> None:
    """Make the tree boot quickly under nspawn and copy cheaply."""
    (root / "etc/hostname").write_text("ucm-machine-test\n")
    # Empty: every boot of a copy gets its own transient machine id.
    (root / "etc/machine-id").write_text("")
    for cached in (root / "var/cache/apt/archives").glob("*.deb"):
        cached.unlink()
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    units = root / "etc/systemd/system"
    # Nothing in the tests uses a login prompt, and the container must not touch the
    # host's network configuration it shares.
    for unit in (
        "console-getty.service",
        "getty@.service",
        "systemd-networkd.service",
        "systemd-networkd-wait-online.service",
        "systemd-resolved.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
    ):
        mask = units / unit
        mask.unlink(missing_ok=True)
        mask.symlink_to("/dev/null")


def _run(argv: Sequence[str], *, what: str, timeout: float = 1800) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise HarnessError(
            f"{what} failed with exit status {proc.returncode}:\n{proc.stdout[-3000:]}"
            f"\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.returncode != 0:
            raise HarnessError(
                f"in the container, {' '.join(self.argv)} exited {self.returncode}:\n"
                f"{self.stdout[-4000:]}\n{self.stderr[-4000:]}"
            )
        return self


_DEVNODES_UNIT = """\
# Written by the machine test harness (tests/machine/machine_harness.py).
[Unit]
Description=Give /dev/null the standard mode 0666
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/chmod 0666 /dev/null
"""


class Container:
    """One booted throwaway copy of the cached root file system."""

    def __init__(self, image: Path, *, workdir: Path, binds: Sequence[tuple[Path, str]] = ()):
        self.image = image
        self.workdir = workdir
        self.root = workdir / "root"
        self.log_path = workdir / "boot.log"
        self.binds = tuple(binds)
        self.process: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.name = f"ucm-{os.getpid()}-{next(_serial)}"

    def prepare_root(self) -> None:
        """A private writable view of the image: an overlay (instant), else a full copy.

        The overlay's upper layer is on a tmpfs: the container's writes (venvs, checkouts,
        journal) stay in memory and vanish with one unmount, where deleting them from a disk
        mounted with `discard` takes seconds.
        """
        layer = self.workdir / "layer"
        layer.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(layer)],
            capture_output=True,
            check=False,
        )
        upper, work = layer / "upper", layer / "work"
        for folder in (self.root, upper, work):
            folder.mkdir()
        options = f"lowerdir={self.image},upperdir={upper},workdir={work}"
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
            capture_output=True,
            check=False,
        )
        if mounted.returncode != 0:
            self.root.rmdir()
            _run(["cp", "-a", "--reflink=auto", str(self.image), str(self.root)], what="cp")
        self._copy_host_trust()
        self._add_devnode_fix()

    def _add_devnode_fix(self) -> None:
        """nspawn copies /dev/null with the host's mode; some hosts have it 0644, which
        breaks every unprivileged program. Restore the standard 0666 early at each boot."""
        units = self.root / "etc/systemd/system"
        (units / "harness-devnodes.service").write_text(_DEVNODES_UNIT)
        wants = units / "sysinit.target.wants"
        wants.mkdir(exist_ok=True)
        (wants / "harness-devnodes.service").symlink_to("../harness-devnodes.service")

    def _copy_host_trust(self) -> None:
        """Trust what the host trusts, as a unit trusts its site's certificate authorities.

        Where the host reaches PyPI through a TLS-inspecting proxy, pip in the container
        (which installs the collectors' requirements) needs the same CA bundle and pip.conf.
        """
        for host_file in (
            Path("/etc/ssl/certs/ca-certificates.crt"),
            Path("/etc/pip.conf"),
            *Path("/usr/local/share/ca-certificates").glob("*.crt"),
        ):
            if host_file.is_file():
                target = self.root / host_file.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(host_file, target)

    def boot(self, timeout: float = 120) -> None:
        _LIVE.add(self)
        if not self.root.exists():
            self.prepare_root()
        argv = [
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
            f"--machine={self.name}",
            "-D",
            str(self.root),
        ]
        for source, target in self.binds:
            argv.append(f"--bind-ro={source}:{target}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        self.leader = self._wait_for_leader(deadline)
        self._wait_for_systemd(deadline)

    def _wait_for_leader(self, deadline: float) -> int:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(
                    f"systemd-nspawn exited {self.process.returncode} while booting:\n"
                    f"{self.boot_log()}"
                )
            for child in _children(self.process.pid):
                if _comm(child) == "systemd":
                    return child
            time.sleep(0.05)
        raise HarnessError(f"the container's systemd did not start in time:\n{self.boot_log()}")

    def _wait_for_systemd(self, deadline: float) -> None:
        state = ""
        while time.monotonic() < deadline:
            remaining = max(1.0, deadline - time.monotonic())
            try:
                result = self.run(
                    ["systemctl", "is-system-running", "--wait"], timeout=remaining, check=False
                )
            except HarnessError:
                break
            state = (result.stdout or result.stderr).strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise HarnessError(
            f"the container did not finish booting (state {state!r}):\n{self.boot_log()}"
        )

    def boot_log(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no boot log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str = "/",
    ) -> Result:
        """Run a command in the container's namespaces, as root, with a clean environment."""
        if self.leader is None:
            raise HarnessError("the container is not booted")
        full = [
            "nsenter",
            f"--target={self.leader}",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--",
            "env",
            "-i",
            f"--chdir={cwd}",
            *(f"{k}={v}" for k, v in {**CONTAINER_ENV, **(env or {})}.items()),
            *argv,
        ]
        try:
            proc = subprocess.run(
                full,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise HarnessError(
                f"in the container, {' '.join(argv)} did not finish in {timeout:.0f}s"
            ) from error
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        return result.check() if check else result

    def reboot(self, timeout: float = 120) -> None:
        """Power the container off and boot the same tree again: what a reboot keeps."""
        self._shutdown()
        self.boot(timeout=timeout)

    def stop(self) -> None:
        """Power off, then make sure nothing of the container is left, then delete it."""
        try:
            self._shutdown()
        finally:
            _unmount_below(self.workdir)
            shutil.rmtree(self.workdir, ignore_errors=True)
            _LIVE.discard(self)

    def _shutdown(self) -> None:
        process, self.process, leader, self.leader = self.process, None, self.leader, None
        if process is None:
            return
        if process.poll() is None and leader is not None:
            # SIGRTMIN+4 asks systemd for an orderly poweroff, like `systemctl poweroff`.
            with contextlib.suppress(ProcessLookupError):
                os.kill(leader, signal.SIGRTMIN + 4)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        if leader is not None:
            _wait_gone(leader)
        left = _processes_in_group(process.pid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if left and not all(_wait_gone(pid) for pid in left):
            raise HarnessError(f"container processes {left} survived SIGKILL")


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children.extend(int(c) for c in (task / "children").read_text().split())
    return children


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def _processes_in_group(pgid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) if path.exists() else str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _unmount_below(path: Path) -> None:
    # Newest first: the overlay before the tmpfs that holds its upper layer.
    for point in reversed(mounts_below(path)):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = mounts_below(path)
    if left:
        raise HarnessError(f"mounts left behind under {path}: {left}")


@contextlib.contextmanager
def booted(
    image: Path, *, binds: Sequence[tuple[Path, str]] = (), keep_dir: Path | None = None
) -> Iterator[Container]:
    """A booted container for the duration of the block, stopped and deleted after it."""
    workdir = Path(tempfile.mkdtemp(prefix="ucm-machine-", dir=keep_dir))
    container = Container(image, workdir=workdir, binds=binds)
    try:
        container.boot()
        yield container
    finally:
        container.stop()


def wait_for(
    what: str, probe: Callable[[], object], *, timeout: float = 60, interval: float = 0.5
) -> object:
    """Poll `probe` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


class GitRemote:
    """A bare repository standing in for the collectors branch, served by `git daemon`.

    The container reaches it as `.url` (git:// on loopback); the tests change the branch
    through a working clone on the host with `.write()`, `.remove()`, `.commit_and_push()`.
    """

    def __init__(self, workdir: Path, *, branch: str = "main") -> None:
        self.workdir = workdir
        self.branch = branch
        self.bare = workdir / "collectors.git"
        self.clone = workdir / "work"
        self.port = 0
        self._daemon: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"git://127.0.0.1:{self.port}/collectors.git"

    def start(self) -> None:
        self.git("init", "-q", "--bare", f"--initial-branch={self.branch}", str(self.bare))
        self.git("init", "-q", f"--initial-branch={self.branch}", str(self.clone))
        self.git("remote", "add", "origin", str(self.bare), cwd=self.clone)
        for attempt in range(3):
            self.port = _free_port()
            self._daemon = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                    "--export-all",
                    f"--base-path={self.workdir}",
                    str(self.workdir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            if _wait_listening(self.port, self._daemon):
                _LIVE.add(self)
                return
            self.stop()
            if attempt == 2:
                raise HarnessError(f"git daemon did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        _LIVE.discard(self)
        daemon, self._daemon = self._daemon, None
        if daemon is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()

    def git(self, *args: str, cwd: Path | None = None) -> str:
        where = ["-C", str(cwd)] if cwd is not None else []
        identity = ["-c", "user.name=Machine Test", "-c", "user.email=test@example.invalid"]
        return _run(["git", *where, *identity, *args], what=f"git {args[0]}")

    def write(self, relative: str, text: str) -> None:
        path = self.clone / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def remove(self, relative: str) -> None:
        shutil.rmtree(self.clone / relative)

    def copy_tree(self, source: Path, relative: str = "") -> None:
        shutil.copytree(
            source,
            self.clone / relative,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
        )

    def commit_and_push(self, message: str, *, force: bool = False) -> str:
        self.git("add", "-A", cwd=self.clone)
        self.git("commit", "-q", "--allow-empty", "-m", message, cwd=self.clone)
        push = ["push", "-q", "origin", f"HEAD:{self.branch}"]
        if force:
            push.insert(1, "--force")
        self.git(*push, cwd=self.clone)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD", cwd=self.clone).strip()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False
