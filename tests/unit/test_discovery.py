"""Static discovery on real collectors trees in a temporary directory."""

import os
from pathlib import Path

import pytest

from workload.discovery import MAX_INIT_BYTES, MAX_NAME_LENGTH, Collector, discover_collectors

RUN_METRIC = "def run_metric(dry_run=False, verbose=False):\n    pass\n"


def write_collector(tree: Path, name: str, init: str) -> Path:
    folder = tree / "metrics" / "collectors" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(init)
    return folder


def test_no_collectors_folder_means_no_collectors(tmp_path: Path) -> None:
    assert discover_collectors(tmp_path) == []


def test_collectors_are_sorted_with_interval_and_default(tmp_path: Path) -> None:
    write_collector(tmp_path, "zeta", 'RUN_INTERVAL = "1h 30min"\n' + RUN_METRIC)
    write_collector(tmp_path, "alpha", RUN_METRIC)
    (tmp_path / "metrics" / "collectors" / "__init__.py").write_text("")
    (tmp_path / "metrics" / "collectors" / "__pycache__").mkdir()

    assert discover_collectors(tmp_path) == [
        Collector("alpha", "5m", None),
        Collector("zeta", "1h 30min", None),
    ]


def test_run_metric_imported_from_a_module_counts(tmp_path: Path) -> None:
    write_collector(tmp_path, "queues", 'RUN_INTERVAL = "15s"\nfrom .queues import run_metric\n')
    write_collector(tmp_path, "aliased", "from .impl import main as run_metric\n")
    write_collector(tmp_path, "annotated", 'RUN_INTERVAL: str = "2m"\n' + RUN_METRIC)

    assert discover_collectors(tmp_path) == [
        Collector("aliased", "5m", None),
        Collector("annotated", "2m", None),
        Collector("queues", "15s", None),
    ]


def test_discovery_never_runs_collector_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_collector(
        tmp_path,
        "hostile",
        f"open({str(marker)!r}, 'w').close()\nRUN_INTERVAL = '5m'\n" + RUN_METRIC,
    )

    assert discover_collectors(tmp_path) == [Collector("hostile", "5m", None)]
    assert not marker.exists()


def only_problem(tree: Path) -> str:
    (collector,) = discover_collectors(tree)
    assert collector.problem is not None
    return collector.problem


def test_missing_run_metric_is_a_problem(tmp_path: Path) -> None:
    write_collector(tmp_path, "lazy", 'RUN_INTERVAL = "5m"\nfrom .impl import Metric\n')

    problem = only_problem(tmp_path)
    assert "metrics/collectors/lazy/__init__.py does not define run_metric" in problem
    assert "from .<module> import run_metric" in problem


def test_run_metric_inside_a_function_does_not_count(tmp_path: Path) -> None:
    write_collector(tmp_path, "nested", "def setup():\n    def run_metric():\n        pass\n")

    assert "does not define run_metric" in only_problem(tmp_path)


@pytest.mark.parametrize(
    "assignment",
    ['RUN_INTERVAL = "5" + "m"', "RUN_INTERVAL = INTERVAL", 'RUN_INTERVAL = f"{5}m"'],
)
def test_interval_that_is_not_a_literal_string_is_a_problem(
    tmp_path: Path, assignment: str
) -> None:
    write_collector(tmp_path, "computed", f"INTERVAL = '5m'\n{assignment}\n" + RUN_METRIC)

    (collector,) = discover_collectors(tmp_path)
    assert collector.interval == "5m"
    assert collector.problem == (
        "metrics/collectors/computed/__init__.py line 2: RUN_INTERVAL is not a literal "
        'string: assign it a string such as RUN_INTERVAL = "5m"'
    )


def test_imported_interval_is_a_problem(tmp_path: Path) -> None:
    write_collector(tmp_path, "imported", "from .settings import RUN_INTERVAL\n" + RUN_METRIC)

    assert "line 1: RUN_INTERVAL is imported, not a literal string" in only_problem(tmp_path)


@pytest.mark.parametrize("interval", ["five minutes", "5 parsecs", ""])
def test_interval_that_systemd_rejects_is_a_problem(tmp_path: Path, interval: str) -> None:
    write_collector(tmp_path, "vague", f"RUN_INTERVAL = {interval!r}\n" + RUN_METRIC)

    (collector,) = discover_collectors(tmp_path)
    assert collector.interval == interval
    assert collector.problem is not None
    assert collector.problem.startswith(
        "metrics/collectors/vague/__init__.py line 1: RUN_INTERVAL: invalid systemd time span "
        f"{interval!r}"
    )


@pytest.mark.parametrize(
    ("interval", "why"),
    [("0", "is zero"), ("infinity", "is infinity"), ("500ms", "is shorter than 1s, the shortest")],
)
def test_interval_a_timer_cannot_use_is_a_problem(tmp_path: Path, interval: str, why: str) -> None:
    write_collector(tmp_path, "eager", f"RUN_INTERVAL = {interval!r}\n" + RUN_METRIC)

    problem = only_problem(tmp_path)
    assert problem.startswith(
        f"metrics/collectors/eager/__init__.py line 1: RUN_INTERVAL {interval!r} {why}"
    )


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write_collector(tmp_path, "broken", 'RUN_INTERVAL = "5m"\n\ndef run_metric(:\n    pass\n')

    problem = only_problem(tmp_path)
    assert problem.startswith("metrics/collectors/broken/__init__.py line 3: syntax error (")


@pytest.mark.parametrize("name", ["my-collector", "2fast", "ünïcode", "class", "has space"])
def test_folder_name_that_is_not_an_identifier_is_a_problem(tmp_path: Path, name: str) -> None:
    write_collector(tmp_path, name, RUN_METRIC)

    (collector,) = discover_collectors(tmp_path)
    assert collector.name == name
    assert collector.problem is not None
    assert "is not a Python identifier" in collector.problem


def test_folder_without_init_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "metrics" / "collectors" / "empty").mkdir(parents=True)

    assert only_problem(tmp_path) == (
        "metrics/collectors/empty/__init__.py is missing: add it with RUN_INTERVAL and run_metric"
    )


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_init_that_is_not_a_regular_file_is_missing(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "metrics" / "collectors" / "odd"
    folder.mkdir(parents=True)
    init = folder / "__init__.py"
    if kind == "folder":
        init.mkdir()
    else:
        os.mkfifo(init)  # reading it would block forever

    assert only_problem(tmp_path).endswith(
        "__init__.py is missing: add it with RUN_INTERVAL and run_metric"
    )


LINK_PROBLEM = "is a symbolic link, which the charm does not follow in a collectors tree"


def test_symbolic_links_in_the_tree_are_not_followed(tmp_path: Path) -> None:
    """Root must not read through links the tree's author planted: a link to a root-only file
    or folder outside the tree, a loop, /proc/self/mem. Each such collector is named."""
    real = write_collector(tmp_path, "real", 'RUN_INTERVAL = "2h"\n' + RUN_METRIC)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "__init__.py").write_text('RUN_INTERVAL = "1h"\n' + RUN_METRIC)
    collectors = tmp_path / "metrics" / "collectors"
    (collectors / "alias").symlink_to(outside)
    for name, target in (
        ("linked_init", real / "__init__.py"),
        ("dangling", "nowhere.py"),
        ("loop", "__init__.py"),
        ("proc_mem", "/proc/self/mem"),
    ):
        (collectors / name).mkdir()
        (collectors / name / "__init__.py").symlink_to(target)

    found = {c.name: c for c in discover_collectors(tmp_path)}

    assert found.pop("real") == Collector("real", "2h", None)
    assert sorted(found) == ["alias", "dangling", "linked_init", "loop", "proc_mem"]
    assert (
        found["alias"].problem
        == f"metrics/collectors/alias {LINK_PROBLEM}: replace it with the real folder or file"
    )
    for name in ("dangling", "linked_init", "loop", "proc_mem"):
        problem = found[name].problem or ""
        assert problem.startswith(f"metrics/collectors/{name}/__init__.py {LINK_PROBLEM}"), name


@pytest.mark.parametrize("linked", ["metrics", "metrics/collectors"])
def test_a_linked_package_folder_means_no_collectors(tmp_path: Path, linked: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_collector(elsewhere, "real", 'RUN_INTERVAL = "2h"\n' + RUN_METRIC)
    tree = tmp_path / "tree"
    (tree / linked).parent.mkdir(parents=True, exist_ok=True)
    (tree / linked).symlink_to(elsewhere / linked)

    assert discover_collectors(tree) == []


def test_an_init_over_the_size_bound_is_a_problem_not_parsed(tmp_path: Path) -> None:
    padding = "x = 1\n" * (MAX_INIT_BYTES // 6 + 1)
    write_collector(tmp_path, "huge", 'RUN_INTERVAL = "3h"\n' + RUN_METRIC + padding)

    assert only_problem(tmp_path) == (
        "metrics/collectors/huge/__init__.py has 256 KiB, more than the 256 KiB an __init__.py"
        " may have: keep RUN_INTERVAL and run_metric there and move the code to other modules"
        " of the collector"
    )


def test_collectors_folder_that_is_a_file_means_no_collectors(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "collectors").write_text("")

    assert discover_collectors(tmp_path) == []


def test_encoding_declaration_and_bom_are_honoured(tmp_path: Path) -> None:
    latin = write_collector(tmp_path, "latin", "")
    (latin / "__init__.py").write_bytes(
        b'# -*- coding: latin-1 -*-\nRUN_INTERVAL = "1h"\nNAME = "gr\xfcn"\n' + RUN_METRIC.encode()
    )
    bom = write_collector(tmp_path, "with_bom", "")
    (bom / "__init__.py").write_bytes(b'\xef\xbb\xbfRUN_INTERVAL = "1d"\n' + RUN_METRIC.encode())
    broken = write_collector(tmp_path, "zz_not_utf8", "")
    (broken / "__init__.py").write_bytes(b'NAME = "gr\xfcn"\n' + RUN_METRIC.encode())

    latin_found, bom_found, broken_found = discover_collectors(tmp_path)
    assert latin_found == Collector("latin", "1h", None)
    assert bom_found == Collector("with_bom", "1d", None)
    assert broken_found.problem is not None
    assert broken_found.problem.startswith(
        "metrics/collectors/zz_not_utf8/__init__.py line 1: syntax error ("
    )


def test_last_top_level_interval_wins(tmp_path: Path) -> None:
    write_collector(tmp_path, "twice", 'RUN_INTERVAL = "5m"\nRUN_INTERVAL = "1h"\n' + RUN_METRIC)
    write_collector(
        tmp_path, "unused", 'if False:\n    RUN_INTERVAL = "nonsense"\nrun_metric = print\n'
    )

    assert discover_collectors(tmp_path) == [
        Collector("twice", "1h", None),
        Collector("unused", "5m", None),
    ]


def test_name_longer_than_a_system_user_allows_is_a_problem_on_that_collector(
    tmp_path: Path,
) -> None:
    longest = "a" * MAX_NAME_LENGTH
    too_long = "b" * (MAX_NAME_LENGTH + 1)
    write_collector(tmp_path, longest, RUN_METRIC)
    write_collector(tmp_path, too_long, 'RUN_INTERVAL = "1h"\n' + RUN_METRIC)
    write_collector(tmp_path, "short", RUN_METRIC)

    assert discover_collectors(tmp_path) == [
        Collector(longest, "5m", None),
        Collector(
            too_long,
            "5m",
            f"metrics/collectors/{too_long}: the folder name has 29 characters, more than 28"
            " (the collector runs as the system user mc-<name>, and user names stop at 31"
            " characters): rename the folder to at most 28 characters",
        ),
        Collector("short", "5m", None),
    ]


def test_large_init_is_read_to_the_end(tmp_path: Path) -> None:
    padding = "".join(f"CONSTANT_{index} = {index}\n" for index in range(9_000))
    write_collector(tmp_path, "large", padding + 'RUN_INTERVAL = "3h"\n' + RUN_METRIC)

    assert discover_collectors(tmp_path) == [Collector("large", "3h", None)]
