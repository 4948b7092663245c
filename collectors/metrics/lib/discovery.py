"""Static discovery of the collectors in a collectors tree.

Reads each `metrics/collectors/<name>/__init__.py` with `ast` and never imports anything from
the tree, which is a team's own repository. Nothing here follows a symbolic link below the tree
or reads anything but a regular file of bounded size; on units, `workload.isolation` runs it as
the unprivileged account in a child process with memory and CPU limits, so that a file that
crashes or exhausts the parser costs one collector, not the run.

`collectors/metrics/lib/discovery.py` is a byte-identical copy (docs/design.md): edit this file,
then copy it over.

Speed: the charm discovers the whole tree on every hook and every pull, so this walks the folder
with `os.scandir`, reads each file once as bytes, parses it with `ast.parse` (the only sure way
to know what Python would see) and looks at the top-level statements in a single pass.
"""

from __future__ import annotations

import ast
import errno
import keyword
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .timespan import parse_run_interval

DEFAULT_INTERVAL = "5m"

# Each collector runs as its own system user `mc-<name>`, and systemd's user names stop at 31
# characters (useradd and DynamicUser= refuse longer ones): 31 - len("mc-") leaves 28.
MAX_NAME_LENGTH = 28

# A collector's __init__.py declares RUN_INTERVAL and run_metric; its code lives in modules
# beside it. The bound keeps the parser's time and memory small whatever a branch holds.
MAX_INIT_BYTES = 256 * 1024

_NOT_A_LITERAL = (
    'RUN_INTERVAL is not a literal string: assign it a string such as RUN_INTERVAL = "5m"'
)


@dataclass(frozen=True)
class Collector:
    """One collector folder: its name, its `RUN_INTERVAL` literal, and why it cannot run.

    `problem` is None for a collector that can be scheduled, otherwise one line saying what is
    wrong and what to do.
    """

    name: str
    interval: str
    problem: str | None


def discover_collectors(tree: Path) -> list[Collector]:
    """Every collector under `tree/metrics/collectors/`, sorted by name."""
    return [inspect_collector(tree, name) for name in collector_names(tree)]


def collector_names(tree: Path) -> list[str]:
    """The names of the folders (and links, which `inspect_collector` refuses) in
    `tree/metrics/collectors/`, sorted; none when either folder is missing or a link."""
    try:
        package = _open_folder(tree, ("metrics", "collectors"))
    except OSError:
        return []
    try:
        with os.scandir(package) as entries:
            names = [
                entry.name
                for entry in entries
                if not entry.name.startswith((".", "__"))
                and (entry.is_symlink() or entry.is_dir(follow_symlinks=False))
            ]
    finally:
        os.close(package)
    return sorted(names)


def inspect_collector(tree: Path, name: str) -> Collector:
    """The collector `name` of `tree`: its interval, or the problem that keeps it from running."""
    where = f"metrics/collectors/{name}/__init__.py"
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"metrics/collectors/{name}: the folder name is not a Python identifier "
            "(ASCII letters, digits and _, not starting with a digit): rename the folder",
        )
    if len(name) > MAX_NAME_LENGTH:
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"metrics/collectors/{name}: the folder name has {len(name)} characters, more than"
            f" {MAX_NAME_LENGTH} (the collector runs as the system user mc-<name>, and user"
            f" names stop at 31 characters): rename the folder to at most {MAX_NAME_LENGTH}"
            " characters",
        )
    try:
        folder = _open_folder(tree, ("metrics", "collectors", name))
    except OSError as error:
        return Collector(name, DEFAULT_INTERVAL, _unreadable(f"metrics/collectors/{name}", error))
    try:
        source = _read_init(folder)
    except OSError as error:
        return Collector(name, DEFAULT_INTERVAL, _unreadable(where, error))
    finally:
        os.close(folder)
    if source is None:
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"{where} is missing: add it with RUN_INTERVAL and run_metric",
        )
    if len(source) > MAX_INIT_BYTES:
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"{where} has {len(source) // 1024} KiB, more than the {MAX_INIT_BYTES // 1024} KiB"
            " an __init__.py may have: keep RUN_INTERVAL and run_metric there and move the code"
            " to other modules of the collector",
        )
    try:
        module = ast.parse(source, where, mode="exec", feature_version=None)
    except SyntaxError as error:
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"{where} line {error.lineno}: syntax error ({error.msg}): fix the file",
        )
    except ValueError as error:  # null bytes, undecodable source
        return Collector(name, DEFAULT_INTERVAL, f"{where}: cannot be parsed ({error})")
    except (RecursionError, MemoryError):
        return Collector(name, DEFAULT_INTERVAL, _too_complex(where))
    interval, problem = _check(module.body, where)
    return Collector(name, interval, problem)


def _too_complex(where: str) -> str:
    return (
        f"{where} is too deeply nested for Python's parser: keep RUN_INTERVAL and run_metric"
        " there and simplify or move the rest"
    )


def _unreadable(where: str, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return (
            f"{where} is a symbolic link, which the charm does not follow in a collectors"
            " tree: replace it with the real folder or file"
        )
    if error.errno == errno.ENOTDIR:
        return f"{where} is not a folder: make it a collector folder or remove it"
    return f"{where} cannot be read ({os.strerror(error.errno or 0)}): fix its permissions"


def _open_folder(tree: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of `tree/<parts>`, opened one component at a time without following a
    symbolic link below `tree` (ELOOP where one is)."""
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                child = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
            except NotADirectoryError:
                # Linux says ENOTDIR, not ELOOP, for a link opened with O_DIRECTORY.
                if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), part) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_init(folder: int) -> bytes | None:
    """The bytes of `__init__.py` in `folder`, at most MAX_INIT_BYTES + 1 of them, or None
    where there is no regular file of that name. Never follows a link (OSError ELOOP);
    `O_NONBLOCK` so that a FIFO cannot block."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open("__init__.py", flags, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno in (errno.EISDIR, errno.ENXIO):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        left = MAX_INIT_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check(body: list[ast.stmt], where: str) -> tuple[str, str | None]:
    """The `RUN_INTERVAL` literal (the last top-level one) and a problem, in one pass.

    A problem with `RUN_INTERVAL` comes first; only then a missing `run_metric`.
    """
    value: ast.expr | None = None
    line = 0
    run_metric = False
    for node in body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    if target.id == "RUN_INTERVAL":
                        value, line = node.value, node.lineno
                    elif target.id == "run_metric":
                        run_metric = True
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name == "run_metric":
                run_metric = True
        elif isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name
                if bound == "RUN_INTERVAL":
                    return DEFAULT_INTERVAL, (
                        f"{where} line {node.lineno}: RUN_INTERVAL is imported, not a literal"
                        ' string: assign it a string such as RUN_INTERVAL = "5m"'
                    )
                if bound == "run_metric":
                    run_metric = True
        elif isinstance(node, ast.AnnAssign):
            target, annotated = node.target, node.value
            if isinstance(target, ast.Name) and target.id == "RUN_INTERVAL" and annotated:
                value, line = annotated, node.lineno

    interval = DEFAULT_INTERVAL
    if value is not None:
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            return DEFAULT_INTERVAL, f"{where} line {line}: {_NOT_A_LITERAL}"
        interval = value.value
        try:
            parse_run_interval(interval)
        except ValueError as error:
            message = str(error)
            if not message.startswith("RUN_INTERVAL"):
                message = f'RUN_INTERVAL: {message}; use a span such as "15s", "5m" or "1h 30min"'
            return interval, f"{where} line {line}: {message}"
    if not run_metric:
        return interval, (
            f"{where} does not define run_metric: add `def run_metric(dry_run=False, "
            "verbose=False)` or import it (`from .<module> import run_metric`)"
        )
    return interval, None
