"""The exception hierarchy every component raises; messages name what was wrong and the fix.

A leaf module (imports nothing of ours), so every component may use it.
"""


class ScaleoutError(Exception):
    """Base of every error scaleout-edge raises on purpose."""


class PackageError(ScaleoutError):
    """A compute package is missing, malformed, or one of its entry points failed."""


class NotFound(ScaleoutError):
    """An entity or object does not exist; the message names its kind and id."""


class InvalidId(ScaleoutError):
    """An id contains characters that could escape a path or an object key."""


class RoundFailed(ScaleoutError):
    """A round could not produce a model; the message says why."""
