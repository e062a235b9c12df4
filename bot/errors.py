"""The bot's exception tree, and the one place that turns any expected failure into one line.

Every error the bot raises on purpose derives from `QwenbotError` (retrieval has its own root,
`RetrievalError`). `cli.main` catches both, prints `user_message()` and exits non-zero, so no command
shows a traceback for a mistake an operator can fix.
"""

from __future__ import annotations


class QwenbotError(Exception):
    """Root of the bot's errors. `str()` is one line, safe to show: no secrets, no request bodies."""


class ConfigError(QwenbotError):
    """A bad setting or settings file; the message names the variable (or file) and what it expects."""


class UsageError(QwenbotError):
    """A command given without what it needs (a required flag); the message names what it takes."""


class StartupError(QwenbotError):
    """The bot cannot start serving (Slack refused the token, the port is taken...)."""


def exit_code(exc: BaseException) -> int:
    """2 for configuration and usage mistakes (fix a setting or the command line and rerun), 1 for
    everything else."""
    return 2 if isinstance(exc, ConfigError | UsageError) else 1


def user_message(exc: BaseException) -> str:
    """One line for an operator. Settings problems are labelled as such."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"bad setting: {text}" if isinstance(exc, ConfigError) else text
