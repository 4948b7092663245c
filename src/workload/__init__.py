"""Everything the charm does to the machine, with no `ops` import (docs/design.md).

The charm calls `ensure_packages`, `reconcile`, `sync`, `check_influxdb`, `list_collectors`,
`run_collector`, `remove` and `ca_cert_problem`; the pull timer and operators use the same
through `python3 -m workload`.
"""

from .credentials import InfluxCredentials, ca_cert_problem
from .discovery import Collector
from .influx import check_influxdb
from .isolation import DiscoveryError
from .packages import PACKAGES, PackagesError, ensure_packages, extra_packages
from .service import (
    CollectorStatus,
    Report,
    RunResult,
    SyncResult,
    list_collectors,
    reconcile,
    remove,
    run_collector,
    saved_credentials,
    sync,
)
from .settings import Proxy, Settings

__all__ = [
    "PACKAGES",
    "Collector",
    "CollectorStatus",
    "DiscoveryError",
    "InfluxCredentials",
    "PackagesError",
    "Proxy",
    "Report",
    "RunResult",
    "Settings",
    "SyncResult",
    "ca_cert_problem",
    "check_influxdb",
    "ensure_packages",
    "extra_packages",
    "list_collectors",
    "reconcile",
    "remove",
    "run_collector",
    "saved_credentials",
    "sync",
]
