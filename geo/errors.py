"""Domain errors. They know nothing of HTTP; `web/errors.py` maps them to statuses once."""
from __future__ import annotations


class AnwangError(Exception):
    """Base of every error the core raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}


class InvalidInput(AnwangError):
    """The caller sent something malformed; `field` names it and the message says what was expected."""

    code = "invalid_input"

    def __init__(self, field: str | None, message: str, **kw):
        super().__init__(message, field=field, **kw)


class NotFound(AnwangError):
    """The named thing does not exist (or is outside the caller's scope)."""

    code = "not_found"


class Conflict(AnwangError):
    """The request is based on a state that has changed meanwhile."""

    code = "conflict"


class Forbidden(AnwangError):
    """The caller's role or area scope does not allow this."""

    code = "forbidden"


class LimitExceeded(AnwangError):
    """The request asks for more work than a limit allows; `details` names the limit (the setting),
    its maximum and what came."""

    code = "limit_exceeded"

    def __init__(self, field: str | None, message: str, *, limit: str, maximum: int, got: int):
        super().__init__(message, field=field, details={"limit": limit, "max": maximum, "got": got})


class TooLarge(LimitExceeded):
    """The request as a whole is too large (too many features, too many bytes)."""


class TooComplex(LimitExceeded):
    """One geometry of the request has more vertices than allowed."""


class ImportRefused(AnwangError):
    """A file whose import report names errors; `details` holds the report."""

    code = "import_refused"


class SetupError(AnwangError):
    """The environment is missing something (a package, a running server); the message says what."""

    code = "setup"
