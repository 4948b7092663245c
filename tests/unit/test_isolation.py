"""Discovery in a child process, as the tree's owner, within memory and CPU limits: hostile
`__init__.py` files cost their own collector, never the others or the hook."""

from __future__ import annotations

import os
import pwd
import shutil
import string
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workload import isolation
from workload.account import SYSTEM_USER, Account
from workload.discovery import MAX_INIT_BYTES, Collector, discover_collectors
from workload.isolation import DiscoveryError, discover_isolated

RUN_METRIC = "def run_metric(dry_run=False, verbose=False):\n    pass\n"
GOOD = 'RUN_INTERVAL = "15s"\n' + RUN_METRIC
ME = {"uid": os.getuid(), "gid": os.getgid()}


def write_tree(tree: Path, collectors: Mapping[str, str | bytes]) -> Path:
    package = tree / "metrics" / "collectors"
    package.mkdir(parents=True, exist_ok=True)
    for name, init in collectors.items():
        (package / name).mkdir()
        data = init.encode() if isinstance(init, str) else init
        (package / name / "__init__.py").write_bytes(data)
    return tree


def nested(term: str, joiner: str, size: int) -> bytes:
    """`x = term<joiner>term...` of about `size` bytes: what makes the parser recurse."""
    count = size // (len(term) + len(joiner))
    return ("x = " + joiner.join([term] * count) + "\n" + GOOD).encode()


# The hostile files, cut to the size bound so that they reach the parser.
HOSTILE = {
    "sum": nested("1", "+", MAX_INIT_BYTES - 200),
    "attribute": ("x = a" + ".b" * ((MAX_INIT_BYTES - 200) // 2) + "\n" + GOOD).encode(),
    "negation": ("x = " + "not " * ((MAX_INIT_BYTES - 200) // 4) + "1\n" + GOOD).encode(),
    "brackets": ("x = " + "[" * 60_000 + "]" * 60_000 + "\n" + GOOD).encode(),
}


def test_hostile_files_cost_their_collector_only_and_stay_within_the_limits(
    tmp_path: Path,
) -> None:
    tree = write_tree(tmp_path / "tree", {"good": GOOD, "zz_good": GOOD, **HOSTILE})

    found = {c.name: c for c in discover_isolated(tree, **ME)}

    assert found["good"] == Collector("good", "15s", None)
    assert found["zz_good"] == Collector("zz_good", "15s", None)
    for name in HOSTILE:
        problem = found[name].problem or ""
        # Python 3.11 and 3.12 refuse these with an error discovery reports; 3.10 may crash
        # the child instead, which the parent reports the same way.
        assert problem.startswith(f"metrics/collectors/{name}/__init__.py "), (name, problem)


def test_a_child_over_its_memory_limit_costs_that_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RLIMIT_AS holds: memory beyond it fails in the child, not on the machine."""
    hog = "    if name == 'hog':\n        blob = bytearray(2 * request['memory'])\n"
    child = isolation._CHILD.replace("for name in names:\n", "for name in names:\n" + hog, 1)
    monkeypatch.setattr(isolation, "_CHILD", child)
    tree = write_tree(tmp_path / "tree", {"hog": GOOD, "lean": GOOD})

    found = discover_isolated(tree, **ME)

    assert "it needed more than 256 MiB of memory" in (found[0].problem or "")
    assert found[1] == Collector("lean", "15s", None)


def test_a_child_that_dies_costs_the_collector_it_was_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser crashing (as Python 3.10's does on deep nesting) kills the child: the parent
    names that collector and a new child reads the rest."""
    crash = (
        "    if name == 'boom':\n        import os, signal; os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    child = isolation._CHILD.replace("for name in names:\n", "for name in names:\n" + crash, 1)
    assert child != isolation._CHILD
    monkeypatch.setattr(isolation, "_CHILD", child)
    tree = write_tree(tmp_path / "tree", {"alpha": GOOD, "boom": GOOD, "omega": GOOD})

    found = discover_isolated(tree, **ME)

    assert found == [
        Collector("alpha", "15s", None),
        Collector(
            "boom",
            "5m",
            "metrics/collectors/boom/__init__.py cannot be read safely: it crashed Python's"
            " parser (SIGSEGV); keep RUN_INTERVAL and run_metric in a small __init__.py and"
            " move the rest to other modules of the collector",
        ),
        Collector("omega", "15s", None),
    ]


def test_a_child_over_its_cpu_time_costs_that_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spin = "    while name == 'spin':\n        pass\n"
    child = isolation._CHILD.replace("for name in names:\n", "for name in names:\n" + spin, 1)
    monkeypatch.setattr(isolation, "_CHILD", child)
    monkeypatch.setattr(isolation, "CPU_LIMIT", 1)
    tree = write_tree(tmp_path / "tree", {"spin": GOOD, "steady": GOOD})

    found = discover_isolated(tree, **ME)

    assert found[0].name == "spin"
    assert "it took more than 1 s of CPU" in (found[0].problem or "")
    assert found[1] == Collector("steady", "15s", None)


def test_a_tree_that_cannot_be_listed_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "_CHILD", "import sys; sys.exit('no listing')")
    tree = write_tree(tmp_path / "tree", {"good": GOOD})

    with pytest.raises(DiscoveryError, match=r"cannot list the collectors of .*tree \(it failed"):
        discover_isolated(tree, **ME)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder the system user can enter (pytest's own is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="isolation-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.getuid() != 0, reason="reading as another user needs root")
def test_the_tree_is_read_with_its_owner_s_rights_not_root_s(shared_tmp: Path) -> None:
    Account(SYSTEM_USER).ensure()
    account = pwd.getpwnam(SYSTEM_USER)
    tree = write_tree(shared_tmp / "tree", {"public": GOOD, "root_only": GOOD})
    (tree / "metrics" / "collectors" / "root_only").chmod(0o700)

    found = discover_isolated(tree, uid=account.pw_uid, gid=account.pw_gid)

    assert found[0].name == "public"
    assert found[0].problem is None
    assert found[1].name == "root_only"
    assert found[1].problem == (
        "metrics/collectors/root_only cannot be read (Permission denied): fix its permissions"
    )


NAMES = st.text(alphabet=string.ascii_letters + string.digits + "_-.é \n", min_size=1, max_size=12)
SOURCES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.builds(
        lambda interval, tail: f"RUN_INTERVAL = {interval!r}\n{tail}\n".encode(),
        st.text(max_size=20),
        st.sampled_from([RUN_METRIC, "", "run_metric = 1", "from .x import run_metric"]),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(collectors=st.dictionaries(NAMES, SOURCES, max_size=5))
def test_any_tree_gives_every_collector_an_interval_or_a_problem(
    collectors: dict[str, bytes],
) -> None:
    collectors = {
        name: source
        for name, source in collectors.items()
        if name not in (".", "..") and "/" not in name and not name.startswith((".", "__"))
    }
    with tempfile.TemporaryDirectory() as scratch:
        tree = write_tree(Path(scratch) / "tree", collectors)

        found = discover_isolated(tree, **ME)

        assert sorted(c.name for c in found) == sorted(collectors)
        for collector in found:
            assert collector.problem or collector.interval
        # The child finds what discovery in this process finds.
        assert found == discover_collectors(tree)
