"""The collectors' log file's other half: its folder and logrotate's configuration for it.

`metrics-log.service` (`units.render_units` with `log_file`) appends the collectors' journal to
`Paths.log_file`; `apply_log_file(paths, wanted)` makes the folder and writes
`/etc/logrotate.d/ubuntu-community-metrics` from `templates/logrotate.j2` when `wanted`, and
removes that file when not. The log itself is left in place when the relation goes: it is a
log, and it no longer grows. A logrotate file that is not ours (no generated-by line) is never
written or removed.
"""

from __future__ import annotations

import jinja2

from .files import make_dirs, write_if_changed
from .paths import Paths
from .units import GENERATED_MARK, TEMPLATES, _safe_path

TEMPLATE = "logrotate.j2"


def render_logrotate(paths: Paths) -> str:
    """logrotate's configuration for the collectors' log."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 (a logrotate file, not HTML)
        keep_trailing_newline=True,
    )
    return environment.get_template(TEMPLATE).render(
        header=f"{GENERATED_MARK} from templates/{TEMPLATE}; do not edit.",
        log_file=_safe_path("log file", paths.log_file),
    )


def apply_log_file(paths: Paths, *, wanted: bool) -> bool:
    """Make the log folder and write the logrotate file (`wanted`), or remove that file.

    True when the logrotate file changed.
    """
    target = paths.logrotate
    try:
        ours = target.read_text(errors="replace").startswith(GENERATED_MARK)
    except FileNotFoundError:
        ours = True
    except OSError:  # a folder, a dangling link: someone else's
        ours = False
    if not ours or target.is_symlink():
        return False
    if not wanted:
        if not target.exists():
            return False
        target.unlink()
        return True
    # Root's, 0755: systemd opens the log here as root, and logrotate refuses a folder that
    # others may write.
    make_dirs(paths.log_dir)
    return write_if_changed(target, render_logrotate(paths).encode(), mode=0o644)
