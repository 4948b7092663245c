"""Ubuntu community metrics: collectors that write InfluxDB points, and their framework.

Every collector run (`python3 -m metrics.collectors.<name>`) imports this package before the
collector's own modules, so this is where a failure while importing them is caught: the run
still writes its `collector_run ok=false` point and says what failed in one line, as
`metrics.lib.basemetric.main` does for a failure while the collector is constructed.
"""

import sys
import time
from types import TracebackType

_started = time.monotonic()
_excepthook = sys.excepthook


def _report_import_failure(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    argv = getattr(sys, "orig_argv", [])[1:]
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    parts = module.split(".")
    options = argv[argv.index("-m") + 2 :] if module else []
    if (
        len(parts) != 3
        or parts[:2] != ["metrics", "collectors"]
        or not issubclass(kind, Exception)
        or any(option in ("-h", "--help", "-n", "--dry-run") for option in options)
    ):
        _excepthook(kind, error, traceback)
        return
    from .lib import basemetric

    if basemetric.health_written():
        _excepthook(kind, error, traceback)
        return
    failure = f"{kind.__name__}: {error}".splitlines()[0][:500]
    basemetric.report_early_failure(parts[2], _started, failure)
    if "-v" in options or "--verbose" in options:
        _excepthook(kind, error, traceback)
    print(f"ERROR metrics: collector failed while importing it: {failure}", file=sys.stderr)


sys.excepthook = _report_import_failure
