"""A contributor asks for sponsorship by subscribing a sponsor team to the bug on Launchpad."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from metrics.lib.basemetric import Metric
from metrics.lib.errors import CollectorError

TEAMS = ("ubuntu-sponsors", "ubuntu-security-sponsors")


class SponsoringQueue(Metric):
    api_url = os.environ.get("LAUNCHPAD_API_URL", "https://api.launchpad.net")

    def collect(self) -> Iterator[dict[str, Any]]:
        for team in TEAMS:
            query = urlencode(
                {
                    "ws.op": "searchTasks",
                    "bug_subscriber": f"https://api.launchpad.net/devel/~{team}",
                    "ws.show": "total_size",
                }
            )
            url = f"{self.api_url}/devel/ubuntu?{query}"
            size = self.fetch_json(url)
            if type(size) is not int:
                raise CollectorError(f"{url}: expected a number, got {size!r}")
            yield {
                "measurement": "sponsoring_queue_size",
                "tags": {"team": team},
                "fields": {"count": size},
            }


def run_metric(dry_run: bool = False, verbose: bool = False) -> None:
    SponsoringQueue(dry_run, verbose).run()
