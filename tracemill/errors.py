"""The one exception tree of tracemill.

Every error a user can see derives from :class:`TracemillError`, and also from the
built-in it refines where one fits, so ``except ValueError`` keeps working::

    TracemillError
    ├── ConfigError (ValueError)            a setting or argument has a bad value
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── StoreError                           the ClickHouse store failed
    │   ├── StoreLockedError                 an embedded store is held by another process
    │   └── SchemaError                      the store's schema cannot be created or migrated
    └── PayloadError (ValueError)            received telemetry cannot be decoded
        └── PayloadTooLargeError             received telemetry is over the size limit

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


class PayloadError(TracemillError, ValueError):
    """Received telemetry could not be decoded."""


class PayloadTooLargeError(PayloadError):
    """Received telemetry is larger than the configured limit."""
