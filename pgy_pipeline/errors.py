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


class InternalSignal(PgyError):
    """Control flow inside pgy-pipeline, caught and turned into a result or a user-facing error before it leaves.

    A stop code that ends a run's fetching, a body that is not the envelope, a key staged twice: each is
    raised where it is found and handled a few frames up. They share the one root so that nothing the project
    raises escapes an `except PgyError`, yet their names say they are signals, not sentences for a user.
    """
