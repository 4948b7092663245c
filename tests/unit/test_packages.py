"""The unit's packages, checked and installed with the real dpkg and apt of this machine."""

import pytest

from workload.packages import PACKAGES, PackagesError, ensure_packages, missing_packages


def test_the_packages_the_workload_needs_are_found_installed_here() -> None:
    # ./dev setup installs git and python3-venv on this machine, as the charm does on a unit.
    assert missing_packages() == []
    assert ensure_packages() == []


def test_an_unknown_package_is_reported_missing_among_installed_ones() -> None:
    assert missing_packages([*PACKAGES, "ucm-no-such-package"]) == ["ucm-no-such-package"]


def test_a_package_apt_cannot_install_raises_naming_it() -> None:
    with pytest.raises(PackagesError, match=r"cannot install ucm-no-such-package: apt-get"):
        ensure_packages(["git", "ucm-no-such-package"])
