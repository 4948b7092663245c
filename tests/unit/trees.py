"""Collectors trees on disk, for the unit tests of discovery, sync and the CLI."""

from __future__ import annotations

from pathlib import Path


def write_tree(folder: Path, collectors: dict[str, str]) -> Path:
    """A collectors tree (the folder holding metrics/) with these collectors' __init__.py."""
    for name, text in {
        "metrics/__init__.py": "",
        "metrics/collectors/__init__.py": "",
        **{f"metrics/collectors/{n}/__init__.py": t for n, t in collectors.items()},
    }.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
