"""Length of the Ubuntu sponsoring queues (bugs the sponsor teams are subscribed to)."""

from .collector import run_metric

RUN_INTERVAL = "30m"

__all__ = ["RUN_INTERVAL", "run_metric"]
