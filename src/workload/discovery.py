"""Static discovery of the collectors in a collectors tree.

Reads each `metrics/collectors/<name>/__init__.py` with `ast` and never imports anything from
the tree: this runs as root on units, and the tree is a team's own repository.

`collectors/metrics/lib/discovery.py` is a byte-identical copy (docs/design.md): edit this file,
then copy it over.
"""

from __future__ import annotations

import ast
import keyword
from dataclasses import dataclass
from pathlib import Path

from .timespan import parse_run_interval

DEFAULT_INTERVAL = "5m"


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
    package = tree / "metrics" / "collectors"
    if not package.is_dir():
        return []
    collectors = []
    for folder in sorted(package.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "__")):
            continue
        collectors.append(_inspect(tree, folder))
    return collectors


def _inspect(tree: Path, folder: Path) -> Collector:
    name = folder.name
    init = folder / "__init__.py"
    where = init.relative_to(tree).as_posix()
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"metrics/collectors/{name}: the folder name is not a Python identifier "
            "(ASCII letters, digits and _, not starting with a digit): rename the folder",
        )
    if not init.is_file():
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"{where} is missing: add it with RUN_INTERVAL and run_metric",
        )
    try:
        module = ast.parse(init.read_bytes(), filename=where)
    except SyntaxError as error:
        return Collector(
            name,
            DEFAULT_INTERVAL,
            f"{where} line {error.lineno}: syntax error ({error.msg}): fix the file",
        )
    except ValueError as error:  # null bytes, undecodable source
        return Collector(name, DEFAULT_INTERVAL, f"{where}: cannot be parsed ({error})")

    interval, problem = _run_interval(module, where)
    if problem is None and not _defines_run_metric(module):
        problem = (
            f"{where} does not define run_metric: add `def run_metric(dry_run=False, "
            "verbose=False)` or import it (`from .<module> import run_metric`)"
        )
    return Collector(name, interval, problem)


def _run_interval(module: ast.Module, where: str) -> tuple[str, str | None]:
    """The last top-level `RUN_INTERVAL` value, and a problem if it cannot be scheduled."""
    value: ast.expr | None = None
    line = 0
    for node in module.body:
        if isinstance(node, ast.Assign) and any(_is_name(t, "RUN_INTERVAL") for t in node.targets):
            value, line = node.value, node.lineno
        elif isinstance(node, ast.AnnAssign) and _is_name(node.target, "RUN_INTERVAL"):
            if node.value is not None:
                value, line = node.value, node.lineno
        elif isinstance(node, ast.ImportFrom | ast.Import) and any(
            (alias.asname or alias.name) == "RUN_INTERVAL" for alias in node.names
        ):
            return DEFAULT_INTERVAL, (
                f"{where} line {node.lineno}: RUN_INTERVAL is imported, not a literal string: "
                'assign it a string such as RUN_INTERVAL = "5m"'
            )
    if value is None:
        return DEFAULT_INTERVAL, None
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return DEFAULT_INTERVAL, (
            f"{where} line {line}: RUN_INTERVAL is not a literal string: "
            'assign it a string such as RUN_INTERVAL = "5m"'
        )
    interval = value.value
    try:
        parse_run_interval(interval)
    except ValueError as error:
        message = str(error)
        if not message.startswith("RUN_INTERVAL"):
            message = f'RUN_INTERVAL: {message}; use a span such as "15s", "5m" or "1h 30min"'
        return interval, f"{where} line {line}: {message}"
    return interval, None


def _defines_run_metric(module: ast.Module) -> bool:
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "run_metric":
            return True
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
            (alias.asname or alias.name) == "run_metric" for alias in node.names
        ):
            return True
        if isinstance(node, ast.Assign) and any(_is_name(t, "run_metric") for t in node.targets):
            return True
    return False


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name
