"""Ubuntu releases by codename, ordered by when they were released.

The original framework's helper, with its API: `UbuntuRelease("noble") > "jammy"`, and
`UbuntuRelease("x")` raises ValueError for a codename distro-info does not know. Release order
comes from distro-info (the `distro-info-data` package's ubuntu.csv on the machine).
"""

from __future__ import annotations

import functools
from typing import Any

from distro_info import UbuntuDistroInfo


@functools.total_ordering
class UbuntuRelease:
    """A release, compared with another release or a codename by release order."""

    all_codenames: list[str] = UbuntuDistroInfo().all

    def __init__(self, codename: str) -> None:
        if codename not in self.all_codenames:
            raise ValueError(f"Unknown codename '{codename}'")
        self.codename = codename

    def _position(self, other: Any) -> int:
        codename = other.codename if isinstance(other, UbuntuRelease) else other
        return self.all_codenames.index(codename)

    def __eq__(self, other: object) -> bool:
        return self.all_codenames.index(self.codename) == self._position(other)

    def __le__(self, other: Any) -> bool:
        return self.all_codenames.index(self.codename) <= self._position(other)

    # Like the original: comparable, not hashable (equality is by codename or release).
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"UbuntuRelease({self.codename!r})"
