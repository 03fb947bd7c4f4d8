"""The one exception tree of tracemill.

Every error a user can see derives from :class:`TracemillError`, and also from the
built-in it refines where one fits, so ``except ValueError`` keeps working::

    TracemillError
    ├── ConfigError (ValueError)            a setting or argument has a bad value
    ├── NotFoundError (LookupError)          what was asked for is not in the store (HTTP 404)
    │   ├── TraceNotFoundError               no trace has the given id (or a prefix matches several)
    │   └── SpanNotFoundError                the trace has no span with the given id
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── StoreError                           the ClickHouse store failed
    │   ├── StoreLockedError                 an embedded store is held by another process
    │   ├── StoreUnavailableError            the store could not be opened (yet)
    │   └── SchemaError                      the store's schema cannot be created or migrated
    ├── SpoolError                           the collector's spool could not be opened or written
    │   ├── SpoolLockedError                 another server already uses this spool directory
    │   └── SpoolFullError                   the spool is full: the receiver applies backpressure
    ├── PayloadError (ValueError)            received telemetry cannot be decoded (HTTP 400)
    │   ├── PayloadTooLargeError             received telemetry is over the size limit (HTTP 413)
    │   └── UnsupportedMediaTypeError        a Content-Type/-Encoding OTLP/HTTP does not define (HTTP 415)
    ├── ForbiddenError (PermissionError)     the request's identity may not do this (HTTP 403)
    └── ServerError                          a tracemill server answered with an error

This module imports nothing, so every component may use it.
"""

from __future__ import annotations


class TracemillError(Exception):
    """Root of every tracemill error."""


class ConfigError(TracemillError, ValueError):
    """A setting or argument has a value tracemill cannot use; the message names both."""


class MissingDependencyError(TracemillError, ImportError):
    """A feature needs an optional extra that is not installed; the message names the install command."""


class StoreError(TracemillError):
    """The trace store could not be reached or did not accept a statement."""


class StoreLockedError(StoreError):
    """An embedded (chDB) store directory is already open in another process."""


class SchemaError(StoreError):
    """The store's schema could not be created or migrated."""


class ForbiddenError(TracemillError, PermissionError):
    """The authenticated caller may not do what the request asks (write as another author)."""


class PayloadError(TracemillError, ValueError):
    """Received telemetry could not be decoded."""


class PayloadTooLargeError(PayloadError):
    """Received telemetry is larger than the configured limit."""


class NotFoundError(TracemillError, LookupError):
    """What was asked for is not in the store. Not a :class:`ConfigError`: the request was well formed."""


class TraceNotFoundError(NotFoundError):
    """No trace has the given id (or the prefix matches several)."""


class SpanNotFoundError(NotFoundError):
    """The trace has no span with the given id."""


class StoreUnavailableError(StoreError):
    """The store could not be opened (yet); the message says why and when the next attempt is."""


class SpoolError(TracemillError):
    """The spool could not be opened or written."""


class SpoolLockedError(SpoolError):
    """Another process already uses this spool directory."""


class SpoolFullError(SpoolError):
    """The spool holds as many bytes as it may; the receiver answers with backpressure."""


class UnsupportedMediaTypeError(PayloadError):
    """The request's Content-Type or Content-Encoding is not one OTLP/HTTP defines (HTTP 415)."""


class ServerError(TracemillError):
    """The server answered with an error; the message is the server's, ``status`` its HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
