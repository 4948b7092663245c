"""The collectors checkout with a real git: a local bare repository stands in for the remote."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics.testing import UpstreamServer

from workload import checkout as checkout_module
from workload.account import SYSTEM_USER, Account
from workload.checkout import (
    CheckoutError,
    activate,
    current_checkout,
    prepare_bundled,
    prepare_git,
    prune_caches,
    validate,
)
from workload.paths import Paths
from workload.settings import Proxy, Settings, display_url

AS_ME = Account(None)


def collector(name: str, interval: str = "5m") -> dict[str, str]:
    """The files of one working collector in a repository whose tree is `collectors/`."""
    return {
        f"collectors/metrics/collectors/{name}/__init__.py": (
            f'RUN_INTERVAL = "{interval}"\n\n\ndef run_metric(dry_run=False, verbose=False):\n'
            "    return 0\n"
        ),
    }


BASE = {
    "collectors/metrics/__init__.py": "",
    "collectors/metrics/collectors/__init__.py": "",
    "collectors/requirements.txt": "",
}


class Remote:
    """A bare repository and a working clone that commits and pushes to it."""

    def __init__(self, folder: Path) -> None:
        self.url = str(folder / "remote.git")
        self.work = folder / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", self.url)
        git("init", "--quiet", "--initial-branch=main", str(self.work))

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("-C", str(self.work), "add", "--all")
        git("-C", str(self.work), "commit", "--quiet", "--allow-empty", "-m", message)
        return git("-C", str(self.work), "rev-parse", "HEAD")

    def remove(self, name: str) -> None:
        git("-C", str(self.work), "rm", "-r", "--quiet", name)

    def push(self, branch: str = "main", *, force: bool = False) -> None:
        flags = ["--force"] if force else []
        git("-C", str(self.work), "push", "--quiet", *flags, self.url, f"HEAD:{branch}")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    repo = Remote(tmp_path)
    repo.commit({**BASE, **collector("queue_size", "15m")}, "first")
    repo.push()
    return repo


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "root")


def pull(paths: Paths, settings: Settings, account: Account = AS_ME) -> str:
    """What sync does with a checkout: build, validate, swap. Returns the live id."""
    checkout = prepare_git(paths, settings, account)
    validate(paths, checkout, settings)
    activate(paths, checkout)
    return checkout.id


def test_a_branch_is_checked_out_and_current_points_at_its_collectors_tree(
    remote: Remote, paths: Paths
) -> None:
    settings = Settings(repo=remote.url)
    head = git("-C", str(remote.work), "rev-parse", "HEAD")

    checkout = prepare_git(paths, settings, AS_ME)
    collectors = validate(paths, checkout, settings)
    activate(paths, checkout)

    assert checkout.id == head
    assert [(c.name, c.interval, c.problem) for c in collectors] == [("queue_size", "15m", None)]
    assert os.readlink(paths.current) == f"checkouts/{head}/collectors"
    assert (paths.current / "metrics" / "collectors" / "queue_size" / "__init__.py").is_file()
    assert current_checkout(paths) == checkout
    assert not (paths.checkouts / head / ".git").exists()


def test_a_new_commit_gets_a_new_folder_and_the_previous_one_is_kept_for_rollback(
    remote: Remote, paths: Paths
) -> None:
    settings = Settings(repo=remote.url)
    first = pull(paths, settings)
    second = remote.commit(collector("bugs", "1h"))
    remote.push()
    assert pull(paths, settings) == second
    third = remote.commit(collector("reviews"))
    remote.push()

    assert pull(paths, settings) == third
    assert pull(paths, settings) == third  # nothing new: the rollback copy stays

    assert sorted(p.name for p in paths.checkouts.iterdir()) == sorted([second, third])
    assert first not in os.listdir(paths.checkouts)
    assert (paths.current / "metrics" / "collectors" / "reviews").is_dir()


def test_a_running_collector_keeps_the_tree_it_started_with(remote: Remote, paths: Paths) -> None:
    settings = Settings(repo=remote.url)
    pull(paths, settings)
    started_in = paths.current.resolve()  # what a process that started now has open
    remote.commit({"collectors/metrics/collectors/queue_size/__init__.py": "broken = ("})
    remote.push()

    pull(paths, settings)

    old = (started_in / "metrics" / "collectors" / "queue_size" / "__init__.py").read_text()
    assert "RUN_INTERVAL" in old
    assert paths.current.resolve() != started_in


def test_a_force_pushed_branch_is_followed(remote: Remote, paths: Paths) -> None:
    settings = Settings(repo=remote.url)
    pull(paths, settings)
    git("-C", str(remote.work), "reset", "--quiet", "--hard", "HEAD")
    git("-C", str(remote.work), "commit", "--quiet", "--amend", "-m", "rewritten")
    remote.commit(collector("rewritten"))
    rewritten = git("-C", str(remote.work), "rev-parse", "HEAD")
    remote.push(force=True)

    assert pull(paths, settings) == rewritten
    assert (paths.current / "metrics" / "collectors" / "rewritten").is_dir()


def test_the_git_cache_is_reused_between_pulls(remote: Remote, paths: Paths) -> None:
    settings = Settings(repo=remote.url)
    first = pull(paths, settings)
    (cache,) = paths.git_cache.iterdir()
    inode = cache.stat().st_ino
    remote.commit(collector("bugs"))
    remote.push()

    second = pull(paths, settings)

    assert [c.stat().st_ino for c in paths.git_cache.iterdir()] == [inode]
    # Both commits live in the one cache: the second pull only fetched what was new.
    for commit in (first, second):
        git("--git-dir", str(cache), "cat-file", "-e", f"{commit}^{{commit}}")


def test_an_unreachable_remote_names_the_repository_and_keeps_the_current_tree(
    remote: Remote, paths: Paths, tmp_path: Path
) -> None:
    settings = Settings(repo=remote.url)
    live = pull(paths, settings)
    shutil.move(remote.url, tmp_path / "gone.git")

    with pytest.raises(CheckoutError) as error:
        pull(paths, settings)

    assert str(error.value).startswith(f"cannot fetch branch 'main' of {remote.url} (")
    assert "check collectors-repo, the network and the proxy settings" in str(error.value)
    assert current_checkout(paths).id == live  # type: ignore[union-attr]


def test_a_missing_branch_is_named(remote: Remote, paths: Paths) -> None:
    with pytest.raises(CheckoutError) as error:
        pull(paths, Settings(repo=remote.url, branch="no-such-branch"))

    assert str(error.value) == (
        f"branch 'no-such-branch' not found in {remote.url}: check collectors-branch"
    )
    assert current_checkout(paths) is None


def test_a_branch_deleted_upstream_is_reported_not_served_from_the_cache(
    remote: Remote, paths: Paths
) -> None:
    remote.push("feature")
    settings = Settings(repo=remote.url, branch="feature")
    pull(paths, settings)
    git("--git-dir", remote.url, "branch", "--quiet", "-D", "feature")

    with pytest.raises(CheckoutError, match="branch 'feature' not found"):
        pull(paths, settings)


def test_a_pinned_tag_or_commit_is_checked_out_instead_of_the_branch_head(
    remote: Remote, paths: Paths
) -> None:
    pinned = git("-C", str(remote.work), "rev-parse", "HEAD")
    git("-C", str(remote.work), "tag", "v1")
    git("-C", str(remote.work), "push", "--quiet", remote.url, "v1")
    remote.commit(collector("later"))
    remote.push()

    assert pull(paths, Settings(repo=remote.url, revision="v1")) == pinned
    assert pull(paths, Settings(repo=remote.url, revision=pinned[:10])) == pinned
    assert not (paths.current / "metrics" / "collectors" / "later").exists()


def test_a_commit_on_no_branch_is_fetched_by_its_hash(remote: Remote, paths: Paths) -> None:
    git("--git-dir", remote.url, "config", "uploadpack.allowAnySHA1InWant", "true")
    git("-C", str(remote.work), "checkout", "--quiet", "-b", "side")
    dangling = remote.commit(collector("side_only"))
    remote.push("side")
    git("--git-dir", remote.url, "branch", "--quiet", "-D", "side")

    assert pull(paths, Settings(repo=remote.url, revision=dangling)) == dangling


def test_a_bad_revision_is_named(remote: Remote, paths: Paths) -> None:
    with pytest.raises(CheckoutError) as error:
        pull(paths, Settings(repo=remote.url, revision="v9.9"))

    assert str(error.value) == (
        f"revision 'v9.9' not found in {remote.url} (searched its branches and tags): "
        "check collectors-revision"
    )


def test_a_tree_without_the_collectors_folder_is_refused(remote: Remote, paths: Paths) -> None:
    settings = Settings(repo=remote.url)
    live = pull(paths, settings)
    remote.remove("collectors")
    remote.commit({"README": "moved away\n"})
    remote.push()

    checkout = prepare_git(paths, settings, AS_ME)
    with pytest.raises(CheckoutError) as error:
        validate(paths, checkout, settings)

    assert f"{remote.url} at {checkout.id[:12]} has no collectors/metrics/collectors" in str(
        error.value
    )
    assert current_checkout(paths).id == live  # type: ignore[union-attr]


def test_a_collectors_path_that_leaves_the_checkout_is_refused(
    remote: Remote, paths: Paths
) -> None:
    # A symlink to a real collectors tree outside the checkout (here: the working clone).
    os.symlink(remote.work / "collectors", remote.work / "outside")
    remote.commit({})
    remote.push()
    settings = Settings(repo=remote.url, path="outside")

    with pytest.raises(CheckoutError, match="has no outside/metrics/collectors folder"):
        validate(paths, prepare_git(paths, settings, AS_ME), settings)


def test_a_password_in_the_repository_url_is_never_shown(paths: Paths) -> None:
    settings = Settings(repo="http://reader:tok3n-abc@127.0.0.1:9/collectors.git")

    with pytest.raises(CheckoutError) as error:
        prepare_git(paths, settings, AS_ME)

    assert "tok3n-abc" not in str(error.value)
    assert "http://127.0.0.1:9/collectors.git" in str(error.value)


def test_git_reaches_the_remote_through_the_configured_proxy(paths: Paths) -> None:
    with UpstreamServer({}) as proxy:
        settings = Settings(
            repo="http://git.example.invalid/collectors.git", proxy=Proxy(http=proxy.url)
        )
        with pytest.raises(CheckoutError):
            prepare_git(paths, settings, AS_ME)

    assert any(
        request.startswith("http://git.example.invalid/collectors.git/info/refs")
        for request in proxy.requests
    ), proxy.requests


def test_the_caches_of_other_repositories_are_pruned(remote: Remote, paths: Paths) -> None:
    pull(paths, Settings(repo=remote.url))
    (paths.git_cache / "0123456789abcdef.git").mkdir()

    prune_caches(paths, remote.url)

    assert len(list(paths.git_cache.iterdir())) == 1
    prune_caches(paths, "")
    assert list(paths.git_cache.iterdir()) == []


def test_the_bundled_tree_is_copied_under_its_content_hash(tmp_path: Path, paths: Paths) -> None:
    bundled = tmp_path / "charm" / "collectors"
    for name, text in {**BASE, **collector("queue_size")}.items():
        path = bundled / name.removeprefix("collectors/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (bundled / "metrics" / "__pycache__").mkdir()
    (bundled / "metrics" / "__pycache__" / "x.pyc").write_bytes(b"\0")

    first = prepare_bundled(paths, bundled)
    again = prepare_bundled(paths, bundled)
    (bundled / "metrics" / "collectors" / "queue_size" / "__init__.py").write_text(
        'RUN_INTERVAL = "1h"\n\n\ndef run_metric(dry_run=False, verbose=False):\n    pass\n'
    )
    changed = prepare_bundled(paths, bundled)

    assert first == again
    assert first.id.startswith("bundled-")
    assert changed.id != first.id
    assert not (first.tree / "metrics" / "__pycache__").exists()
    assert [c.interval for c in validate(paths, changed, Settings(bundled_tree=bundled))] == ["1h"]


def test_a_bundled_tree_without_collectors_names_the_fix(tmp_path: Path, paths: Paths) -> None:
    with pytest.raises(CheckoutError, match="rebuild the charm with charmcraft pack"):
        prepare_bundled(paths, tmp_path)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder the system user can enter (pytest's own is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="workload-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.getuid() != 0, reason="running git as another user needs root")
@pytest.mark.skipif(
    not os.stat("/dev/null").st_mode & 0o002,
    reason="this host's /dev/null is not writable by other users (mode 0644), so git cannot "
    "run as any unprivileged user here; on a unit it is 0666",
)
def test_git_runs_as_the_unprivileged_system_user_and_the_tree_stays_readable(
    shared_tmp: Path,
) -> None:
    account = Account(SYSTEM_USER)
    account.ensure()
    user = pwd.getpwnam(SYSTEM_USER)
    repo = Remote(shared_tmp)
    repo.commit({**BASE, **collector("queue_size")})
    repo.push()
    # git refuses to serve a repository owned by someone else, as a real remote would not be.
    subprocess.run(["chown", "-R", SYSTEM_USER, repo.url], check=True)
    paths = Paths(shared_tmp / "root")

    commit = pull(paths, Settings(repo=repo.url), account)

    cache = next(paths.git_cache.iterdir())
    init = paths.checkouts / commit / "collectors/metrics/collectors/queue_size/__init__.py"
    assert cache.stat().st_uid == user.pw_uid
    assert init.stat().st_uid == user.pw_uid
    assert init.stat().st_mode & 0o004  # readable by the collectors' DynamicUser
    assert (paths.checkouts / commit).stat().st_mode & 0o005 == 0o005
    # The account fills its checkout but cannot swap it for a link: checkouts/ is root's.
    live = paths.checkouts / commit
    assert paths.checkouts.stat().st_uid == 0
    assert (paths.checkouts / commit).stat().st_uid == user.pw_uid
    swapped = account.run(
        [
            "sh",
            "-c",
            f"mv {live} {shared_tmp}/moved && ln -s /root {live}",
        ],
        home=shared_tmp,
    )
    assert swapped.returncode != 0
    assert not (paths.checkouts / commit).is_symlink()


def test_the_repository_url_is_never_on_git_command_lines(
    remote: Remote, paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every local user can read a command line (ps): a token in the URL must not be there.
    shim = tmp_path / "shim"
    shim.mkdir()
    real_git = shutil.which("git")
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> {shim}/argv\nexec {real_git} "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")

    commit = pull(paths, Settings(repo=remote.url))

    argv = (shim / "argv").read_text()
    assert " fetch " in argv
    assert remote.url not in argv
    assert commit in os.listdir(paths.checkouts)
    cache = next(paths.git_cache.iterdir())
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert remote.url not in (cache / "config").read_text()


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cret-tok@host:99999/repo.git",
        "https://user:s3cret-tok@[::1/repo.git",
        "https://user:s3cret-tok@host:port/repo.git",
    ],
)
def test_a_malformed_url_is_a_problem_naming_the_option_never_a_crash(url: str) -> None:
    shown = display_url(url)
    problems = Settings(repo=url).problems()

    assert "s3cret-tok" not in shown
    assert len(problems) == 1
    assert problems[0].startswith("config collectors-repo=")
    assert "is not a valid URL" in problems[0]
    assert "s3cret-tok" not in problems[0]


def test_an_ipv6_remote_keeps_its_brackets_without_the_token() -> None:
    assert (
        display_url("https://u:tok@[2001:db8::1]:8443/r.git") == "https://[2001:db8::1]:8443/r.git"
    )


def test_a_git_that_stalls_past_its_timeout_is_a_checkout_error_not_a_crash(
    remote: Remote, paths: Paths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stalling = tmp_path / "bin" / "git"
    stalling.parent.mkdir()
    stalling.write_text("#!/bin/sh\nsleep 30\n")
    stalling.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stalling.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(checkout_module, "_GIT_TIMEOUT", 1)

    with pytest.raises(CheckoutError, match="git timed out after 1 s and was stopped"):
        prepare_git(paths, Settings(repo=remote.url), AS_ME)


def test_a_tree_with_the_original_framework_is_named_with_the_fix(
    remote: Remote, paths: Paths
) -> None:
    """Pointed at ubuntu-release-metrics as it is, the units would fail every run (its
    metrics/lib reads INFLUXDB_* variables): the checkout is refused with the fix."""
    remote.commit(
        {
            "collectors/metrics/lib/__init__.py": "",
            "collectors/metrics/lib/basemetric.py": (
                "import os\nHOST = os.environ['INFLUXDB_HOSTNAME']\n"
            ),
        }
    )
    remote.push()
    settings = Settings(repo=remote.url)

    with pytest.raises(CheckoutError) as refused:
        validate(paths, prepare_git(paths, settings, AS_ME), settings)

    assert "carries the ubuntu-release-metrics framework in collectors/metrics/lib" in str(
        refused.value
    )
    assert "replace that folder with this charm's collectors/metrics/lib" in str(refused.value)

    remote.commit({"collectors/metrics/lib/spool.py": "# this framework's spool\n"})
    remote.push()
    assert [c.name for c in validate(paths, prepare_git(paths, settings, AS_ME), settings)] == [
        "queue_size"
    ]
