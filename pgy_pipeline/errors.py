"""The one base class of every error pgy-pipeline raises on purpose.

Each of these errors carries a message that is one sentence a user can act on (what went wrong and what
to do next), so the command line can end any of them the same way: that sentence on stderr and a non-zero
exit, never a traceback. Anything else escaping a command is a bug and keeps its traceback. This module
imports nothing, so every other module (config, model, warehouse) can build on it without a cycle.
"""

from __future__ import annotations


class PgyError(Exception):
    """An expected failure whose message is one actionable sentence; `exit_code` is what the CLI returns."""

    exit_code: int = 1


class UsageError(PgyError):
    """The user asked for something that cannot work as given (a setting, an argument): exit status 2."""

    exit_code = 2
