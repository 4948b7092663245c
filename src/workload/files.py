"""Atomic file writes: a reader sees the old file or the new one, never a part of either."""

from __future__ import annotations

import contextlib
import os
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
