"""What most collectors need: JSON over HTTP, and running totals turned into increments."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from .errors import CollectorError

# One run is one process, so a module-level cache is a per-run cache: two metrics of a
# collector reading the same URL cause one request.
_cache: dict[str, Any] = {}
_session = requests.Session()
BACKOFF = 0.5  # seconds before the second attempt, doubling, with full jitter


def fetch_json(url: str, *, timeout: float = 30.0, attempts: int = 3) -> Any:
    """The JSON document at `url`, fetched at most once per run.

    Connection errors, timeouts, 5xx and 429 are retried with a short jittered backoff; what
    still fails raises `CollectorError` naming the URL.
    """
    if url in _cache:
        return _cache[url]
    problem = ""
    for attempt in range(1, attempts + 1):
        try:
            response = _session.get(url, timeout=timeout, headers={"Accept": "application/json"})
        except (requests.ConnectionError, requests.Timeout) as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            if response.status_code == 200:
                try:
                    _cache[url] = response.json()
                except ValueError as error:
                    raise CollectorError(f"{url} did not return JSON ({error})") from None
                return _cache[url]
            problem = f"HTTP {response.status_code} {response.reason}"
            if response.status_code != 429 and response.status_code < 500:
                break
        if attempt < attempts:
            time.sleep(random.uniform(0, BACKOFF * 2 ** (attempt - 1)))  # noqa: S311
    raise CollectorError(f"cannot fetch {url}: {problem}")


def clear_cache() -> None:
    """Forget fetched documents (tests running several collectors in one process use this)."""
    _cache.clear()


class Counters:
    """Turns cumulative totals from upstream into increments, remembered across runs.

    `increment(measurement, field, total, tags)` returns how much `total` grew since the last
    run for the same measurement, tag set and field; `None` the first time (nothing to compare
    with yet), and `total` itself when it went down (the upstream counter was reset). Nothing is
    remembered until `save()`, which `Metric.run()` calls after writing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._totals: dict[str, float] = json.loads(path.read_text())
        except FileNotFoundError:
            self._totals = {}
        except ValueError as error:
            raise CollectorError(
                f"{path} is not valid JSON ({error}): delete it to start counting afresh"
            ) from None

    def increment(
        self,
        measurement: str,
        field: str,
        total: float,
        tags: Mapping[str, str] | None = None,
    ) -> float | None:
        key = json.dumps([measurement, sorted((tags or {}).items()), field])
        previous = self._totals.get(key)
        self._totals[key] = total
        if previous is None:
            return None
        if total < previous:
            return total
        return total - previous

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(self._totals, sort_keys=True))
        os.replace(partial, self.path)
