"""Atomic file writes (a reader sees the old file or the new one, never a part of either), and
reading where the unprivileged account can write without following its links."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


def write_if_changed(path: Path, content: bytes, *, mode: int) -> bool:
    """Write `content` to `path` with `mode` unless it already holds exactly that.

    The temporary file is created with `mode` from the start, so a secret is never readable by
    anyone else, not even for a moment. True when the file was written.
    """
    try:
        if path.read_bytes() == content and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)  # the umask may have taken bits away
        file.write(content)
        file.flush()
        os.fsync(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def make_dirs(folder: Path) -> None:
    """Create `folder` and its missing parents as 0755 whatever the umask: the collectors'
    DynamicUser must be able to reach the trees and venvs below them."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        created.chmod(0o755)  # only folders, never a secret


def replace_symlink(link: Path, target: Path) -> bool:
    """Point `link` at `target` in one step (symlink under a temporary name, then rename).

    True when the link changed.
    """
    if link.is_symlink() and os.readlink(link) == str(target):
        return False
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)
    return True


def take_folder(folder: Path) -> None:
    """`folder` as root's own 0755 folder, so that the account cannot add, remove or replace
    names in it (units before 2026-12 gave some of these folders to the account)."""
    make_dirs(folder)
    if folder.lstat().st_uid != os.getuid():
        os.chown(folder, os.getuid(), os.getgid(), follow_symlinks=False)


# What opening a name below a folder the account writes says when it is not a plain file there.
_NOT_THERE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO, errno.EISDIR)


def read_below(base: Path, relative: Path, *, limit: int) -> bytes | None:
    """The bytes of `base/relative` when every component below `base` is a real folder and
    the last a regular file of at most `limit` bytes; None otherwise (absent, a link, a FIFO,
    too large). `base` is trusted; nothing below it is followed."""
    parts = relative.parts
    if not parts or any(part in ("", ".", "..") for part in parts):
        return None
    try:
        folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            child = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder
            )
            os.close(folder)
            folder = child
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, dir_fd=folder)
    except OSError as error:
        if error.errno not in (
            errno.ENOENT,
            errno.ELOOP,
            errno.ENOTDIR,
            errno.EACCES,
            errno.ENXIO,
        ):
            raise
        return None
    finally:
        os.close(folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return os.read(fd, limit + 1)[:limit]
    finally:
        os.close(fd)
