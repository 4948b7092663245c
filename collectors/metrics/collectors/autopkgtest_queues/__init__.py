"""Sizes of the autopkgtest.ubuntu.com test queues."""

from .collector import run_metric

RUN_INTERVAL = "5m"

__all__ = ["RUN_INTERVAL", "run_metric"]
