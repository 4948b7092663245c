"""The collectors' venv, built for real by pip from a local wheel folder (no network)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics.testing import UpstreamServer

from workload.account import SYSTEM_USER, Account
from workload.paths import Paths
from workload.settings import Proxy
from workload.venv import VenvError, current_venv, ensure_venv, wanted_venv

AS_ME = Account(None)
NO_PROXY = Proxy()


def make_wheel(folder: Path, name: str, version: str = "1.0") -> None:
    """A pure-Python wheel whose module `name` holds `VERSION = version`."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            wheel.writestr(path, text)


def tree_with(folder: Path, requirements: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(requirements)
    return folder


def venv_python(paths: Paths) -> str:
    return str(paths.venv / "bin" / "python")


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    make_wheel(tmp_path / "wheels", "tinypkg", "1.0")
    return tmp_path / "wheels"


def test_an_empty_requirements_file_gives_a_working_venv(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "root")
    tree = tree_with(tmp_path / "tree", "")

    venv = ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY)

    assert current_venv(paths) == venv
    assert os.readlink(paths.venv) == f"venvs/{venv}"
    output = subprocess.run(
        [venv_python(paths), "-c", "import sys; print(sys.prefix)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert Path(output.strip()).resolve() == paths.venvs / venv


def test_requirements_are_installed_and_an_unchanged_file_reuses_the_venv(
    tmp_path: Path, wheels: Path
) -> None:
    paths = Paths(tmp_path / "root")
    tree = tree_with(tmp_path / "tree", f"--no-index\n--find-links {wheels}\ntinypkg==1.0\n")

    venv = ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY)
    built = (paths.venvs / venv).stat().st_ino
    again = ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY)

    assert again == venv
    assert (paths.venvs / venv).stat().st_ino == built
    version = subprocess.run(
        [venv_python(paths), "-c", "import tinypkg; print(tinypkg.VERSION)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert version.strip() == "1.0"


def test_changed_requirements_build_a_new_venv_beside_the_old_and_prune_older_ones(
    tmp_path: Path, wheels: Path
) -> None:
    make_wheel(wheels, "tinypkg", "2.0")
    paths = Paths(tmp_path / "root")
    tree = tmp_path / "tree"
    ids = []
    for requirements in ("", "tinypkg==1.0", "tinypkg==2.0"):
        tree_with(tree, f"--no-index\n--find-links {wheels}\n{requirements}\n")
        ids.append(ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY))
    assert ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY) == ids[2]  # unchanged

    assert len(set(ids)) == 3
    assert sorted(p.name for p in paths.venvs.iterdir()) == sorted(
        [*ids[1:], *(f"{venv}.complete" for venv in ids[1:])]
    )
    assert current_venv(paths) == ids[2]


def test_a_failed_install_keeps_the_previous_venv_live(tmp_path: Path, wheels: Path) -> None:
    paths = Paths(tmp_path / "root")
    tree = tree_with(tmp_path / "tree", f"--no-index\n--find-links {wheels}\ntinypkg\n")
    good = ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY)
    tree_with(tree, f"--no-index\n--find-links {wheels}\nno-such-package-7f3a9c==1.0\n")

    with pytest.raises(VenvError) as error:
        ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY)

    message = str(error.value)
    assert message.startswith("installing requirements.txt of the collectors tree failed (")
    assert "no-such-package-7f3a9c" in message
    assert "kept the previous venv: fix requirements.txt in the collectors branch" in message
    assert current_venv(paths) == good
    assert sorted(p.name for p in paths.venvs.iterdir()) == [good, f"{good}.complete"]


def test_pip_goes_through_the_configured_proxy(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "root")
    tree = tree_with(
        tmp_path / "tree",
        "--index-url http://pypi.example.invalid/simple\n"
        "--trusted-host pypi.example.invalid\nsomepackage\n",
    )
    with UpstreamServer({}) as proxy, pytest.raises(VenvError) as error:
        ensure_venv(paths, tree, account=AS_ME, proxy=Proxy(http=proxy.url))

    assert "http://pypi.example.invalid/simple/somepackage/" in proxy.requests
    assert "no venv yet, so no collector can run" in str(error.value)
    assert current_venv(paths) is None


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder the system user can enter (pytest's own is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="workload-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.getuid() != 0, reason="running pip as another user needs root")
def test_pip_runs_as_the_unprivileged_system_user(shared_tmp: Path) -> None:
    account = Account(SYSTEM_USER)
    account.ensure()
    make_wheel(shared_tmp / "wheels", "tinypkg")
    tree = tree_with(
        shared_tmp / "tree", f"--no-index\n--find-links {shared_tmp / 'wheels'}\ntinypkg\n"
    )
    paths = Paths(shared_tmp / "root")

    venv = ensure_venv(paths, tree, account=account, proxy=NO_PROXY)

    installed = next((paths.venvs / venv).glob("lib/python3*/site-packages/tinypkg.py"))
    assert installed.stat().st_uid == pwd.getpwnam(SYSTEM_USER).pw_uid
    assert installed.stat().st_mode & 0o004


def test_the_venv_id_follows_included_requirement_files_inside_the_tree(tmp_path: Path) -> None:
    tree = tree_with(tmp_path / "tree", "-r base.txt\n--constraint=pins.txt\n")
    (tree / "base.txt").write_text("influxdb\n")
    (tree / "pins.txt").write_text("influxdb==5.3.1\n")
    first = wanted_venv(tree)

    (tree / "pins.txt").write_text("influxdb==5.3.2\n")
    pinned_again = wanted_venv(tree)
    (tree / "base.txt").unlink()
    without_base = wanted_venv(tree)
    (tree / "base.txt").symlink_to("/etc/hostname")  # outside the tree: never read

    assert pinned_again != first
    assert without_base != pinned_again
    assert wanted_venv(tree) == without_base


# A build backend that, while pip runs it as the account, plants the venv's completion marker
# as a link to a file root owns, then builds an empty wheel.
_PLANTING_BACKEND = """
import base64, hashlib, os, sys, zipfile
from pathlib import Path

TARGET = {target!r}


def _plant():
    venv = Path(sys.prefix)
    for name in (".complete", "../.complete"):
        try:
            os.symlink(TARGET, venv / name)
        except OSError:
            pass


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _plant()
    name = "planter-1.0-py3-none-any.whl"
    info = "planter-1.0.dist-info"
    files = {{
        f"{{info}}/METADATA": "Metadata-Version: 2.1\\nName: planter\\nVersion: 1.0\\n",
        f"{{info}}/WHEEL": "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
        "Tag: py3-none-any\\n",
    }}
    record = "".join(f"{{p}},,\\n" for p in files) + f"{{info}}/RECORD,,\\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, text in {{**files, f"{{info}}/RECORD": record}}.items():
            wheel.writestr(path, text)
    return name
"""


@pytest.mark.skipif(os.getuid() != 0, reason="running pip as another user needs root")
def test_a_package_built_as_the_account_cannot_make_root_write_through_a_link(
    shared_tmp: Path,
) -> None:
    account = Account(SYSTEM_USER)
    account.ensure()
    precious = shared_tmp / "precious"
    precious.write_text("root's data\n")
    precious.chmod(0o644)
    package = shared_tmp / "planter"
    package.mkdir()
    (package / "backend.py").write_text(_PLANTING_BACKEND.format(target=str(precious)))
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    for folder in (package, shared_tmp):
        folder.chmod(0o755)
    tree = tree_with(shared_tmp / "tree", f"--no-index\n{package}\n")
    paths = Paths(shared_tmp / "root")

    ensure_venv(paths, tree, account=account, proxy=NO_PROXY)

    assert precious.read_text() == "root's data\n"
    # The venv still counts as built: its marker is kept where the account cannot write.
    assert ensure_venv(paths, tree, account=account, proxy=NO_PROXY) == current_venv(paths)


@pytest.mark.parametrize("target", ["/proc/self/mem", "/etc/shadow", "fifo"])
def test_a_requirements_file_that_is_a_link_or_special_is_named_not_read(
    tmp_path: Path, target: str
) -> None:
    paths = Paths(tmp_path / "root")
    tree = tmp_path / "tree"
    tree.mkdir()
    if target == "fifo":
        os.mkfifo(tree / "requirements.txt")  # reading it would block the hook forever
    else:
        (tree / "requirements.txt").symlink_to(target)

    with pytest.raises(VenvError) as error:
        ensure_venv(paths, tree, account=AS_ME, proxy=NO_PROXY)

    assert str(error.value).startswith(
        "requirements.txt of the collectors tree is not a plain file (a symbolic link, a special"
        " file, or over 1 MiB): commit it as a regular file; no venv yet"
    )


def test_an_included_file_linked_outside_the_tree_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("influxdb==5.3.1\n")
    tree = tree_with(tmp_path / "tree", "-r base.txt\n")
    (tree / "base.txt").symlink_to(secret)
    before = wanted_venv(tree)

    secret.write_text("influxdb==5.3.2\n")

    assert wanted_venv(tree) == before
