"""Every error retrieval raises on purpose, in one tree under RetrievalError, all defined here.

Each message says what went wrong and what to do about it, so callers (the CLI, the bot) can show
`str(exc)` as it is. No class mixes in a builtin exception: `except RetrievalError` (or one of its
branches) is how callers catch them, and `except ValueError` never catches one by accident.

    RetrievalError
    ├── RetrievalConfigError    a retrieval setting that cannot work (chunk size, model too small)
    ├── EmbeddingModelError     the embedding model cannot be loaded or used as configured
    ├── LoadError               one file cannot be turned into a Document
    ├── ManifestError           the index manifest cannot be read
    ├── IndexRequestError       an index or --remove request that cannot be done as asked
    ├── QuestionsError          a malformed questions file (eval)
    ├── RerankError             the reranker gave no usable scores (the search skips it)
    ├── SourceError             a source (sources.yml) that cannot be synced; the message names the source
    │   ├── SourceConfigError       its entry in the sources file is wrong (unknown type, missing secret variable)
    │   ├── SourceAuthError         the source refused the credentials (401/403, expired token)
    │   ├── SourceUnreachableError  the host cannot be reached or keeps failing (5xx, timeouts)
    │   ├── SourceRateLimitedError  the source said to slow down (429); `retry_after` seconds, when it said
    │   ├── SourceNotFoundError     a configured space, page, folder, branch or repository no longer exists
    │   └── UnsafePathError         a document's mirror path that could leave the mirror (the sync skips it)
    └── StoreError              the index cannot be opened
        ├── IndexMissingError
        ├── ModelMismatchError
        ├── IndexLockedError
        └── StoreUnavailableError
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Root of every error raised on purpose by the retrieval package."""


class RetrievalConfigError(RetrievalError):
    """A retrieval setting has a value that cannot work; the message names the setting."""


class EmbeddingModelError(RetrievalError):
    """The configured embedding model cannot be loaded; `str()` names the setting and what it expects."""


class LoadError(RetrievalError):
    """A file that cannot be turned into a Document; `str()` says what is wrong with it."""


class ManifestError(RetrievalError):
    """The index manifest cannot be read."""


class IndexRequestError(RetrievalError):
    """An indexing request that cannot be done as asked (a PATH outside every root, a bad root name,
    nothing indexed under a --remove target); the message says what to do instead."""


class QuestionsError(RetrievalError):
    """A malformed questions file; the message names the file and line."""


class RerankError(RetrievalError):
    """The reranker gave no usable scores; `str()` says why."""


class SourceError(RetrievalError):
    """A source cannot be synced. `str()` starts with the source's name and says what to fix; it never
    holds a secret (connectors name the environment variable, never its value)."""


class SourceConfigError(SourceError):
    """The source's entry in the sources file cannot work: unknown type, bad setting, missing secret."""


class SourceAuthError(SourceError):
    """The source refused the credentials (401, 403, an expired or revoked token)."""


class SourceUnreachableError(SourceError):
    """The source's host cannot be reached, or answered with server errors until the retries ran out."""


class SourceRateLimitedError(SourceError):
    """The source asked to slow down (429) beyond what the connector's retries absorb."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the source asked for, when it said


class SourceNotFoundError(SourceError):
    """A configured space, page, database, folder, branch or repository does not exist (any more)."""


class UnsafePathError(SourceError):
    """A document's mirror path that must not be written; the message says why."""


class StoreError(RetrievalError):
    """Base for index problems whose message tells the user what to do."""


class IndexMissingError(StoreError):
    """There is no index (or collection) to search yet."""


class ModelMismatchError(StoreError):
    """The index was built with another embedding model than the configured one."""


class IndexLockedError(StoreError):
    """Another process holds the local index folder."""


class StoreUnavailableError(StoreError):
    """The Chroma server cannot be reached."""
