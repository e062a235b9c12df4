"""The bot's exception tree, and the one place that turns any expected failure into one line.

Every error the bot raises on purpose derives from `QwenbotError` (retrieval has its own root,
`RetrievalError`). Commands raise them; `cli.main` catches both, prints `qwenbot COMMAND: ` and
`user_message()` as one line on stderr and exits with `exit_code()`, so no command prints its own
error or shows a traceback for a mistake an operator can fix. No class mixes in a builtin exception.

    QwenbotError
    ├── ConfigError          a bad setting or settings file (exit 2)
    │   ├── SettingsError    bot/settings.py
    │   └── PolicyError      the channel scopes file (bot/slack/policy.py)
    ├── UsageError           a command line that cannot work as given (exit 2)
    ├── NotReadyError        what a command reads is not there yet: no index, no bot state
    ├── StartupError         the bot cannot start serving
    ├── ControlError         the running bot cannot be reached, or refused (bot/indexing/control.py)
    ├── LLMError, Retryable  the model endpoint failed (bot/llm/errors.py)
    ├── StateError           the state database (bot/state/db.py); StateUnavailable: it is down
    └── AnswerInterrupted    an answer cut off at shutdown (bot/slack/answering.py)

The classes other than the first five are defined beside the code that raises them.
"""

from __future__ import annotations

from retrieval.errors import SourceConfigError


class QwenbotError(Exception):
    """Root of the bot's errors. `str()` is one line, safe to show: no secrets, no request bodies."""


class ConfigError(QwenbotError):
    """A bad setting or settings file; the message names the variable (or file) and what it expects."""


class UsageError(QwenbotError):
    """A command given without what it needs (a required flag); the message names what it takes."""


class NotReadyError(QwenbotError):
    """What a command reads is not there yet (no index, no bot state); the message says what makes it."""


class StartupError(QwenbotError):
    """The bot cannot start serving (Slack refused the token, the port is taken...)."""


def exit_code(exc: BaseException) -> int:
    """2 for configuration and usage mistakes (fix a setting, the sources file or the command line and
    rerun), 1 for everything else."""
    return 2 if isinstance(exc, ConfigError | UsageError | SourceConfigError) else 1


def user_message(exc: BaseException) -> str:
    """One line for an operator. Settings problems are labelled as such."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"bad setting: {text}" if isinstance(exc, ConfigError) else text
