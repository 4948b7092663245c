"""`python3 -m workload` in a new process, as the pull timer and operators run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from trees import write_tree

REPOSITORY = Path(__file__).resolve().parents[2]


def workload(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path or os.environ["PATH"],
        "PYTHONPATH": str(REPOSITORY / "src"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [sys.executable, "-m", "workload", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


GOOD = 'RUN_INTERVAL = "15s"\n\n\ndef run_metric(dry_run=False, verbose=False):\n    pass\n'
NO_RUN_METRIC = 'RUN_INTERVAL = "1h"\n'


def test_render_writes_the_units_for_a_tree_and_names_the_skipped_collectors(
    tmp_path: Path,
) -> None:
    tree = write_tree(tmp_path / "tree", {"queue_size": GOOD, "lonely": NO_RUN_METRIC})

    result = workload("render", "--collectors", str(tree), "--output", str(tmp_path / "out"))

    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "metrics-collector@queue_size.timer" in names
    assert "metrics-collector@.service" in names
    assert "metrics-collector@lonely.timer" not in names
    assert "skipped lonely: " in result.stderr
    assert "does not define run_metric" in result.stderr
    timer = (tmp_path / "out" / "metrics-collector@queue_size.timer").read_text()
    assert "OnUnitInactiveSec=15s" in timer
    assert result.stdout.splitlines() == [str(tmp_path / "out" / name) for name in names]


def test_render_for_one_unit_of_three_writes_only_the_timers_it_owns(tmp_path: Path) -> None:
    names = [f"collector_{n}" for n in range(9)]
    tree = write_tree(tmp_path / "tree", dict.fromkeys(names, GOOD))
    units = [f"ubuntu-community-metrics/{n}" for n in range(3)]
    rendered = []
    for unit in units:
        out = tmp_path / unit.replace("/", "-")
        peers = ",".join(other for other in units if other != unit)
        result = workload(
            "render", "--collectors", str(tree), "--output", str(out),
            "--unit", unit, "--peers", peers,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        timers = [p.name for p in out.glob("metrics-collector@*.timer")]
        rendered.append(sorted(t.split("@")[1].removesuffix(".timer") for t in timers))
        assert "metrics-collector@.service" in {p.name for p in out.iterdir()}

    assert sorted(name for mine in rendered for name in mine) == names
    assert all(mine for mine in rendered)  # nine collectors: each of three units gets some
    alone = workload("render", "--collectors", str(tree), "--output", str(tmp_path / "all"))
    assert len(list((tmp_path / "all").glob("metrics-collector@*.timer"))) == 9, alone.stderr
    lost = workload(
        "render", "--collectors", str(tree), "--output", str(tmp_path / "x"), "--peers", "a/1"
    )
    assert (lost.returncode, lost.stderr.strip()) == (
        2,
        "--peers needs --unit: the unit whose timers to render",
    )


def test_render_of_a_folder_that_is_not_a_tree_says_what_to_pass(tmp_path: Path) -> None:
    result = workload("render", "--collectors", str(tmp_path), "--output", str(tmp_path / "o"))

    assert result.returncode == 2
    assert f"{tmp_path} has no metrics/collectors folder: pass the collectors tree" in (
        result.stderr
    )
    assert not (tmp_path / "o").exists()


def test_render_with_a_bad_timeout_names_the_option(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", {"queue_size": GOOD})

    result = workload(
        "render", "--collectors", str(tree), "--output", str(tmp_path / "o"),
        "--collector-timeout", "soon",
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.startswith("cannot render units: config collector-timeout")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder the system user can enter (pytest's own is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="workload-cli-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def recording_path(folder: Path) -> str:
    """PATH with a systemctl and journalctl that log their arguments and succeed."""
    folder.mkdir()
    for program in ("systemctl", "journalctl"):
        script = folder / program
        script.write_text(f'#!/bin/sh\nprintf "{program} %s\\n" "$*" >> {folder}/calls\n')
        script.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


@pytest.mark.skipif(os.getuid() != 0, reason="sync runs pip as the system user: needs root")
def test_sync_then_status_as_an_operator_runs_them(shared_tmp: Path) -> None:
    root = shared_tmp / "root"
    tree = write_tree(shared_tmp / "charm" / "collectors", {"queue_size": GOOD})
    settings = root / "etc" / "ubuntu-community-metrics" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"bundled_tree": str(tree)}))
    path = recording_path(shared_tmp / "bin")

    synced = workload("--root", str(root), "sync", path=path)
    status = workload("--root", str(root), "status", path=path)
    as_json = workload("--root", str(root), "status", "--json", path=path)

    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("commit: none -> bundled-")
    assert "added: queue_size" in synced.stdout
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("commit: bundled-")
    assert lines[1].split() == [
        "NAME",
        "INTERVAL",
        "LAST-RESULT",
        "LAST-RUN",
        "NEXT-RUN",
        "PROBLEM",
    ]
    assert lines[2].split() == ["queue_size", "15s", "-", "-", "-", "-"]
    data = json.loads(as_json.stdout)
    assert data["problems"] == []
    assert [c["name"] for c in data["collectors"]] == ["queue_size"]
    calls = (shared_tmp / "bin" / "calls").read_text()
    assert "systemctl enable --now metrics-collector@queue_size.timer" in calls


def test_run_of_an_unknown_collector_names_the_known_ones(tmp_path: Path) -> None:
    result = workload("--root", str(tmp_path), "run", "nope")

    assert result.returncode == 2
    assert result.stderr.strip() == "no collector named 'nope': known collectors: none"


def test_sync_of_an_unconfigured_unit_fails_with_the_reason(tmp_path: Path) -> None:
    result = workload("--root", str(tmp_path), "sync")

    assert result.returncode == 1
    assert "settings.json is missing: the charm has not configured this unit yet" in (
        result.stderr
    )
