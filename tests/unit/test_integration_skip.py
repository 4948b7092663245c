"""Without a reachable Juju controller, `pytest tests/integration` skips every test, says why,
and exits 0: a `juju` client stand-in on PATH plays each way a controller can be missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fake_juju(folder: Path, controllers: str, show_controller_exit: int) -> None:
    script = folder / "juju"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  controllers) printf '%s' '{controllers}' ;;\n"
        "  show-controller) echo 'ERROR cannot connect to API' >&2;"
        f" exit {show_controller_exit} ;;\n"
        '  *) echo "unexpected juju call: $*" >&2; exit 99 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)


def run_integration(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/integration",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("controllers", "show_exit", "reason"),
    [
        (None, 0, "no Juju controller: the juju client is not on PATH"),
        ('{"controllers": {}}', 0, "no Juju controller: none is current"),
        (
            '{"current-controller": "lxd", "controllers": {"lxd": {}}}',
            1,
            "Juju controller lxd is unreachable: ERROR cannot connect to API",
        ),
    ],
    ids=["no-client", "no-current-controller", "controller-unreachable"],
)
def test_integration_folder_skips_with_the_reason_and_exits_0(
    tmp_path: Path, controllers: str | None, show_exit: int, reason: str
) -> None:
    if controllers is not None:
        fake_juju(tmp_path, controllers, show_exit)
    # PATH holds only the stand-in (if any): a real juju client elsewhere is never found.
    done = run_integration(str(tmp_path))

    assert done.returncode == 0, done.stdout + done.stderr
    assert reason in done.stdout
    assert " passed" not in done.stdout
    assert "skipped" in done.stdout
