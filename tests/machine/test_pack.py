"""The charm as `./dev pack` builds it, for each Ubuntu base: what is in it, what is not, and
that its code loads with its own venv on that release's Python."""

from __future__ import annotations

import stat
import tempfile
import zipfile
from pathlib import Path

import pytest
from pack import CHARM_SOURCES, REPOSITORY, _in_root, build_root, tracked_files

# Measured 6.6 MB (22.04) and 6.8 MB (24.04); 25 MB before the prime was trimmed, and 12.2 MB
# (24.04) with charmhelpers before netaddr, pbr and the venv's .pyc files were left out. The
# bound catches pip, setuptools, netaddr or the repository's tests coming back.
MAX_UNPACKED = 8_000_000


@pytest.fixture
def packed(release: str, charm: Path) -> tuple[str, Path]:
    return release, charm


def test_only_what_runs_on_a_unit_is_packed(packed: tuple[str, Path]) -> None:
    _, charm = packed
    with zipfile.ZipFile(charm) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    names = set(infos)
    for wanted in (
        "dispatch",
        "src/charm.py",
        "src/workload/service.py",
        "templates/metrics-collector@.service.j2",
        "collectors/metrics/lib/basemetric.py",
        "collectors/requirements.txt",
        "venv/ops/__init__.py",
        "venv/jinja2/__init__.py",
        "venv/charmhelpers/contrib/charmsupport/nrpe.py",
        "metadata.yaml",
        "config.yaml",
        "actions.yaml",
    ):
        assert wanted in names, wanted
    for entry in ("src/charm.py", "dispatch"):
        assert (infos[entry].external_attr >> 16) & stat.S_IXUSR, f"{entry} is not executable"
    unwanted = (
        "tests/",
        "docs/",
        "bench/",
        "mojo/",
        "dev",
        ".ci/",
        "collectors/tests/",
        "hooks/",
        "venv/pip/",
        "venv/setuptools/",
        "venv/wheel/",
        "venv/pbr/",
        "venv/netaddr/",
    )
    assert sorted(n for n in names if n.startswith(unwanted)) == []
    assert sum(info.file_size for info in infos.values()) < MAX_UNPACKED


def test_every_repository_file_in_the_charm_is_a_pack_input(packed: tuple[str, Path]) -> None:
    """The pack cache is keyed by CHARM_SOURCES: a file of the repository that reaches the
    charm from outside them would leave a stale pack in the cache."""
    _, charm = packed
    with zipfile.ZipFile(charm) as archive:
        names = {info.filename for info in archive.infolist()}
    repository = set(tracked_files(REPOSITORY))
    inputs = set(tracked_files(REPOSITORY, *CHARM_SOURCES))
    assert inputs & names, "no file of CHARM_SOURCES in the charm"
    assert sorted((names & repository) - inputs) == []


def test_the_charm_code_loads_with_its_venv_on_the_release_python(
    packed: tuple[str, Path],
) -> None:
    release, charm = packed
    with tempfile.TemporaryDirectory() as scratch:
        with zipfile.ZipFile(charm) as archive:
            archive.extractall(scratch)
        # As dispatch runs it: PYTHONPATH=lib:venv, the entrypoint's folder first on sys.path.
        out = _in_root(
            build_root(release, print),
            'PYTHONPATH=lib:venv python3 -c \'import sys; sys.path.insert(0, "src"); '
            "import charm, ops, jinja2, workload, nrpe; nrpe.charmhelpers_nrpe(); "
            "print(ops.__version__, sys.version_info[:2])'",
            what=f"importing the {release} charm",
            volatile=True,
            project=Path(scratch),
        )
    python = {"jammy": "(3, 10)", "noble": "(3, 12)"}[release]
    assert out.strip().splitlines()[-1] == f"3.9.0 {python}"
