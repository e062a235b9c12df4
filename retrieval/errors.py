"""Every error retrieval raises on purpose, in one tree under RetrievalError.

Each message says what went wrong and what to do about it, so callers (the CLI, the bot) can show
`str(exc)` as it is. The second bases (ValueError, RuntimeError) are kept for callers that caught
those before this tree existed.
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Root of every error raised on purpose by the retrieval package."""


class RetrievalConfigError(RetrievalError, ValueError):
    """A retrieval setting has a value that cannot work; the message names the setting."""


class EmbeddingModelError(RetrievalError, RuntimeError):
    """The configured embedding model cannot be loaded; `str()` names the setting and what it expects."""


class LoadError(RetrievalError):
    """A file that cannot be turned into a Document; `str()` says what is wrong with it."""


class ManifestError(RetrievalError, RuntimeError):
    """The index manifest cannot be read."""


class IndexRequestError(RetrievalError, ValueError):
    """An indexing request that cannot be done as asked (a PATH outside every root, a bad root name,
    nothing indexed under a --remove target); the message says what to do instead."""


class QuestionsError(RetrievalError, ValueError):
    """A malformed questions file; the message names the file and line."""


class StoreError(RetrievalError, RuntimeError):
    """Base for index problems whose message tells the user what to do."""


class IndexMissingError(StoreError):
    """There is no index (or collection) to search yet."""


class ModelMismatchError(StoreError):
    """The index was built with another embedding model than the configured one."""


class IndexLockedError(StoreError):
    """Another process holds the local index folder."""


class StoreUnavailableError(StoreError):
    """The Chroma server cannot be reached."""
