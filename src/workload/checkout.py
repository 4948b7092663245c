"""The collectors tree on the unit: fetch, build beside the live one, validate, swap atomically.

Each tree lives in `checkouts/<id>/` (`<id>`: the commit, or `bundled-<hash>` for the tree
shipped in the charm) and is never changed once built. `current` is a symlink to the live tree
(the folder that holds `metrics/`), replaced in one rename, so a collector that is running keeps
the tree it started with. The previous tree is kept for rollback; older ones are deleted.

git runs as the unprivileged `Account` and fetches into a bare cache repository per remote, so
every pull is an incremental fetch.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .account import Account
from .discovery import Collector
from .files import make_dirs, read_below, replace_symlink, take_folder
from .isolation import DiscoveryError, discover_checkout
from .paths import Paths
from .settings import Settings, display_url

_IGNORED = {"__pycache__", ".git", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv"}
_GIT_TIMEOUT = 600
_REMOTE = "collectors"


class CheckoutError(Exception):
    """The wanted tree cannot be fetched or is not a collectors tree; one line for the status."""


@dataclass(frozen=True)
class Checkout:
    """One built tree: `folder` is `checkouts/<id>/`, `tree` the folder in it that holds
    `metrics/` (the checkout itself for the bundled tree, `collectors-path` in a repository)."""

    id: str
    folder: Path
    tree: Path


def current_checkout(paths: Paths) -> Checkout | None:
    """The live tree, or None before the first checkout."""
    if not paths.current.is_symlink():
        return None
    target = Path(os.readlink(paths.current))
    if len(target.parts) < 2 or target.parts[0] != "checkouts":
        return None
    tree = paths.state_dir / target
    if not tree.is_dir():
        return None
    return Checkout(target.parts[1], paths.checkouts / target.parts[1], tree)


def prepare_bundled(paths: Paths, bundled_tree: Path) -> Checkout:
    """Copy the tree shipped in the charm into `checkouts/bundled-<content hash>/`."""
    if not (bundled_tree / "metrics" / "collectors").is_dir():
        raise CheckoutError(
            f"the charm's bundled tree {bundled_tree} has no metrics/collectors: "
            "rebuild the charm with charmcraft pack, or set collectors-repo"
        )
    checkout_id = "bundled-" + _tree_hash(bundled_tree)[:16]
    destination = paths.checkouts / checkout_id
    if not destination.is_dir():
        take_folder(paths.checkouts)
        building = paths.checkouts / f".tmp-{checkout_id}-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        shutil.copytree(
            bundled_tree, building, symlinks=True, ignore=shutil.ignore_patterns(*_IGNORED)
        )
        _make_readable(building)
        os.rename(building, destination)
    return Checkout(checkout_id, destination, destination)


def prepare_git(paths: Paths, settings: Settings, account: Account) -> Checkout:
    """Fetch `settings.branch` (or `settings.revision`) of `settings.repo` and build its tree.

    Raises CheckoutError naming the repository, branch or revision and what to check.
    """
    cache = _cache_for(paths, settings.repo, account)
    git = _Git(paths, cache, account, settings)
    if settings.revision:
        git.fetch(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], prune=True)
        commit = git.resolve(f"refs/tags/{settings.revision}") or git.resolve(settings.revision)
        # A commit on no branch or tag: servers that allow it hand it out by its hash.
        is_hash = re.fullmatch(r"[0-9a-fA-F]{7,40}", settings.revision)
        if commit is None and is_hash and git.try_fetch([settings.revision]):
            commit = git.resolve(settings.revision)
        if commit is None:
            raise CheckoutError(
                f"revision {settings.revision!r} not found in {display_url(settings.repo)} "
                "(searched its branches and tags): check collectors-revision"
            )
    else:
        branch_ref = f"refs/heads/{settings.branch}"
        git.fetch([f"+{branch_ref}:{branch_ref}"], prune=False)
        commit = git.resolve(branch_ref)
        if commit is None:
            raise CheckoutError(
                f"branch {settings.branch!r} not found in {display_url(settings.repo)}: "
                "check collectors-branch"
            )
    destination = paths.checkouts / commit
    if not destination.is_dir():
        git.extract(commit, destination)
    return Checkout(commit, destination, destination / settings.path)


def validate(paths: Paths, checkout: Checkout, settings: Settings) -> list[Collector]:
    """Discover the collectors of a built tree; CheckoutError when it is not a collectors tree."""
    tree = checkout.tree.resolve()
    where = (
        f"{display_url(settings.repo)} at {checkout.id[:12]}"
        if settings.repo
        else f"the bundled tree {settings.bundled_tree}"
    )
    if (
        not tree.is_relative_to(checkout.folder.resolve())
        or not (tree / "metrics" / "collectors").is_dir()
    ):
        raise CheckoutError(
            f"{where} has no {settings.path}/metrics/collectors folder: "
            "check collectors-path and collectors-branch"
        )
    if settings.repo and _has_the_old_framework(paths, checkout):
        raise CheckoutError(
            f"{where} carries the ubuntu-release-metrics framework in {settings.path}/metrics/lib"
            " (it reads INFLUXDB_* variables, which units never set, so every run would fail):"
            " replace that folder with this charm's collectors/metrics/lib (docs/collectors.md,"
            " Migrating from ubuntu-release-metrics)"
        )
    try:
        return discover_checkout(checkout.folder, checkout.tree)
    except DiscoveryError as error:
        raise CheckoutError(str(error)) from None


def _has_the_old_framework(paths: Paths, checkout: Checkout) -> bool:
    """The tree's metrics/lib is the original framework's: a basemetric.py without the spool
    this framework writes through. Read from root's checkouts/ down without following links."""
    lib = (checkout.tree / "metrics" / "lib").relative_to(paths.checkouts)
    limit = 1024 * 1024
    has_base = read_below(paths.checkouts, lib / "basemetric.py", limit=limit) is not None
    has_spool = read_below(paths.checkouts, lib / "spool.py", limit=limit) is not None
    return has_base and not has_spool


def activate(paths: Paths, checkout: Checkout) -> Checkout | None:
    """Make `checkout` the live tree; keep the previous one, delete older ones.

    Returns the previous live tree (None on the first checkout).
    """
    previous = current_checkout(paths)
    changed = replace_symlink(paths.current, checkout.tree.relative_to(paths.state_dir))
    # Unchanged: the folder kept for rollback is older than `previous`, which is this one.
    keep = {checkout.id} | ({previous.id} if previous else set())
    for folder in paths.checkouts.iterdir():
        if folder.name not in keep and (changed or folder.name.startswith(".tmp-")):
            _remove(folder)
    return previous


def prune_caches(paths: Paths, repo: str) -> None:
    """Delete the git caches of repositories other than `repo` (none when `repo` is empty)."""
    if not paths.git_cache.is_dir():
        return
    keep = _cache_name(repo) if repo else None
    for cache in paths.git_cache.iterdir():
        if cache.name != keep:
            _remove(cache)


def _cache_name(repo: str) -> str:
    return hashlib.sha256(repo.encode()).hexdigest()[:16] + ".git"


def _cache_for(paths: Paths, repo: str, account: Account) -> Path:
    for folder in (paths.state_dir, paths.git_cache, paths.home):
        make_dirs(folder)
    for folder in (paths.git_cache, paths.home):
        account.own(folder)
    # Root's: the account fills each checkout, but cannot swap one for a link.
    take_folder(paths.checkouts)
    return paths.git_cache / _cache_name(repo)


def _remote_config(repo: str) -> dict[str, str]:
    """The remote as git configuration in the environment (readable by its user only).

    An HTTP(S) URL's user and token become an `Authorization` header for that URL, and the
    URL itself goes without them: git hands the URL to its remote helper on a command line,
    which every local user can read for as long as the fetch lasts.
    """
    config = {f"remote.{_REMOTE}.url": repo}
    parts = urllib.parse.urlsplit(repo)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        public = display_url(repo)
        user = urllib.parse.unquote(parts.username or "")
        secret = urllib.parse.unquote(parts.password or "")
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        config = {
            f"remote.{_REMOTE}.url": public,
            f"http.{public}.extraHeader": f"Authorization: Basic {basic}",
        }
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for index, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


class _Git:
    """git commands on the cache repository, run as the unprivileged account."""

    def __init__(self, paths: Paths, cache: Path, account: Account, settings: Settings) -> None:
        self.paths = paths
        self.cache = cache
        self.account = account
        self.repo = settings.repo
        self.branch = settings.branch
        self.revision = settings.revision
        self.env = {
            "GIT_TERMINAL_PROMPT": "0",  # a private repository fails instead of hanging
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "GIT_CONFIG_NOSYSTEM": "1",
            **_remote_config(settings.repo),
            **settings.proxy.environment(),
        }

    def run(self, *args: str) -> tuple[int, str]:
        result = self.account.run(
            ["git", *args], home=self.paths.home, env=self.env, timeout=_GIT_TIMEOUT
        )
        return result.returncode, result.stderr.replace(self.repo, display_url(self.repo))

    def fetch(self, refspecs: list[str], *, prune: bool) -> None:
        if not self.cache.is_dir():
            code, error = self.run("init", "--quiet", "--bare", str(self.cache))
            if code != 0:
                raise CheckoutError(f"cannot create the git cache {self.cache}: {_last(error)}")
            # Nobody else needs it. As the account, which owns it: root must not follow a
            # name in the account's git-cache/ (it could be a link by now).
            self.account.run(["chmod", "0700", str(self.cache)], home=self.paths.home)
        flags = ["--prune"] if prune else []
        code, error = self.run(
            "-C", str(self.cache), "fetch", "--quiet", "--force", "--no-tags", *flags,
            _REMOTE, *refspecs,
        )  # fmt: skip
        if code == 0:
            return
        if "couldn't find remote ref" in error:
            raise CheckoutError(
                f"branch {self.branch!r} not found in {display_url(self.repo)}: "
                "check collectors-branch"
            )
        what = f"revision {self.revision!r}" if self.revision else f"branch {self.branch!r}"
        raise CheckoutError(
            f"cannot fetch {what} of {display_url(self.repo)} ({_last(error)}): check "
            "collectors-repo, the network and the proxy settings"
        )

    def try_fetch(self, refspecs: list[str]) -> bool:
        code, _ = self.run("-C", str(self.cache), "fetch", "--quiet", _REMOTE, *refspecs)
        return code == 0

    def resolve(self, ref: str) -> str | None:
        result = self.account.run(
            ["git", "-C", str(self.cache), "rev-parse", "--verify", "--quiet",
             "--end-of-options", f"{ref}^{{commit}}"],
            home=self.paths.home,
            env=self.env,
        )  # fmt: skip
        commit = result.stdout.strip()
        return commit if result.returncode == 0 and commit else None

    def extract(self, commit: str, destination: Path) -> None:
        """The commit's tree, unpacked by the account into a folder root made for it in root's
        `checkouts/`, then renamed into place by root."""
        building = destination.with_name(f".tmp-{commit}-{os.getpid()}")
        archive = self.paths.home / f".checkout-{commit}.tar"
        _remove(building)
        archive.unlink(missing_ok=True)
        building.mkdir(mode=0o755)
        building.chmod(0o755)
        self.account.own(building)
        try:
            for args in (
                ["git", "-C", str(self.cache), "archive", "--format=tar", "-o", str(archive),
                 commit],
                ["tar", "-x", "-f", str(archive), "-C", str(building)],
            ):  # fmt: skip
                result = self.account.run(args, home=self.paths.home, env=self.env)
                if result.returncode != 0:
                    raise CheckoutError(
                        f"cannot unpack {display_url(self.repo)} at {commit[:12]} into "
                        f"{building} ({_last(result.stderr)}): check the free disk space"
                    )
            os.rename(building, destination)
        finally:
            archive.unlink(missing_ok=True)
            _remove(building)


def _last(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("fatal:")]
    return (fatal or lines or ["no error output"])[0].removeprefix("fatal: ")


def _tree_hash(tree: Path) -> str:
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED)
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            path = Path(folder) / name
            digest.update(path.relative_to(tree).as_posix().encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link:" + os.readlink(path).encode() + b"\0")
            else:
                digest.update(path.read_bytes() + b"\0")
                digest.update(b"x" if os.access(path, os.X_OK) else b"-")
    return digest.hexdigest()


def _make_readable(tree: Path) -> None:
    for folder, _dirs, files in os.walk(tree):
        os.chmod(folder, 0o755)  # noqa: S103 - collectors' DynamicUser reads it
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
