"""Static discovery of the collectors in a collectors tree.

Reads each `metrics/collectors/<name>/__init__.py` with `ast` and never imports anything from
the tree: this runs as root on units, and the tree is a team's own repository.

`collectors/metrics/lib/discovery.py` is a byte-identical copy (docs/design.md): edit this file,
then copy it over.

Speed: the charm discovers the whole tree on every hook and every pull, so this walks the folder
with `os.scandir`, reads each file once as bytes, parses it with `ast.parse` (the only sure way
to know what Python would see) and looks at the top-level statements in a single pass.
"""

from __future__ import annotations

import ast
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
    package = os.path.join(tree, "metrics", "collectors")
    try:
        entries = list(os.scandir(package))
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = []
    for entry in entries:
        name = entry.name
        if name.startswith((".", "__")):
            continue
        try:
            is_dir = entry.is_dir()  # follows symbolic links, as Path.is_dir() does
        except OSError:
            is_dir = False
        if is_dir:
            names.append(name)
    names.sort()
    return [_inspect(package, name) for name in names]


def _inspect(package: str, name: str) -> Collector:
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
    source = _read_regular_file(os.path.join(package, name, "__init__.py"))
    if source is None:
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"{where} is missing: add it with RUN_INTERVAL and run_metric",
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
    interval, problem = _check(module.body, where)
    return Collector(name, interval, problem)


def _read_regular_file(path: str) -> bytes | None:
    """The bytes of `path`, or None where `Path.is_file()` would be false (absent, a folder).

    One open, fstat and (almost always) one read; `O_NONBLOCK` so that a FIFO named
    `__init__.py` cannot block.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        raise
    except OSError:
        return None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return None
        size = status.st_size
        data = os.read(fd, size + 1)
        if len(data) == size:  # the whole file as fstat saw it: no second read for EOF
            return data
        chunks = [data]  # it changed meanwhile, or a short read: read on to the end
        while chunk := os.read(fd, max(size, 4096)):
            chunks.append(chunk)
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
