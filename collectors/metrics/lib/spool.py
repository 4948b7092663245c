"""A bounded on-disk queue of line protocol batches that could not be written yet.

One file per batch, named `<nanoseconds>-<sequence>-<points>.<destination>.lp`, the nanoseconds
being when the batch was made, the destination a digest of the InfluxDB host and database it was
going to, so that names sort oldest first (also when two senders spool batches out
of order) and the point count is known without reading the file. A file appears atomically
(written to a temporary name, flushed to disk, renamed) and is deleted only after InfluxDB
accepted it, so a crash may replay a batch twice but never loses one; InfluxDB keeps one point
per measurement, tag set and timestamp, so a replayed point overwrites its twin.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# `<nanoseconds>-<pid and sequence>-<points>[.<destination>].lp`
_BATCH_NAME = re.compile(r"^\d{20}-\d+-(\d+)(?:\.([0-9a-f]{12}))?\.lp$")
# A batch is written in milliseconds: a `.partial` this old belongs to a run that died.
_PARTIAL_AGE = 600


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    points: int
    destination: str = ""  # "" for batches spooled before destinations were recorded

    @property
    def made(self) -> float:
        """When the batch was made, in seconds since the epoch (from its name)."""
        return int(self.path.name[:20]) / 1e9

    def read(self) -> bytes:
        return self.path.read_bytes()

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class Spool:
    def __init__(
        self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, destination: str = ""
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        # Where the batches added now would have gone (a digest of InfluxDB's host and
        # database, set by the writer): recorded in each batch's name, so that a batch is
        # replayed only where it was going.
        self.destination = destination
        self._sequence = 0
        self.log = logging.getLogger("metrics.spool")

    def batches(self) -> Iterator[SpooledBatch]:
        """The spooled batches, oldest first. A file that is not one (a name this spool does not
        make, not a regular file) is set aside in `rejected/` with a log line, and a `.partial`
        left by a run that died while writing it is deleted, so neither blocks later runs nor
        escapes the size bound."""
        if not self.directory.is_dir():
            return
        self._clean_partials()
        for path in sorted(self.directory.glob("*.lp")):
            match = _BATCH_NAME.match(path.name)
            if match is None or not path.is_file() or path.is_symlink():
                self.set_aside(path, "not a batch this spool wrote")
                continue
            yield SpooledBatch(path, int(match.group(1)), match.group(2) or "")

    def points(self) -> int:
        """How many points wait in the spool, for every destination (from the file names)."""
        if not self.directory.is_dir():
            return 0
        names = (_BATCH_NAME.match(path.name) for path in self.directory.glob("*.lp"))
        return sum(int(match.group(1)) for match in names if match)

    def set_aside(self, path: Path, why: str) -> None:
        """Move a file that cannot be replayed out of the way, keeping it for a person."""
        rejected = self.directory / "rejected"
        rejected.mkdir(mode=0o700, exist_ok=True)
        try:
            os.replace(path, rejected / path.name)
        except OSError:
            path.unlink(missing_ok=True)
        self.log.warning("set aside %s from the spool (%s): see %s", path.name, why, rejected)

    def _clean_partials(self) -> None:
        for partial in self.directory.glob(".*.partial"):
            try:
                if time.time() - partial.lstat().st_mtime > _PARTIAL_AGE:
                    partial.unlink()
                    self.log.warning("deleted %s, left by a run that stopped writing it", partial)
            except FileNotFoundError:
                pass

    def add(self, body: bytes, points: int, made: int | None = None) -> int:
        """Keep `body` for a later run; returns how many older points were dropped for room.

        `made`: when the batch was made (ns since the epoch), which places it among the
        others; now if not given.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        dropped = 0
        if len(body) > self.max_bytes:
            self.log.error(
                "dropped a batch of %d points: its %d bytes exceed the spool's limit of %d",
                points,
                len(body),
                self.max_bytes,
            )
            return points
        self._sequence += 1
        made = time.time_ns() if made is None else made
        where = f".{self.destination}" if self.destination else ""
        name = f"{made:020d}-{os.getpid():07d}{self._sequence:06d}-{points}{where}.lp"
        sizes = [(batch, batch.path.stat().st_size) for batch in self.batches()]
        used = sum(size for _, size in sizes)
        keep = True
        for batch, size in sizes:
            if used + len(body) <= self.max_bytes:
                break
            if batch.path.name > name:
                # Every batch left is newer than this one (a sender spooled a later batch
                # first): this one is the oldest, so it is the one to drop.
                keep = False
                dropped += points
                break
            batch.delete()
            used -= size
            dropped += batch.points
        if dropped:
            self.log.warning(
                "spool full (%d bytes): dropped the %d oldest spooled points",
                self.max_bytes,
                dropped,
            )
        if not keep:
            return dropped
        partial = self.directory / f".{name}.partial"
        with partial.open("wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        partial.rename(self.directory / name)
        return dropped
