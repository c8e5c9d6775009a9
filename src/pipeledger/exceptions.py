"""Every error pipeledger raises, in one tree.

::

    PipeledgerError
     ├── DefinitionError            a @step or @pipeline is defined or called wrongly
     ├── RunFailedError             a step of a pipeline run raised; the run is recorded `failed`
     ├── NotFoundError (KeyError)   a pipeline, run, step, output or artifact does not exist
     │    ├── ArtifactNotFoundError an artifact's record exists but its files are gone
     │    └── CacheEntryGoneError   a cache hit's original step run was deleted before it was reused
     ├── ArtifactStoreOwnerError    a directory of the artifact store is another metadata store's
     ├── ArtifactStoreUnavailableError  the artifact store cannot be reached, has no bucket, refuses the credentials
     ├── MaterializerError          no materializer can save or load a value
     │    └── ArtifactIntegrityError an artifact's files differ from their recorded content hash
     ├── OrchestratorUnavailableError  the orchestrator's cluster cannot be reached, or was lost
     ├── AuthenticationError        a pipeledger server refused the credentials (no, unknown, expired or revoked key)
     ├── AccessDeniedError          the caller is authenticated but its role does not allow this
     ├── QueryError (ValueError)    a search filter or order is malformed; the message shows a caret under it
     ├── PermissionDeniedError      the server refused: the caller's role in the project is too low
     ├── ConfigError (ValueError)   invalid stack, component or flavor configuration
 │    ├── FlavorNotFoundError   no flavor of that name (also a NotFoundError)
 │    └── ComponentNotFoundError no component or stack of that name (also a NotFoundError)
     └── MetadataStoreError         the metadata store failed
          ├── StoreUnavailableError the database (or the pipeledger server) cannot be reached or opened
          ├── ApiVersionError       a pipeledger server and its client speak different API versions
          ├── SchemaVersionError    the database schema and the library disagree
          ├── UnsupportedOperationError  the store's flavor cannot do this (MLMD cannot delete)
          ├── TransientStoreError   busy database, deadlock, serialization failure: retried, then raised
          ├── RunExistsError        a run name is taken
          ├── ConflictError         a write contradicts the records (a run in another project than its pipeline's)
          └── StepRunExistsError    a step run of that id, or that name in its run, is already recorded

Every message is one line that names the problem and, where there is one, the fix.
"""

from __future__ import annotations


class PipeledgerError(Exception):
    """Base class of every pipeledger error."""


class DefinitionError(PipeledgerError, TypeError):
    """A step or pipeline is defined or called wrongly (raised at definition or call time)."""


class QueryError(PipeledgerError, ValueError):
    """A search filter, ``order_by`` or page token is malformed or ill-typed.

    The message is the problem and what was expected, then the filter and a caret under the
    offending column. Attributes: ``text`` (the filter), ``column`` (0-based, or None),
    ``problem`` (the first line alone).
    """

    def __init__(self, problem: str, text: str | None = None, column: int | None = None) -> None:
        self.problem = problem
        self.text = text
        self.column = column
        message = problem
        if text is not None and column is not None:
            shown, caret = _excerpt(text, column)
            message = f"{problem}\n  {shown}\n  {' ' * caret}^"
        super().__init__(message)


def _excerpt(text: str, column: int, width: int = 70) -> tuple[str, int]:
    """``text`` on one line (newlines and tabs as spaces), cut to about ``width`` characters around
    ``column``; returns the excerpt and the caret's column in it."""
    flat = "".join(" " if c in "\r\n\t" or ord(c) < 32 else c for c in text)
    start = max(0, min(column - width // 2, len(flat) - width))
    shown = flat[start : start + width]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + width < len(flat) else ""
    return prefix + shown + suffix, len(prefix) + column - start


class RunFailedError(PipeledgerError):
    """A step raised while a pipeline ran. The failed run stays recorded.

    Attributes:
        run_name: the recorded run's name.
        step_name: the step that raised.
    The step's original exception is chained as ``__cause__``.
    """

    def __init__(self, run_name: str, step_name: str, error: BaseException) -> None:
        self.run_name = run_name
        self.step_name = step_name
        super().__init__(f"run {run_name!r} failed in step {step_name!r}: {type(error).__name__}: {error}")


class NotFoundError(PipeledgerError, KeyError):
    """Something looked up by name or id does not exist; the message lists what does."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class AuthenticationError(PipeledgerError):
    """A pipeledger server refused the request's credentials: no API key where one is needed, a
    malformed, unknown, expired or revoked key, a disabled principal, or a wrong user name or
    password. The message names the fix (``pipeledger login URL``...), never the key."""


class AccessDeniedError(PipeledgerError):
    """The caller is authenticated but not allowed to do this (its role in the project, or not a
    server administrator). The message never tells whether the object exists."""


class ConfigError(PipeledgerError, ValueError):
    """Invalid configuration of a stack, component or flavor."""


class ArtifactNotFoundError(NotFoundError):
    """An artifact is recorded but its files are missing from the artifact store."""


class ArtifactStoreOwnerError(PipeledgerError):
    """A directory of the artifact store belongs to another metadata store."""


class ArtifactStoreUnavailableError(PipeledgerError):
    """The artifact store cannot be used: its endpoint is unreachable, its bucket does not exist, its
    credentials are refused, or transient errors persisted after the retries. The message names
    the store, its location and the cause (never a credential)."""


class CacheEntryGoneError(NotFoundError):
    """A cache hit could not be recorded: its original step run (or one of its outputs) was
    deleted after the look-up found it, e.g. by ``gc`` or ``run delete`` in another process.

    Nothing was recorded; the orchestrator executes the step instead.
    """


class MaterializerError(PipeledgerError):
    """No materializer can save or load a value, or its files are unreadable."""


class ArtifactIntegrityError(MaterializerError):
    """An artifact's files no longer match the content hash recorded when it was written, and
    its materializer could run code from them (pickle): it is not loaded."""


class MetadataStoreError(PipeledgerError):
    """The metadata store could not complete an operation."""


class UnsupportedOperationError(MetadataStoreError):
    """The metadata store's flavor cannot do this (e.g. ML Metadata cannot delete records)."""


class StoreUnavailableError(MetadataStoreError):
    """The metadata store's database cannot be reached or opened."""


class ApiVersionError(MetadataStoreError):
    """A pipeledger server and its ``rest`` client speak different versions of the API; the
    message names both."""


class SchemaVersionError(MetadataStoreError):
    """The database schema is older or newer than this version of pipeledger."""


class RunExistsError(MetadataStoreError):
    """A pipeline run with this name already exists."""


class StepRunExistsError(MetadataStoreError):
    """A step run with this id, or with this name in its run, is already recorded."""


class ConflictError(MetadataStoreError):
    """A write contradicts what is recorded, e.g. a run in one project of a pipeline that
    belongs to another; the message names both and the fix."""


class PermissionDeniedError(PipeledgerError):
    """The server refused a request: the caller's role in the project is too low. The message
    names the role held and the role needed."""


class TransientStoreError(MetadataStoreError):
    """The database refused a transaction for a reason that goes away when it is retried: busy
    (SQLite), a deadlock, a lock wait timeout or a serialization failure. The SQL store retries
    these with backoff and raises this error only when the retries are used up."""


class OrchestratorUnavailableError(PipeledgerError):
    """The orchestrator's cluster (e.g. a Dask scheduler) cannot be reached or was lost during a
    run; the steps it was running are recorded ``failed``."""


class PipeledgerWarning(UserWarning):
    """Warnings pipeledger emits (e.g. the pickle fallback materializer)."""


class FlavorNotFoundError(ConfigError, NotFoundError):
    """No flavor of that name is known; the message lists the known ones."""


class ComponentNotFoundError(ConfigError, NotFoundError):
    """No component or stack of that name is registered; the message lists the registered ones."""
