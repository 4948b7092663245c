"""Launchpad's web service: the series collection, then one total_size query per queue."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from metrics.lib.basemetric import Metric
from metrics.lib.errors import CollectorError

STATUSES = ("New", "Unapproved")


class UploadQueueSizes(Metric):
    api_url = os.environ.get("LAUNCHPAD_API_URL", "https://api.launchpad.net")

    def collect(self) -> Iterator[dict[str, Any]]:
        url = f"{self.api_url}/devel/ubuntu/series?ws.size=300"
        series = self.fetch_json(url)
        try:
            active = sorted(entry["name"] for entry in series["entries"] if entry["active"])
        except (TypeError, KeyError) as error:
            raise CollectorError(f"{url}: not a collection of series ({error!r})") from None
        for name in active:
            for status in STATUSES:
                queue_url = (
                    f"{self.api_url}/devel/ubuntu/{name}"
                    f"?ws.op=getPackageUploads&status={status}&ws.show=total_size"
                )
                size = self.fetch_json(queue_url)
                if type(size) is not int:
                    raise CollectorError(f"{queue_url}: expected a number, got {size!r}")
                yield {
                    "measurement": "launchpad_upload_queue_size",
                    "tags": {"series": name, "status": status},
                    "fields": {"count": size},
                }


def run_metric(dry_run: bool = False, verbose: bool = False) -> None:
    UploadQueueSizes(dry_run, verbose).run()
