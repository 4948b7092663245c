"""Pack the charm as users get it: the real charmcraft, inside an Ubuntu root of each base.

charmcraft refuses to pack in destructive mode on a host that is not the platform's Ubuntu, so
each release gets a cached build root (debootstrap, with the archive's signature checked
against pinned key fingerprints) holding charmcraft from PyPI. A pack copies the files git
tracks into a scratch folder and runs `charmcraft pack --destructive-mode` and `charmcraft
analyse` there, in the build root under `systemd-nspawn --volatile=overlay` (the cached root
stays as it was built).

    ./dev pack [jammy|noble]    (as root: .venv/bin/python tests/machine/pack.py)

writes `ubuntu-community-metrics_ubuntu@22.04-amd64.charm` and `..._ubuntu@24.04-amd64.charm`
in the repository root. No mirror is named here: debootstrap's own script says which, and
`UCM_UBUNTU_MIRROR` overrides it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_harness import CACHE_DIR, HarnessError, _run, build_in_place

REPOSITORY = Path(__file__).resolve().parents[2]
APP = "ubuntu-community-metrics"
PLATFORMS = {"jammy": "ubuntu@22.04:amd64", "noble": "ubuntu@24.04:amd64"}
CHARMCRAFT = "charmcraft==4.5.0"
# What the charm is built from (.jujuignore keeps the rest of the repository out of it).
CHARM_SOURCES = (
    ".jujuignore",
    "README.md",
    "actions.yaml",
    "charmcraft.yaml",
    "collectors",
    ":!collectors/tests",
    "config.yaml",
    "metadata.yaml",
    "requirements.txt",
    "src",
    "templates",
)
# Bump when the way the build root is made changes, so caches are rebuilt.
BUILD_ROOT_VERSION = "2"
# What charmcraft's charm plugin apt-installs, present already so a pack installs nothing.
BUILD_PACKAGES = (
    "ca-certificates",
    "git",
    "libffi-dev",
    "libyaml-dev",
    "python3-apt",
    "python3-dev",
    "python3-pip",
    "python3-setuptools",
    "python3-venv",
    "python3-wheel",
)
# The keys of ubuntu-keyring's ubuntu-archive-keyring.gpg: "Ubuntu Archive Automatic Signing
# Key" (2012) and (2018) and "Ubuntu CD Image Automatic Signing Key" (2012). The keyring is
# accepted only if it holds exactly these.
ARCHIVE_KEYS = frozenset(
    {
        "790BC7277767219C42C86F933B4FE6ACC0B21F32",
        "843938DF228D22F7B3742BC0D94AA3F0EFE21092",
        "F6ECB3762474EDA9D21B7022871920D1991BC93C",
    }
)
DEBOOTSTRAP_SCRIPT = Path("/usr/share/debootstrap/scripts/gutsy")  # serves jammy and noble

Log = Callable[[str], None]


def charm_name(release: str) -> str:
    return f"{APP}_{PLATFORMS[release].replace(':', '-')}.charm"


def ubuntu_mirror(release: str) -> str:
    """UCM_UBUNTU_MIRROR, else the mirror debootstrap's own script picks for `release`."""
    if os.environ.get("UCM_UBUNTU_MIRROR"):
        return os.environ["UCM_UBUNTU_MIRROR"].rstrip("/")
    probe = 'default_mirror() { echo "$1"; exit 0; }; . "$0"'
    found = subprocess.run(
        ["sh", "-c", probe, str(DEBOOTSTRAP_SCRIPT)],
        env={"ARCH": "amd64", "SUITE": release, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not found.startswith("http"):
        raise HarnessError(f"cannot read debootstrap's default mirror from {DEBOOTSTRAP_SCRIPT}")
    return found


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def archive_keyring(release: str, log: Log) -> Path:
    """The Ubuntu archive keyring, taken from the archive's ubuntu-keyring package and trusted
    only because its keys are exactly the pinned ARCHIVE_KEYS (the transport is not trusted)."""
    keyring = CACHE_DIR / "ubuntu-archive-keyring.gpg"
    if keyring.exists() and _fingerprints(keyring) == ARCHIVE_KEYS:
        return keyring
    mirror = ubuntu_mirror(release)
    log(f"fetching ubuntu-keyring from {mirror} to check it against the pinned keys")
    index = lzma.decompress(_fetch(f"{mirror}/dists/{release}/main/binary-amd64/Packages.xz"))
    filename = None
    for stanza in index.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == "ubuntu-keyring":
            filename = fields["Filename"]
    if filename is None:
        raise HarnessError(f"no ubuntu-keyring package in {release}'s index at {mirror}")
    with tempfile.TemporaryDirectory() as scratch:
        deb = Path(scratch) / "ubuntu-keyring.deb"
        deb.write_bytes(_fetch(f"{mirror}/{filename}"))
        _run(["dpkg-deb", "-x", str(deb), scratch], what="dpkg-deb -x ubuntu-keyring")
        candidate = Path(scratch) / "usr/share/keyrings/ubuntu-archive-keyring.gpg"
        found = _fingerprints(candidate)
        if found != ARCHIVE_KEYS:
            raise HarnessError(
                f"the archive's ubuntu-keyring holds keys {sorted(found)}, not the pinned "
                f"{sorted(ARCHIVE_KEYS)}: refusing it (update ARCHIVE_KEYS in {__file__} only "
                "after checking a new key's fingerprint with Ubuntu)"
            )
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(candidate, keyring)
    return keyring


def _fingerprints(keyring: Path) -> frozenset[str]:
    with tempfile.TemporaryDirectory() as home:  # an empty GnuPG home, removed after
        out = subprocess.run(
            ["gpg", "--show-keys", "--with-colons", str(keyring)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GNUPGHOME": home},
        ).stdout
    # The first fingerprint record after each pub line is the primary key's.
    fingerprints, want = set(), False
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            want = True
        elif fields[0] == "fpr" and want:  # codespell:ignore fpr
            fingerprints.add(fields[9])
            want = False
    return frozenset(fingerprints)


def build_root(release: str, log: Log) -> Path:
    """The cached build root of `release`: Ubuntu minbase, BUILD_PACKAGES, charmcraft."""

    def install_charmcraft(root: Path) -> None:
        _in_root(
            root,
            "python3 -m venv --system-site-packages /opt/charmcraft && "
            f"/opt/charmcraft/bin/pip install -q --disable-pip-version-check '{CHARMCRAFT}'",
            what=f"installing {CHARMCRAFT} in the {release} build root",
        )

    return ubuntu_root(
        release,
        BUILD_PACKAGES,
        purpose="build",
        finish=install_charmcraft,
        key_extra=CHARMCRAFT,
        log=log,
    )


def ubuntu_root(
    release: str,
    packages: Sequence[str],
    *,
    purpose: str,
    log: Log,
    finish: Callable[[Path], None] | None = None,
    key_extra: str = "",
) -> Path:
    """A cached Ubuntu `release` minbase root with `packages`, then `finish(root)`; built in a
    temporary folder and renamed into place, so an interrupted build leaves no half tree."""
    key = hashlib.sha256(
        "\n".join([BUILD_ROOT_VERSION, release, key_extra, *sorted(packages)]).encode()
    ).hexdigest()[:16]
    target = CACHE_DIR / f"{purpose}-{release}-{key}"
    if (target / ".complete").exists():
        return target
    keyring = archive_keyring(release, log)
    started = time.monotonic()
    log(f"building the {release} {purpose} root {target.name} (once, a minute or two)")

    def build(building: Path) -> None:
        mirror = os.environ.get("UCM_UBUNTU_MIRROR", "")  # empty: the script's default
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--components=main,universe",
                f"--keyring={keyring}",
                f"--include={','.join(packages)}",
                release,
                str(building),
                mirror,
                str(DEBOOTSTRAP_SCRIPT),
            ],
            what=f"debootstrap of the {release} {purpose} root",
        )
        _copy_host_trust(building)
        if finish is not None:
            finish(building)
        (building / ".complete").touch()

    build_in_place(target, build, done=".complete")
    log(f"built the {release} {purpose} root in {time.monotonic() - started:.0f} s: {target}")
    return target


def _copy_host_trust(root: Path) -> None:
    """pip in the root reaches PyPI the way the host's does: same CA bundle and pip config."""
    for host_file in (
        Path("/etc/ssl/certs/ca-certificates.crt"),
        Path("/etc/pip.conf"),
        *Path("/etc/xdg/pip").glob("*"),
    ):
        if host_file.is_file():
            target = root / host_file.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host_file, target)


def _in_root(
    root: Path, script: str, *, what: str, volatile: bool = False, project: Path | None = None
) -> str:
    argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe", "-D", str(root)]
    if volatile:
        argv.append("--volatile=overlay")
    if project is not None:
        argv += [f"--bind={project}:/project", "--chdir=/project"]
    env = "PATH=/opt/charmcraft/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root"
    return _run([*argv, "/usr/bin/env", "-i", *env.split(), "sh", "-ec", script], what=what)


def tracked_files(source: Path, *pathspecs: str) -> list[str]:
    out = _run(["git", "-C", str(source), "ls-files", "-z", "--", *pathspecs], what="git ls-files")
    return [name for name in out.split("\0") if name and (source / name).is_file()]


def _inputs_key(release: str, source: Path) -> str:
    """What a pack depends on: the files of CHARM_SOURCES (names, modes, bytes), charmcraft and
    the base; test_pack checks that nothing else of the repository reaches the charm."""
    digest = hashlib.sha256(f"{CHARMCRAFT} {BUILD_ROOT_VERSION} {release}".encode())
    for name in sorted(tracked_files(source, *CHARM_SOURCES)):
        path = source / name
        digest.update(f"\0{name}\0{path.stat().st_mode & 0o111:o}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def pack(release: str, *, source: Path = REPOSITORY, log: Log = print) -> Path:
    """Pack the tracked files of `source` for `release`; the .charm in `source`'s root.

    A pack of the same inputs is reused from the cache (packing takes 20 s), so every test
    module can ask for the charm it deploys.
    """
    cached = CACHE_DIR / "charms" / f"{_inputs_key(release, source)}-{charm_name(release)}"
    charm = source / charm_name(release)
    if cached.exists():
        shutil.copyfile(cached, charm)
        return charm
    root = build_root(release, log)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ucm-pack-") as scratch:
        project = Path(scratch) / "project"
        for name in tracked_files(source):
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, project / name)
        log(f"packing for {PLATFORMS[release]} with {CHARMCRAFT}")
        output = _in_root(
            root,
            f"charmcraft pack --destructive-mode --platform {PLATFORMS[release]} 2>&1\n"
            f"charmcraft analyse --format=json {charm_name(release)}",
            what=f"charmcraft pack for {PLATFORMS[release]}",
            volatile=True,
            project=project,
        )
        _check_analysis(output, release)
        shutil.copyfile(project / charm_name(release), charm)
    _keep_in_cache(charm, cached)
    with zipfile.ZipFile(charm) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    log(
        f"packed {charm.name} in {time.monotonic() - started:.0f} s: "
        f"{charm.stat().st_size / 1e6:.1f} MB, {unpacked / 1e6:.1f} MB unpacked"
    )
    return charm


def _keep_in_cache(charm: Path, cached: Path, keep: int = 8) -> None:
    """Store the pack (renamed into place, so a reader never sees half of it); keep the
    newest `keep` packs."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}")
    shutil.copyfile(charm, partial)
    partial.rename(cached)
    packs = sorted(cached.parent.glob("*.charm"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in packs[keep:]:
        old.unlink(missing_ok=True)


def previous_charm_commit() -> str:
    """The commit holding the charm before its newest change: what a unit runs now, that this
    charm upgrades. HEAD itself when the working tree changes the charm."""
    git = ["git", "-C", str(REPOSITORY)]
    changed = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", *CHARM_SOURCES], check=False)
    if changed.returncode != 0:
        return _run([*git, "rev-parse", "HEAD"], what="git rev-parse").strip()
    newest = _run([*git, "log", "-1", "--format=%H", "--", *CHARM_SOURCES], what="git log").strip()
    return _run([*git, "rev-parse", f"{newest}~1"], what="git rev-parse").strip()


def pack_commit(release: str, commit: str, *, log: Log = print) -> Path:
    """The charm as `commit` of this repository packs it (e.g. the previous release, to test
    an upgrade from it); a copy outside the repository, in the cache."""
    commit = _run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--verify", f"{commit}^{{commit}}"],
        what="git rev-parse",
    ).strip()
    with tempfile.TemporaryDirectory(prefix="ucm-commit-") as scratch:
        checkout = Path(scratch) / "checkout"
        _run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(REPOSITORY), str(checkout)],
            what="git clone",
        )
        _run(
            ["git", "-C", str(checkout), "checkout", "-q", "--detach", commit], what="git checkout"
        )
        packed = pack(release, source=checkout, log=log)
        kept = CACHE_DIR / "charms" / f"commit-{commit[:12]}-{packed.name}"
        shutil.copyfile(packed, kept)
    return kept


def _check_analysis(output: str, release: str) -> None:
    """charmcraft analyse must say: entrypoint ok, python, operator framework, no error."""
    start = output.rfind("\n[")
    try:
        checks = {c["name"]: c for c in json.loads(output[start + 1 :])}
    except (ValueError, KeyError):
        raise HarnessError(
            f"charmcraft analyse printed no JSON for {release}:\n{output[-3000:]}"
        ) from None
    wanted = {"entrypoint": "ok", "language": "python", "framework": "operator"}
    wrong = [
        f"{name}: {checks.get(name, {}).get('result')!r}"
        for name, result in wanted.items()
        if checks.get(name, {}).get("result") != result
    ]
    wrong += [
        f"{c['name']}: {c['result']}"
        for c in checks.values()
        if c["result"] in ("errors", "warnings")
    ]
    if wrong:
        raise HarnessError(f"charmcraft analyse of the {release} charm: {'; '.join(wrong)}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Pack the charm for each Ubuntu base.")
    parser.add_argument("releases", nargs="*", choices=list(PLATFORMS), default=[])
    args = parser.parse_args()
    try:
        for release in args.releases or PLATFORMS:
            pack(release, log=lambda line: print(f"pack: {line}", flush=True))
    except HarnessError as error:
        print(f"pack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
