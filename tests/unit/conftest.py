"""The unit tests' shared helper modules (trees.py) are imported from this folder; `endpoint`
starts the metrics endpoint (test_exporter, test_checks)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics.testing import free_port

sys.path.insert(0, str(Path(__file__).parent))

from workload.paths import Paths

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[Paths, str]]:
    """`python3 -m workload exporter` on a free port over an empty temporary root: the root
    and the /metrics URL."""
    paths = Paths(tmp_path / "root")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workload", "--root", str(paths.root), "exporter", "--port",
         str(port)],
        cwd=REPOSITORY / "src",
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the exporter did not start listening"
            time.sleep(0.1)
    yield paths, url
    process.terminate()
    process.wait(10)
