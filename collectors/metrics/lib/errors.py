"""The one exception a collector raises (and the framework reports) on failure."""


class CollectorError(Exception):
    """A collector run failed; the message says what failed and, where it can, what to do.

    Raising it makes the run exit with status 1 after the health point is written.
    """
