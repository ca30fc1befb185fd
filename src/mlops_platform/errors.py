"""The platform's own errors: the CLI prints their message as one line, not a traceback."""

from __future__ import annotations


class PlatformError(Exception):
    """An operation cannot go ahead for a reason its message explains; nothing was changed."""


class InvalidInput(PlatformError, ValueError):
    """An argument or setting breaks a rule; the message names it and the rule."""


class NotFound(PlatformError, LookupError):
    """Something asked for by id or name does not exist."""
