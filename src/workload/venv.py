"""The collectors' venv: `requirements.txt` of the live tree installed by pip as the
unprivileged account into `venvs/<hash>/`, then the `venv` symlink swapped.

`<hash>` covers the requirements and the Python version, so an unchanged tree reuses its venv.
A venv is built under its final name (venvs are not relocatable) and marked complete last; the
`venv` symlink only ever points at a complete one, so a failed install keeps the old venv live.

pip runs a package's build code as the account, so everything inside `venvs/<hash>/` is the
account's and root never writes there or follows a link in it. `venvs/` itself is root's: the
account cannot plant a name beside its venv, and the completion marker `venvs/<hash>.complete`
is root's file in it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from .account import Account
from .files import make_dirs, read_below, replace_symlink, take_folder
from .paths import Paths
from .settings import Proxy

PYTHON = "/usr/bin/python3"
_COMPLETE = ".complete"
_PIP_TIMEOUT = 1800
_MAX_BYTES = 1024 * 1024  # of a requirements file
_FIX = "fix requirements.txt in the collectors branch, or check the proxy settings"


class VenvError(Exception):
    """pip could not install the requirements; one line for the status."""


def wanted_venv(tree: Path, python: str = PYTHON, *, base: Path | None = None) -> str:
    """The id (folder name) of the venv for `tree/requirements.txt` on this Python.

    Files it includes (`-r`, `-c`) count too, so a changed constraints file builds a new venv.
    """
    digest = hashlib.sha256()
    for path, data in _requirement_files(base or tree, tree / "requirements.txt"):
        digest.update(path.name.encode() + b"\0" + data + b"\0")
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    digest.update(version.encode())
    return digest.hexdigest()[:16]


def _requirement_files(base: Path, first: Path) -> list[tuple[Path, bytes]]:
    """`first` and the files it includes, transitively, that are regular files inside its
    folder, with their bytes. Root reads them from `base` (a folder only root can change)
    down without following a link: a link (to a root-only file, a FIFO, /proc/self/mem) or a
    path out of the tree counts as absent, and pip, which runs as the account, says what is
    wrong with it."""
    found: list[tuple[Path, bytes]] = []
    pending = [first]
    while pending:
        path = pending.pop(0)
        if any(path == seen for seen, _ in found):
            continue
        if not os.path.normpath(path).startswith(os.path.normpath(first.parent) + os.sep):
            continue
        data = read_below(base, Path(os.path.normpath(path)).relative_to(base), limit=_MAX_BYTES)
        if data is None:
            continue
        found.append((path, data))
        for line in data.decode(errors="replace").splitlines():
            match = re.match(r"\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)", line)
            if match:
                pending.append(path.parent / match.group(1))
    return found


def _trusted_base(paths: Paths, tree: Path) -> Path:
    """Where root may start reading `tree`: the checkouts folder, which only root can change
    (`tree` itself elsewhere, as in tests)."""
    return paths.checkouts if tree.is_relative_to(paths.checkouts) else tree


def current_venv(paths: Paths) -> str | None:
    """The id of the live venv, or None before the first one."""
    if not paths.venv.is_symlink():
        return None
    return Path(os.readlink(paths.venv)).name


def ensure_venv(
    paths: Paths,
    tree: Path,
    *,
    account: Account,
    proxy: Proxy,
    python: str = PYTHON,
) -> str:
    """Make the venv for `tree/requirements.txt` live, building it when it does not exist.

    Returns its id. Raises VenvError, with the `venv` symlink untouched, when pip fails.
    """
    base = _trusted_base(paths, tree)
    wanted = wanted_venv(tree, python, base=base)
    folder = paths.venvs / wanted
    previous = current_venv(paths)
    take_folder(paths.venvs)
    if not _is_complete(paths, wanted):
        try:
            _build(paths, folder, base, tree / "requirements.txt", account, proxy, python)
        except VenvError as error:
            kept = "kept the previous venv" if previous else "no venv yet, so no collector can run"
            raise VenvError(f"{error}; {kept}: {_FIX}") from None
    if replace_symlink(paths.venv, folder.relative_to(paths.state_dir)):
        keep = {wanted} | ({previous} if previous else set())
        for other in paths.venvs.iterdir():
            if other.name.removesuffix(_COMPLETE) in keep:
                continue
            if other.is_dir() and not other.is_symlink():
                shutil.rmtree(other)
            else:
                other.unlink()
    return wanted


def _marker(paths: Paths, venv: str) -> Path:
    return paths.venvs / f"{venv}{_COMPLETE}"


def _is_complete(paths: Paths, venv: str) -> bool:
    """Root's marker is there; a venv built before markers moved out of the venv counts when
    its old marker is a regular file (the account owns that venv whole either way)."""
    marker = _marker(paths, venv)
    if stat.S_ISREG(_lstat_mode(marker)):
        return True
    if stat.S_ISREG(_lstat_mode(paths.venvs / venv / _COMPLETE)):
        _write_marker(marker)
        return True
    return False


def _lstat_mode(path: Path) -> int:
    try:
        return path.lstat().st_mode
    except OSError:
        return 0


def _write_marker(marker: Path) -> None:
    marker.unlink(missing_ok=True)
    os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))


def _build(
    paths: Paths,
    folder: Path,
    base: Path,
    requirements: Path,
    account: Account,
    proxy: Proxy,
    python: str,
) -> None:
    make_dirs(paths.home)
    account.own(paths.home)
    _marker(paths, folder.name).unlink(missing_ok=True)
    _remove(folder)  # a build that was interrupted
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    account.own(folder)
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **proxy.environment()}
    data = read_below(base, requirements.relative_to(base), limit=_MAX_BYTES)
    if data is None and os.path.lexists(requirements):
        raise VenvError(
            f"{requirements.name} of the collectors tree is not a plain file (a symbolic link,"
            " a special file, or over 1 MiB): commit it as a regular file"
        )
    text = (data or b"").decode(errors="replace")
    wanted = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    # Nothing to install: no pip in the venv either (ensurepip takes seconds).
    steps = [[python, "-m", "venv", *([] if wanted else ["--without-pip"]), str(folder)]]
    if wanted:
        steps.append(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--requirement", str(requirements)]
        )  # fmt: skip
    for args in steps:
        result = account.run(args, home=paths.home, env=env, cwd=requirements.parent,
                             timeout=_PIP_TIMEOUT)  # fmt: skip
        if result.returncode != 0:
            _remove(folder)
            raise VenvError(
                f"installing {requirements.name} of the collectors tree failed "
                f"({_summary(result.stderr or result.stdout)})"
            )
    _write_marker(_marker(paths, folder.name))


def _remove(path: Path) -> None:
    """Delete a venv folder without following any link in it (or a link in its place)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _summary(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[0]
