"""Exceptions of the storage layer.

Every error raised on purpose by ``storage`` derives from :class:`StorageError`, and a
database or driver error that caused it is chained (``raise ... from e``)::

    StorageError
    ├── StorageConnectionError   the server could not be reached or refused the login
    ├── BootstrapError           roles or the database could not be created or updated
    ├── MigrationError           a migration file is malformed, unknown, or failed to apply
    │   └── MigrationChecksumError   an applied migration file was edited afterwards
    ├── InvalidRecordError       a value handed to a repository is unusable (also ValueError)
    └── ConflictError            an idempotency key is reused for different content
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of every error raised by the storage layer."""


class StorageConnectionError(StorageError):
    """The Postgres server could not be reached, or it refused the login."""


class BootstrapError(StorageError):
    """Creating or updating the roles or the database failed."""


class MigrationError(StorageError):
    """A migration file is malformed or unknown, or applying it failed."""


class MigrationChecksumError(MigrationError):
    """A migration that is already applied no longer matches its file."""


class InvalidRecordError(StorageError, ValueError):
    """A value passed to a repository cannot be stored (naive timestamp, NaN weight...)."""


class ConflictError(StorageError):
    """An idempotency key (event id, formula hash, allocation id) names different content."""
