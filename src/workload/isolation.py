"""Discovery of a collectors tree in a child process, as the tree's owner, within limits.

A branch is a team's own repository: one `__init__.py` can make Python's parser run out of
memory, recurse past its limit or crash (Python 3.10), and discovery runs on every hook and
pull. So the tree is read by a fresh `python3 -I` running `discovery.py` (sent on its stdin,
not imported from anywhere the tree's owner can write) as the user who owns the checkouts
(the unprivileged account for a branch, root only for the charm's own bundled tree), under
RLIMIT_AS and RLIMIT_CPU. It reports one collector per line as it goes; when it dies, the
collector it was reading is skipped with a problem that says what to do, and a new child goes
on with the rest.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from .discovery import DEFAULT_INTERVAL, Collector

PYTHON = "/usr/bin/python3"
MEMORY_LIMIT = 256 * 1024 * 1024  # address space of the child, bytes
CPU_LIMIT = 10  # seconds of CPU per child
WALL_LIMIT = 60  # seconds per child, whatever it waits on

_MODULES = ("timespan", "discovery")

_CHILD = """
import json, resource, sys, types
from pathlib import Path

request = json.loads(sys.stdin.readline())
resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
resource.setrlimit(resource.RLIMIT_CPU, (request["cpu"], request["cpu"]))
package = types.ModuleType("ucm_discovery")
package.__path__ = []
sys.modules[package.__name__] = package
for name, source in request["sources"]:
    module = types.ModuleType(f"ucm_discovery.{name}")
    module.__package__ = package.__name__
    sys.modules[module.__name__] = module
    exec(compile(source, f"workload/{name}.py", "exec"), module.__dict__)
discovery = sys.modules["ucm_discovery.discovery"]
tree = Path(request["tree"])
names = request["names"]
if names is None:
    names = discovery.collector_names(tree)
    print(json.dumps({"names": names}), flush=True)
for name in names:
    found = discovery.inspect_collector(tree, name)
    print(json.dumps([found.name, found.interval, found.problem]), flush=True)
"""


class DiscoveryError(Exception):
    """The tree's collectors could not even be listed; one line for the status."""


def discover_checkout(folder: Path, tree: Path) -> list[Collector]:
    """The collectors of `tree`, inside the checkout `folder`, read as the owner of that
    folder: the account for a branch (it unpacked it), root for the charm's bundled tree. Root
    owns `checkouts/`, so the account cannot swap a checkout for someone else's folder."""
    owner = folder.lstat()
    return discover_isolated(tree, uid=owner.st_uid, gid=owner.st_gid)


def discover_isolated(tree: Path, *, uid: int, gid: int) -> list[Collector]:
    """Every collector of `tree`, as `discovery.discover_collectors` finds them, read by a
    child process running as `uid`:`gid` within MEMORY_LIMIT, CPU_LIMIT and WALL_LIMIT."""
    sources = _sources()
    found: dict[str, Collector] = {}
    names: list[str] | None = None
    pending: list[str] | None = None
    while pending is None or pending:
        request = {
            "tree": str(tree),
            "names": pending,
            "sources": sources,
            "memory": MEMORY_LIMIT,
            "cpu": CPU_LIMIT,
        }
        lines, ending = _run_child(json.dumps(request) + "\n", uid=uid, gid=gid)
        if pending is None:
            if not lines or not isinstance(lines[0], dict):
                raise DiscoveryError(f"cannot list the collectors of {tree} ({ending})")
            names = pending = list(lines.pop(0)["names"])
        for line in lines:
            name, interval, problem = line  # type: ignore[misc]
            found[name] = Collector(name, interval, problem)
        pending = [name for name in pending if name not in found]
        if pending:
            culprit = pending.pop(0)
            found[culprit] = Collector(culprit, DEFAULT_INTERVAL, _killed(culprit, ending))
    return [found[name] for name in names or []]


@functools.cache
def _sources() -> list[tuple[str, str]]:
    """discovery.py and what it imports, read once per process, sent to every child."""
    here = Path(__file__).parent
    return [(name, (here / f"{name}.py").read_text()) for name in _MODULES]


def _run_child(request: str, *, uid: int, gid: int) -> tuple[list[Any], str]:
    """The child's report lines and how it ended ("" when it finished)."""
    switch = uid != os.getuid()
    try:
        result = subprocess.run(
            [PYTHON, "-I", "-c", _CHILD],
            input=request,
            capture_output=True,
            text=True,
            timeout=WALL_LIMIT,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            user=uid if switch else None,
            group=gid if switch else None,
            extra_groups=[] if switch else None,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or ""
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        return _lines(text), f"it took more than {WALL_LIMIT} s"
    if result.returncode == 0:
        return _lines(result.stdout), ""
    return _lines(result.stdout), _ending(result.returncode, result.stderr)


def _lines(output: str) -> list[Any]:
    lines: list[Any] = []
    for line in output.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            break  # a line cut short by the child's end
    return lines


def _ending(returncode: int, stderr: str) -> str:
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"it took more than {CPU_LIMIT} s of CPU"
    if returncode < 0:
        return f"it crashed Python's parser ({signal.Signals(-returncode).name})"
    if "MemoryError" in stderr:
        return f"it needed more than {MEMORY_LIMIT // 2**20} MiB of memory"
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    return f"it failed ({last[:200]})"


def _killed(name: str, ending: str) -> str:
    return (
        f"metrics/collectors/{name}/__init__.py cannot be read safely: {ending}; keep"
        " RUN_INTERVAL and run_metric in a small __init__.py and move the rest to other"
        " modules of the collector"
    )
