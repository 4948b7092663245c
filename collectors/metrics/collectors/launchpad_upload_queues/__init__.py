"""Sizes of the Ubuntu upload queues on Launchpad that need an archive admin or release team."""

from .collector import run_metric

RUN_INTERVAL = "15m"

__all__ = ["RUN_INTERVAL", "run_metric"]
