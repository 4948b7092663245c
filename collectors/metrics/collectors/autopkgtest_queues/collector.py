"""autopkgtest.ubuntu.com publishes its queues as {queue: {release: {arch: [request, ...]}}}."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from metrics.lib.basemetric import Metric
from metrics.lib.errors import CollectorError


class AutopkgtestQueueSizes(Metric):
    base_url = os.environ.get("AUTOPKGTEST_URL", "https://autopkgtest.ubuntu.com")

    def collect(self) -> Iterator[dict[str, Any]]:
        url = f"{self.base_url}/queues.json"
        queues = self.fetch_json(url)
        for queue, releases in sorted(_entries(queues, url)):
            for release, arches in sorted(_entries(releases, url)):
                for arch, requests in sorted(_entries(arches, url)):
                    if not isinstance(requests, list):
                        raise CollectorError(f"{url}: {queue}/{release}/{arch} is not a list")
                    self.log.debug("%s %s %s: %d", queue, release, arch, len(requests))
                    yield {
                        "measurement": "autopkgtest_queue_size",
                        "tags": {"queue": queue, "release": release, "arch": arch},
                        "fields": {"count": len(requests)},
                    }


def _entries(value: Any, url: str) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        raise CollectorError(
            f"{url}: expected objects of queue, release and arch, got a {type(value).__name__}"
        )
    return list(value.items())


def run_metric(dry_run: bool = False, verbose: bool = False) -> None:
    AutopkgtestQueueSizes(dry_run, verbose).run()
