"""One package per collector; see docs/collectors.md."""
