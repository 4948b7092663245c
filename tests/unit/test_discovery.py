"""Static discovery on real collectors trees in a temporary directory."""

import os
from pathlib import Path

import pytest

from workload.discovery import MAX_NAME_LENGTH, Collector, discover_collectors

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


@pytest.mark.parametrize(("interval", "why"), [("0", "is zero"), ("infinity", "is infinity")])
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


@pytest.mark.parametrize("kind", ["folder", "fifo", "dangling link", "link loop"])
def test_init_that_is_not_a_regular_file_is_missing(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "metrics" / "collectors" / "odd"
    folder.mkdir(parents=True)
    init = folder / "__init__.py"
    if kind == "folder":
        init.mkdir()
    elif kind == "fifo":
        os.mkfifo(init)  # reading it would block forever
    elif kind == "dangling link":
        init.symlink_to("nowhere.py")
    else:
        init.symlink_to("__init__.py")

    assert only_problem(tmp_path).endswith(
        "__init__.py is missing: add it with RUN_INTERVAL and run_metric"
    )


def test_symbolic_links_are_followed(tmp_path: Path) -> None:
    real = write_collector(tmp_path, "real", 'RUN_INTERVAL = "2h"\n' + RUN_METRIC)
    (tmp_path / "metrics" / "collectors" / "alias").symlink_to(real)
    linked = tmp_path / "metrics" / "collectors" / "linked_init"
    linked.mkdir()
    (linked / "__init__.py").symlink_to(real / "__init__.py")
    (tmp_path / "metrics" / "collectors" / "plain_file").write_text(RUN_METRIC)

    assert discover_collectors(tmp_path) == [
        Collector("alias", "2h", None),
        Collector("linked_init", "2h", None),
        Collector("real", "2h", None),
    ]


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
    padding = "".join(f"CONSTANT_{index} = {index}\n" for index in range(20_000))
    write_collector(tmp_path, "large", padding + 'RUN_INTERVAL = "3h"\n' + RUN_METRIC)

    assert discover_collectors(tmp_path) == [Collector("large", "3h", None)]
